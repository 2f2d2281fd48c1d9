/**
 * Long-running MCP clients and the person's groups at the IdP (docs/mcp-clients.md "Lifetimes
 * and revocation"): with no live page session, a token the authorization server issues on
 * refresh carries groups read again at the IdP (here OAUTH_GROUPS_MAX_AGE_SECONDS=0: at every
 * issue), through the upstream refresh token kept from the person's sign-in. An IdP that refuses
 * that refresh token ends the grant. Real parts: a Cognito-shaped and an Okta-shaped test IdP
 * (oidc-provider), the gateway behind nginx, the authorization-code flow over HTTP.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { decodeJwt } from 'jose';
import { buildServer as buildFininfo } from '../../../servers/fininfo/server.ts';
import { serveMcp, type RunningMcpServer } from '../../../servers/shared/serve-mcp.ts';
import { startTestIdp, type IdpProfile, type TestIdp } from '../idp/test-idp.ts';
import { jarFetch } from './cookie-jar.ts';
import { freePort, startTestGateway, type TestGateway } from './harness.ts';
import { fininfoDefinition } from './identity-contract.ts';
import { csrfFrom, login } from './login.ts';
import { authorizeOverHttp, initializeWithBearer, registerPublicClient, tokenRequest, type TokenResponse } from './oauth-http.ts';

const REDIRECT_URI = 'http://127.0.0.1:9/callback';
const USERS = [
  { username: 'alice', password: 'alice-pw', groups: ['mcp-server-fininfo'] },
  { username: 'dave', password: 'dave-pw', groups: ['mcp-server-fininfo'] },
];

function envFor(profile: IdpProfile, idp: TestIdp): Record<string, string> {
  const common = { MCP_AUTH_PROVIDER_TYPE: profile, MCP_AUTH_ALLOW_INSECURE_HTTP: 'true', OAUTH_GROUPS_MAX_AGE_SECONDS: '0' };
  if (profile === 'cognito')
    return {
      ...common,
      MCP_AUTH_COGNITO_ENDPOINT: idp.origin,
      MCP_AUTH_COGNITO_REGION: 'us-east-1',
      MCP_AUTH_COGNITO_USER_POOL_ID: 'us-east-1_TestPool1',
      MCP_AUTH_COGNITO_CLIENT_ID: idp.clientId,
      MCP_AUTH_COGNITO_CLIENT_SECRET: idp.clientSecret,
    };
  // Okta with offline_access (refresh tokens that rotate at every use).
  return {
    ...common,
    MCP_AUTH_OKTA_TENANT_URL: idp.origin,
    MCP_AUTH_OKTA_CLIENT_ID: idp.clientId,
    MCP_AUTH_OKTA_CLIENT_SECRET: idp.clientSecret,
    MCP_AUTH_SCOPES: 'openid profile email offline_access',
    MCP_AUTH_AUDIENCE: idp.audience!,
  };
}

function initialize(gw: TestGateway, token: string): Promise<Response> {
  return initializeWithBearer(`${gw.url}/api/streamable/fininfo`, token);
}

for (const profile of ['cognito', 'okta'] as const) {
  describe(`groups re-read at the IdP for MCP clients without a page session (${profile})`, () => {
    let backend: RunningMcpServer;
    let idp: TestIdp;
    let gw: TestGateway;
    let resource: string;

    before(async () => {
      backend = await serveMcp(buildFininfo, { port: 0 });
      const port = await freePort();
      idp = await startTestIdp(profile, { redirectUri: `http://127.0.0.1:${port}/oauth/callback/${profile}`, users: structuredClone(USERS) });
      gw = await startTestGateway({ port, env: envFor(profile, idp), definitions: [fininfoDefinition(backend)] });
      resource = `${gw.url}/api/streamable/fininfo`;
    });
    after(async () => {
      await gw?.[Symbol.asyncDispose]();
      await idp?.close();
      await backend?.close();
    });

    /** Signs in to the page, connects a client, signs the page out: a client left running with no page session. */
    async function connectedThenSignedOut(username: string): Promise<{ clientId: string; tokens: TokenResponse }> {
      const { jar } = await login(gw.url, username, USERS.find((u) => u.username === username)!.password);
      const clientId = await registerPublicClient(gw.url, REDIRECT_URI, `recheck ${username}`);
      const tokens = await authorizeOverHttp(gw.url, jar, { clientId, redirectUri: REDIRECT_URI }, resource);
      assert.equal(tokens.status, 200, JSON.stringify(tokens.body));
      assert.match(String(tokens.body['scope']), /mcp:server:fininfo:execute/);
      const csrf = await csrfFrom(gw.url, jar);
      const out = await jarFetch(jar, `${gw.url}/logout`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ _csrf: csrf }).toString(),
      });
      assert.equal(out.status, 302);
      return { clientId, tokens };
    }

    const refresh = (clientId: string, refreshToken: unknown) =>
      tokenRequest(gw.url, { grant_type: 'refresh_token', refresh_token: String(refreshToken), client_id: clientId, resource });

    test('a person removed from the group at the IdP: the next refreshed token lacks the scope and MCP calls are refused', async () => {
      const { clientId, tokens } = await connectedThenSignedOut('alice');
      assert.equal((await initialize(gw, String(tokens.body['access_token']))).status, 200);

      // Still in the group: the refresh reads the groups again and keeps the scope.
      const kept = await refresh(clientId, tokens.body['refresh_token']);
      assert.equal(kept.status, 200, JSON.stringify(kept.body));
      assert.match(String(kept.body['scope']), /mcp:server:fininfo:execute/);

      idp.setGroups('alice', []);
      const dropped = await refresh(clientId, kept.body['refresh_token']);
      assert.equal(dropped.status, 200, JSON.stringify(dropped.body));
      const token = String(dropped.body['access_token']);
      assert.equal(String(decodeJwt(token)['scope'] ?? ''), '');
      const refused = await initialize(gw, token);
      assert.ok(refused.status === 403 || refused.status === 401, `an MCP call with the refreshed token answered ${refused.status}`);

      // Back in the group: the next refresh carries the scope again (the grant itself was kept).
      idp.setGroups('alice', ['mcp-server-fininfo']);
      const back = await refresh(clientId, dropped.body['refresh_token']);
      assert.equal(back.status, 200, JSON.stringify(back.body));
      assert.match(String(back.body['scope']), /mcp:server:fininfo:execute/);
      assert.equal((await initialize(gw, String(back.body['access_token']))).status, 200);
    });

    test('an IdP that refuses the upstream refresh token: invalid_grant, and the grant is revoked', async () => {
      const { clientId, tokens } = await connectedThenSignedOut('dave');
      idp.setDisabled('dave', true);
      const refused = await refresh(clientId, tokens.body['refresh_token']);
      assert.equal(refused.status, 400, JSON.stringify(refused.body));
      assert.equal(refused.body['error'], 'invalid_grant');

      // The person is back at the IdP, but the grant is gone: the client must authorize again.
      idp.setDisabled('dave', false);
      const again = await refresh(clientId, tokens.body['refresh_token']);
      assert.equal(again.status, 400, JSON.stringify(again.body));
      assert.equal(again.body['error'], 'invalid_grant');
    });

    test('an IdP that cannot be reached: temporarily_unavailable (503), and the refresh token stays usable (run last: it stops the IdP)', async () => {
      const { clientId, tokens } = await connectedThenSignedOut('alice');
      await idp.close();
      idp = undefined as unknown as TestIdp;
      const down = await refresh(clientId, tokens.body['refresh_token']);
      assert.equal(down.status, 503, JSON.stringify(down.body));
      assert.equal(down.body['error'], 'temporarily_unavailable');
      // Not spent: the same refresh token is refused the same way again, not as a reused one (invalid_grant).
      const retry = await refresh(clientId, tokens.body['refresh_token']);
      assert.equal(retry.body['error'], 'temporarily_unavailable');
    });
  });
}

describe('groups re-read at the IdP: Okta without offline_access (no upstream refresh token)', () => {
  let backend: RunningMcpServer;
  let idp: TestIdp;
  let gw: TestGateway;

  before(async () => {
    backend = await serveMcp(buildFininfo, { port: 0 });
    const port = await freePort();
    idp = await startTestIdp('okta', { redirectUri: `http://127.0.0.1:${port}/oauth/callback/okta`, users: structuredClone(USERS) });
    gw = await startTestGateway({
      port,
      env: { ...envFor('okta', idp), MCP_AUTH_SCOPES: 'openid profile email' },
      definitions: [fininfoDefinition(backend)],
    });
  });
  after(async () => {
    await gw?.[Symbol.asyncDispose]();
    await idp?.close();
    await backend?.close();
  });

  test('once the groups are older than the bound and the page session is gone, the refresh is invalid_grant until the person signs in again', async () => {
    const resource = `${gw.url}/api/streamable/fininfo`;
    const { jar } = await login(gw.url, 'alice', 'alice-pw');
    const clientId = await registerPublicClient(gw.url, REDIRECT_URI, 'no offline_access');
    const tokens = await authorizeOverHttp(gw.url, jar, { clientId, redirectUri: REDIRECT_URI }, resource);
    assert.equal(tokens.status, 200, JSON.stringify(tokens.body));
    // While the page session lives, its groups are current: the refresh works.
    const live = await tokenRequest(gw.url, {
      grant_type: 'refresh_token',
      refresh_token: String(tokens.body['refresh_token']),
      client_id: clientId,
      resource,
    });
    assert.equal(live.status, 200, JSON.stringify(live.body));
    const csrf = await csrfFrom(gw.url, jar);
    await jarFetch(jar, `${gw.url}/logout`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ _csrf: csrf }).toString(),
    });
    const refused = await tokenRequest(gw.url, {
      grant_type: 'refresh_token',
      refresh_token: String(live.body['refresh_token']),
      client_id: clientId,
      resource,
    });
    assert.equal(refused.status, 400, JSON.stringify(refused.body));
    assert.equal(refused.body['error'], 'invalid_grant');

    // Signed in to the page again: the same refresh token works again (the grant was kept).
    await login(gw.url, 'alice', 'alice-pw');
    const resumed = await tokenRequest(gw.url, {
      grant_type: 'refresh_token',
      refresh_token: String(live.body['refresh_token']),
      client_id: clientId,
      resource,
    });
    assert.equal(resumed.status, 200, JSON.stringify(resumed.body));
  });
});
