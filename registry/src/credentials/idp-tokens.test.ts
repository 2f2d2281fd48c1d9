import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createLogger } from '../log.ts';
import { idpTokenId, IdpTokens } from './idp-tokens.ts';
import { testVault } from './test-vault.ts';
import { isUploadedTokenOf } from './uploaded-tokens.ts';

const ALICE = { provider: 'dev', sub: 'alice' };

function setup(wanted = true) {
  const vault = testVault();
  const flag = { wanted };
  const tokens = new IdpTokens({ vault, wanted: () => flag.wanted, log: createLogger('silent'), now: () => 42 });
  return { vault, tokens, flag };
}

describe("each person's IdP tokens (the subject tokens of token exchange)", () => {
  test('stored sealed at sign-in, read from memory, replaced at a refresh', async () => {
    const { vault, tokens } = setup();
    await tokens.remember(ALICE, { accessToken: 'at-1', idToken: 'id-1', accessTokenExpiresAt: 1000, idTokenExpiresAt: 2000 });
    assert.deepEqual(tokens.peek(ALICE), { storedAt: 42, accessToken: 'at-1', idToken: 'id-1', expiresAt: 1000, idTokenExpiresAt: 2000 });
    assert.equal(vault.list().length, 1);
    assert.equal(vault.list()[0]?.id, idpTokenId(ALICE));
    await tokens.remember(ALICE, { accessToken: 'at-2', idToken: 'id-2', accessTokenExpiresAt: 3000, idTokenExpiresAt: 4000 });
    assert.equal(tokens.peek(ALICE)?.accessToken, 'at-2');
    assert.equal(tokens.peek({ provider: 'okta', sub: 'alice' }), undefined, 'another provider is another person');
  });

  test('a refresh without a new ID token keeps the one of the sign-in', async () => {
    const { tokens } = setup();
    await tokens.remember(ALICE, { accessToken: 'at-1', idToken: 'id-1', idTokenExpiresAt: 2000 });
    await tokens.remember(ALICE, { accessToken: 'at-2', accessTokenExpiresAt: 3000 });
    assert.deepEqual(tokens.peek(ALICE), { storedAt: 42, accessToken: 'at-2', idToken: 'id-1', expiresAt: 3000, idTokenExpiresAt: 2000 });
  });

  test('nothing is stored while no server uses token exchange, or without a vault', async () => {
    const { vault, tokens, flag } = setup(false);
    await tokens.remember(ALICE, { accessToken: 'at-1' });
    assert.equal(vault.list().length, 0);
    flag.wanted = true;
    await tokens.remember(ALICE, { accessToken: 'at-1' });
    assert.equal(vault.list().length, 1);
    const none = new IdpTokens({ vault: undefined, wanted: () => true, log: createLogger('silent') });
    await none.remember(ALICE, { accessToken: 'x' });
    assert.equal(none.peek(ALICE), undefined);
  });

  test('forget removes them; the id is a hash that no uploaded-token id match takes for a server', async () => {
    const { tokens } = setup();
    await tokens.remember(ALICE, { accessToken: 'at-1' });
    const id = idpTokenId(ALICE);
    assert.ok(!id.includes('alice'));
    assert.ok(!isUploadedTokenOf(id, 'idp-token') && !isUploadedTokenOf(id, 'token'));
    assert.equal(await tokens.forget(ALICE), true);
    assert.equal(tokens.peek(ALICE), undefined);
  });

  test("purge removes every person's tokens and nothing else (the last token_exchange server left)", async () => {
    const { vault, tokens } = setup();
    await tokens.remember(ALICE, { accessToken: 'at-1' });
    await tokens.remember({ provider: 'dev', sub: 'bob' }, { accessToken: 'at-2' });
    await vault.put('server:x:client-secret', 'keep me');
    assert.equal(await tokens.purge(), 2);
    assert.equal(tokens.peek(ALICE), undefined);
    assert.deepEqual(
      vault.list().map((i) => i.id),
      ['server:x:client-secret'],
    );
  });
});
