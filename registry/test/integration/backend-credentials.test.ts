/*
 * Backends that need the gateway's own credentials (issue 13, static headers): set through the
 * REST API (write-only), injected by the real nginx from the check's answer, never the client's
 * cookie or token, never visible to the client, and never in the config, the audit or the log.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { assertNoSecretAtRest } from './no-secret-at-rest.ts';
import { guardedBackend, type GuardedBackend } from './guarded-backend.ts';
import { ApiClient, assertError, type Caller } from './api-client.ts';
import { ADMIN_PASSWORD, startTestGateway, type TestGateway } from './harness.ts';
import { login } from './login.ts';

const KEY_1 = 'k1-secret-api-key-0001';
const KEY_2 = 'k2-secret-api-key-0002';
const BEARER = 't1-secret-bearer-token-0001';
const ENV_KEY = 'env-secret-api-key-0003';
const SECRETS = [KEY_1, KEY_2, BEARER, ENV_KEY];

/** A backend that answers 401 unless the request carries `required()` exactly; `seen` records every request's headers. */
type Guarded = GuardedBackend;

function guarded(required: () => Record<string, string>): Promise<Guarded> {
  return guardedBackend((headers) =>
    Object.entries(required()).some(([name, value]) => headers[name.toLowerCase()] !== value) ? 'this backend wants its own credential' : undefined,
  );
}

let gw: TestGateway;
let api: ApiClient;
let keyed: Guarded;
let bearer: Guarded;
let fromEnv: Guarded;
let expectedKey = KEY_1;
const logLines: string[] = [];
const cookies: Record<string, string> = {};
let admin: Caller;

const USERS = [
  { username: 'full', password: 'pw-full', groups: ['mcp-server-keyed', 'mcp-server-bearer', 'mcp-server-from-env', 'mcp-server-unset'] },
  { username: 'one-tool', password: 'pw-tool', groups: ['mcp-server-keyed-tool-get_stock_aggregates'] },
];
const both = { 'streamable-http': '/mcp', sse: '/sse' };

before(async () => {
  keyed = await guarded(() => ({ 'X-API-Key': expectedKey }));
  bearer = await guarded(() => ({ Authorization: `Bearer ${BEARER}` }));
  fromEnv = await guarded(() => ({ 'X-API-Key': ENV_KEY }));
  gw = await startTestGateway({
    definitions: [
      { name: 'keyed', url: keyed.url, transports: both, enabled: true, backendAuth: { type: 'headers', headers: [{ name: 'X-API-Key', from: 'vault' }] } },
      {
        name: 'bearer',
        url: bearer.url,
        transports: both,
        enabled: true,
        backendAuth: { type: 'headers', headers: [{ name: 'Authorization', prefix: 'Bearer ', from: 'vault' }] },
      },
      {
        name: 'from-env',
        url: fromEnv.url,
        transports: { 'streamable-http': '/mcp' },
        enabled: true,
        backendAuth: { type: 'headers', headers: [{ name: 'X-API-Key', from: { env: 'MCP_BACKEND_TEST_KEY' } }] },
      },
      {
        name: 'unset',
        url: keyed.url,
        transports: { 'streamable-http': '/mcp' },
        enabled: true,
        backendAuth: { type: 'headers', headers: [{ name: 'X-API-Key', from: 'vault' }] },
      },
    ],
    users: USERS,
    env: { MCP_BACKEND_TEST_KEY: ENV_KEY, LOGGING_LEVEL: 'debug' },
    logDestination: { write: (line: string) => void logLines.push(line) },
  });
  api = new ApiClient(gw.url);
  for (const u of USERS) cookies[u.username] = (await login(gw.url, u.username, u.password)).cookie;
  const adminCookie = (await login(gw.url, 'admin', ADMIN_PASSWORD)).cookie;
  const me = await api.call('getMe', { as: { cookie: adminCookie } });
  admin = { cookie: adminCookie, csrf: me.body.csrfToken };
});

after(async () => {
  if (process.exitCode) process.stderr.write(`nginx error.log:\n${gw?.errorLog()}\n`);
  await gw?.[Symbol.asyncDispose]();
  await keyed?.close();
  await bearer?.close();
  await fromEnv?.close();
});

/** What a client that also sends its own X-API-Key and a cookie sees: the gateway must send neither on. */
function transportFor(server: string, transport: 'streamable-http' | 'sse', user: string) {
  const headers = { cookie: cookies[user] ?? '', 'x-api-key': 'client-forged-key' };
  return transport === 'streamable-http'
    ? new StreamableHTTPClientTransport(new URL(`${gw.url}/api/streamable/${server}`), { requestInit: { headers } })
    : new SSEClientTransport(new URL(`${gw.url}/api/execute/${server}/sse`), { requestInit: { headers } });
}

async function callTool(server: string, user: string, transport: 'streamable-http' | 'sse' = 'streamable-http'): Promise<unknown> {
  const client = new Client({ name: 'credentials-test', version: '1.0.0' });
  await client.connect(transportFor(server, transport, user));
  try {
    return await client.callTool({ name: 'get_stock_aggregates', arguments: { ticker: 'AAPL' } });
  } finally {
    await client.close();
  }
}

async function rawPost(server: string, user: string, body: unknown): Promise<Response> {
  return fetch(`${gw.url}/api/streamable/${server}`, {
    method: 'POST',
    headers: { cookie: cookies[user] ?? '', 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify(body),
  });
}

const initialize = {
  jsonrpc: '2.0',
  id: 7,
  method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 't', version: '1' } },
};

function assertNoSecret(text: string, where: string): void {
  for (const secret of SECRETS) assert.ok(!text.includes(secret), `${where} holds a backend secret`);
}

describe('static header credentials', () => {
  test('a server whose secret is not set answers a JSON-RPC error BACKEND_CREDENTIAL_FAILED naming it, and nothing reaches its backend', async () => {
    const before = keyed.seen.length;
    const res = await rawPost('keyed', 'full', initialize);
    assert.equal(res.status, 502);
    const body = (await res.json()) as { id: number; error: { code: number; message: string; data: { error: string; server: string } } };
    assert.equal(body.id, 7);
    assert.equal(body.error.data.error, 'BACKEND_CREDENTIAL_FAILED');
    assert.equal(body.error.data.server, 'keyed');
    assert.match(body.error.message, /credential for keyed: no secret is set for the header X-API-Key/);
    assert.equal(keyed.seen.length, before, 'nothing was forwarded');
  });

  test('PUT .../credentials stores the secret write-only: the answer and GET say it is set and when, never the value', async () => {
    const put = await api.call('setCredentials', { params: { name: 'keyed' }, body: { headers: { 'x-api-key': KEY_1 } }, as: admin });
    assert.equal(put.status, 200, put.text);
    assertNoSecret(put.text, 'the PUT answer');
    assert.deepEqual(
      put.body.secrets.map((s: Record<string, unknown>) => [s['name'], s['source'], s['set'], s['id']]),
      [['X-API-Key', 'vault', true, 'server:keyed:header:x-api-key']],
    );
    assert.ok(put.body.secrets[0].updatedAt);
    const get = await api.call('getCredentials', { params: { name: 'keyed' }, as: admin });
    assert.equal(get.status, 200);
    assertNoSecret(get.text, 'the GET answer');
    assert.equal(get.body.secrets[0].set, true);
    assert.deepEqual(
      gw.gateway.vault
        .list()
        .map((i) => i.id)
        .filter((id) => id.startsWith('server:keyed:')),
      ['server:keyed:header:x-api-key'],
    );
  });

  test("MCP calls reach the backend with exactly the gateway's credential, never the client's cookie, token or own X-API-Key (both transports)", async () => {
    for (const transport of ['streamable-http', 'sse'] as const) {
      const before = keyed.seen.length;
      const result = (await callTool('keyed', 'full', transport)) as { isError?: boolean };
      assert.notEqual(result.isError, true, transport);
      const seen = keyed.seen.slice(before);
      assert.ok(seen.length >= 2, transport);
      for (const headers of seen) {
        assert.equal(headers['x-api-key'], KEY_1, transport);
        assert.equal(headers['cookie'], undefined, transport);
        assert.equal(headers['authorization'], undefined, transport);
        for (const name of Object.keys(headers)) assert.ok(!name.startsWith('x-mcp-backend'), `${name} reached the backend`);
      }
    }
  });

  test('a rotated secret takes effect on the next request', async () => {
    const put = await api.call('setCredentials', { params: { name: 'keyed' }, body: { headers: { 'X-API-Key': KEY_2 } }, as: admin });
    assert.equal(put.status, 200);
    expectedKey = KEY_2;
    const before = keyed.seen.length;
    await callTool('keyed', 'full');
    assert.ok(keyed.seen.slice(before).every((h) => h['x-api-key'] === KEY_2));
  });

  test('Authorization with a prefix: the stored secret gets "Bearer " when sent (a value already holding it is not doubled)', async () => {
    const put = await api.call('setCredentials', { params: { name: 'bearer' }, body: { headers: { Authorization: `Bearer ${BEARER}` } }, as: admin });
    assert.equal(put.status, 200, put.text);
    assert.equal(gw.gateway.vault.peek('server:bearer:header:authorization'), BEARER);
    const before = bearer.seen.length;
    await callTool('bearer', 'full');
    const seen = bearer.seen.slice(before);
    assert.ok(seen.length > 0);
    for (const headers of seen) assert.equal(headers['authorization'], `Bearer ${BEARER}`);
  });

  test('a value from an allowed environment variable (MCP_BACKEND_*) needs nothing in the vault', async () => {
    await callTool('from-env', 'full');
    assert.ok(fromEnv.seen.length > 0 && fromEnv.seen.every((h) => h['x-api-key'] === ENV_KEY));
    const status = await api.call('getCredentials', { params: { name: 'from-env' }, as: admin });
    assert.deepEqual(status.body.secrets, [{ name: 'X-API-Key', source: 'env', env: 'MCP_BACKEND_TEST_KEY', set: true }]);
  });

  test("the one-tool user's scope rules still apply: a tool they may not call is refused before the backend", async () => {
    const before = keyed.seen.length;
    const client = new Client({ name: 'credentials-test', version: '1.0.0' });
    await client.connect(transportFor('keyed', 'streamable-http', 'one-tool'));
    try {
      const tools = await client.listTools();
      assert.deepEqual(
        tools.tools.map((t) => t.name),
        ['get_stock_aggregates'],
      );
      await assert.rejects(client.callTool({ name: 'print_stuff', arguments: { stuff: 'x' } }), /missing scope mcp:server:keyed:tool:print_stuff:execute/);
      await client.callTool({ name: 'get_stock_aggregates', arguments: { ticker: 'AAPL' } });
    } finally {
      await client.close();
    }
    const calls = keyed.seen.slice(before);
    assert.ok(calls.every((h) => h['x-api-key'] === KEY_2));
  });

  test('the credential never reaches the client: not in MCP response headers, nor in the refusal', async () => {
    const res = await rawPost('keyed', 'full', initialize);
    assert.equal(res.status, 200);
    const headerText = [...res.headers].map(([k, v]) => `${k}: ${v}`).join('\n');
    assertNoSecret(headerText + (await res.text()), 'the MCP response');
    assert.ok(![...res.headers.keys()].some((k) => k.startsWith('x-mcp-')), headerText);
  });

  test('health checks and tool discovery use the same credential', async () => {
    const refreshed = await api.call('refreshServer', { params: { name: 'keyed' }, as: admin });
    assert.equal(refreshed.status, 200);
    assert.equal(refreshed.body.health.status, 'healthy', JSON.stringify(refreshed.body.health));
    assert.equal(refreshed.body.source, 'backend');
    const unset = await api.call('refreshServer', { params: { name: 'unset' }, as: admin });
    assert.equal(unset.body.health.status, 'unhealthy');
    assert.match(unset.body.health.error, /backend credential unavailable: no secret is set for the header X-API-Key/);
  });

  test('DELETE .../credentials clears the secret: the next request is BACKEND_CREDENTIAL_FAILED again', async () => {
    const del = await api.call('clearCredentials', { params: { name: 'bearer' }, as: admin });
    assert.equal(del.status, 200);
    assert.equal(del.body.secrets[0].set, false);
    const res = await rawPost('bearer', 'full', initialize);
    assert.equal(res.status, 502);
    assert.equal(((await res.json()) as { error: { data: { error: string } } }).error.data.error, 'BACKEND_CREDENTIAL_FAILED');
  });

  test('only editors of the server see or set its credentials', async () => {
    const me = await api.call('getMe', { as: { cookie: cookies['full']! } });
    const full: Caller = { cookie: cookies['full']!, csrf: me.body.csrfToken };
    assertError(await api.call('getCredentials', { params: { name: 'keyed' }, as: full }), 403, 'AUTH_SCOPE_MISSING');
    assertError(await api.call('setCredentials', { params: { name: 'keyed' }, body: { headers: { 'X-API-Key': 'x' } }, as: full }), 403, 'AUTH_SCOPE_MISSING');
    // Cookie writes need the CSRF token, as every other write.
    assertError(
      await api.call('setCredentials', {
        params: { name: 'keyed' },
        body: { headers: { 'X-API-Key': 'x' } },
        as: { cookie: (admin as { cookie: string }).cookie },
      }),
      403,
      'CSRF_TOKEN_INVALID',
    );
    // A header the definition does not read from the vault, or a value that could split a header.
    const bad = await api.call('setCredentials', {
      params: { name: 'keyed' },
      body: { headers: { 'X-Other': 'x', 'X-API-Key': 'a\r\nInjected: 1' } },
      as: admin,
    });
    assertError(bad, 400, 'REQUEST_INVALID');
    assert.ok(!bad.text.includes('Injected'), 'the refusal never echoes the value');
  });

  test('the key ring: admins see how many secrets each key seals and reseal after a rotation; nobody else', async () => {
    const keys = await api.call('getSecretKeys', { as: admin });
    assert.equal(keys.status, 200, keys.text);
    const [only] = keys.body.keys as { keyId: string; secrets: number; sealing: boolean; inRing: boolean }[];
    assert.ok(only && only.sealing && only.inRing && only.secrets >= 1, keys.text);
    assert.equal(keys.body.keys.length, 1, 'one generated key');
    assertNoSecret(keys.text, 'the key ring answer');
    const resealed = await api.call('resealSecrets', { as: admin });
    assert.equal(resealed.status, 200, resealed.text);
    assert.equal(resealed.body.resealed, 0, 'everything is already under the first key');
    const me = await api.call('getMe', { as: { cookie: cookies['full']! } });
    const full: Caller = { cookie: cookies['full']!, csrf: me.body.csrfToken };
    assertError(await api.call('getSecretKeys', { as: full }), 403, 'AUTH_SCOPE_MISSING');
    assertError(await api.call('resealSecrets', { as: full }), 403, 'AUTH_SCOPE_MISSING');
  });
});

describe('the page', () => {
  const adminCookie = () => (admin as { cookie: string }).cookie;
  const page = async (path: string) => {
    const res = await fetch(`${gw.url}${path}`, { headers: { cookie: adminCookie() }, redirect: 'manual' });
    assert.equal(res.status, 200, path);
    return res.text();
  };
  const post = (path: string, form: Record<string, string>) =>
    fetch(`${gw.url}${path}`, {
      method: 'POST',
      headers: { cookie: adminCookie(), 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(form),
      redirect: 'manual',
    });
  const csrfOf = (html: string) => /name="_csrf" value="([^"]+)"/.exec(html)?.[1] ?? '';

  test("the server's page shows the credential's status with empty password fields, and saves a new secret write-only", async () => {
    const html = await page('/servers/keyed');
    assert.match(html, /id="credentials"/);
    assert.match(html, /<input type="password" id="c-header:X-API-Key" name="header:X-API-Key" value=""/);
    assert.match(html, /Set on <time/);
    assertNoSecret(html, 'the page');
    const saved = await post('/servers/keyed/credentials', { _csrf: csrfOf(html), 'header:X-API-Key': KEY_1 });
    assert.equal(saved.status, 303);
    expectedKey = KEY_1;
    const before = keyed.seen.length;
    await callTool('keyed', 'full');
    assert.ok(keyed.seen.slice(before).every((h) => h['x-api-key'] === KEY_1));
    assertNoSecret(await page('/servers/keyed'), 'the page after saving');
  });

  test('the edit form keeps the backend authentication mode and its settings through a save', async () => {
    const html = await page('/servers/keyed/edit');
    assert.match(html, /<option value="headers" selected>/);
    const settings = /<textarea id="f-authSettings" name="authSettings"[^>]*>([\s\S]*?)<\/textarea>/.exec(html)?.[1] ?? '';
    const decoded = settings.replace(/&#34;/g, '"').replace(/&quot;/g, '"');
    assert.deepEqual(JSON.parse(decoded), { headers: [{ name: 'X-API-Key', from: 'vault' }] });
    const form = {
      _csrf: csrfOf(html),
      version: /name="version" value="([^"]*)"/.exec(html)?.[1] ?? '',
      url: keyed.url,
      streamable: '/mcp',
      sse: '/sse',
      enabled: 'on',
      description: 'edited on the page',
      authType: 'headers',
      authSettings: decoded,
    };
    const saved = await post('/servers/keyed', form);
    assert.equal(saved.status, 303, await saved.text());
    assert.deepEqual(gw.gateway.catalog.get('keyed')?.backendAuth, { type: 'headers', headers: [{ name: 'X-API-Key', from: 'vault' }] });
    assert.equal(gw.gateway.catalog.get('keyed')?.description, 'edited on the page');
    const refused = await post('/servers/keyed', {
      ...form,
      version: '',
      authSettings: '{"headers": [{"name": "X-API-Key", "value": "literal", "from": "vault"}]}',
    });
    assert.equal(refused.status, 400);
    assert.match(await refused.text(), /never holds secret values/);
  });
});

describe('definitions', () => {
  const definition = (backendAuth: unknown) => ({ name: 'refused', url: keyed.url, transports: { 'streamable-http': '/mcp' }, enabled: true, backendAuth });

  test('a definition holding a literal secret is refused with a message saying where secrets go', async () => {
    const res = await api.call('registerServer', {
      body: definition({ type: 'headers', headers: [{ name: 'X-API-Key', value: 'literal', from: 'vault' }] }),
      as: admin,
    });
    const error = assertError(res, 400, 'REQUEST_INVALID');
    assert.match(error.message, /never holds secret values/);
    const cc = await api.call('registerServer', {
      body: definition({ type: 'client_credentials', tokenUrl: 'https://idp.example.com/token', clientId: 'c', clientSecret: 's' }),
      as: admin,
    });
    assert.match(assertError(cc, 400, 'REQUEST_INVALID').message, /clientSecret: a definition never holds secret values/);
  });

  test('a forbidden or unslotted header name is refused, naming BACKEND_CREDENTIAL_HEADERS', async () => {
    for (const name of ['Cookie', 'Host', 'Mcp-Session-Id', 'X-User', 'X-MCP-Route', 'Transfer-Encoding']) {
      const res = await api.call('registerServer', { body: definition({ type: 'headers', headers: [{ name, from: 'vault' }] }), as: admin });
      assertError(res, 400, 'REQUEST_INVALID', name);
    }
    const res = await api.call('registerServer', { body: definition({ type: 'headers', headers: [{ name: 'X-Other-Key', from: 'vault' }] }), as: admin });
    assert.match(assertError(res, 400, 'REQUEST_INVALID').message, /X-Other-Key has no slot in nginx.*BACKEND_CREDENTIAL_HEADERS/);
    const env = await api.call('registerServer', {
      body: definition({ type: 'headers', headers: [{ name: 'X-API-Key', from: { env: 'SECRET_KEY' } }] }),
      as: admin,
    });
    assert.match(assertError(env, 400, 'REQUEST_INVALID').message, /SECRET_KEY is not an environment variable definitions may read/);
  });

  test('a catalog file naming a header without a slot is reported and ignored', async () => {
    gw.writeDefinition('no-slot', { ...definition({ type: 'headers', headers: [{ name: 'X-Other-Key', from: 'vault' }] }), name: 'no-slot' });
    const deadline = Date.now() + 3000;
    while (!gw.gateway.catalog.problems().some((p) => p.file === 'no-slot.json') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
    assert.match(gw.gateway.catalog.problems().find((p) => p.file === 'no-slot.json')?.message ?? '', /BACKEND_CREDENTIAL_HEADERS/);
    assert.equal(gw.gateway.catalog.get('no-slot'), undefined);
  });
});

describe('no secret at rest or in the records', () => {
  test('the rendered nginx config, the audit log, the registry log and the state folder hold no secret', async () => {
    assert.ok(logLines.length > 50, 'the registry logged at debug level');
    // The sealed vault's files included: no secret in clear anywhere in the state folder.
    await assertNoSecretAtRest(gw, SECRETS, logLines.join(''), 'a backend secret');
    // The credential changes are audited, as changes, without values.
    const changes = readFileSync(gw.gateway.auditFile, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { event: string; action?: string; server: string })
      .filter((e) => e.event === 'change' && e.action === 'credentials');
    assert.deepEqual([...new Set(changes.map((e) => e.server))].sort(), ['bearer', 'keyed']);
  });
});
