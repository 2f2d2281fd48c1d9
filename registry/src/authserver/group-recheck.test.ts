import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { GatewayError } from '../errors.ts';
import type { OidcStoreEntry } from '../identity/oidc-adapter.ts';
import type { LoginResult } from '../identity/provider.ts';
import { createLogger } from '../log.ts';
import { createSealer } from '../sessions/seal.ts';
import { FileRecordStore } from '../store/index.ts';
import { GroupRecheck } from './group-recheck.ts';

const sealer = createSealer('group-recheck-test-secret-0123456789abcdef');
const log = createLogger('silent');
const KEY = 'GatewayAccount:dev:alice';

async function setup(refresh: (token: string) => Promise<LoginResult>, upstream = true) {
  const records = new FileRecordStore<OidcStoreEntry>({ dir: mkdtempSync(join(tmpdir(), 'mcpgw-recheck-')), log });
  let now = 1_000_000;
  await records.create(
    KEY,
    {
      payload: {
        account: { sub: 'alice', username: 'alice', provider: 'dev', groups: ['g1'] },
        groupsReadAt: now,
        ...(upstream ? { upstream: { sealedRefreshToken: sealer.seal('rt-1') } } : {}),
      },
    },
    { expiresAt: Date.now() + 3600_000 },
  );
  const calls: string[] = [];
  const recheck = new GroupRecheck({
    records,
    provider: {
      name: 'dev',
      refresh: async (token) => {
        calls.push(token);
        return refresh(token);
      },
    },
    sealer,
    maxAgeMs: 60_000,
    log,
    now: () => now,
  });
  const payload = async () => {
    const value = (await records.get(KEY))?.value;
    return value && 'payload' in value ? (value.payload as Record<string, unknown>) : undefined;
  };
  return { records, recheck, calls, payload, advance: (ms: number) => (now += ms) };
}

const result = (groups: string[], refreshToken?: string): LoginResult => ({
  identity: { sub: 'alice', username: 'alice', groups },
  ...(refreshToken ? { refreshToken } : {}),
  accessTokenExpiresAt: Date.now() + 60_000,
});

test('groups within the bound are not read again; older ones are, once for concurrent issues, and the rotated refresh token is kept', async () => {
  const { recheck, calls, payload, advance } = await setup(async () => result(['g2'], 'rt-2'));
  assert.deepEqual(await recheck.ensureFresh('dev:alice'), { ok: true });
  assert.equal(calls.length, 0);
  advance(60_001);
  const [a, b] = await Promise.all([recheck.ensureFresh('dev:alice'), recheck.ensureFresh('dev:alice')]);
  assert.deepEqual([a, b], [{ ok: true }, { ok: true }]);
  assert.deepEqual(calls, ['rt-1']);
  const stored = await payload();
  assert.deepEqual((stored?.['account'] as { groups: string[] }).groups, ['g2']);
  assert.equal(sealer.open(String((stored?.['upstream'] as { sealedRefreshToken: string }).sealedRefreshToken)), 'rt-2');
});

test('an IdP that refuses the refresh token ends the grant; an unreachable one refuses this issue only', async () => {
  let mode: 'refuse' | 'down' = 'down';
  const { recheck, advance } = await setup(async () => {
    if (mode === 'refuse') throw new GatewayError('LOGIN_STATE_INVALID', 'invalid_grant');
    throw new GatewayError('LOGIN_FAILED', 'ECONNREFUSED');
  });
  advance(60_001);
  const down = await recheck.ensureFresh('dev:alice');
  assert.ok(!down.ok && down.unavailable && !down.ended);
  mode = 'refuse';
  const refused = await recheck.ensureFresh('dev:alice');
  assert.ok(!refused.ok && refused.ended && !refused.unavailable);
});

test('without an upstream refresh token, groups older than the bound refuse the issue; a live session noted makes them fresh again', async () => {
  const { recheck, calls, advance } = await setup(async () => result(['g2']), false);
  advance(60_001);
  const stale = await recheck.ensureFresh('dev:alice');
  assert.ok(!stale.ok && !stale.ended && !stale.unavailable);
  assert.equal(calls.length, 0);
  await recheck.noteLive('dev:alice', ['g3'], 1_000_000 + 60_001, { sealedRefreshToken: sealer.seal('rt-live') });
  assert.deepEqual(await recheck.ensureFresh('dev:alice'), { ok: true });
});

test('two replicas sharing the records re-check one account once: the second waits for the first and uses its result', async () => {
  let finish!: () => void;
  const slow = new Promise<void>((resolve) => (finish = resolve));
  const { records, recheck, calls, advance } = await setup(async () => {
    await slow;
    return result(['g2'], 'rt-2');
  });
  // Another replica: its own GroupRecheck (its own in-process map) on the same records.
  const other = new GroupRecheck({
    records,
    provider: {
      name: 'dev',
      refresh: async (token) => {
        calls.push(`other:${token}`);
        return result(['g3'], 'rt-3');
      },
    },
    sealer,
    maxAgeMs: 60_000,
    log,
    now: () => Date.now() + 10 ** 12, // its groups look old too
  });
  advance(60_001);
  const first = recheck.ensureFresh('dev:alice');
  await new Promise((resolve) => setTimeout(resolve, 50)); // the first holds the lock and waits for the IdP
  const second = other.ensureFresh('dev:alice');
  await new Promise((resolve) => setTimeout(resolve, 150));
  finish();
  assert.deepEqual(await first, { ok: true });
  await second;
  assert.deepEqual(calls.slice(0, 1), ['rt-1'], 'the IdP saw rt-1 once');
  assert.ok(!calls.includes('other:rt-1'), 'the second replica never spent the token the first was spending');
});
