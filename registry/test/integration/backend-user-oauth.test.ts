/*
 * Per-user OAuth to a backend (issue 13, `user_oauth`) over HTTP, beside the browser suite
 * (registry/test/browser/backend-connect.test.ts): a token past its refresh time is refreshed on
 * the request, once however many requests wait; a client registered by hand (confidential,
 * its secret in the vault) works as well as dynamic registration; the one-tool user's scope
 * rules still apply; a service credential checks the backend and lists its tools but never
 * serves a person; deleting the server forgets every connection to it; no token at rest.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { startProtectedBackend, type ProtectedBackend } from '../fixtures/protected-backend.ts';
import { ApiClient, type Caller } from './api-client.ts';
import { connectOverHttp } from './backend-connect.ts';
import { jarFetch } from './cookie-jar.ts';
import { ADMIN_PASSWORD, startTestGateway, type TestGateway } from './harness.ts';
import { login, type LoginTrace } from './login.ts';
import { assertNoSecretAtRest } from './no-secret-at-rest.ts';

const TOKEN_TTL = 6;
const USERS = [
  { username: 'erin', password: 'pw-erin', groups: ['mcp-server-auto', 'mcp-server-configured', 'mcp-server-serviced', 'mcp-server-keyed-service'] },
  { username: 'one-tool', password: 'pw-tool', groups: ['mcp-server-auto-tool-whoami'] },
];

let backend: ProtectedBackend;
let gw: TestGateway;
let api: ApiClient;
let admin: Caller;
const people: Record<string, LoginTrace> = {};
const logLines: string[] = [];

const mcp = () => new URL(backend.mcpUrl);
const definition = (name: string, backendAuth: Record<string, unknown>) => ({
  name,
  description: 'behind its own OAuth server',
  url: mcp().origin,
  transports: { 'streamable-http': mcp().pathname },
  enabled: true,
  backendAuth,
});

before(async () => {
  backend = await startProtectedBackend({ accessTokenTtlSeconds: TOKEN_TTL });
  gw = await startTestGateway({
    definitions: [definition('auto', { type: 'user_oauth' })],
    users: USERS,
    // The refresher sleeps through the test: a due token is refreshed by the request itself.
    env: { BACKEND_TOKEN_REFRESH_SECONDS: '3600', LOGGING_LEVEL: 'debug', MCP_BACKEND_SERVICE_SECRET: backend.client.clientSecret },
    logDestination: { write: (line: string) => void logLines.push(line) },
  });
  api = new ApiClient(gw.url);
  const adminCookie = (await login(gw.url, 'admin', ADMIN_PASSWORD)).cookie;
  admin = { cookie: adminCookie, csrf: (await api.call('getMe', { as: { cookie: adminCookie } })).body.csrfToken };
  for (const u of USERS) people[u.username] = await login(gw.url, u.username, u.password);
});

after(async () => {
  if (process.exitCode) process.stderr.write(`nginx error.log:\n${gw?.errorLog()}\n`);
  await gw?.[Symbol.asyncDispose]();
  await backend?.close();
});

async function call(server: string, who: string, tool = 'whoami'): Promise<Record<string, unknown>> {
  const client = new Client({ name: 'user-oauth-test', version: '1.0.0' });
  await client.connect(
    new StreamableHTTPClientTransport(new URL(`${gw.url}/api/streamable/${server}`), { requestInit: { headers: { cookie: people[who]!.cookie } } }),
  );
  try {
    const result = await client.callTool({ name: tool, arguments: {} });
    return JSON.parse((result.content as { text: string }[])[0]!.text) as Record<string, unknown>;
  } finally {
    await client.close();
  }
}

const status = async (server: string, who: string) =>
  (await api.call('getMyConnection', { params: { name: server }, as: { cookie: people[who]!.cookie } })).body as Record<string, string>;

describe('per-user OAuth over HTTP', () => {
  test('a token past its refresh time is refreshed by the request, once for many concurrent requests', async () => {
    assert.match(await connectOverHttp(people['erin']!.jar, gw.url, 'auto', 'alice', 'alice-pw'), /Connected to auto as alice/);
    assert.equal((await call('auto', 'erin'))['sub'], 'alice');
    const connected = await status('auto', 'erin');
    // Stale 1 s before expiry (10 % of 6 s, at least 1 s): wait for it, then send 6 at once.
    const staleIn = Date.parse(connected['expiresAt']!) - 1000 - Date.now();
    await new Promise((r) => setTimeout(r, Math.max(0, staleIn) + 100));
    const before = backend.tokenRequests;
    const results = await Promise.all(Array.from({ length: 6 }, () => call('auto', 'erin')));
    assert.ok(results.every((r) => r['sub'] === 'alice'));
    assert.equal(backend.tokenRequests - before, 1, 'one refresh for all of them');
    const refreshed = await status('auto', 'erin');
    assert.ok(refreshed['refreshedAt']);
    assert.ok(Date.parse(refreshed['expiresAt']!) > Date.parse(connected['expiresAt']!));
  });

  test("the one-tool user's scope rules apply before any credential: their tool works, another is refused", async () => {
    assert.match(await connectOverHttp(people['one-tool']!.jar, gw.url, 'auto', 'alice', 'alice-pw'), /Connected/);
    assert.equal((await call('auto', 'one-tool'))['sub'], 'alice');
    // The gateway's own refusal (AUTH_SCOPE_MISSING), decided before any credential is looked at.
    await assert.rejects(call('auto', 'one-tool', 'another_tool'), /AUTH_SCOPE_MISSING.*mcp:server:auto:tool:another_tool:execute/);
  });

  test('a client registered by hand (confidential, its secret in the vault) connects like a registered one', async () => {
    // What an operator does at an authorization server without DCR: register the gateway's callback.
    const registered = await fetch(backend.endpoints.registration, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        redirect_uris: [`${gw.url}/oauth/backend/callback`],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_basic',
      }),
    });
    assert.equal(registered.status, 201);
    const client = (await registered.json()) as { client_id: string; client_secret: string };
    const put = await api.call('registerServer', {
      body: definition('configured', { type: 'user_oauth', client: { clientId: client.client_id, clientSecretFrom: 'vault' } }),
      as: admin,
    });
    assert.equal(put.status, 201, put.text);
    // No secret yet: the connect says what is missing.
    assert.match(await connectOverHttp(people['erin']!.jar, gw.url, 'configured', 'alice', 'alice-pw'), /client secret is not set/);
    const secret = await api.call('setCredentials', { params: { name: 'configured' }, body: { clientSecret: client.client_secret }, as: admin });
    assert.equal(secret.status, 200, secret.text);
    assert.match(await connectOverHttp(people['erin']!.jar, gw.url, 'configured', 'alice', 'alice-pw'), /Connected/);
    const claims = await call('configured', 'erin');
    assert.equal(claims['client_id'], client.client_id);
    assert.equal(claims['sub'], 'alice');
    const creds = await api.call('getCredentials', { params: { name: 'configured' }, as: admin });
    assert.equal(creds.body.connections, 1);
    assert.equal(creds.body.secrets[0].set, true);
    assert.ok(!creds.text.includes(client.client_secret));
  });

  test('a service credential checks the backend and lists its tools, and never serves a person', async () => {
    const put = await api.call('registerServer', {
      body: definition('serviced', {
        type: 'user_oauth',
        service: {
          type: 'client_credentials',
          issuer: backend.issuer,
          clientId: backend.client.clientId,
          clientSecretFrom: { env: 'MCP_BACKEND_SERVICE_SECRET' },
          resource: backend.mcpUrl,
        },
      }),
      as: admin,
    });
    assert.equal(put.status, 201, put.text);
    const checked = await api.call('refreshServer', { params: { name: 'serviced' }, as: admin });
    assert.equal(checked.body.health.status, 'healthy', JSON.stringify(checked.body.health));
    assert.deepEqual(
      checked.body.tools.map((t: { name: string }) => t.name),
      ['whoami'],
    );
    const before = backend.received.length;
    await assert.rejects(call('serviced', 'erin'), /have not connected/);
    assert.equal(backend.received.length, before, "the service credential did not carry erin's call");
    // Without one, the check is skipped with the reason.
    const auto = await api.call('refreshServer', { params: { name: 'auto' }, as: admin });
    assert.equal(auto.body.health.status, 'skipped');
    assert.match(auto.body.health.error, /no service credential/);
  });

  test("a service credential's secret is set like any other (write-only, in the vault) and checks the backend", async () => {
    const key = new URL(backend.staticKey.mcpUrl);
    const put = await api.call('registerServer', {
      body: {
        name: 'keyed-service',
        description: 'per person, checked with an API key',
        url: key.origin,
        transports: { 'streamable-http': key.pathname },
        enabled: true,
        backendAuth: { type: 'user_oauth', authorizationServer: backend.issuer, service: { type: 'headers', headers: [{ name: 'X-API-Key', from: 'vault' }] } },
      },
      as: admin,
    });
    assert.equal(put.status, 201, put.text);
    const before = await api.call('getCredentials', { params: { name: 'keyed-service' }, as: admin });
    assert.deepEqual(
      before.body.secrets.map((s: { name: string; set: boolean }) => [s.name, s.set]),
      [['X-API-Key', false]],
    );
    assert.equal(before.body.connections, 0);
    const unset = await api.call('refreshServer', { params: { name: 'keyed-service' }, as: admin });
    assert.equal(unset.body.health.status, 'unhealthy');
    assert.match(unset.body.health.error, /no secret is set for the header X-API-Key/);
    const set = await api.call('setCredentials', { params: { name: 'keyed-service' }, body: { headers: { 'X-API-Key': backend.staticKey.key } }, as: admin });
    assert.equal(set.status, 200, set.text);
    assert.ok(!set.text.includes(backend.staticKey.key));
    const checked = await api.call('refreshServer', { params: { name: 'keyed-service' }, as: admin });
    assert.equal(checked.body.health.status, 'healthy', JSON.stringify(checked.body.health));
    // A person still needs their own account: the service key never carries their call.
    await assert.rejects(call('keyed-service', 'erin'), /have not connected/);
    assert.equal((await api.call('deleteServer', { params: { name: 'keyed-service' }, as: admin })).status, 200);
  });

  test("an attacker cannot start a connect from another site, nor finish one that is not this session's, nor replay a callback", async () => {
    const jar = people['erin']!.jar;
    const cross = await jarFetch(jar, `${gw.url}/servers/auto/connect/start`, { headers: { 'sec-fetch-site': 'cross-site' } });
    assert.equal(cross.status, 403);
    const before = gw.gateway.vault.list().length;
    const forged = await jarFetch(jar, `${gw.url}/oauth/backend/callback?code=attacker-code&state=attacker-state`);
    assert.equal(forged.status, 400);
    assert.match(await forged.text(), /unknown or was already used/);
    // A real callback, replayed: the first completes, the second finds no pending connect.
    let url = `${gw.url}/servers/auto/connect/start`;
    let callback = '';
    for (let hop = 0; hop < 16 && !callback; hop++) {
      const response = await jarFetch(jar, url, { headers: { 'sec-fetch-site': 'same-origin' } });
      assert.ok(response.status >= 300 && response.status < 400, `${response.status} at ${url}`);
      url = new URL(response.headers.get('location') ?? '', url).href;
      if (url.startsWith(`${gw.url}/oauth/backend/callback`)) callback = url;
    }
    assert.ok(callback, 'the provider sent the browser back (still signed in there)');
    assert.equal((await jarFetch(jar, callback)).status, 303);
    const replay = await jarFetch(jar, callback);
    assert.equal(replay.status, 400);
    assert.equal(gw.gateway.vault.list().length, before, 'the reconnect replaced the record; the forged and replayed callbacks stored nothing');
    // Signed out, the callback is not served at all: sign in first.
    const anonymous = await fetch(callback, { redirect: 'manual' });
    assert.ok(anonymous.status === 302 || anonymous.status === 303, String(anonymous.status));
  });

  test("a server that no longer knows the gateway's registered client: the connection breaks, and the next connect registers afresh", async () => {
    const registration = () => gw.gateway.vault.peek('server:auto:oauth-registration');
    const first = JSON.parse(registration()!) as { clientId: string };
    const connected = await status('auto', 'erin');
    await new Promise((r) => setTimeout(r, Math.max(0, Date.parse(connected['expiresAt']!) - 1000 - Date.now()) + 100));
    backend.failTokenEndpoint('invalid_client');
    try {
      await assert.rejects(call('auto', 'erin'), /connect at/);
    } finally {
      backend.failTokenEndpoint(false);
    }
    assert.equal((await status('auto', 'erin'))['state'], 'broken');
    assert.equal(registration(), undefined, 'the refused registration is forgotten');
    assert.match(await connectOverHttp(people['erin']!.jar, gw.url, 'auto', 'alice', 'alice-pw'), /Connected/);
    const second = JSON.parse(registration()!) as { clientId: string };
    assert.notEqual(second.clientId, first.clientId);
    const claims = await call('auto', 'erin');
    assert.equal(claims['client_id'], second.clientId);
  });

  test("the gateway's Client ID Metadata Document: a public PKCE client whose id is its own URL and whose only redirect is the callback", async () => {
    const url = `${gw.url}/oauth/backend/client.json`;
    const response = await fetch(url);
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /application\/json/);
    const doc = (await response.json()) as Record<string, unknown>;
    assert.equal(doc['client_id'], url);
    assert.deepEqual(doc['redirect_uris'], [`${gw.url}/oauth/backend/callback`]);
    assert.equal(doc['token_endpoint_auth_method'], 'none');
    assert.deepEqual(doc['grant_types'], ['authorization_code', 'refresh_token']);
  });

  test('deleting the server forgets every connection to it; no token is at rest in clear', async () => {
    const ids = () => gw.gateway.vault.list().filter((i) => i.id.includes(':oauth:auto'));
    assert.equal(ids().length, 2);
    const tokens = [
      ...new Set(backend.received.map((r) => r.authorization?.replace(/^Bearer /, '')).filter((t): t is string => t !== undefined && t.length > 20)),
      ...backend.refreshTokens,
    ];
    await assertNoSecretAtRest(gw, tokens, logLines.join('\n'), 'a backend token');
    assert.equal((await api.call('deleteServer', { params: { name: 'auto' }, as: admin })).status, 200);
    assert.equal(ids().length, 0);
  });
});
