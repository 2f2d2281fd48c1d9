import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { cacheSeconds, decodeAuditSummary, encodeAuditSummary, type AuditSummary } from './check-cache.ts';

describe('cacheSeconds', () => {
  const now = 1_000_000;
  test('CHECK_CACHE_SECONDS, never past the credential, in whole seconds down; 0 when off or expired', () => {
    assert.equal(cacheSeconds(5, undefined, now), 5);
    assert.equal(cacheSeconds(5, now + 60_000, now), 5);
    assert.equal(cacheSeconds(30, now + 7_999, now), 7);
    assert.equal(cacheSeconds(30, now + 999, now), 0, 'under a second left: not kept');
    assert.equal(cacheSeconds(30, now - 1, now), 0);
    assert.equal(cacheSeconds(0, undefined, now), 0);
    assert.equal(cacheSeconds(Number.NaN, undefined, now), 0);
  });
});

describe('the audit summary of a cached answer', () => {
  const entry: AuditSummary = {
    user: 'ålice "quoted"\n',
    method: 'tools/call',
    tool: 'get_time',
    messages: 2,
    decision: 'deny',
    status: 403,
    missingScope: 'mcp:server:svc:tool:get_time:execute',
    reason: 'scope-missing',
  };

  test('round-trips, in header- and log-safe characters', () => {
    const value = encodeAuditSummary(entry);
    assert.match(value, /^[A-Za-z0-9_-]+$/);
    assert.deepEqual(decodeAuditSummary(value), entry);
    const minimal = { ...entry, tool: undefined, missingScope: undefined, reason: undefined, decision: 'allow' as const, status: 200 };
    assert.deepEqual(decodeAuditSummary(encodeAuditSummary(minimal)), minimal);
  });

  test('anything else reads as nothing', () => {
    const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
    const good = { u: 'a', m: 'x', n: 1, d: 'allow', s: 200 };
    for (const value of [
      '',
      'not base64!',
      Buffer.from('not json').toString('base64url'),
      b64(null),
      b64([1]),
      b64({ ...good, d: 'maybe' }),
      b64({ ...good, s: 99 }),
      b64({ ...good, s: '200' }),
      b64({ ...good, n: -1 }),
      b64({ ...good, u: 7 }),
      b64({ ...good, t: 'x'.repeat(513) }),
      'A'.repeat(4097),
    ])
      assert.equal(decodeAuditSummary(value), undefined, value.slice(0, 40));
    assert.ok(decodeAuditSummary(b64(good)));
  });
});
