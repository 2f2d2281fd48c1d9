/*
 * A backend behind its own authorization server (a second oidc-provider, checking the token's
 * audience on every request), reached through the real nginx with the gateway's own
 * client-credentials token (ClientCredentialsSource, as startGateway wires it), and the same
 * fixture's static-key endpoint with a key from an MCP_BACKEND_* environment variable.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { startProtectedBackend, type ProtectedBackend } from '../fixtures/protected-backend.ts';
import { ApiClient, type Caller } from './api-client.ts';
import { ADMIN_PASSWORD, eventually, startTestGateway, type TestGateway } from './harness.ts';
import { login } from './login.ts';
import { initializeWithCookie } from './oauth-http.ts';

let backend: ProtectedBackend;
let gw: TestGateway;
let api: ApiClient;
let admin: Caller;
let cookie = '';
const logLines: string[] = [];

before(async () => {
  backend = await startProtectedBackend();
  const origin = (url: string) => url.replace(/\/mcp$/, '');
  gw = await startTestGateway({
    definitions: [
      {
        name: 'protected',
        url: origin(backend.mcpUrl),
        transports: { 'streamable-http': '/mcp' },
        enabled: true,
        backendAuth: { type: 'client_credentials', issuer: backend.issuer, clientId: backend.client.clientId, scopes: ['mcp:tools'], resource: backend.mcpUrl },
      },
      {
        name: 'static',
        url: origin(backend.staticKey.mcpUrl),
        transports: { 'streamable-http': '/mcp' },
        enabled: true,
        backendAuth: { type: 'headers', headers: [{ name: backend.staticKey.header, from: { env: 'MCP_BACKEND_STATIC_KEY' } }] },
      },
    ],
    users: [{ username: 'full', password: 'pw-full', groups: ['mcp-server-protected', 'mcp-server-static'] }],
    env: { MCP_BACKEND_STATIC_KEY: backend.staticKey.key, LOGGING_LEVEL: 'debug' },
    logDestination: { write: (line: string) => void logLines.push(line) },
  });
  api = new ApiClient(gw.url);
  cookie = (await login(gw.url, 'full', 'pw-full')).cookie;
  const adminCookie = (await login(gw.url, 'admin', ADMIN_PASSWORD)).cookie;
  admin = { cookie: adminCookie, csrf: (await api.call('getMe', { as: { cookie: adminCookie } })).body.csrfToken };
});

after(async () => {
  if (process.exitCode) process.stderr.write(`nginx error.log:\n${gw?.errorLog()}\n`);
  await gw?.[Symbol.asyncDispose]();
  await backend?.close();
});

const post = (server: string) => initializeWithCookie(`${gw.url}/api/streamable/${server}`, cookie);

async function whoami(server: string): Promise<Record<string, unknown>> {
  const client = new Client({ name: 'cc-test', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(`${gw.url}/api/streamable/${server}`), { requestInit: { headers: { cookie } } }));
  try {
    const result = (await client.callTool({ name: 'whoami', arguments: {} })) as { content: { text: string }[] };
    return JSON.parse(result.content[0]?.text ?? '{}') as Record<string, unknown>;
  } finally {
    await client.close();
  }
}

test('without its client secret the backend is not reached: BACKEND_CREDENTIAL_FAILED naming the server', async () => {
  const res = await post('protected');
  assert.equal(res.status, 502);
  const body = (await res.json()) as { error: { message: string; data: { error: string; server: string } } };
  assert.equal(body.error.data.error, 'BACKEND_CREDENTIAL_FAILED');
  assert.match(body.error.message, /credential for protected: .*no client secret stored/);
  assert.equal(backend.received.filter((r) => r.endpoint === 'oauth').length, 0);
});

test("a wrong client secret: BACKEND_CREDENTIAL_FAILED with the token endpoint's invalid_client, never the secret; the sealed vault holds no plaintext", async () => {
  const wrong = 'not-the-client-secret-0123456789';
  const put = await api.call('setCredentials', { params: { name: 'protected' }, body: { clientSecret: wrong }, as: admin });
  assert.equal(put.status, 200, put.text);
  await eventually(async () => /invalid_client/.test(await (await post('protected')).text()), 5000);
  const res = await post('protected');
  assert.equal(res.status, 502);
  const text = await res.text();
  assert.match(text, /BACKEND_CREDENTIAL_FAILED/);
  assert.ok(!text.includes(wrong), 'the answer does not carry the secret');
  assert.equal(backend.received.filter((r) => r.endpoint === 'oauth').length, 0, 'nothing reached the backend');
  const stored = readdirSync(join(gw.stateDir, 'credentials')).map((f) => readFileSync(join(gw.stateDir, 'credentials', f), 'utf8'));
  assert.ok(stored.length > 0 && !stored.some((t) => t.includes(wrong)), 'sealed at rest');
});

test("with the secret set through the API, MCP calls carry the gateway's token for the backend's audience, one token for many calls", async () => {
  const put = await api.call('setCredentials', { params: { name: 'protected' }, body: { clientSecret: backend.client.clientSecret }, as: admin });
  assert.equal(put.status, 200, put.text);
  assert.ok(!put.text.includes(backend.client.clientSecret));
  await eventually(async () => (await post('protected')).status === 200, 5000);
  const claims = await whoami('protected');
  assert.equal(claims['client_id'] ?? claims['clientId'] ?? backend.client.clientId, backend.client.clientId);
  const before = backend.tokenRequests;
  await Promise.all(Array.from({ length: 10 }, () => whoami('protected')));
  assert.equal(backend.tokenRequests, before, 'the cached token serves every call');
  const oauth = backend.received.filter((r) => r.endpoint === 'oauth');
  assert.ok(oauth.length > 10);
  const tokens = new Set(oauth.map((r) => r.authorization));
  assert.equal(tokens.size, 1);
  assert.match([...tokens][0] ?? '', /^Bearer [\w-]+\.[\w-]+\.[\w-]+$/);
  const status = await api.call('getCredentials', { params: { name: 'protected' }, as: admin });
  assert.equal(status.body.secrets[0].set, true);
  assert.equal(status.body.token.lastError, undefined);
  // Health checks and tool discovery get the same token.
  const refreshed = await api.call('refreshServer', { params: { name: 'protected' }, as: admin });
  assert.equal(refreshed.body.health.status, 'healthy', JSON.stringify(refreshed.body.health));
  assert.deepEqual(
    refreshed.body.tools.map((t: { name: string }) => t.name),
    ['whoami'],
  );
  // No token or secret in the log.
  const token = ([...tokens][0] ?? '').slice('Bearer '.length);
  assert.ok(!logLines.join('').includes(token) && !logLines.join('').includes(backend.client.clientSecret));
});

test("the static-key endpoint gets the key from MCP_BACKEND_* and never the client's", async () => {
  await whoami('static');
  const seen = backend.received.filter((r) => r.endpoint === 'static');
  assert.ok(seen.length > 0);
  for (const r of seen) {
    assert.equal(r.apiKey, backend.staticKey.key);
    assert.equal(r.authorization, undefined);
  }
});
