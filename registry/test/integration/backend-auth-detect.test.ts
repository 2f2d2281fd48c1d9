/*
 * Auto-detection of a backend that asks for OAuth (issue 13): a server registered through the API
 * with no backendAuth, pointing at a real MCP server behind its own authorization server (a
 * second oidc-provider), is found 'unauthorized' with the settings its RFC 9728 and RFC 8414
 * metadata give, and ready backendAuth suggestions; a backend that answers 401 without metadata
 * has the same status with the reason. Editors see the finding; readers see only the status.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startProtectedBackend, type ProtectedBackend } from '../fixtures/protected-backend.ts';
import { ApiClient } from './api-client.ts';
import { ADMIN_PASSWORD, eventually, startTestGateway, type TestGateway } from './harness.ts';
import { login } from './login.ts';

let backend: ProtectedBackend;
let gw: TestGateway;
let api: ApiClient;
let admin: { cookie: string; csrf: string };
let reader: { cookie: string; csrf: string };

const origin = (url: string) => url.replace(/\/mcp$/, '');

before(async () => {
  backend = await startProtectedBackend();
  gw = await startTestGateway({
    users: [{ username: 'reader', password: 'pw-reader', groups: ['mcp-server-found2'] }],
  });
  api = new ApiClient(gw.url);
  const adminCookie = (await login(gw.url, 'admin', ADMIN_PASSWORD)).cookie;
  admin = { cookie: adminCookie, csrf: (await api.call('getMe', { as: { cookie: adminCookie } })).body.csrfToken };
  const readerCookie = (await login(gw.url, 'reader', 'pw-reader')).cookie;
  reader = { cookie: readerCookie, csrf: (await api.call('getMe', { as: { cookie: readerCookie } })).body.csrfToken };
});

after(async () => {
  if (process.exitCode) process.stderr.write(`nginx error.log:\n${gw?.errorLog()}\n`);
  await gw?.[Symbol.asyncDispose]();
  await backend?.close();
});

interface Finding {
  challenge?: { resourceMetadata?: string };
  resourceMetadataUrl?: string;
  problem?: string;
  discovered?: Record<string, unknown>;
  suggestions?: { mode: string; available: boolean; backendAuth: Record<string, unknown> }[];
}

test('registered with no backendAuth, the OAuth-protected backend is found unauthorized with its authorization server, and suggestions', async () => {
  const reg = await api.call('registerServer', {
    as: admin,
    body: { name: 'found', description: 'behind its own OAuth', url: origin(backend.mcpUrl), transports: { 'streamable-http': '/mcp' } },
  });
  assert.equal(reg.status, 201, reg.text);
  // The registration starts a check by itself (the catalog changed): the finding shows without a refresh.
  let health: { status: string; error?: string; auth?: Finding } = { status: 'unknown' };
  await eventually(async () => {
    health = (await api.call('getServer', { params: { name: 'found' }, as: admin })).body.health;
    return health.status !== 'unknown';
  }, 10_000);
  assert.equal(health.status, 'unauthorized', JSON.stringify(health));
  assert.match(health.error ?? '', new RegExp(`requires OAuth \\(authorization server ${backend.issuer}, dynamic client registration supported\\)`));
  const auth = health.auth!;
  assert.equal(auth.challenge?.resourceMetadata, backend.resourceMetadataUrl);
  assert.equal(auth.problem, undefined);
  assert.equal(auth.discovered?.['resource'], backend.mcpUrl);
  assert.deepEqual(auth.discovered?.['authorizationServers'], [backend.issuer]);
  assert.equal(auth.discovered?.['issuer'], backend.issuer);
  assert.equal(auth.discovered?.['tokenEndpoint'], backend.endpoints.token);
  assert.equal(auth.discovered?.['authorizationEndpoint'], backend.endpoints.authorization);
  assert.equal(auth.discovered?.['registrationEndpoint'], backend.endpoints.registration);
  assert.equal(auth.discovered?.['revocationEndpoint'], backend.endpoints.revocation);
  assert.deepEqual(auth.discovered?.['scopesSupported'], ['mcp:tools', 'mcp:read']);

  const cc = auth.suggestions?.find((s) => s.mode === 'client_credentials');
  assert.deepEqual(cc?.backendAuth, {
    type: 'client_credentials',
    issuer: backend.issuer,
    clientId: '<your client>',
    resource: backend.mcpUrl,
    scopes: ['mcp:tools', 'mcp:read'],
  });
  assert.equal(cc?.available, true);
  const user = auth.suggestions?.find((s) => s.mode === 'user_oauth');
  assert.equal(user?.available, true);
  assert.match((user as { note?: string } | undefined)?.note ?? '', /dynamic client registration/);
  assert.deepEqual(user?.backendAuth, { type: 'user_oauth', authorizationServer: backend.issuer, resource: backend.mcpUrl, scopes: ['mcp:tools', 'mcp:read'] });

  // No credential of any kind went to the backend (the check has none; discovery never sends one).
  const seen = backend.received.filter((r) => r.endpoint === 'oauth');
  assert.ok(seen.length > 0);
  assert.ok(seen.every((r) => r.authorization === undefined));

  // The suggestion works as given: with the real client and its secret, the server is healthy.
  const put = await api.call('getServer', { params: { name: 'found' }, as: admin });
  const definition = { ...put.body.definition, backendAuth: { ...cc!.backendAuth, clientId: backend.client.clientId } };
  const upd = await api.call('updateServer', { params: { name: 'found' }, body: definition, as: admin, headers: { 'if-match': put.body.version } });
  assert.equal(upd.status, 200, upd.text);
  const secret = await api.call('setCredentials', { params: { name: 'found' }, body: { clientSecret: backend.client.clientSecret }, as: admin });
  assert.equal(secret.status, 200, secret.text);
  const healthy = await api.call('refreshServer', { params: { name: 'found' }, as: admin });
  assert.equal(healthy.body.health.status, 'healthy', JSON.stringify(healthy.body.health));
  assert.equal(healthy.body.health.auth, undefined);
});

test('the server page shows the finding to an editor; a reader sees the status only', async () => {
  await api.call('registerServer', {
    as: admin,
    body: { name: 'found2', description: 'behind its own OAuth', url: origin(backend.mcpUrl), transports: { 'streamable-http': '/mcp' } },
  });
  const refreshed = await api.call('refreshServer', { params: { name: 'found2' }, as: admin });
  assert.equal(refreshed.body.health.status, 'unauthorized');
  const page = await fetch(`${gw.url}/servers/found2`, { headers: { cookie: admin.cookie } });
  const html = await page.text();
  assert.match(html, /id="auth-finding" data-discovered="true"/);
  assert.match(html, /This server requires OAuth/);
  assert.ok(html.includes(`<code id="auth-issuer">${backend.issuer}</code>`));
  assert.match(html, /dynamic client registration supported/);
  assert.match(html, /data-suggestion="client_credentials"/);
  assert.match(html, /data-suggestion="user_oauth" open/);

  // 'reader' may read 'found2' (mcp-server-found2) but not edit it: the status, no backend URL, no finding.
  const asReader = await api.call('getServer', { params: { name: 'found2' }, as: reader });
  assert.equal(asReader.status, 200, asReader.text);
  assert.equal(asReader.body.health.status, 'unauthorized');
  assert.equal(asReader.body.health.auth, undefined);
  assert.equal(asReader.body.definition, undefined);
  const readerPage = await (await fetch(`${gw.url}/servers/found2`, { headers: { cookie: reader.cookie } })).text();
  assert.doesNotMatch(readerPage, /auth-finding/);
  assert.ok(!readerPage.includes(backend.mcpUrl));
  const list = await api.call('listHealth', { as: reader });
  for (const s of list.body.servers as { health: { auth?: unknown } }[]) assert.equal(s.health.auth, undefined);
});

test('a backend that answers 401 without OAuth metadata: unauthorized, no settings, the reason recorded', async () => {
  const reg = await api.call('registerServer', {
    as: admin,
    body: { name: 'keyed', description: 'wants an API key', url: origin(backend.staticKey.mcpUrl), transports: { 'streamable-http': '/mcp' } },
  });
  assert.equal(reg.status, 201, reg.text);
  const refreshed = await api.call('refreshServer', { params: { name: 'keyed' }, as: admin });
  const health = refreshed.body.health as { status: string; error?: string; auth?: Finding };
  assert.equal(health.status, 'unauthorized', JSON.stringify(health));
  assert.equal(health.auth?.discovered, undefined);
  assert.equal(health.auth?.suggestions, undefined);
  assert.match(health.auth?.problem ?? '', /^no Bearer challenge, and no protected resource metadata \(RFC 9728\) at the well-known URLs: HTTP 401/);
  assert.match(health.error ?? '', /^HTTP 401 from backend: it requires a credential/);
  const page = await (await fetch(`${gw.url}/servers/keyed`, { headers: { cookie: admin.cookie } })).text();
  assert.match(page, /id="auth-finding" data-discovered="false"/);
  assert.match(page, /This server asks for a credential/);
});
