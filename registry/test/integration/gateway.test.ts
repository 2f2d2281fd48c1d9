import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import { ADMIN_PASSWORD, eventually, startTestGateway, type TestGateway } from './harness.ts';
import { csrfFrom, login, type LoginTrace } from './login.ts';
import { jarFetch } from './cookie-jar.ts';

let gw: TestGateway;
let user: LoginTrace;
let noGroups: LoginTrace;
let operator: LoginTrace;
let admin: LoginTrace;

before(async () => {
  gw = await startTestGateway();
  user = await login(gw.url, 'user', 'demo');
  noGroups = await login(gw.url, 'no-groups', 'demo');
  operator = await login(gw.url, 'operator', 'demo');
  admin = await login(gw.url, 'admin', ADMIN_PASSWORD);
});
after(async () => {
  if (process.exitCode) process.stderr.write(`nginx error.log:\n${gw?.errorLog()}\n`);
  await gw?.[Symbol.asyncDispose]();
});

const streamable = (cookie: string, name = 'currenttime') =>
  new StreamableHTTPClientTransport(new URL(`${gw.url}/api/streamable/${name}`), {
    requestInit: { headers: { cookie, 'x-user': 'root', 'x-scopes': 'mcp:registry:admin' } },
  });
const sse = (cookie: string) =>
  new SSEClientTransport(new URL(`${gw.url}/api/execute/currenttime/sse`), { requestInit: { headers: { cookie, 'x-user': 'root' } } });

async function callTime(transport: Transport, zone: string): Promise<string> {
  const client = new Client({ name: 'gateway-test', version: '1.0.0' });
  await client.connect(transport);
  try {
    const tools = await client.listTools();
    assert.ok(tools.tools.some((t) => t.name === 'current_time_by_timezone'));
    const result = await client.callTool({ name: 'current_time_by_timezone', arguments: { tz_name: zone } });
    const text = (result.content as Array<{ type: string; text: string }>)[0]?.text ?? '';
    return `${result.isError ? 'ERROR ' : ''}${text}`;
  } finally {
    await client.close();
  }
}

const initialize = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
});
const post = (path: string, headers: Record<string, string> = {}) =>
  fetch(`${gw.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
    body: initialize,
  });

const json = async (res: Response) => (await res.json()) as Record<string, unknown>;

describe('MCP clients through nginx', () => {
  test('calls current_time_by_timezone over Streamable HTTP with the session cookie (unmodified SDK client)', async () => {
    assert.match(await callTime(streamable(user.cookie), 'Europe/Berlin'), /Europe\/Berlin/);
  });

  test('calls current_time_by_timezone over HTTP+SSE with the SSE endpoint event rewritten to the gateway path', async () => {
    const from = gw.received.length;
    assert.match(await callTime(sse(user.cookie), 'Asia/Tokyo'), /Asia\/Tokyo/);
    const posts = gw.received.slice(from).filter((r) => r.method === 'POST');
    assert.ok(posts.length >= 3 && posts.every((r) => r.path === '/messages'), 'messages reached the backend through /api/execute/currenttime/messages');
  });

  test('keeps Mcp-Session-Id through nginx and ends the session with DELETE', async () => {
    const transport = streamable(user.cookie);
    const client = new Client({ name: 'gateway-test', version: '1.0.0' });
    await client.connect(transport);
    const sessionId = transport.sessionId;
    assert.ok(sessionId, 'the session id reached the client');
    // Sealed to this user (docs/authorization.md): the backend's id, then the binding tag.
    const backendId = Buffer.from(sessionId.split('.')[0] ?? '', 'base64url').toString();
    assert.ok(
      gw.received.some((r) => r.headers['mcp-session-id'] === backendId),
      'the backend sees its own id',
    );
    assert.ok(!gw.received.some((r) => r.headers['mcp-session-id'] === sessionId), 'never the sealed one');
    await transport.terminateSession();
    const deleted = gw.received.filter((r) => r.method === 'DELETE' && r.headers['mcp-session-id'] === backendId);
    assert.equal(deleted.length, 1, 'DELETE with the session id reached the backend');
    const reuse = await fetch(`${gw.url}/api/streamable/currenttime`, {
      method: 'POST',
      headers: {
        cookie: user.cookie,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-session-id': sessionId,
        'mcp-protocol-version': '2025-06-18',
      },
      body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list' }),
    });
    assert.equal(reuse.status, 404, 'the ended session is gone at the backend');
    await client.close();
  });

  test('an unknown time zone comes back as a clear tool error', async () => {
    assert.match(await callTime(streamable(user.cookie), 'Mars/Olympus'), /^ERROR Unknown time zone "Mars\/Olympus"/);
  });

  test('"no token passthrough": the backend never receives the client Cookie or Authorization, and identity headers are the gateway\'s', async () => {
    const from = gw.received.length;
    await callTime(streamable(user.cookie), 'UTC');
    const seen = gw.received.slice(from);
    assert.ok(seen.length > 0);
    for (const r of seen) {
      assert.equal(r.headers['cookie'], undefined);
      assert.equal(r.headers['authorization'], undefined);
      assert.equal(r.headers['x-username'], 'user');
      assert.notEqual(r.headers['x-user'], 'root', 'a client-sent X-User is replaced');
      assert.doesNotMatch(String(r.headers['x-scopes']), /registry:admin/);
    }
  });
});

describe('bad credentials and bad paths get a clear answer', () => {
  test('no cookie: 401 JSON with a WWW-Authenticate challenge, backend untouched', async () => {
    const from = gw.received.length;
    const res = await post('/api/streamable/currenttime');
    assert.equal(res.status, 401);
    assert.match(res.headers.get('www-authenticate') ?? '', /^Bearer realm="mcp-gateway"/);
    assert.equal((await json(res)).error, 'AUTH_NO_CREDENTIALS');
    assert.equal(gw.received.length, from);
  });

  test('forged and tampered cookies: 401 with error="invalid_token"', async () => {
    const [, value = ''] = user.cookie.split('=');
    const tampered = value.replace(/^s%3A(.)/, (_m, c: string) => `s%3A${c === 'A' ? 'B' : 'A'}`);
    for (const cookie of ['mcp_gateway_session=s%3Aforged.c2lnbmF0dXJl', `mcp_gateway_session=${tampered}`, 'mcp_gateway_session=unsigned-id']) {
      const res = await post('/api/streamable/currenttime', { cookie });
      assert.equal(res.status, 401, cookie);
      assert.match(res.headers.get('www-authenticate') ?? '', /error="invalid_token"/);
    }
  });

  test('signed in without the scope: 403 naming mcp:server:currenttime:execute', async () => {
    const res = await post('/api/streamable/currenttime', { cookie: noGroups.cookie });
    assert.equal(res.status, 403);
    const body = (await res.json()) as { id: number; error: { code: number; message: string; data: { missing_scope: string } } };
    assert.equal(body.id, 1, 'a JSON-RPC error carrying the request id');
    assert.match(body.error.message, /mcp:server:currenttime:execute/);
    assert.equal(body.error.data.missing_scope, 'mcp:server:currenttime:execute');
  });

  test('unknown server: 404 JSON on both transports, never the web page', async () => {
    for (const path of ['/api/streamable/nope', '/api/execute/nope/sse', '/api/execute/nope/messages?sessionId=1']) {
      const res = await post(path, { cookie: admin.cookie });
      assert.equal(res.status, 404, path);
      assert.equal((await json(res)).error, 'SERVER_UNKNOWN', path);
    }
  });

  test('disabled server: 503 JSON', async () => {
    const res = await post('/api/streamable/offline', { cookie: admin.cookie });
    assert.equal(res.status, 503);
    assert.equal((await json(res)).error, 'SERVER_DISABLED');
  });

  test('the check endpoint is not reachable from outside', async () => {
    const res = await fetch(`${gw.url}/auth/validate`, { headers: { cookie: admin.cookie, 'x-mcp-server': 'currenttime' } });
    assert.equal(res.status, 404);
  });
});

describe('login', () => {
  test('the page shows each user the servers their groups allow', async () => {
    const page = async (t: LoginTrace) => (await jarFetch(t.jar, `${gw.url}/`)).text();
    const userPage = await page(user);
    assert.match(userPage, /data-server="currenttime"/);
    assert.doesNotMatch(userPage, /data-server="offline"/);
    assert.match(userPage, /mcp:server:currenttime:execute/);
    assert.doesNotMatch(userPage, /<button type="submit">(Disable|Enable)/, 'user may not toggle');
    assert.match(await page(noGroups), /id="no-servers"/);
    assert.match(await page(admin), /data-server="offline"/);
  });

  test('a callback with a wrong state is refused with a clear page', async () => {
    const trace = await login(gw.url, 'user', 'demo', { stopAtCallback: true });
    const url = new URL(trace.callbackUrl);
    url.searchParams.set('state', 'not-the-state');
    const res = await jarFetch(trace.jar, url.href);
    assert.equal(res.status, 400);
    assert.match(await res.text(), /does not belong to this browser session/);
  });

  test('a replayed authorization code is refused with a clear page', async () => {
    // The callback URL of a completed login, replayed in the same browser with a new login in flight.
    const first = await login(gw.url, 'user', 'demo', { stopAtCallback: true });
    const used = await jarFetch(first.jar, first.callbackUrl);
    assert.equal(used.status, 302);
    const again = await jarFetch(first.jar, first.callbackUrl);
    assert.equal(again.status, 400);
    assert.match(await again.text(), /expired or was already used/);
    // Same code with the state of a fresh login: the state matches, the IdP refuses the code.
    const second = await login(gw.url, 'user', 'demo', { stopAtCallback: true, jar: first.jar });
    const replay = new URL(first.callbackUrl);
    replay.searchParams.set('state', new URL(second.callbackUrl).searchParams.get('state') ?? '');
    const refused = await jarFetch(first.jar, replay.href);
    assert.equal(refused.status, 400);
    assert.match(await refused.text(), /already used or has expired/);
  });

  test('/logout ends the session: the cookie no longer opens the page or MCP', async () => {
    const trace = await login(gw.url, 'user', 'demo');
    assert.equal((await post('/api/streamable/currenttime', { cookie: trace.cookie })).status, 200);
    const csrf = await csrfFrom(gw.url, trace.jar);
    const out = await jarFetch(trace.jar, `${gw.url}/logout`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ _csrf: csrf }).toString(),
    });
    assert.equal(out.status, 302);
    assert.equal((await post('/api/streamable/currenttime', { cookie: trace.cookie })).status, 401);
    assert.match(await (await fetch(`${gw.url}/`, { headers: { cookie: trace.cookie } })).text(), /id="sign-in"/);
  });

  test('a wrong password stays on the form with a message', async () => {
    await assert.rejects(login(gw.url, 'user', 'wrong'), /login form answered 401/);
  });

  test('the session id is regenerated at login and the cookie is HttpOnly and SameSite=Lax', async () => {
    const trace = await login(gw.url, 'user', 'demo', { stopAtCallback: true });
    const before = trace.jar.get('mcp_gateway_session');
    const res = await jarFetch(trace.jar, trace.callbackUrl);
    const setCookie = res.headers.getSetCookie().find((c) => c.startsWith('mcp_gateway_session=')) ?? '';
    assert.match(setCookie, /HttpOnly/);
    assert.match(setCookie, /SameSite=Lax/);
    assert.notEqual(trace.jar.get('mcp_gateway_session'), before);
  });
});

describe('operators toggle servers', () => {
  test('an operator disables and enables currenttime; nginx follows in under 2 seconds', async (t) => {
    const csrf = await csrfFrom(gw.url, operator.jar);
    const toggle = (enabled: boolean) =>
      jarFetch(operator.jar, `${gw.url}/servers/currenttime/toggle`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ _csrf: csrf, enabled: String(enabled) }).toString(),
      });
    assert.equal((await toggle(false)).status, 303);
    const off = await eventually(async () => (await post('/api/streamable/currenttime', { cookie: user.cookie })).status === 503);
    assert.ok(off < 2000);
    t.diagnostic(`disable reached nginx in ${off} ms`);
    const page = await (await jarFetch(operator.jar, `${gw.url}/`)).text();
    assert.match(page, /currenttime is now disabled/);
    assert.equal(JSON.parse(readFileSync(join(gw.catalogDir, 'currenttime.json'), 'utf8')).enabled, false);
    assert.equal((await toggle(true)).status, 303);
    await eventually(async () => (await post('/api/streamable/currenttime', { cookie: user.cookie })).status === 200);
  });

  test('a toggle without the CSRF token or without the toggle scope is refused', async () => {
    const noToken = await jarFetch(operator.jar, `${gw.url}/servers/currenttime/toggle`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'enabled=false',
    });
    assert.equal(noToken.status, 403);
    const csrf = await csrfFrom(gw.url, user.jar);
    const noScope = await jarFetch(user.jar, `${gw.url}/servers/currenttime/toggle`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ _csrf: csrf, enabled: 'false' }).toString(),
    });
    assert.equal(noScope.status, 403);
    assert.match(await noScope.text(), /mcp:server:currenttime:toggle/);
    assert.equal(gw.gateway.catalog.get('currenttime')?.enabled, true);
  });
});

describe('bad catalog files and unreachable backends lose nothing', () => {
  test('invalid JSON, a name like a;b or ../x: reported on the page, ignored, nginx untouched', async () => {
    const conf = () => readFileSync(join(gw.gateway.runtimeDir, 'nginx.conf'), 'utf8');
    const before = conf();
    writeFileSync(join(gw.catalogDir, 'broken.json'), '{ "name": ');
    gw.writeDefinition('a;b', { name: 'a;b', url: 'http://127.0.0.1:1', transports: { sse: '/sse' }, enabled: true });
    gw.writeDefinition('x', { name: '../x', url: 'http://127.0.0.1:1', transports: { sse: '/sse' }, enabled: true });
    await eventually(async () => gw.gateway.catalog.problems().length === 3);
    await gw.gateway.nginx.settled();
    assert.equal(conf(), before);
    const page = await (await jarFetch(admin.jar, `${gw.url}/`)).text();
    for (const file of ['broken.json', 'a;b.json', 'x.json']) assert.ok(page.includes(file), `${file} reported on the page`);
    for (const file of ['broken.json', 'a;b.json', 'x.json']) rmSync(join(gw.catalogDir, file));
    await eventually(async () => gw.gateway.catalog.problems().length === 0);
  });

  test('a backend host that does not resolve: that server answers 502 and is shown not routed, the others serve, nginx untouched', async () => {
    const conf = () => readFileSync(join(gw.gateway.runtimeDir, 'nginx.conf'), 'utf8');
    const before = conf();
    gw.writeDefinition('ghost', { name: 'ghost', url: 'http://no-such-host.invalid:9000', transports: { 'streamable-http': '/mcp' }, enabled: true });
    await eventually(async () => gw.gateway.catalog.get('ghost') !== undefined, 5000);
    await gw.gateway.nginx.settled();
    assert.match(gw.gateway.nginx.status().refused?.['ghost'] ?? '', /host not found: "no-such-host\.invalid:9000"/);
    assert.equal(gw.gateway.nginx.status().lastError, undefined, 'nginx itself is fine');
    assert.equal((await post('/api/streamable/currenttime', { cookie: user.cookie })).status, 200);
    const ghost = await post('/api/streamable/ghost', { cookie: admin.cookie });
    assert.equal(ghost.status, 502);
    assert.equal((await json(ghost)).error, 'BACKEND_UNAVAILABLE');
    assert.match(await (await jarFetch(admin.jar, `${gw.url}/`)).text(), /data-server="ghost"[\s\S]*?data-not-routed/);
    assert.equal(conf(), before, 'no re-render, no reload');
    rmSync(join(gw.catalogDir, 'ghost.json'));
    await eventually(async () => gw.gateway.nginx.status().refused === undefined, 5000);
  });
});

describe('restart', () => {
  test('sessions and enabled state survive a registry restart', async () => {
    await gw.gateway.catalog.setEnabled('currenttime', false);
    await gw.gateway.nginx.settled();
    await gw.restart();
    assert.equal((await post('/api/streamable/currenttime', { cookie: user.cookie })).status, 503, 'still disabled');
    await gw.gateway.catalog.setEnabled('currenttime', true);
    await eventually(async () => (await post('/api/streamable/currenttime', { cookie: user.cookie })).status === 200);
    assert.match(await callTime(streamable(user.cookie), 'Europe/Paris'), /Europe\/Paris/);
  });

  test("the dev IdP keeps what it issued across a restart: a session's refresh token still refreshes it afterwards", async () => {
    const before = sessionTokens();
    assert.ok(before?.sealedRefreshToken !== undefined && before.expiresAt !== undefined);
    await gw.restart();
    // As if the access token were 30 s from expiry: the restarted IdP must still know the refresh token.
    await gw.gateway.refreshSessions(before.expiresAt - 30_000);
    const after = sessionTokens();
    assert.ok(after?.sealedRefreshToken !== undefined && after.sealedRefreshToken !== before.sealedRefreshToken, 'refreshed with a rotated token');
    assert.equal((await post('/api/streamable/currenttime', { cookie: user.cookie })).status, 200, 'and the session goes on');
  });
});

/** The IdP tokens of the session of `user` (the one signed-in as "user"), as stored on disk. */
function sessionTokens(): { sealedRefreshToken?: string; expiresAt?: number } | undefined {
  const dir = join(gw.stateDir, 'sessions');
  const records = readdirSync(dir).map(
    (f) =>
      JSON.parse(readFileSync(join(dir, f), 'utf8')) as {
        value: { identity?: { username?: string }; tokens?: { sealedRefreshToken?: string; expiresAt?: number } };
      },
  );
  return records.find((r) => r.value.identity?.username === 'user')?.value.tokens;
}
