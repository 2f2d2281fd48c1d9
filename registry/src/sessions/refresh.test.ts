import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createLogger } from '../log.ts';
import { SessionRefresher } from './refresh.ts';

/** The background passes (every 2 s) run only while this replica holds the refresher's lease. */
test('background refresh passes run only while the lease is held', async () => {
  let held = false;
  let passes = 0;
  const refresher = new SessionRefresher({
    store: {
      list: async () => {
        passes++;
        return [];
      },
      replace: async () => ({ ok: false, current: undefined }),
      end: async () => false,
    },
    provider: { name: 'dev', refresh: async () => assert.fail('nothing is due') },
    scopesFor: () => [],
    sealer: { seal: (plain) => plain, open: (sealed) => sealed },
    log: createLogger('silent'),
    lease: { held: () => held },
  });
  refresher.start();
  try {
    await new Promise((resolve) => setTimeout(resolve, 2300));
    assert.equal(passes, 0, 'another replica holds the lease: no pass here');
    held = true;
    await new Promise((resolve) => setTimeout(resolve, 2100));
    assert.ok(passes >= 1, 'the holder runs its passes');
  } finally {
    await refresher.stop();
  }
});

test("a refresh hands the person's new IdP tokens to the token-exchange store", async () => {
  const remembered: { person: { provider: string; sub: string }; accessToken: string | undefined }[] = [];
  const value = {
    identity: { sub: 'alice', username: 'alice', groups: ['g'], provider: 'dev' },
    scopes: [],
    tokens: { sealedRefreshToken: 'rt', expiresAt: Date.now() + 1000, issuedAt: Date.now() - 60_000 },
  };
  const refresher = new SessionRefresher({
    store: {
      list: async () => [{ key: 's1', version: 1, value }] as never,
      replace: async () => ({ ok: true }) as never,
      end: async () => false,
    },
    provider: {
      name: 'dev',
      refresh: async () => ({ identity: { sub: 'alice', username: 'alice', groups: ['g'] }, refreshToken: 'rt2', accessToken: 'at-new' }),
    },
    scopesFor: () => [],
    sealer: { seal: (plain) => plain, open: (sealed) => sealed },
    log: createLogger('silent'),
    idpTokens: { remember: async (person, result) => void remembered.push({ person, accessToken: result.accessToken }) },
  });
  await refresher.runOnce();
  assert.deepEqual(remembered, [{ person: { provider: 'dev', sub: 'alice' }, accessToken: 'at-new' }]);
});
