/*
 * Backends whose tokens people upload by hand (issue 13, `uploaded`): each person pastes their
 * own token (page or API), the real nginx sends exactly that person's token (never another's,
 * never their cookie), an expired or missing token is refused with the upload page's URL and
 * nothing reaches the backend, and no token is ever in the config, the audit, the log or the
 * state folder.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { SignJWT, UnsecuredJWT } from 'jose';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { IncomingHttpHeaders } from 'node:http';
import { assertNoSecretAtRest } from './no-secret-at-rest.ts';
import { guardedBackend, type GuardedBackend } from './guarded-backend.ts';
import { ApiClient, assertError, type Caller } from './api-client.ts';
import { startTestGateway, type TestGateway } from './harness.ts';
import { login } from './login.ts';

const hour = () => Math.floor(Date.now() / 1000) + 3600;
const KEY = new TextEncoder().encode('the-backends-own-signing-key-0123456789');
let T_ALICE = '';
let T_ALICE_2 = '';
let T_SHORT = '';
const T_BOB = 'bob-opaque-token-0002';
const T_ONE = 'one-tool-opaque-token-0003';
const tokens = () => [T_ALICE, T_ALICE_2, T_SHORT, T_BOB, T_ONE].filter(Boolean);

/** A backend that wants `Authorization: Bearer <a token it issued>`; `seen` records every request's headers. */
type Guarded = GuardedBackend;

function guarded(): Promise<Guarded> {
  return guardedBackend((headers) => {
    const bearer = /^Bearer (.+)$/.exec(headers.authorization ?? '')?.[1];
    return bearer === undefined || !tokens().includes(bearer) ? 'this backend wants a token it issued' : undefined;
  });
}

let gw: TestGateway;
let api: ApiClient;
let backend: Guarded;
const logLines: string[] = [];
const callers: Record<string, { cookie: string; csrf: string }> = {};

const USERS = [
  { username: 'alice', password: 'pw-alice', groups: ['mcp-server-uploads'] },
  { username: 'bob', password: 'pw-bob', groups: ['mcp-server-uploads'] },
  { username: 'one-tool', password: 'pw-tool', groups: ['mcp-server-uploads-tool-get_stock_aggregates'] },
];

before(async () => {
  T_ALICE = await new SignJWT({ sub: 'alice@backend' }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime(hour()).sign(KEY);
  T_ALICE_2 = new UnsecuredJWT({ sub: 'alice@backend', n: 2 }).setExpirationTime(hour()).encode();
  backend = await guarded();
  gw = await startTestGateway({
    definitions: [
      {
        name: 'uploads',
        url: backend.url,
        transports: { 'streamable-http': '/mcp' },
        enabled: true,
        backendAuth: { type: 'uploaded', instructions: 'Create a token under Settings > Developer tokens of the backend.' },
      },
    ],
    users: USERS,
    env: { LOGGING_LEVEL: 'debug' },
    logDestination: { write: (line: string) => void logLines.push(line) },
  });
  api = new ApiClient(gw.url);
  for (const u of USERS) {
    const { cookie } = await login(gw.url, u.username, u.password);
    const me = await api.call('getMe', { as: { cookie } });
    callers[u.username] = { cookie, csrf: me.body.csrfToken };
  }
});

after(async () => {
  if (process.exitCode) process.stderr.write(`nginx error.log:\n${gw?.errorLog()}\n`);
  await gw?.[Symbol.asyncDispose]();
  await backend?.close();
});

const as = (user: string): Caller => callers[user];

async function mcpClient(user: string, headers: Record<string, string> = { cookie: callers[user]!.cookie }): Promise<Client> {
  const client = new Client({ name: 'uploaded-test', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(`${gw.url}/api/streamable/uploads`), { requestInit: { headers } }));
  return client;
}

/** One tool call as `user`; the headers the backend saw for it. */
async function callAs(user: string, headers?: Record<string, string>): Promise<IncomingHttpHeaders[]> {
  const before = backend.seen.length;
  const client = await mcpClient(user, headers);
  try {
    const result = (await client.callTool({ name: 'get_stock_aggregates', arguments: { ticker: 'AAPL' } })) as { isError?: boolean };
    assert.notEqual(result.isError, true);
  } finally {
    await client.close();
  }
  const seen = backend.seen.slice(before);
  assert.ok(seen.length >= 2, 'the calls reached the backend');
  return seen;
}

const initialize = {
  jsonrpc: '2.0',
  id: 7,
  method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 't', version: '1' } },
};

async function refused(user: string): Promise<string> {
  const before = backend.seen.length;
  const res = await fetch(`${gw.url}/api/streamable/uploads`, {
    method: 'POST',
    headers: { cookie: callers[user]!.cookie, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify(initialize),
  });
  // A JSON-RPC answer (HTTP 200) the SDK shows as is; this client declared no URL elicitation.
  assert.equal(res.status, 200);
  const body = (await res.json()) as { id: number; error: { code: number; message: string; data: { error: string; server: string; url: string } } };
  assert.equal(body.id, 7);
  assert.equal(body.error.code, -32001);
  assert.deepEqual(body.error.data, { error: 'BACKEND_CONNECT_REQUIRED', server: 'uploads', url: `${gw.url}/servers/uploads/token` });
  assert.equal(backend.seen.length, before, 'nothing reached the backend');
  return body.error.message;
}

const page = async (user: string, path: string) => {
  const res = await fetch(`${gw.url}${path}`, { headers: { cookie: callers[user]!.cookie }, redirect: 'manual' });
  assert.equal(res.status, 200, path);
  return res.text();
};
const post = (user: string, path: string, form: Record<string, string>) =>
  fetch(`${gw.url}${path}`, {
    method: 'POST',
    headers: { cookie: callers[user]!.cookie, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(form),
    redirect: 'manual',
  });
const csrfOf = (html: string) => /name="_csrf" value="([^"]+)"/.exec(html)?.[1] ?? '';

function assertNoToken(text: string, where: string): void {
  for (const token of tokens()) assert.ok(!text.includes(token), `${where} holds an uploaded token`);
}

describe('uploaded tokens', () => {
  test('without a token: a JSON-RPC error BACKEND_CONNECT_REQUIRED naming the upload page (from GATEWAY_PUBLIC_URL); nothing reaches the backend', async () => {
    const message = await refused('alice');
    assert.equal(message, `no token uploaded for uploads: upload one at ${gw.url}/servers/uploads/token`);
  });

  test('the upload page URL sends a signed-out visitor to sign in and back, and a signed-in one to the card', async () => {
    const out = await fetch(`${gw.url}/servers/uploads/token`, { redirect: 'manual' });
    assert.equal(out.status, 303);
    assert.equal(out.headers.get('location'), `/login?next=${encodeURIComponent('/servers/uploads/token')}`);
    const signedIn = await fetch(`${gw.url}/servers/uploads/token`, { headers: { cookie: callers['alice']!.cookie }, redirect: 'manual' });
    assert.equal(signedIn.status, 303);
    assert.equal(signedIn.headers.get('location'), '/servers/uploads#my-token');
  });

  test("alice uploads a JWT with the API, bob an opaque token on the page: each MCP call carries exactly its caller's token, never a cookie", async () => {
    const put = await api.call('setMyToken', { params: { name: 'uploads' }, body: { token: T_ALICE }, as: as('alice') });
    assert.equal(put.status, 200, put.text);
    assertNoToken(put.text, 'the PUT answer');
    assert.equal(put.body.expirySource, 'jwt');
    assert.ok(Date.parse(put.body.expiresAt) > Date.now());
    const html = await page('bob', '/servers/uploads');
    assert.match(html, /id="my-token"/);
    assert.match(html, /None uploaded/);
    assert.match(html, /Create a token under Settings &gt; Developer tokens of the backend\./);
    assert.match(html, /<textarea id="my-token-value" name="token"[^>]*><\/textarea>/);
    const saved = await post('bob', '/servers/uploads/token', { _csrf: csrfOf(html), token: T_BOB, expiresAt: '2099-12-31' });
    assert.equal(saved.status, 303);
    const after = await page('bob', '/servers/uploads');
    assertNoToken(after, "bob's page");
    assert.match(after, /Uploaded on <time/);
    assert.match(after, /expires <time datetime="2100-01-01T00:00:00.000Z"/);
    for (let round = 0; round < 2; round++) {
      for (const [user, token] of [
        ['alice', T_ALICE],
        ['bob', T_BOB],
      ] as const) {
        for (const headers of await callAs(user)) {
          assert.equal(headers['authorization'], `Bearer ${token}`, user);
          assert.equal(headers['cookie'], undefined, user);
          for (const name of Object.keys(headers)) assert.ok(!name.startsWith('x-mcp-backend'), `${name} reached the backend`);
        }
      }
    }
  });

  test("a personal access token's calls carry its owner's uploaded token, not the PAT", async () => {
    const created = await api.call('createToken', { as: as('alice'), body: { name: 'laptop', servers: ['uploads'], lifetimeDays: 1 } });
    assert.equal(created.status, 201, created.text);
    const pat = created.body.token as string;
    for (const headers of await callAs('alice', { authorization: `Bearer ${pat}` })) assert.equal(headers['authorization'], `Bearer ${T_ALICE}`);
  });

  test('GET my-token shows the status only, each person their own', async () => {
    const alice = await api.call('getMyToken', { params: { name: 'uploads' }, as: as('alice') });
    assert.equal(alice.status, 200);
    assert.equal(alice.body.set, true);
    assert.equal(alice.body.expired, false);
    assertNoToken(alice.text, 'GET my-token');
    const one = await api.call('getMyToken', { params: { name: 'uploads' }, as: as('one-tool') });
    assert.equal(one.body.set, false);
  });

  test('an expired JWT is refused with "expired ... upload a new one" and nothing reaches the backend; a new upload works at the next request', async () => {
    const exp = Math.floor(Date.now() / 1000) + 5; // time to upload and call before it expires, even on a loaded machine
    T_SHORT = new UnsecuredJWT({ sub: 'alice@backend', short: true }).setExpirationTime(exp).encode();
    assert.equal((await api.call('setMyToken', { params: { name: 'uploads' }, body: { token: `Bearer ${T_SHORT}` }, as: as('alice') })).status, 200);
    for (const headers of await callAs('alice')) assert.equal(headers['authorization'], `Bearer ${T_SHORT}`);
    await new Promise((r) => setTimeout(r, Math.max(0, exp * 1000 - Date.now()) + 50));
    const message = await refused('alice');
    assert.equal(message, `your token for uploads expired at ${new Date(exp * 1000).toISOString()}: upload a new one at ${gw.url}/servers/uploads/token`);
    assert.equal((await api.call('getMyToken', { params: { name: 'uploads' }, as: as('alice') })).body.expired, true);
    assert.match(await page('alice', '/servers/uploads'), /expired<\/strong> on/);
    // Uploading an already expired token is refused at once.
    const stale = await api.call('setMyToken', { params: { name: 'uploads' }, body: { token: T_SHORT }, as: as('alice') });
    assert.match(assertError(stale, 400, 'REQUEST_INVALID').message, /expired at .*upload a new one/);
    assert.equal((await api.call('setMyToken', { params: { name: 'uploads' }, body: { token: T_ALICE_2 }, as: as('alice') })).status, 200);
    for (const headers of await callAs('alice')) assert.equal(headers['authorization'], `Bearer ${T_ALICE_2}`);
    // Bob was never affected.
    for (const headers of await callAs('bob')) assert.equal(headers['authorization'], `Bearer ${T_BOB}`);
  });

  test('Remove on the page: refused again at the next request', async () => {
    const html = await page('bob', '/servers/uploads');
    assert.match(html, /id="remove-token"/);
    const removed = await post('bob', '/servers/uploads/token/remove', { _csrf: csrfOf(html) });
    assert.equal(removed.status, 303);
    assert.match(await refused('bob'), /no token uploaded for uploads: upload one at/);
    assert.match(await page('bob', '/servers/uploads'), /None uploaded/);
    // Without the CSRF token nothing changes.
    const forged = await post('alice', '/servers/uploads/token/remove', {});
    assert.equal(forged.status, 403);
    assert.equal((await api.call('getMyToken', { params: { name: 'uploads' }, as: as('alice') })).body.set, true);
  });

  test("the one-tool user's scope rules still apply: another tool is refused before the backend, theirs carries their own token", async () => {
    assert.equal((await api.call('setMyToken', { params: { name: 'uploads' }, body: { token: T_ONE }, as: as('one-tool') })).status, 200);
    const before = backend.seen.length;
    const client = await mcpClient('one-tool');
    try {
      assert.deepEqual(
        (await client.listTools()).tools.map((t) => t.name),
        ['get_stock_aggregates'],
      );
      await assert.rejects(client.callTool({ name: 'print_stuff', arguments: { stuff: 'x' } }), /missing scope mcp:server:uploads:tool:print_stuff:execute/);
      await client.callTool({ name: 'get_stock_aggregates', arguments: { ticker: 'AAPL' } });
    } finally {
      await client.close();
    }
    const seen = backend.seen.slice(before);
    assert.ok(seen.length > 0);
    for (const headers of seen) assert.equal(headers['authorization'], `Bearer ${T_ONE}`);
  });

  test('the token page and a refused upload never show a token back', async () => {
    const html = await page('alice', '/servers/uploads');
    assertNoToken(html, "alice's page");
    const bad = await post('alice', '/servers/uploads/token', { _csrf: csrfOf(html), token: 'x\u0000injected-value' });
    assert.equal(bad.status, 303);
    const shown = await page('alice', '/servers/uploads');
    assert.match(shown, /Your token was not saved/);
    assert.ok(!shown.includes('injected-value'));
  });
});

describe('no token at rest or in the records', () => {
  test('the rendered nginx config, the audit log, the registry log and the state folder hold no uploaded token', async () => {
    assert.ok(logLines.length > 50, 'the registry logged at debug level');
    await assertNoSecretAtRest(gw, tokens(), logLines.join(''), 'an uploaded token');
    const changes = readFileSync(gw.gateway.auditFile, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { event: string; action?: string; user?: string })
      .filter((e) => e.event === 'change' && e.action === 'my-token');
    assert.deepEqual([...new Set(changes.map((e) => e.user))].sort(), ['alice', 'bob', 'one-tool']);
    // Vault ids name a hash, never the person.
    for (const info of gw.gateway.vault.list()) assert.ok(!/alice|bob|one-tool/.test(info.id), info.id);
  });
});
