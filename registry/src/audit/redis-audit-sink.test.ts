import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { createClient } from 'redis';
import { createLogger } from '../log.ts';
import { startTestRedis, type TestRedis } from '../store/redis-test-server.ts';
import { createAuditLog, type AccessAuditEntry, type SharedAuditSink, type TimedAuditEntry } from './audit-log.ts';
import { RedisAuditSink } from './redis-audit-sink.ts';

const log = createLogger('silent');
let redis: TestRedis;
before(async () => {
  redis = await startTestRedis();
});
after(async () => redis.stop());

const access = (tool: string, server = 'svc'): AccessAuditEntry => ({
  event: 'access',
  requestId: undefined,
  user: 'alice',
  server,
  transport: 'streamable-http',
  method: 'tools/call',
  tool,
  messages: 1,
  decision: 'allow',
  status: 200,
  missingScope: undefined,
  reason: undefined,
});
const tools = (entries: readonly TimedAuditEntry[]) => entries.map((e) => (e.event === 'access' ? e.tool : e.action));
const file = () => join(mkdtempSync(join(tmpdir(), 'mcpgw-audit-shared-')), 'audit.log');

/** Counts the sink's writes: the check's cost is one write per batch, never one per request. */
function counting(sink: SharedAuditSink): SharedAuditSink & { appends: number } {
  const counted = {
    appends: 0,
    append: async (batch: readonly TimedAuditEntry[]) => {
      counted.appends++;
      await sink.append(batch);
    },
    read: (max: number) => sink.read(max),
  };
  return counted;
}

test("every replica's decisions appear in the audit view of any replica, written in batches", async () => {
  const key = `audit-${randomUUID()}`;
  const sinkA = await RedisAuditSink.open({ url: redis.url, key, log });
  const sinkB = await RedisAuditSink.open({ url: redis.url, key, log });
  const countedA = counting(sinkA);
  const a = createAuditLog(file(), { shared: countedA, flushIntervalMs: 50, batchSize: 100, log });
  const b = createAuditLog(file(), { shared: sinkB, flushIntervalMs: 50, log });
  try {
    for (let i = 0; i < 250; i++) a.record(access(`a${i}`));
    b.record(access('b0', 'other'));
    assert.equal(countedA.appends, 1, 'a full batch goes at once; record never waits for it');
    await a.flush();
    await b.flush();
    assert.equal(countedA.appends, 3, '250 entries: three writes');

    const seenByB = await b.recent({ limit: 1000 });
    assert.equal(seenByB.length, 251);
    assert.deepEqual(tools(seenByB).slice(0, 2).sort(), ['a249', 'b0']);
    assert.deepEqual(tools(await a.recent({ server: 'other' })), ['b0'], 'filters apply to every replica');
    assert.deepEqual(tools(await a.recent({ limit: 1 })), tools(await b.recent({ limit: 1 })), 'one view everywhere');
    // Entries recorded but not yet sent show on their own replica at once.
    a.record(access('unsent'));
    assert.equal(tools(await a.recent({ limit: 1 }))[0], 'unsent');
  } finally {
    await a.close();
    await b.close();
    await sinkA.close();
    await sinkB.close();
  }
});

test('the stream is capped (MAXLEN ~) and read newest first up to what the log keeps', async () => {
  const key = `audit-${randomUUID()}`;
  const sink = await RedisAuditSink.open({ url: redis.url, key, log, maxBatches: 10 });
  const client = createClient({ url: redis.url });
  await client.connect();
  try {
    for (let i = 0; i < 300; i++) await sink.append([{ time: new Date(1_700_000_000_000 + i).toISOString(), ...access(`t${i}`) }]);
    const length = await client.xLen(key);
    assert.ok(length < 300 && length >= 10, `trimmed to about 10 batches (${length})`);
    const newest = await sink.read(5);
    assert.deepEqual(tools(newest), ['t295', 't296', 't297', 't298', 't299'], 'the newest, oldest first');
    // A batch that is not ours (another version, a hand-made XADD) is skipped, not fatal.
    await client.xAdd(key, '*', { entries: '{not json' });
    await client.xAdd(key, '*', { entries: JSON.stringify([{ nope: 1 }]) });
    assert.deepEqual(tools(await sink.read(2)), ['t298', 't299']);
  } finally {
    await client.close();
    await sink.close();
  }
});

test('reading pages through a long stream returns exactly the newest entries, in order', async () => {
  const sink = await RedisAuditSink.open({ url: redis.url, key: `audit-${randomUUID()}`, log, maxBatches: 5000 });
  try {
    const batches = Array.from({ length: 1200 }, (_, i) => [{ time: new Date(1_700_000_000_000 + i).toISOString(), ...access(`t${i}`) }]);
    for (const batch of batches) await sink.append(batch);
    await sink.append([]); // nothing to write: no stream entry
    const newest = await sink.read(1100);
    assert.equal(newest.length, 1100);
    assert.deepEqual(tools(newest).slice(0, 2), ['t100', 't101']);
    assert.equal(tools(newest).at(-1), 't1199');
    assert.equal((await sink.read(5000)).length, 1200, 'all there is, when fewer than asked');
  } finally {
    await sink.close();
  }
});

test('Redis down: the check never waits or fails, entries stay in the file and on this replica, and are sent once Redis is back', async () => {
  const key = `audit-${randomUUID()}`;
  const sink = await RedisAuditSink.open({ url: redis.url, key, log });
  const path = file();
  const audit = createAuditLog(path, { shared: sink, flushIntervalMs: 50, log });
  try {
    audit.record(access('before'));
    await audit.flush();
    await redis.stop();
    const started = performance.now();
    for (let i = 0; i < 50; i++) audit.record(access(`down${i}`));
    assert.ok(performance.now() - started < 50, 'record does not wait on Redis');
    await audit.flush(); // a failed write is kept, never thrown
    const local = await audit.recent({ limit: 3 });
    assert.deepEqual(tools(local), ['down49', 'down48', 'down47'], "this replica's entries, from memory");
    assert.match(readFileSync(path, 'utf8'), /down49/, 'and in the file');

    await redis.start(); // empty: this test server keeps nothing
    await waitFor(async () => (await sink.read(100).catch(() => [])).length === 50);
    const reader = await RedisAuditSink.open({ url: redis.url, key, log });
    assert.deepEqual(tools(await reader.read(2)), ['down48', 'down49'], 'the kept entries were sent when Redis came back');
    await reader.close();
  } finally {
    await audit.close();
    await sink.close();
  }
});

async function waitFor(predicate: () => Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await predicate())) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 50));
  }
}
