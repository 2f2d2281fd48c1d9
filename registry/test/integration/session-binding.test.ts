/**
 * MCP sessions belong to the principal that opened them (docs/authorization.md): on both
 * transports, anyone else who learns a session id gets 404 as if it did not exist, and the
 * backend receives nothing. Real nginx + njs, the real currenttime server, unmodified SDK clients.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFileSync } from 'node:fs';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { DEV_MACHINE_CLIENT_ID } from '../../src/identity/dev.ts';
import { machineToken } from './api-client.ts';
import { ADMIN_PASSWORD, eventually, startTestGateway, TEST_SECRET_KEY, type TestGateway } from './harness.ts';
import { login } from './login.ts';

let gw: TestGateway;
/** Auth headers of two people who may both use currenttime, and of a machine client. */
let alice: Record<string, string>;
let bob: Record<string, string>;
let machine: Record<string, string>;
/** May use the shape-* servers only. */
let carol: Record<string, string>;

/**
 * A legacy backend whose endpoint event is spelled as other SDKs and servers spell it, one
 * shape per SSE path: the Python SDK's `/messages/?session_id=` with CRLF line ends, an
 * absolute URL on the backend's origin, a relative reference, and another origin.
 */
const ENDPOINTS: Record<string, (origin: string) => string> = {
  '/py/sse': () => '/messages/?session_id=0123abcd',
  '/abs/sse': (origin) => `${origin}/abs/messages?sid=1#frag`,
  '/rel/sse': () => 'messages?sid=2',
  '/evil/sse': () => 'http://evil.example/messages?sid=3',
};
let shapes: Server;
const shapesSeen: string[] = [];

before(async () => {
  shapes = createServer((req, res) => {
    shapesSeen.push(`${req.method} ${req.url}`);
    const endpoint = ENDPOINTS[req.url ?? ''];
    if (req.method === 'GET' && endpoint) {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(`event: endpoint\r\ndata: ${endpoint(`http://127.0.0.1:${(shapes.address() as AddressInfo).port}`)}\r\n\r\n`);
      return;
    }
    res.writeHead(202).end('Accepted');
  });
  await new Promise<void>((resolve) => shapes.listen(0, '127.0.0.1', resolve));
  const shapesUrl = `http://127.0.0.1:${(shapes.address() as AddressInfo).port}`;
  gw = await startTestGateway({
    mapping: `clients:\n  ${JSON.stringify(DEV_MACHINE_CLIENT_ID)}: ["mcp:server:currenttime:execute"]\n`,
    definitions: Object.keys(ENDPOINTS).map((sse) => ({ name: `shape-${sse.split('/')[1]}`, url: shapesUrl, transports: { sse }, enabled: true })),
    users: [{ username: 'carol', password: 'pw-carol', groups: Object.keys(ENDPOINTS).map((sse) => `mcp-server-shape-${sse.split('/')[1]}`) }],
  });
  carol = { cookie: (await login(gw.url, 'carol', 'pw-carol')).cookie };
  alice = { cookie: (await login(gw.url, 'user', 'demo')).cookie };
  bob = { cookie: (await login(gw.url, 'admin', ADMIN_PASSWORD)).cookie };
  machine = { authorization: `Bearer ${await machineToken(gw.url, TEST_SECRET_KEY)}` };
});
after(async () => {
  if (process.exitCode) process.stderr.write(`nginx error.log:\n${gw?.errorLog()}\n`);
  await gw?.[Symbol.asyncDispose]();
  shapes?.closeAllConnections();
  shapes?.close();
});

const STREAMABLE = '/api/streamable/currenttime';
const rpc = (id: number | string, method: string, params?: unknown) =>
  JSON.stringify({ jsonrpc: '2.0', id, method, ...(params === undefined ? {} : { params }) });
const INITIALIZE = rpc(1, 'initialize', { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } });
const MCP_HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2025-06-18' };

/** A Streamable HTTP request with a session id, as a raw client would send it. */
function inSession(who: Record<string, string>, session: string, method: 'POST' | 'GET' | 'DELETE', body = rpc(7, 'tools/list')): Promise<Response> {
  const headers = { ...MCP_HEADERS, ...who, 'mcp-session-id': session, ...(method === 'GET' ? { accept: 'text/event-stream' } : {}) };
  return fetch(`${gw.url}${STREAMABLE}`, { method, headers, ...(method === 'POST' ? { body } : {}) });
}

/** Asserts the answer for a session that is not the caller's: 404, a JSON-RPC error, MCP_SESSION_UNKNOWN. */
async function assertUnknown(res: Response, id: number | string | null, what: string): Promise<void> {
  assert.equal(res.status, 404, what);
  const body = (await res.json()) as { id: unknown; error: { code: number; message: string; data: { error: string } } };
  assert.equal(body.id, id, `${what}: the JSON-RPC id`);
  assert.equal(body.error.code, -32001, what);
  assert.equal(body.error.message, 'Session not found', what);
  assert.equal(body.error.data.error, 'MCP_SESSION_UNKNOWN', what);
}

/** Opens a Streamable HTTP session with the unmodified SDK client. */
async function openStreamable(who: Record<string, string>): Promise<{ client: Client; transport: StreamableHTTPClientTransport; session: string }> {
  const transport = new StreamableHTTPClientTransport(new URL(`${gw.url}${STREAMABLE}`), { requestInit: { headers: who } });
  const client = new Client({ name: 'session-binding', version: '1.0.0' });
  await client.connect(transport);
  assert.ok(transport.sessionId);
  return { client, transport, session: transport.sessionId };
}

const backendIdOf = (sealed: string) => Buffer.from(sealed.split('.')[0] ?? '', 'base64url').toString();

/**
 * What the backend received since `from`, for a test's assertions. Without alice's GETs: her
 * SDK client opens its standalone stream in the background whenever it likes.
 */
const receivedSince = (from: number) =>
  gw.received
    .slice(from)
    .filter((r) => !(r.method === 'GET' && r.headers['x-username'] === 'user' && r.path === '/mcp'))
    .map((r) => `${r.method} ${r.url} ${String(r.headers['x-username'])} ${String(r.headers['mcp-session-id'] ?? '')}`);

describe('Streamable HTTP: a session id works for the principal that opened it only', () => {
  test("another user sending alice's session id on POST, GET and DELETE gets 404 and the backend gets nothing; alice carries on", async () => {
    const a = await openStreamable(alice);
    try {
      assert.match(a.session, /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{22}$/, 'sealed: base64url(backend id).tag');
      for (const c of a.session) assert.ok(c.charCodeAt(0) >= 0x21 && c.charCodeAt(0) <= 0x7e, 'visible ASCII, as the spec requires');
      const from = gw.received.length;
      await assertUnknown(
        await inSession(bob, a.session, 'POST', rpc(7, 'tools/call', { name: 'current_time_by_timezone', arguments: { tz_name: 'UTC' } })),
        7,
        'POST',
      );
      await assertUnknown(await inSession(bob, a.session, 'GET'), null, 'GET (the stream)');
      await assertUnknown(await inSession(bob, a.session, 'DELETE'), null, 'DELETE');
      assert.deepEqual(receivedSince(from), [], 'nothing of bob reached the backend');
      const tools = await a.client.listTools();
      assert.ok(
        tools.tools.some((t) => t.name === 'current_time_by_timezone'),
        'alice still works',
      );
      const own = await inSession(alice, a.session, 'POST');
      assert.equal(own.status, 200, 'the same raw request is fine from alice');
      await own.body?.cancel();
    } finally {
      await a.transport.terminateSession();
      await a.client.close();
    }
  });

  test("the backend sees its own id, never the sealed one; a client's forged Mcp-Session-Id never reaches it", async () => {
    const a = await openStreamable(alice);
    try {
      const from = gw.received.length;
      await a.client.listTools();
      const seen = gw.received.slice(from);
      assert.ok(seen.length > 0);
      for (const r of seen) assert.equal(r.headers['mcp-session-id'], backendIdOf(a.session));
      for (const r of seen)
        for (const h of ['x-mcp-session', 'x-mcp-session-key', 'x-mcp-backend-session', 'x-mcp-backend-target']) assert.equal(r.headers[h], undefined, h);
    } finally {
      await a.client.close();
    }
  });

  test('a forged, garbled, truncated or unsealed session id is 404 and reaches no backend', async () => {
    const a = await openStreamable(alice);
    try {
      const [body = '', tag = ''] = a.session.split('.');
      const otherBody = Buffer.from('00000000-0000-4000-8000-000000000000').toString('base64url');
      const flip = (s: string, i: number) => s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1);
      const bad = [
        backendIdOf(a.session), // the backend's raw id: what the gateway used to pass through
        a.session.slice(0, -1),
        `${body}.${tag.slice(0, 16)}`,
        `${body}.${flip(tag, 3)}`,
        `${flip(body, 5)}.${tag}`,
        `${otherBody}.${tag}`,
        `${body}.${tag}.x`,
        `${body}=.${tag}`,
        'garbage',
        '.',
        `${a.session}A`,
        `${'A'.repeat(4000)}.${tag}`,
      ];
      const from = gw.received.length;
      for (const session of bad) await assertUnknown(await inSession(alice, session, 'POST'), 7, JSON.stringify(session.slice(0, 60)));
      assert.deepEqual(receivedSince(from), []);
      assert.equal((await a.client.listTools()).tools.length > 0, true);
    } finally {
      await a.client.close();
    }
  });

  test("a machine client and a person cannot use each other's sessions", async () => {
    const m = await openStreamable(machine);
    const a = await openStreamable(alice);
    try {
      const from = gw.received.length;
      await assertUnknown(await inSession(alice, m.session, 'POST'), 7, "alice with the machine's id");
      await assertUnknown(await inSession(machine, a.session, 'POST'), 7, "the machine with alice's id");
      await assertUnknown(await inSession(machine, a.session, 'DELETE'), null, "the machine ending alice's session");
      assert.deepEqual(receivedSince(from), []);
      assert.ok((await m.client.listTools()).tools.length > 0, 'the machine still works');
      assert.ok((await a.client.listTools()).tools.length > 0, 'alice still works');
    } finally {
      await m.client.close();
      await a.client.close();
    }
  });

  test('a request without a session id is unaffected (initialize opens one)', async () => {
    const res = await fetch(`${gw.url}${STREAMABLE}`, { method: 'POST', headers: { ...MCP_HEADERS, ...bob }, body: INITIALIZE });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('mcp-session-id') ?? '', /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{22}$/);
    for (const h of ['x-mcp-session-key', 'x-mcp-backend-session', 'x-mcp-backend-target', 'x-mcp-session-unknown', 'x-user', 'x-scopes'])
      assert.equal(res.headers.get(h), null, `no ${h} to the client`);
    await res.body?.cancel();
  });

  test('a refusal is audited with its reason', async () => {
    const a = await openStreamable(alice);
    await a.client.close();
    await assertUnknown(await inSession(bob, a.session, 'POST'), 7, 'bob');
    await gw.gateway.audit.flush();
    const lines = readFileSync(gw.gateway.auditFile, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const refused = lines.findLast((l) => l['user'] === 'admin' && l['status'] === 404);
    assert.ok(refused, 'the 404 is in the audit log');
    assert.equal(refused['reason'], 'session-unbound');
    assert.equal(refused['decision'], 'deny');
    assert.ok(!readFileSync(gw.gateway.auditFile, 'utf8').includes(a.session), 'no session id in the audit log');
  });
});

/** The legacy SSE stream, read as text; `next` waits for an event matching `match`. */
async function openLegacyStream(
  who: Record<string, string>,
): Promise<{ endpoint: string; next(match: RegExp, ms?: number): Promise<string | undefined>; events: string[]; close(): Promise<void> }> {
  const res = await fetch(`${gw.url}/api/execute/currenttime/sse`, { headers: { accept: 'text/event-stream', ...who } });
  assert.equal(res.status, 200);
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  const events: string[] = [];
  let buffer = '';
  let done = false;
  const pump = (async () => {
    for (;;) {
      const chunk = await reader.read().catch(() => ({ done: true as const, value: undefined }));
      if (chunk.done) return void (done = true);
      buffer += decoder.decode(chunk.value, { stream: true });
      const parts = buffer.split(/\r?\n\r?\n/);
      buffer = parts.pop() ?? '';
      events.push(...parts);
    }
  })();
  const next = async (match: RegExp, ms = 2000): Promise<string | undefined> => {
    const start = Date.now();
    while (Date.now() - start < ms && !done) {
      const found = events.find((e) => match.test(e));
      if (found) return found;
      await new Promise((r) => setTimeout(r, 20));
    }
    return events.find((e) => match.test(e));
  };
  const first = await next(/^event: endpoint/m);
  assert.ok(first, 'the stream announced its endpoint');
  const endpoint = /^data: (.*)$/m.exec(first)?.[1] ?? '';
  return {
    endpoint,
    next,
    events,
    async close() {
      await reader.cancel().catch(() => {});
      await pump;
    },
  };
}

const postMessage = (who: Record<string, string>, path: string, body: string) =>
  fetch(`${gw.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...who }, body });

describe('legacy HTTP+SSE: the messages endpoint works for the principal that opened the stream only', () => {
  test("the endpoint event names the gateway's messages path with a sealed session; another user posting there gets 404, the backend and alice's stream get nothing", async () => {
    const stream = await openLegacyStream(alice);
    try {
      assert.match(stream.endpoint, /^\/api\/execute\/currenttime\/messages\?session=[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{22}$/);
      const sealed = new URL(stream.endpoint, gw.url).searchParams.get('session') ?? '';
      assert.match(backendIdOf(sealed), /^\/messages\?sessionId=[0-9a-f-]{36}$/, "the backend's own endpoint, sealed whole");
      assert.equal((await postMessage(alice, stream.endpoint, INITIALIZE)).status, 202);
      assert.ok(await stream.next(/"id":1[,}]/), 'alice gets her initialize result');
      const from = gw.received.length;
      await assertUnknown(await postMessage(bob, stream.endpoint, rpc('from-bob', 'tools/list')), 'from-bob', "bob on alice's endpoint");
      await assertUnknown(await postMessage(machine, stream.endpoint, rpc('from-machine', 'tools/list')), 'from-machine', "the machine on alice's endpoint");
      assert.deepEqual(receivedSince(from), [], 'nothing reached the backend');
      assert.equal((await postMessage(alice, stream.endpoint, rpc('from-alice', 'tools/list'))).status, 202);
      assert.ok(await stream.next(/"id":"from-alice"/), 'alice still works');
      assert.ok(!stream.events.some((e) => /from-bob|from-machine/.test(e)), "nothing of bob's or the machine's on alice's stream");
    } finally {
      await stream.close();
    }
  });

  test("posting with no session, the backend's raw sessionId, or a garbled seal is 404 and reaches no backend", async () => {
    const stream = await openLegacyStream(alice);
    try {
      const sealed = new URL(stream.endpoint, gw.url).searchParams.get('session') ?? '';
      const raw = new URLSearchParams(backendIdOf(sealed).split('?')[1]).get('sessionId') ?? '';
      const from = gw.received.length;
      for (const query of [
        '',
        `?sessionId=${raw}`,
        `?session=${sealed.slice(0, -2)}`,
        `?session=${encodeURIComponent(sealed)}x`,
        `?session=${sealed}&sessionId=${raw}`.replace(
          sealed,
          sealed.replace(/.$/, (c) => (c === 'A' ? 'B' : 'A')),
        ),
      ]) {
        await assertUnknown(await postMessage(alice, `/api/execute/currenttime/messages${query}`, rpc(3, 'tools/list')), 3, query || '(none)');
      }
      assert.deepEqual(receivedSince(from), []);
    } finally {
      await stream.close();
    }
  });

  test("the endpoint is sealed whatever the backend's spelling: Python SDK, absolute, relative; another origin is dropped", async () => {
    const expected: Record<string, string | undefined> = {
      py: '/messages/?session_id=0123abcd',
      abs: '/abs/messages?sid=1',
      rel: '/rel/messages?sid=2',
      evil: undefined,
    };
    for (const [shape, target] of Object.entries(expected)) {
      const res = await fetch(`${gw.url}/api/execute/shape-${shape}/${shape}/sse`, { headers: { accept: 'text/event-stream', ...bob } });
      assert.equal(res.status, 200, shape);
      const reader = (res.body as ReadableStream<Uint8Array>).getReader();
      let text = '';
      while (!/\n\n|\r\n\r\n/.test(text)) text += new TextDecoder().decode((await reader.read()).value);
      await reader.cancel();
      if (target === undefined) {
        assert.equal(text, ': endpoint dropped by the gateway\n\n', 'another origin is never announced');
        continue;
      }
      const endpoint = /^data: (.*)$/m.exec(text)?.[1] ?? '';
      assert.match(endpoint, new RegExp(`^/api/execute/shape-${shape}/messages\\?session=`), shape);
      shapesSeen.length = 0;
      const posted = await postMessage(bob, endpoint, rpc(1, 'ping'));
      assert.equal(posted.status, 202, shape);
      assert.deepEqual(shapesSeen, [`POST ${target}`], `${shape}: exactly the announced endpoint`);
      shapesSeen.length = 0;
      await assertUnknown(await postMessage(carol, endpoint, rpc(1, 'ping')), 1, `${shape}: another user allowed on the server`);
      assert.deepEqual(shapesSeen, []);
    }
  });

  test('the unmodified SDK SSE client works end to end, and sees only its own responses', async () => {
    const client = new Client({ name: 'session-binding', version: '1.0.0' });
    await client.connect(new SSEClientTransport(new URL(`${gw.url}/api/execute/currenttime/sse`), { requestInit: { headers: alice } }));
    try {
      const result = await client.callTool({ name: 'current_time_by_timezone', arguments: { tz_name: 'Asia/Tokyo' } });
      assert.match((result.content as Array<{ text: string }>)[0]?.text ?? '', /Asia\/Tokyo/);
    } finally {
      await client.close();
    }
  });
});

/** A GET with the path exactly as written (fetch would resolve `..` first). */
function rawRequest(method: string, path: string, headers: Record<string, string>): Promise<{ status: number; body: string }> {
  const url = new URL(gw.url);
  return new Promise((resolve, reject) => {
    const req = request({ host: url.hostname, port: url.port, method, path, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('the legacy location routes exactly the SSE path and the messages endpoint', () => {
  test('any other path below /api/execute/currenttime/ is a JSON 404 and reaches no backend', async () => {
    const from = gw.received.length;
    const paths = [
      '/api/execute/currenttime/mcp',
      '/api/execute/currenttime/anything',
      '/api/execute/currenttime/healthz',
      '/api/execute/currenttime/sse/../mcp',
      '/api/execute/currenttime/sse/%2e%2e/mcp',
      '/api/execute/currenttime/sse%2F..%2Fmcp',
      '/api/execute/currenttime/%6dcp',
      // Characters no definition path holds never reach the check's header as they are (njs).
      '/api/execute/currenttime/sse%0d',
      '/api/execute/currenttime/sse%20x',
      '/api/execute/currenttime/sse%22',
      '/api/execute/currenttime/sse/',
      '/api/execute/currenttime/messages/',
      '/api/execute/currenttime/',
      '/api/execute/currenttime',
    ];
    for (const path of paths) {
      for (const method of ['GET', 'POST']) {
        const res = await rawRequest(method, path, { ...alice, 'content-type': 'application/json' });
        assert.equal(res.status, 404, `${method} ${path}`);
        assert.equal((JSON.parse(res.body) as { error: string }).error, 'NOT_FOUND', `${method} ${path}`);
      }
    }
    assert.deepEqual(receivedSince(from), []);
  });

  test('the stream takes GET only and the messages endpoint POST only', async () => {
    const from = gw.received.length;
    for (const [method, path] of [
      ['POST', '/api/execute/currenttime/sse'],
      ['DELETE', '/api/execute/currenttime/sse'],
      ['GET', '/api/execute/currenttime/messages'],
      ['DELETE', '/api/execute/currenttime/messages'],
    ] as const) {
      const res = await rawRequest(method, path, alice);
      assert.equal(res.status, 405, `${method} ${path}`);
      assert.equal((JSON.parse(res.body) as { error: string }).error, 'METHOD_NOT_ALLOWED');
    }
    assert.deepEqual(receivedSince(from), []);
  });

  test('a query on the stream path is not passed on: the backend gets exactly its SSE path', async () => {
    const from = gw.received.length;
    const res = await fetch(`${gw.url}/api/execute/currenttime/sse?x=/../mcp`, { headers: { accept: 'text/event-stream', ...alice } });
    assert.equal(res.status, 200);
    await eventually(async () => gw.received.length > from);
    await res.body?.cancel();
    assert.deepEqual(
      gw.received.slice(from).map((r) => `${r.method} ${r.url}`),
      ['GET /sse'],
    );
  });
});

describe('across a restart', () => {
  test("alice's Streamable HTTP session keeps working after the registry and nginx restart (no table: the key derives from SECRET_KEY); bob is still refused", async () => {
    const a = await openStreamable(alice);
    try {
      await gw.restart();
      assert.ok((await a.client.listTools()).tools.length > 0, 'the sealed id opens on the new process');
      await assertUnknown(await inSession(bob, a.session, 'POST'), 7, 'bob after the restart');
      // A legacy stream ends with its connection; a new one works end to end on the new process.
      const stream = await openLegacyStream(alice);
      try {
        assert.equal((await postMessage(alice, stream.endpoint, INITIALIZE)).status, 202);
        assert.ok(await stream.next(/"id":1[,}]/));
      } finally {
        await stream.close();
      }
    } finally {
      await a.client.close();
    }
  });
});
