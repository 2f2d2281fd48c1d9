/*
 * Token exchange (RFC 8693) with the person's IdP *access token* as the subject token: the
 * gateway signs people in at an Okta-shaped IdP (a real oidc-provider issuing RS256 JWT access
 * tokens for `api://default`), and exchanges the signed-in person's access token at the backend's
 * own authorization server, which trusts that IdP's keys and audience. The dev IdP's suite
 * (backend-token-exchange.test.ts) covers ID tokens, whose sign-in access tokens are opaque.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeJwt } from 'jose';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { startProtectedBackend, tokenExchangeDefinition, type ProtectedBackend } from '../fixtures/protected-backend.ts';
import { startTestIdp, type TestIdp } from '../idp/test-idp.ts';
import { freePort, startTestGateway, type TestGateway } from './harness.ts';
import { login } from './login.ts';

const SERVER = 'exchanged';
let idp: TestIdp;
let backend: ProtectedBackend;
let gw: TestGateway;

before(async () => {
  const port = await freePort();
  idp = await startTestIdp('okta', {
    redirectUri: `http://127.0.0.1:${port}/oauth/callback/okta`,
    users: [{ username: 'alice', password: 'alice-pw', groups: [`mcp-server-${SERVER}`] }],
  });
  backend = await startProtectedBackend({ tokenExchange: { issuer: idp.issuer, jwksUri: idp.endpoints.jwks, audience: idp.audience! } });
  gw = await startTestGateway({
    port,
    env: {
      MCP_AUTH_PROVIDER_TYPE: 'okta',
      MCP_AUTH_ALLOW_INSECURE_HTTP: 'true',
      MCP_AUTH_OKTA_TENANT_URL: idp.origin,
      MCP_AUTH_OKTA_CLIENT_ID: idp.clientId,
      MCP_AUTH_OKTA_CLIENT_SECRET: idp.clientSecret,
      MCP_AUTH_SCOPES: 'openid profile email offline_access',
      MCP_AUTH_AUDIENCE: idp.audience!,
      MCP_BACKEND_EXCHANGE_SECRET: backend.exchangeClient.clientSecret,
    },
    definitions: [tokenExchangeDefinition(backend, SERVER, { clientSecretFrom: { env: 'MCP_BACKEND_EXCHANGE_SECRET' }, subjectTokenType: 'access_token' })],
  });
});

after(async () => {
  if (process.exitCode) process.stderr.write(`nginx error.log:\n${gw?.errorLog()}\n`);
  await gw?.[Symbol.asyncDispose]();
  await backend?.close();
  await idp?.close();
});

test("the person's Okta access token is the subject token; the backend sees the person, with its own audience; one exchange serves many calls", async () => {
  const { cookie } = await login(gw.url, 'alice', 'alice-pw');
  const client = new Client({ name: 'okta-exchange-test', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(`${gw.url}/api/streamable/${SERVER}`), { requestInit: { headers: { cookie } } }));
  try {
    const calls = [];
    for (let i = 0; i < 5; i++) {
      const result = await client.callTool({ name: 'whoami', arguments: {} });
      calls.push(JSON.parse((result.content as { text: string }[])[0]!.text) as Record<string, unknown>);
    }
    assert.equal(backend.exchanges, 1, 'one exchange, then the cached token');
    const subject = decodeJwt(backend.subjectTokens[0]!);
    assert.equal(subject.iss, idp.issuer);
    assert.equal(subject.aud, idp.audience, "an access token for the IdP's API audience, not an ID token");
    for (const claims of calls) {
      assert.equal(claims['sub'], subject.sub);
      assert.equal(claims['aud'], backend.mcpUrl);
    }
  } finally {
    await client.close();
  }
});
