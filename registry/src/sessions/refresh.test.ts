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
