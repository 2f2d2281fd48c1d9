/*
 * Token exchange (RFC 8693, issue 13) with real parts: a person signs in to the gateway through
 * its IdP (the built-in dev IdP, an oidc-provider), and calls a `token_exchange` server through
 * the real nginx with the unmodified MCP SDK client; the gateway exchanges the person's ID token
 * at the backend's own authorization server (a second oidc-provider with the token-exchange
 * grant, trusting the dev IdP's keys), whose MCP server checks the issued token's audience.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { devMachineSecret, DEV_MACHINE_CLIENT_ID } from '../../src/identity/dev.ts';
import { startProtectedBackend, tokenExchangeDefinition, type ProtectedBackend } from '../fixtures/protected-backend.ts';
import { ApiClient, type Caller } from './api-client.ts';
import { ADMIN_PASSWORD, eventually, freePort, startTestGateway, TEST_SECRET_KEY, type TestGateway } from './harness.ts';
import { csrfFrom, login } from './login.ts';
import { jarFetch } from './cookie-jar.ts';
import { assertNoSecretAtRest } from './no-secret-at-rest.ts';
import { initializeWithBearer, initializeWithCookie } from './oauth-http.ts';

const SERVER = 'exchanged';
let backend: ProtectedBackend;
let gw: TestGateway;
let api: ApiClient;
let admin: Caller;
let adminCookie = '';
const logLines: string[] = [];

before(async () => {
  const port = await freePort();
  const idp = `http://127.0.0.1:${port}/idp`;
  // The dev IdP's ID tokens are the subject tokens (its sign-in access tokens are opaque).
  backend = await startProtectedBackend({ tokenExchange: { issuer: idp, jwksUri: `${idp}/jwks`, audience: 'mcp-gateway-registry' } });
  gw = await startTestGateway({
    port,
    definitions: [tokenExchangeDefinition(backend, SERVER, { subjectTokenType: 'id_token', scopes: ['mcp:tools'] })],
    users: [
      { username: 'full', password: 'pw-full', groups: [`mcp-server-${SERVER}`] },
      { username: 'onetool', password: 'pw-one', groups: [`mcp-server-${SERVER}-tool-whoami`] },
      { username: 'refused', password: 'pw-refused', groups: [`mcp-server-${SERVER}`] },
      { username: 'leaver', password: 'pw-leaver', groups: [`mcp-server-${SERVER}`] },
    ],
    mapping: `clients:\n  ${JSON.stringify(DEV_MACHINE_CLIENT_ID)}: ["mcp:server:${SERVER}:execute"]\n`,
    env: { LOGGING_LEVEL: 'debug' },
    logDestination: { write: (line: string) => void logLines.push(line) },
  });
  api = new ApiClient(gw.url);
  adminCookie = (await login(gw.url, 'admin', ADMIN_PASSWORD)).cookie;
  admin = { cookie: adminCookie, csrf: (await api.call('getMe', { as: { cookie: adminCookie } })).body.csrfToken };
});

after(async () => {
  if (process.exitCode) process.stderr.write(`nginx error.log:\n${gw?.errorLog()}\n`);
  await gw?.[Symbol.asyncDispose]();
  await backend?.close();
});

const post = (cookie: string) => initializeWithCookie(`${gw.url}/api/streamable/${SERVER}`, cookie);

async function connect(cookie: string): Promise<Client> {
  const client = new Client({ name: 'tx-test', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(`${gw.url}/api/streamable/${SERVER}`), { requestInit: { headers: { cookie } } }));
  return client;
}

async function whoami(client: Client): Promise<Record<string, unknown>> {
  const result = (await client.callTool({ name: 'whoami', arguments: {} })) as { content: { text: string }[] };
  return JSON.parse(result.content[0]?.text ?? '{}') as Record<string, unknown>;
}

test('without the client secret the exchange is not tried: BACKEND_CREDENTIAL_FAILED saying so', async () => {
  const { cookie } = await login(gw.url, 'full', 'pw-full');
  const res = await post(cookie);
  assert.equal(res.status, 502);
  const text = await res.text();
  assert.match(text, /BACKEND_CREDENTIAL_FAILED/);
  assert.match(text, /no client secret is stored for exchanged's token exchange/);
  assert.equal(backend.exchanges, 0);
});

test('with the secret set through the API, the backend sees the signed-in person (sub) and its own audience; one exchange serves many calls', async () => {
  const put = await api.call('setCredentials', { params: { name: SERVER }, body: { clientSecret: backend.exchangeClient.clientSecret }, as: admin });
  assert.equal(put.status, 200, put.text);
  assert.ok(!put.text.includes(backend.exchangeClient.clientSecret));
  const { cookie } = await login(gw.url, 'full', 'pw-full');
  await eventually(async () => (await post(cookie)).status === 200, 5000);
  const client = await connect(cookie);
  try {
    const claims = await whoami(client);
    assert.equal(claims['sub'], 'full');
    assert.equal(claims['aud'], backend.mcpUrl);
    assert.equal(claims['client_id'], backend.exchangeClient.clientId);
    assert.equal(claims['scope'], 'mcp:tools');
    for (let i = 0; i < 10; i++) assert.equal((await whoami(client))['sub'], 'full');
  } finally {
    await client.close();
  }
  assert.equal(backend.exchanges, 1, 'the exchanged token is cached: one exchange for every call');
  const seen = new Set(backend.received.filter((r) => r.endpoint === 'oauth').map((r) => r.authorization));
  assert.equal(seen.size, 1);
  const status = await api.call('getCredentials', { params: { name: SERVER }, as: admin });
  assert.equal(status.status, 200, status.text);
  assert.equal(status.body.type, 'token_exchange');
  assert.equal(status.body.secrets[0].set, true);
  assert.equal(status.body.secrets[0].id, `server:${SERVER}:exchange-client-secret`);
  assert.equal(status.body.exchangedTokens, 1);
});

test("the server's page lets an editor set the exchange client secret, and never shows it", async () => {
  const page = await (await fetch(`${gw.url}/servers/${SERVER}`, { headers: { cookie: adminCookie } })).text();
  assert.match(page, /<input type="password" id="c-clientSecret" name="clientSecret"/);
  assert.match(page, /Mode: <code>token_exchange<\/code>/);
  assert.ok(!page.includes(backend.exchangeClient.clientSecret));
});

test("the one-tool user's scope rules still apply: that tool through the exchanged token, no other", async () => {
  const { cookie } = await login(gw.url, 'onetool', 'pw-one');
  const client = await connect(cookie);
  try {
    assert.deepEqual(
      (await client.listTools()).tools.map((t) => t.name),
      ['whoami'],
    );
    assert.equal((await whoami(client))['sub'], 'onetool');
    await assert.rejects(client.callTool({ name: 'other', arguments: {} }), new RegExp(`mcp:server:${SERVER}:tool:other:execute`));
  } finally {
    await client.close();
  }
});

test('an exchange the authorization server refuses: a clear JSON-RPC error naming the refusal, without secrets or tokens', async () => {
  backend.refuseSubject('refused');
  const { cookie } = await login(gw.url, 'refused', 'pw-refused');
  const before = backend.received.length;
  const res = await post(cookie);
  assert.equal(res.status, 502);
  const body = (await res.json()) as { jsonrpc: string; error: { message: string; data: { error: string; server: string } } };
  assert.equal(body.jsonrpc, '2.0');
  assert.equal(body.error.data.error, 'BACKEND_CREDENTIAL_FAILED');
  assert.match(body.error.message, /token exchange for exchanged failed: .*400 invalid_grant/);
  const text = JSON.stringify(body);
  assert.ok(!text.includes(backend.exchangeClient.clientSecret));
  for (const subject of backend.subjectTokens) assert.ok(!text.includes(subject));
  assert.equal(backend.received.length, before, 'nothing reached the backend');
});

test("a machine client has no person's token to exchange: a clear refusal", async () => {
  const metadata = (await (await fetch(`${gw.url}/.well-known/oauth-authorization-server`)).json()) as Record<string, unknown>;
  const issued = await fetch(String(metadata['token_endpoint']), {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${DEV_MACHINE_CLIENT_ID}:${devMachineSecret(TEST_SECRET_KEY)}`).toString('base64')}`,
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: new URLSearchParams({ grant_type: 'client_credentials', resource: `${gw.url}/api/streamable/${SERVER}` }).toString(),
  });
  assert.equal(issued.status, 200, await issued.clone().text());
  const token = String(((await issued.json()) as Record<string, unknown>)['access_token']);
  const res = await initializeWithBearer(`${gw.url}/api/streamable/${SERVER}`, token);
  assert.equal(res.status, 502);
  assert.match(await res.text(), /machine client has none/);
});

test("the person's IdP token is kept sealed while they are signed in and deleted at their last sign-out", async () => {
  const idpTokens = () => gw.gateway.vault.list().filter((i) => i.id.endsWith(':idp-token')).length;
  const before = idpTokens();
  const trace = await login(gw.url, 'leaver', 'pw-leaver');
  assert.equal(idpTokens(), before + 1);
  assert.equal((await post(trace.cookie)).status, 200);
  const out = await jarFetch(trace.jar, `${gw.url}/logout`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ _csrf: await csrfFrom(gw.url, trace.jar) }).toString(),
  });
  assert.equal(out.status, 302);
  assert.equal(idpTokens(), before);
});

test('no client secret, subject token or exchanged token in the nginx config, audit log, registry log or state folder', async () => {
  const exchanged = [...new Set(backend.received.map((r) => r.authorization?.replace(/^Bearer /, '')).filter((t): t is string => !!t))];
  assert.ok(exchanged.length > 0 && backend.subjectTokens.length > 0);
  await assertNoSecretAtRest(gw, [backend.exchangeClient.clientSecret, ...backend.subjectTokens, ...exchanged], logLines.join(''), 'a secret or token');
});

test('when the last token_exchange server is deleted, every stored IdP token is deleted with it', async () => {
  const idpTokens = () => gw.gateway.vault.list().filter((i) => i.id.endsWith(':idp-token')).length;
  assert.ok(idpTokens() > 0, 'people signed in earlier have theirs stored');
  assert.equal((await api.call('deleteServer', { params: { name: SERVER }, as: admin })).status, 200);
  await eventually(async () => idpTokens() === 0, 5000);
  // And none is stored at the next sign-in.
  await login(gw.url, 'full', 'pw-full');
  assert.equal(idpTokens(), 0);
});
