import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createAuditLog,
  queryAudit,
  SEED_WINDOW_BYTES,
  type AccessAuditEntry,
  type AuditEntry,
  type ChangeAuditEntry,
  type TimedAuditEntry,
} from './audit-log.ts';

test('writes one JSON line per decision with a time, and nothing else', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mcpgw-audit-'));
  dirs.push(dir);
  const file = join(dir, 'sub', 'audit.log');
  const audit = createAuditLog(file);
  audit.record({
    event: 'access',
    requestId: 'r1',
    user: 'alice',
    server: 'fininfo',
    transport: 'sse',
    method: 'tools/call',
    tool: 'print_stuff',
    messages: 1,
    decision: 'deny',
    status: 403,
    missingScope: 'mcp:server:fininfo:tool:print_stuff:execute',
    reason: 'scope-missing',
  });
  audit.record({ event: 'change', user: 'operator', server: 'fininfo', action: 'disable' });
  await audit.close();
  const lines = readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.equal(lines.length, 2);
  assert.match(String(lines[0]?.['time']), /^\d{4}-\d\d-\d\dT/);
  assert.equal(lines[0]?.['missingScope'], 'mcp:server:fininfo:tool:print_stuff:execute');
  assert.equal(lines[1]?.['action'], 'disable');
  assert.deepEqual(Object.keys(lines[0] ?? {}).sort(), [
    'decision',
    'event',
    'messages',
    'method',
    'missingScope',
    'reason',
    'requestId',
    'server',
    'status',
    'time',
    'tool',
    'transport',
    'user',
  ]);
});

const dirs: string[] = [];
after(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});
function tempFile(): string {
  const dir = mkdtempSync(join(tmpdir(), 'mcpgw-audit-'));
  dirs.push(dir);
  return join(dir, 'audit.log');
}
function access(user: string, server: string, decision: 'allow' | 'deny', tool = 't'): AccessAuditEntry {
  return {
    event: 'access',
    requestId: undefined,
    user,
    server,
    transport: 'streamable-http',
    method: 'tools/call',
    tool,
    messages: 1,
    decision,
    status: decision === 'allow' ? 200 : 403,
    missingScope: undefined,
    reason: undefined,
  };
}
function change(user: string, server: string, action: ChangeAuditEntry['action'] = 'update'): ChangeAuditEntry {
  return { event: 'change', user, server, action };
}
function timed(entry: AuditEntry, i: number): TimedAuditEntry {
  return { time: new Date(Date.UTC(2025, 0, 1, 0, 0, i)).toISOString(), ...entry };
}
const tools = (entries: readonly TimedAuditEntry[]): string[] => entries.map((e) => (e.event === 'access' ? String(e.tool) : `${e.action}:${e.server}`));

describe('the recent entries in memory', () => {
  test('are newest first, hold the same time as the file line, and wrap past keep', async () => {
    const file = tempFile();
    const audit = createAuditLog(file, { keep: 3 });
    assert.deepEqual(await audit.recent(), []);
    audit.record(access('alice', 'a', 'allow', 't1'));
    audit.record(access('alice', 'a', 'allow', 't2'));
    assert.deepEqual(tools(await audit.recent()), ['t2', 't1']);
    for (let i = 3; i <= 7; i++) audit.record(access('alice', 'a', 'allow', `t${i}`));
    assert.deepEqual(tools(await audit.recent()), ['t7', 't6', 't5']);
    audit.record(change('op', 'a', 'register'));
    assert.deepEqual(tools(await audit.recent()), ['register:a', 't7', 't6']);
    const newest = (await audit.recent({ limit: 1 }))[0];
    await audit.close();
    const lines = readFileSync(file, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(lines.length, 8);
    assert.equal(newest?.time, lines[7]?.['time']);
    assert.equal(lines[7]?.['action'], 'register');
  });

  test('never hold more than keep, however many are recorded', async () => {
    const audit = createAuditLog(tempFile(), { keep: 50 });
    for (let i = 0; i < 5000; i++) {
      audit.record(access(`u${i % 7}`, `s${i % 3}`, i % 2 ? 'allow' : 'deny', `t${i}`));
      if (i % 997 === 0) assert.ok((await audit.recent({ limit: 1000 })).length <= 50);
    }
    const all = await audit.recent({ limit: 1000 });
    assert.equal(all.length, 50);
    assert.equal(all[0]?.event === 'access' && all[0].tool, 't4999');
    assert.equal(all[49]?.event === 'access' && all[49].tool, 't4950');
    await audit.close();
  });

  test('keep defaults to 2000 and must be a positive integer', async () => {
    const audit = createAuditLog(tempFile());
    for (let i = 0; i < 2100; i++) audit.record(access(`u${Math.floor(i / 1000)}`, 's', 'allow', `t${i}`));
    assert.equal((await audit.recent({ limit: 5000 })).length, 1000, 'one query returns at most 1000');
    // t0..t999 are u0, t1000..t1999 u1, t2000..t2099 u2: the ring holds t100..t2099.
    assert.equal((await audit.recent({ user: 'u0', limit: 1000 })).length, 900);
    assert.equal((await audit.recent({ user: 'u1', limit: 1000 })).length, 1000);
    assert.equal((await audit.recent({ user: 'u2', limit: 1000 })).length, 100);
    assert.deepEqual(tools(await audit.recent({ user: 'u0', limit: 1000 })).at(-1), 't100');
    await audit.close();
    assert.throws(() => createAuditLog(tempFile(), { keep: 0 }), RangeError);
    assert.throws(() => createAuditLog(tempFile(), { keep: 1.5 }), RangeError);
  });
});

describe('queryAudit', () => {
  const entries: TimedAuditEntry[] = [
    access('alice', 'fin', 'allow', 'a1'),
    access('bob', 'fin', 'deny', 'b1'),
    change('op', 'fin', 'disable'),
    access('alice', 'hr', 'deny', 'a2'),
    change('alice', 'hr', 'delete'),
    access('bob', 'hr', 'allow', 'b2'),
  ].map(timed);

  test('without a filter returns everything, newest first, and leaves the input alone', () => {
    const copy = [...entries];
    assert.deepEqual(tools(queryAudit(entries, {})), ['b2', 'delete:hr', 'a2', 'disable:fin', 'b1', 'a1']);
    assert.deepEqual(entries, copy);
  });

  test('each filter alone', () => {
    assert.deepEqual(tools(queryAudit(entries, { event: 'change' })), ['delete:hr', 'disable:fin']);
    assert.deepEqual(tools(queryAudit(entries, { event: 'access' })), ['b2', 'a2', 'b1', 'a1']);
    assert.deepEqual(tools(queryAudit(entries, { user: 'alice' })), ['delete:hr', 'a2', 'a1']);
    assert.deepEqual(tools(queryAudit(entries, { user: 'ali' })), [], 'exact match, not a prefix');
    assert.deepEqual(tools(queryAudit(entries, { server: 'fin' })), ['disable:fin', 'b1', 'a1']);
    assert.deepEqual(tools(queryAudit(entries, { decision: 'allow' })), ['b2', 'a1']);
    assert.deepEqual(tools(queryAudit(entries, { visibleServer: (s) => s === 'hr' })), ['b2', 'delete:hr', 'a2']);
    assert.deepEqual(tools(queryAudit(entries, { limit: 2 })), ['b2', 'delete:hr']);
  });

  test('the decision filter excludes change entries', () => {
    assert.deepEqual(tools(queryAudit(entries, { decision: 'deny' })), ['a2', 'b1']);
    assert.deepEqual(tools(queryAudit(entries, { decision: 'deny', user: 'alice', server: 'hr' })), ['a2']);
    assert.deepEqual(queryAudit(entries, { decision: 'allow', event: 'change' }), []);
  });

  test('filters combine', () => {
    assert.deepEqual(tools(queryAudit(entries, { user: 'alice', server: 'hr' })), ['delete:hr', 'a2']);
    assert.deepEqual(tools(queryAudit(entries, { user: 'alice', event: 'access' })), ['a2', 'a1']);
    assert.deepEqual(tools(queryAudit(entries, { user: 'bob', decision: 'allow', visibleServer: (s) => s !== 'hr' })), []);
    assert.deepEqual(tools(queryAudit(entries, { server: 'hr', visibleServer: (s) => s === 'fin' })), [], 'the permission filter wins over an asked server');
    assert.deepEqual(
      tools(queryAudit(entries, { visibleServer: (s) => s === 'fin', limit: 2 })),
      ['disable:fin', 'b1'],
      'the limit counts visible entries only',
    );
  });

  test('the permission filter sees only servers, and is asked before the others', () => {
    const asked: string[] = [];
    queryAudit(entries, { user: 'nobody', visibleServer: (s) => (asked.push(s), true) });
    assert.equal(asked.length, entries.length);
  });

  test('the limit defaults to 100 and is clamped to 1..1000', () => {
    const many = Array.from({ length: 1500 }, (_, i) => timed(access('u', 's', 'allow', `t${i}`), i));
    assert.equal(queryAudit(many, {}).length, 100);
    assert.equal(queryAudit(many, { limit: 0 }).length, 1);
    assert.equal(queryAudit(many, { limit: -5 }).length, 1);
    assert.equal(queryAudit(many, { limit: 2.9 }).length, 2);
    assert.equal(queryAudit(many, { limit: Number.NaN }).length, 100);
    assert.equal(queryAudit(many, { limit: 5000 }).length, 1000);
    assert.equal(queryAudit(many, { limit: Number.POSITIVE_INFINITY }).length, 1000);
    assert.deepEqual(tools(queryAudit(many, { limit: 1 })), ['t1499']);
  });
});

describe('seeding from the file on start', () => {
  test('a new instance on the same file shows the entries of the previous one, then its own', async () => {
    const file = tempFile();
    const first = createAuditLog(file);
    first.record(access('alice', 'fin', 'deny', 'old1'));
    first.record(change('op', 'fin', 'enable'));
    first.record(access('bob', 'fin', 'allow', 'old2'));
    const before = await first.recent();
    await first.close();
    const second = createAuditLog(file);
    assert.deepEqual(
      await second.recent(),
      before.map((e) => JSON.parse(JSON.stringify(e)) as unknown),
    );
    assert.deepEqual(tools(await second.recent({ decision: 'deny' })), ['old1']);
    second.record(access('carol', 'hr', 'allow', 'new1'));
    assert.deepEqual(tools(await second.recent()), ['new1', 'old2', 'enable:fin', 'old1']);
    await second.close();
    const third = createAuditLog(file, { keep: 2 });
    assert.deepEqual(tools(await third.recent()), ['new1', 'old2'], 'keeps the newest `keep` of the file');
    await third.close();
  });

  test('skips lines that are not entries, and a cut last line', async () => {
    const file = tempFile();
    const good = (tool: string, i: number): string => JSON.stringify(timed(access('alice', 'fin', 'allow', tool), i));
    writeFileSync(
      file,
      [
        good('g1', 1),
        '{"event":"access","user":"alice","server":"fin"', // corrupt
        '[]',
        'null',
        '42',
        '"text"',
        JSON.stringify({ event: 'access', user: 'alice', server: 'fin', decision: 'allow' }), // no time
        JSON.stringify({ event: 'access', user: 'alice', server: 'fin', time: 12 }), // time not a string
        JSON.stringify({ event: 'login', user: 'alice', server: 'fin', time: '2025-01-01T00:00:00.000Z' }),
        JSON.stringify({ level: 30, time: '2025-01-01T00:00:00.000Z', msg: 'a log line' }),
        '',
        JSON.stringify(timed(change('op', 'fin', 'delete'), 2)),
        good('g2', 3),
        good('cut', 4).slice(0, 40), // a crash mid-write: no newline, half a line
      ].join('\n'),
    );
    const audit = createAuditLog(file);
    assert.deepEqual(tools(await audit.recent()), ['g2', 'delete:fin', 'g1']);
    audit.record(access('alice', 'fin', 'allow', 'g3'));
    assert.deepEqual(tools(await audit.recent()), ['g3', 'g2', 'delete:fin', 'g1']);
    await audit.close();
  });

  test('reads only the last MiB and drops its first, cut, line', async () => {
    const file = tempFile();
    const line = (tool: string, i: number): string => JSON.stringify(timed(access('alice', 'fin', 'allow', tool), i));
    // Outside the window: junk, and a valid entry that must not be seen.
    const outside = `${'junk '.repeat(40)}\n`.repeat(3000) + `${line('too-old', 0)}\n`;
    // A line whose end is a valid entry starting exactly where the window starts: seen only if
    // the cut first line were kept.
    const trap = JSON.stringify(timed(change('op', 'trap', 'delete'), 1));
    const valid = [line('v1', 2), line('v2', 3), line('v3', 4)].join('\n') + '\n';
    let fillerSize = SEED_WINDOW_BYTES - trap.length - 1 - valid.length;
    let filler = '';
    while (fillerSize > 0) {
      const n = Math.min(fillerSize, 200);
      filler += `${'#'.repeat(n - 1)}\n`;
      fillerSize -= n;
    }
    const content = `${outside}xxxx${trap}\n${filler}${valid}`;
    writeFileSync(file, content);
    assert.ok(statSync(file).size > SEED_WINDOW_BYTES);
    assert.equal(content.slice(content.length - SEED_WINDOW_BYTES).startsWith(trap), true, 'the window starts at the trap');
    const audit = createAuditLog(file);
    assert.deepEqual(tools(await audit.recent({ limit: 1000 })), ['v3', 'v2', 'v1']);
    await audit.close();
  });

  test('a missing file (and directory) seeds nothing', async () => {
    const file = join(tempFile(), 'deeper', 'audit.log');
    const audit = createAuditLog(file);
    assert.deepEqual(await audit.recent(), []);
    await audit.close();
  });
});
