import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AuditEntry } from '../audit/audit-log.ts';
import { encodeAuditSummary } from '../authz/check-cache.ts';
import { createLogger } from '../log.ts';
import { AuditTail, auditEntryOf } from './audit-tail.ts';

const RID = '0123456789abcdef0123456789abcdef';
const SUMMARY = encodeAuditSummary({
  user: 'alice',
  method: 'tools/call',
  tool: 'get_time',
  messages: 1,
  decision: 'allow',
  status: 200,
  missingScope: undefined,
  reason: undefined,
});
const line = (fields: Record<string, string> = {}) =>
  JSON.stringify({
    time: '2026-11-30T10:00:00+00:00',
    requestId: RID,
    server: 'svc',
    transport: 'streamable-http',
    status: '200',
    traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
    audit: `c${SUMMARY}`,
    ...fields,
  });

describe('auditEntryOf', () => {
  test("a cached answer's line: the cached decision, this request's id, trace and transport", () => {
    assert.deepEqual(auditEntryOf(line()), {
      event: 'access',
      requestId: RID,
      traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
      server: 'svc',
      transport: 'streamable-http',
      user: 'alice',
      method: 'tools/call',
      tool: 'get_time',
      messages: 1,
      decision: 'allow',
      status: 200,
      missingScope: undefined,
      reason: undefined,
      answeredBy: 'cache',
    });
  });

  test('a request njs refused first (`n`), and a cached answer without a summary: what nginx sent', () => {
    const refused = encodeAuditSummary({
      user: '',
      method: 'tools/call',
      tool: undefined,
      messages: 1,
      decision: 'deny',
      status: 400,
      missingScope: undefined,
      reason: 'MCP_REQUEST_INVALID',
    });
    const n = auditEntryOf(line({ audit: `n${refused}`, status: '400', traceparent: '' }));
    assert.equal(n?.event === 'access' && n.answeredBy, 'nginx');
    assert.equal(n?.event === 'access' && n.reason, 'MCP_REQUEST_INVALID');
    assert.equal(n?.event === 'access' && n.traceId, undefined);
    const bare = auditEntryOf(line({ audit: 'c', status: '403' }));
    assert.equal(bare?.event === 'access' && bare.decision, 'deny');
    assert.equal(bare?.event === 'access' && bare.reason, 'audit-summary-unreadable');
  });

  test('anything else is not an audit line', () => {
    for (const bad of [
      'not json',
      line({ requestId: 'short' }),
      line({ server: '../x' }),
      line({ transport: 'websocket' }),
      line({ status: '99' }),
      line({ audit: '' }),
      line({ audit: `x${SUMMARY}` }),
      'x'.repeat(20_000),
    ])
      assert.equal(auditEntryOf(bad), undefined, bad.slice(0, 60));
  });
});

describe('AuditTail', () => {
  const dir = mkdtempSync(join(tmpdir(), 'audit-tail-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('starts at the end, reads whole lines once each (a line split across writes too), a rotated file to its end and the new one from its start, a truncated one again', async () => {
    const file = join(dir, 'mcp-audit.log');
    writeFileSync(file, `${line()}\n`);
    const recorded: AuditEntry[] = [];
    const cached: string[] = [];
    const tail = new AuditTail({
      file,
      audit: { record: (e) => void recorded.push(e) },
      onCached: (s) => void cached.push(s),
      log: createLogger('silent'),
      pollMs: 60_000,
    });
    await tail.start();
    await tail.drain();
    assert.equal(recorded.length, 0, 'lines of an earlier run are not read again');
    const next = line({ requestId: 'f'.repeat(32) });
    appendFileSync(file, `${next}\n${next.slice(0, 50)}`);
    await tail.drain();
    assert.equal(recorded.length, 1);
    appendFileSync(file, `${next.slice(50)}\nnot an audit line\n`);
    await tail.drain();
    assert.equal(recorded.length, 2, 'the split line once, the garbage skipped');
    assert.deepEqual(cached, ['svc', 'svc']);
    // Rotated: renamed, nginx still flushes into the old file until it reopens its logs, then
    // writes a new one. The old file is read to its end, then the new one from its start.
    renameSync(file, `${file}.1`);
    await tail.drain();
    appendFileSync(`${file}.1`, `${line({ requestId: 'd'.repeat(32) })}\n`);
    writeFileSync(file, `${line({ requestId: 'e'.repeat(32) })}\n`);
    await tail.stop();
    assert.deepEqual(
      recorded.slice(2).map((e) => e.event === 'access' && e.requestId),
      ['d'.repeat(32), 'e'.repeat(32)],
    );
    // Truncated in place: read again from its start.
    const again = new AuditTail({ file, audit: { record: (e) => void recorded.push(e) }, log: createLogger('silent'), pollMs: 60_000 });
    await again.start();
    writeFileSync(file, '');
    await again.drain();
    appendFileSync(file, `${line({ requestId: 'c'.repeat(32) })}\n`);
    await again.stop();
    const last = recorded.at(-1);
    assert.equal(last?.event === 'access' && last.requestId, 'c'.repeat(32));
  });
});
