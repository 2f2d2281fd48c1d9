/**
 * The generated config under the real nginx and njs (no mocks): real backends, a stand-in
 * registry, one nginx master for the whole file. Each MCP request goes through nginx/njs/mcp.js
 * (body read and classified, check subrequest, named location to the backend). On failure the
 * nginx error.log tail is printed.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { Agent, request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { GatewayError } from '../errors.ts';
import { createLogger } from '../log.ts';
import { findNginx, NginxController } from './apply.ts';
import {
  definition,
  freePort,
  readStreamUntil,
  selfSignedLocalhost,
  send,
  startBackend,
  startRegistryDouble,
  TOOLS_LIST_RESULT,
  TOOLS_STREAM_OPEN_MS,
  type Peer,
  type RegistryDouble,
} from './harness.ts';
import type { ServerDefinition } from '../catalog/server-definition.ts';
import { TestCatalog } from '../catalog/test-catalog.ts';
import { renderNginxConfig, type NginxRenderInput } from './render.ts';
import { RouteTable } from './route.ts';

const found = findNginx();
// No nginx is a failure, never a skip: these tests are the proof that the config works.
if ('missing' in found) throw new Error(found.missing);
const nginxBin = found.bin;

/** Bodies the tests send: well-formed JSON-RPC, as MCP clients send it. */
const TOOLS_CALL = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"}}';
const TOOLS_LIST = '{"jsonrpc":"2.0","id":1,"method":"tools/list"}';
const INITIALIZE =
  '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}';
/** TOOLS_LIST_RESULT after the filter for a principal that may use tool `a` only. */
const ONLY_A = '{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"}]}}';

describe('nginx with the generated config', { timeout: 60_000 }, () => {
  let backend: Peer;
  let registry: RegistryDouble;
  let nginx: NginxController;
  let port: number;
  let runtimeDir: string;
  let base: NginxRenderInput;
  let servers: readonly ServerDefinition[];
  const catalog = new TestCatalog();
  let routes: RouteTable;

  const render = (patch: Partial<NginxRenderInput> = {}): string => renderNginxConfig({ ...base, ...patch });
  const mcp = (path: string, headers: Record<string, string> = {}, body?: string) =>
    send(port, { method: body === undefined ? 'GET' : 'POST', path, headers, ...(body === undefined ? {} : { body }) });
  const checksOf = (server: string) => registry.seen.filter((s) => s.headers['x-mcp-server'] === server);
  const checkCount = () => registry.seen.filter((s) => s.url === '/auth/validate').length;

  /** Runs a test body and prints the end of nginx's error.log when it fails. */
  const withLog = (fn: (t: TestContext) => Promise<void>) => async (t: TestContext) => {
    try {
      await fn(t);
    } catch (err) {
      process.stderr.write(`--- nginx error.log (tail) ---\n${await nginx.errorLogTail(30)}\n`);
      throw err;
    }
  };

  before(async () => {
    if ('missing' in found) return;
    // delta is disabled in the catalog: the stand-in check refuses it, as decideAccess would.
    routes = new RouteTable({ catalog: catalog as unknown as ConstructorParameters<typeof RouteTable>[0]['catalog'], log: createLogger('fatal') });
    [backend, registry, port] = await Promise.all([startBackend(), startRegistryDouble({ disabled: ['delta'], route: routes.lookup }), freePort()]);
    runtimeDir = await mkdtemp(join(tmpdir(), 'mcp-nginx-'));
    servers = [
      definition('alpha', backend.url, { 'streamable-http': '/mcp', sse: '/sse' }),
      definition('gamma', backend.url, { sse: '/sse' }),
      definition('delta', backend.url, { 'streamable-http': '/mcp', sse: '/sse' }, false),
      definition('omega', `http://127.0.0.1:${await freePort()}`, { 'streamable-http': '/mcp' }),
    ];
    catalog.set(servers);
    base = {
      listen: { host: '127.0.0.1', port },
      runtimeDir,
      registry: { port: registry.port },
      njsModulePath: found.njsModule,
      njsDir: join(import.meta.dirname, '..', '..', '..', 'nginx', 'njs'),
      ...(process.getuid?.() === 0 ? { workerUser: 'nobody nogroup' } : {}),
      upstreams: await routes.start(),
    };
    nginx = new NginxController({ nginxBin, runtimeDir, log: createLogger(process.env['NGINX_TEST_LOG'] ?? 'error') });
    try {
      await nginx.start(render());
    } catch (err) {
      process.stderr.write(`--- nginx error.log (tail) ---\n${await nginx.errorLogTail(30)}\n`);
      throw err;
    }
  });

  after(async () => {
    routes?.stop();
    await nginx?.stop();
    await Promise.all([backend?.close(), registry?.close()]);
    if (runtimeDir !== undefined) await rm(runtimeDir, { recursive: true, force: true });
  });

  it(
    'fails start() with NGINX_UNAVAILABLE and the error.log tail when nginx cannot listen',
    withLog(async () => {
      const dir = await mkdtemp(join(tmpdir(), 'mcp-nginx-taken-'));
      const other = new NginxController({ nginxBin, runtimeDir: dir, log: createLogger('silent') });
      try {
        await assert.rejects(other.start(render({ runtimeDir: dir, listen: { host: '127.0.0.1', port: backend.port } })), (err: unknown) => {
          assert.ok(err instanceof GatewayError);
          assert.equal(err.code, 'NGINX_UNAVAILABLE');
          assert.match(err.message, /Address already in use/);
          return true;
        });
        assert.equal(other.status().running, false);
      } finally {
        await other.stop();
        await rm(dir, { recursive: true, force: true });
      }
    }),
  );

  it(
    'proxies an allowed streamable request with X-User from the check and no client credentials',
    withLog(async () => {
      backend.seen.length = 0;
      const reply = await mcp(
        '/api/streamable/alpha?x=1',
        {
          cookie: 'ok=1',
          authorization: 'Bearer client-token',
          'x-user': 'root',
          'x-scopes': 'mcp:registry:admin',
          // The check's vocabulary, forged by the client: nginx sets or blanks each of them.
          'x-mcp-messages': 'initialize',
          'x-mcp-tool-filter': '["x"]',
          'x-missing-scope': 'nothing',
          // Sealed to this principal; the backend gets its own id back (session-binding.ts).
          'mcp-session-id': registry.seal('ok=1', 'streamable', 'alpha', 's-1'),
          'x-mcp-session-key': 'forged',
          'x-mcp-backend-session': 'forged',
          'mcp-protocol-version': '2025-06-18',
          'content-type': 'application/json',
        },
        TOOLS_CALL,
      );
      assert.equal(reply.status, 200);
      assert.equal(backend.seen.length, 1);
      const upstream = backend.seen.at(-1);
      assert.equal(upstream?.method, 'POST');
      assert.equal(upstream?.url, '/mcp?x=1');
      assert.equal(upstream?.body, TOOLS_CALL, 'the backend gets the bytes the check was told about');
      assert.equal(upstream?.headers['content-length'], String(TOOLS_CALL.length));
      assert.equal(upstream?.headers['x-user'], 'user-1');
      assert.equal(upstream?.headers['x-username'], 'alice');
      assert.equal(upstream?.headers['x-scopes'], 'mcp:server:alpha:execute');
      assert.equal(upstream?.headers.cookie, undefined, 'no Cookie to the backend');
      assert.equal(upstream?.headers.authorization, undefined, 'no Authorization to the backend');
      assert.equal(upstream?.headers['mcp-session-id'], 's-1');
      assert.equal(upstream?.headers['mcp-protocol-version'], '2025-06-18');
      assert.equal(upstream?.headers.host, `127.0.0.1:${backend.port}`);
      for (const header of ['x-mcp-messages', 'x-mcp-tool-filter', 'x-missing-scope', 'x-mcp-server', 'x-mcp-transport']) {
        assert.equal(upstream?.headers[header], undefined, `no ${header} to the backend`);
      }

      const check = checksOf('alpha').at(-1);
      assert.equal(check?.url, '/auth/validate');
      assert.equal(check?.method, 'GET', 'the check is a body-less subrequest');
      assert.equal(check?.body, '');
      assert.equal(check?.headers['content-length'], undefined);
      assert.equal(check?.headers.cookie, 'ok=1', 'the check sees the client cookie');
      assert.equal(check?.headers.authorization, 'Bearer client-token', 'the check sees the client token');
      assert.equal(check?.headers['x-mcp-transport'], 'streamable-http');
      assert.equal(check?.headers['x-original-uri'], '/api/streamable/alpha?x=1');
      assert.equal(check?.headers['x-original-method'], 'POST');
      assert.equal(check?.headers['x-user'], undefined, 'a forged X-User never reaches the check');
      assert.equal(check?.headers['x-missing-scope'], undefined);
      assert.equal(check?.headers['x-mcp-messages'], 'tools/call x', 'the check learns what the body holds, not what the client claims');
      assert.equal(registry.messages.at(-1), 'tools/call x');
      assert.match(String(check?.headers['x-request-id']), /^[0-9a-f]{32}$/);
      assert.equal(upstream?.headers['x-request-id'], check?.headers['x-request-id']);
    }),
  );

  it(
    'serves the slash form of the streamable path too',
    withLog(async () => {
      backend.seen.length = 0;
      assert.equal((await mcp('/api/streamable/alpha/', { cookie: 'ok=1' }, INITIALIZE)).status, 200);
      assert.equal(registry.messages.at(-1), 'initialize');
      assert.equal(backend.seen[0]?.url, '/mcp');
      assert.equal(backend.seen[0]?.body, INITIALIZE);
    }),
  );

  it(
    'tells the check every message of a batch, and `-` for requests without a body',
    withLog(async () => {
      const batch = `[${TOOLS_CALL},{"jsonrpc":"2.0","method":"notifications/initialized"},{"jsonrpc":"2.0","id":7,"result":{}}]`;
      backend.seen.length = 0;
      assert.equal((await mcp('/api/streamable/alpha', { cookie: 'ok=1' }, batch)).status, 200);
      assert.equal(registry.messages.at(-1), 'tools/call x,notifications/initialized,!response');
      assert.equal(backend.seen[0]?.body, batch);
      for (const method of ['GET', 'DELETE']) {
        backend.seen.length = 0;
        const reply = await send(port, {
          method,
          path: '/api/streamable/alpha',
          headers: { cookie: 'ok=1', 'mcp-session-id': registry.seal('ok=1', 'streamable', 'alpha', 's-1') },
        });
        assert.equal(reply.status, 200, method);
        assert.equal(registry.messages.at(-1), '-', method);
        assert.equal(checksOf('alpha').at(-1)?.headers['x-original-method'], method);
        assert.equal(backend.seen[0]?.method, method);
        assert.equal(backend.seen[0]?.url, '/mcp');
      }
    }),
  );

  it(
    "answers 401 JSON with the check's WWW-Authenticate, once",
    withLog(async () => {
      backend.seen.length = 0;
      const reply = await mcp('/api/streamable/alpha', {}, TOOLS_CALL);
      assert.equal(reply.status, 401);
      assert.equal(reply.headers['content-type'], 'application/json');
      assert.deepEqual(JSON.parse(reply.body), { error: 'AUTH_NO_CREDENTIALS', message: 'sign in or send a valid token' });
      const challenges = reply.rawHeaders.filter((_, i) => i % 2 === 0 && reply.rawHeaders[i]?.toLowerCase() === 'www-authenticate');
      assert.equal(challenges.length, 1);
      assert.equal(reply.headers['www-authenticate'], 'Bearer realm="x"');
      assert.equal(registry.messages.at(-1), 'tools/call x');
      assert.equal(backend.seen.length, 0);
    }),
  );

  it(
    'answers 403 naming the missing scope: a JSON-RPC error for a request with an id, else plain JSON',
    withLog(async () => {
      backend.seen.length = 0;
      const scope = 'mcp:server:alpha:execute';
      const reply = await mcp(
        '/api/streamable/alpha',
        { cookie: 'ok=forbidden' },
        '{"jsonrpc":"2.0","id":"req-9","method":"tools/call","params":{"name":"x"}}',
      );
      assert.equal(reply.status, 403);
      assert.equal(reply.headers['content-type'], 'application/json');
      assert.deepEqual(JSON.parse(reply.body), {
        jsonrpc: '2.0',
        id: 'req-9',
        error: { code: -32001, message: `missing scope ${scope}`, data: { error: 'AUTH_SCOPE_MISSING', missing_scope: scope } },
      });
      // The check's step-up challenge reaches the client, once.
      const challenges = reply.rawHeaders.filter((_, i) => i % 2 === 0 && reply.rawHeaders[i]?.toLowerCase() === 'www-authenticate');
      assert.deepEqual(challenges, ['WWW-Authenticate']);
      assert.equal(reply.headers['www-authenticate'], `Bearer error="insufficient_scope", scope="${scope}"`);
      const plain = { error: 'AUTH_SCOPE_MISSING', message: `missing scope ${scope}`, missing_scope: scope };
      const notification = '{"jsonrpc":"2.0","method":"notifications/initialized"}';
      for (const body of [undefined, notification, `[${TOOLS_CALL}]`]) {
        const denied = await mcp('/api/streamable/alpha', { cookie: 'ok=forbidden' }, body);
        assert.equal(denied.status, 403, String(body));
        assert.equal(denied.headers['content-type'], 'application/json');
        assert.deepEqual(JSON.parse(denied.body), plain, String(body));
      }
      assert.equal(backend.seen.length, 0);
    }),
  );

  it(
    'refuses a body that is not well-formed JSON-RPC with 400, before asking the check',
    withLog(async () => {
      backend.seen.length = 0;
      const checks = checkCount();
      const cases: Array<{
        body: string | Buffer;
        headers?: Record<string, string>;
        id: string | number | null;
        code: number;
        message: string | RegExp;
        error?: string;
      }> = [
        { body: '{"jsonrpc":"2.0","id":1,"method":', id: null, code: -32700, message: 'request body is not valid JSON' },
        { body: 'not json', id: null, code: -32700, message: 'request body is not valid JSON' },
        { body: '', id: null, code: -32600, message: 'empty request body' },
        { body: Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]), id: null, code: -32700, message: 'request body is not valid UTF-8' },
        // JSON.parse keeps the last "method", other parsers the first: never ambiguous.
        {
          body: '{"jsonrpc":"2.0","id":1,"method":"ping","m\\u0065thod":"tools/call"}',
          id: null,
          code: -32700,
          message: 'duplicate key "method" in the request body',
        },
        // The limit sits below what njs's own JSON.parse can take; far deeper is refused by name.
        { body: `${'['.repeat(200)}${']'.repeat(200)}`, id: null, code: -32700, message: /^request body nests deeper than \d+ levels$/ },
        // A byte order mark is not JSON (and a backend's parser would refuse it too).
        { body: `\uFEFF${TOOLS_CALL}`, id: null, code: -32700, message: 'request body is not valid JSON' },
        { body: '[]', id: null, code: -32600, message: 'a batch holds 1 to 100 messages' },
        { body: `[${Array(101).fill(TOOLS_CALL).join(',')}]`, id: null, code: -32600, message: 'a batch holds 1 to 100 messages' },
        { body: '{"jsonrpc":"1.0","id":3,"method":"ping"}', id: 3, code: -32600, message: 'jsonrpc must be "2.0"' },
        { body: '{"jsonrpc":"2.0","id":4}', id: 4, code: -32600, message: 'a JSON-RPC request needs a method' },
        {
          body: TOOLS_CALL,
          headers: { 'mcp-method': 'tools/call', 'mcp-name': 'y' },
          id: 1,
          code: -32020,
          message: 'Header mismatch: Mcp-Name header does not match the body',
          error: 'MCP_HEADER_MISMATCH',
        },
        {
          body: TOOLS_CALL,
          headers: { 'mcp-method': 'ping' },
          id: 1,
          code: -32020,
          message: 'Header mismatch: Mcp-Method header does not match the body',
          error: 'MCP_HEADER_MISMATCH',
        },
      ];
      for (const { body, headers, id, code, message, error } of cases) {
        const what = `${String(body).slice(0, 60)} ${JSON.stringify(headers ?? {})}`;
        const reply = await send(port, {
          method: 'POST',
          path: '/api/streamable/alpha',
          headers: { cookie: 'ok=1', 'content-type': 'application/json', ...headers },
          body,
        });
        assert.equal(reply.status, 400, what);
        assert.equal(reply.headers['content-type'], 'application/json', what);
        const answer = JSON.parse(reply.body) as { jsonrpc: string; id: unknown; error: { code: number; message: string; data: { error: string } } };
        assert.equal(answer.jsonrpc, '2.0', what);
        assert.equal(answer.id, id, what);
        assert.equal(answer.error.code, code, what);
        if (typeof message === 'string') assert.equal(answer.error.message, message, what);
        else assert.match(answer.error.message, message, what);
        assert.equal(answer.error.data.error, error ?? 'MCP_REQUEST_INVALID', what);
      }
      // Headers that agree with the body pass.
      const agreed = await mcp('/api/streamable/alpha', { cookie: 'ok=1', 'mcp-method': 'tools/call', 'mcp-name': 'x' }, TOOLS_CALL);
      assert.equal(agreed.status, 200);
      // So does ordinary nesting in the arguments (16 levels).
      const nested = `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":${'{"a":'.repeat(13)}1${'}'.repeat(13)}}}`;
      assert.equal((await mcp('/api/streamable/alpha', { cookie: 'ok=1' }, nested)).status, 200);
      assert.equal(checkCount(), checks + 2, 'only the well-formed requests reached the check');
      assert.equal(backend.seen.length, 2);
      assert.equal(backend.seen[1]?.body, nested);
    }),
  );

  it(
    'holds MCP 2026-07-28 headers to the body: 400 HeaderMismatch (-32020) for a disagreeing or missing one, before asking the check',
    withLog(async () => {
      backend.seen.length = 0;
      const checks = checkCount();
      const V = '2026-07-28';
      const meta = { 'io.modelcontextprotocol/protocolVersion': V };
      const modern = (method: string, params: Record<string, unknown> = {}, id: number | null = 7) =>
        JSON.stringify({ jsonrpc: '2.0', ...(id === null ? {} : { id }), method, params: { ...params, _meta: meta } });
      const b64 = (text: string) => `=?base64?${Buffer.from(text, 'utf8').toString('base64')}?=`;
      const cases: Array<{ what: string; body: string; headers: Record<string, string>; id: number | null; message: string; code?: number; error?: string }> = [
        {
          what: 'no Mcp-Method on a modern request',
          body: modern('tools/list'),
          headers: { 'mcp-protocol-version': V },
          id: 7,
          message: 'the Mcp-Method header is required',
        },
        {
          what: 'no Mcp-Name on a modern tools/call',
          body: modern('tools/call', { name: 'x' }),
          headers: { 'mcp-protocol-version': V, 'mcp-method': 'tools/call' },
          id: 7,
          message: 'the Mcp-Name header is required for tools/call',
        },
        {
          what: 'no Mcp-Name on a modern resources/read',
          body: modern('resources/read', { uri: 'a://b' }),
          headers: { 'mcp-protocol-version': V, 'mcp-method': 'resources/read' },
          id: 7,
          message: 'the Mcp-Name header is required for resources/read',
        },
        {
          what: 'no MCP-Protocol-Version with a version in _meta',
          body: modern('tools/list'),
          headers: { 'mcp-method': 'tools/list' },
          id: 7,
          message: 'MCP-Protocol-Version header does not match the protocol version in the body',
        },
        {
          what: 'another MCP-Protocol-Version than _meta',
          body: modern('tools/list'),
          headers: { 'mcp-protocol-version': '2025-11-25', 'mcp-method': 'tools/list' },
          id: 7,
          message: 'MCP-Protocol-Version header does not match the protocol version in the body',
        },
        {
          what: 'Mcp-Method of another method',
          body: modern('tools/call', { name: 'x' }),
          headers: { 'mcp-protocol-version': V, 'mcp-method': 'tools/list', 'mcp-name': 'x' },
          id: 7,
          message: 'Mcp-Method header does not match the body',
        },
        {
          what: 'Mcp-Name of another tool',
          body: modern('tools/call', { name: 'x' }),
          headers: { 'mcp-protocol-version': V, 'mcp-method': 'tools/call', 'mcp-name': 'y' },
          id: 7,
          message: 'Mcp-Name header does not match the body',
        },
        {
          what: 'Mcp-Name Base64 of another tool',
          body: modern('tools/call', { name: 'x' }),
          headers: { 'mcp-protocol-version': V, 'mcp-method': 'tools/call', 'mcp-name': b64('y') },
          id: 7,
          message: 'Mcp-Name header does not match the body',
        },
        {
          what: 'Mcp-Name with broken Base64',
          body: modern('tools/call', { name: 'x' }),
          headers: { 'mcp-protocol-version': V, 'mcp-method': 'tools/call', 'mcp-name': '=?base64?eA?=' },
          id: 7,
          message: 'Mcp-Name header is not a valid header value',
        },
        {
          what: 'Mcp-Name on a method without a name',
          body: modern('tools/list'),
          headers: { 'mcp-protocol-version': V, 'mcp-method': 'tools/list', 'mcp-name': 'x' },
          id: 7,
          message: 'Mcp-Name header does not match the body',
        },
        {
          what: 'a header on a batch',
          body: `[${TOOLS_CALL}]`,
          headers: { 'mcp-method': 'tools/call' },
          id: null,
          message: 'Mcp-Method / Mcp-Name headers cannot describe a batch',
        },
        {
          what: 'a modern batch',
          body: `[${modern('tools/list')}]`,
          headers: {},
          id: null,
          code: -32600,
          error: 'MCP_REQUEST_INVALID',
          message: 'MCP 2026-07-28 takes one JSON-RPC message per POST, not a batch',
        },
        {
          what: 'a batch under a modern version header',
          body: `[${TOOLS_CALL}]`,
          headers: { 'mcp-protocol-version': V },
          id: null,
          code: -32600,
          error: 'MCP_REQUEST_INVALID',
          message: 'MCP 2026-07-28 takes one JSON-RPC message per POST, not a batch',
        },
      ];
      for (const { what, body, headers, id, message, code, error } of cases) {
        const reply = await send(port, {
          method: 'POST',
          path: '/api/streamable/alpha',
          headers: { cookie: 'ok=1', 'content-type': 'application/json', ...headers },
          body,
        });
        assert.equal(reply.status, 400, `${what}: ${reply.body}`);
        const answer = JSON.parse(reply.body) as { id: unknown; error: { code: number; message: string; data: { error: string } } };
        assert.equal(answer.id, id, what);
        assert.equal(answer.error.code, code ?? -32020, what);
        assert.equal(answer.error.message, code === undefined ? `Header mismatch: ${message}` : message, what);
        assert.equal(answer.error.data.error, error ?? 'MCP_HEADER_MISMATCH', what);
      }
      // The same header twice: components behind us might each read a different copy.
      const twice = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const body = modern('tools/list');
        const req = httpRequest(
          {
            host: '127.0.0.1',
            port,
            method: 'POST',
            path: '/api/streamable/alpha',
            agent: false,
            headers: [
              'host',
              '127.0.0.1',
              'cookie',
              'ok=1',
              'content-type',
              'application/json',
              'mcp-protocol-version',
              V,
              'Mcp-Method',
              'tools/list',
              'mcp-method',
              'tools/list',
            ],
          },
          (res) => {
            let text = '';
            res
              .setEncoding('utf8')
              .on('data', (c: string) => (text += c))
              .on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
          },
        );
        req.on('error', reject);
        req.end(body);
      });
      assert.equal(twice.status, 400, twice.body);
      assert.equal((JSON.parse(twice.body) as { error: { message: string } }).error.message, 'Header mismatch: Mcp-Method header appears more than once');
      assert.equal(checkCount(), checks, 'no refused request reached the check');
      assert.equal(backend.seen.length, 0, 'nor the backend');
      const passes: Array<[string, string, Record<string, string>]> = [
        [
          'a modern tools/call with every header',
          modern('tools/call', { name: 'x' }),
          { 'mcp-protocol-version': V, 'mcp-method': 'tools/call', 'mcp-name': 'x' },
        ],
        ['Mcp-Name in Base64', modern('tools/call', { name: 'x' }), { 'mcp-protocol-version': V, 'mcp-method': 'tools/call', 'mcp-name': b64('x') }],
        [
          'a non-ASCII name in Base64',
          modern('prompts/get', { name: 'grüße' }),
          { 'mcp-protocol-version': V, 'mcp-method': 'prompts/get', 'mcp-name': b64('grüße') },
        ],
        ['a modern notification without headers', modern('notifications/cancelled', { requestId: 1 }, null), { 'mcp-protocol-version': V }],
        ['server/discover', modern('server/discover'), { 'mcp-protocol-version': V, 'mcp-method': 'server/discover' }],
        ['a 2025 request without headers', TOOLS_CALL, { 'mcp-protocol-version': '2025-11-25' }],
        [
          'Mcp-Param-* forwarded for the backend to check',
          modern('tools/call', { name: 'x', arguments: { region: 'eu' } }),
          { 'mcp-protocol-version': V, 'mcp-method': 'tools/call', 'mcp-name': 'x', 'mcp-param-region': 'us' },
        ],
      ];
      for (const [what, body, headers] of passes) {
        const reply = await send(port, {
          method: 'POST',
          path: '/api/streamable/alpha',
          headers: { cookie: 'ok=1', 'content-type': 'application/json', ...headers },
          body,
        });
        assert.equal(reply.status, 200, what);
      }
      assert.equal(backend.seen.length, passes.length);
      assert.equal(backend.seen.at(-1)?.headers['mcp-param-region'], 'us');
    }),
  );

  it(
    'tells the check what a subscriptions/listen filter opts in to',
    withLog(async () => {
      const listen = (notifications: unknown) => JSON.stringify({ jsonrpc: '2.0', id: 'listen:0', method: 'subscriptions/listen', params: { notifications } });
      const cases: Array<[unknown, string]> = [
        [{ toolsListChanged: true }, 'subscriptions/listen tools'],
        [{ toolsListChanged: true, resourceSubscriptions: ['a://b'], promptsListChanged: true }, 'subscriptions/listen tools+prompts+resources'],
        [{ resourcesListChanged: true, toolsListChanged: false }, 'subscriptions/listen resources'],
        [{ toolsListChanged: false, resourceSubscriptions: [] }, 'subscriptions/listen none'],
        [{ tasksChanged: true }, 'subscriptions/listen other'],
        [{ toString: true }, 'subscriptions/listen other'],
        ['tools', 'subscriptions/listen other'],
        [undefined, 'subscriptions/listen other'],
      ];
      for (const [filter, entry] of cases) {
        assert.equal((await mcp('/api/streamable/alpha', { cookie: 'ok=1' }, listen(filter))).status, 200, entry);
        assert.equal(registry.messages.at(-1), entry, JSON.stringify(filter));
      }
    }),
  );

  it(
    'answers 404 JSON for unknown servers and paths, never the web page',
    withLog(async () => {
      for (const path of ['/api/streamable/nosuch', '/api/execute/nosuch/sse', '/api/streamable/alpha/x', '/api/execute/delta-x/']) {
        const reply = await mcp(path, { cookie: 'ok=1' });
        assert.equal(reply.status, 404, path);
        assert.deepEqual(JSON.parse(reply.body), { error: 'SERVER_UNKNOWN', message: 'no such MCP server' }, path);
      }
      const bare = await mcp('/api/execute/alpha', { cookie: 'ok=1' });
      assert.equal(bare.status, 404);
      assert.equal(JSON.parse(bare.body).error, 'NOT_FOUND');
    }),
  );

  it(
    "answers the check's 503 for a disabled server as SERVER_DISABLED JSON, and the backend receives nothing",
    withLog(async () => {
      backend.seen.length = 0;
      const checks = checksOf('delta').length;
      const requests: Array<[string, string | undefined]> = [
        ['/api/streamable/delta', TOOLS_CALL],
        ['/api/streamable/delta/', INITIALIZE],
        ['/api/streamable/delta', undefined],
        ['/api/execute/delta/sse', undefined],
        ['/api/execute/delta/messages?sessionId=abc', TOOLS_CALL],
      ];
      for (const [path, body] of requests) {
        for (const cookie of ['ok=1', 'ok=filter']) {
          const reply = await mcp(path, { cookie }, body);
          const what = `${path} ${cookie} ${String(body).slice(0, 30)}`;
          assert.equal(reply.status, 503, what);
          assert.equal(reply.headers['content-type'], 'application/json', what);
          assert.equal(reply.headers['cache-control'], 'no-store', what);
          assert.deepEqual(JSON.parse(reply.body), { error: 'SERVER_DISABLED', message: 'server delta is disabled' }, what);
        }
      }
      // Each was decided by the check (the config has no static 503 any more), none forwarded.
      assert.equal(checksOf('delta').length, checks + requests.length * 2);
      assert.equal(checksOf('delta').at(-1)?.headers['x-mcp-messages'], 'tools/call x');
      assert.equal(backend.seen.length, 0, 'the backend received nothing');
      // The bare name is the same static 404 as for an enabled server.
      assert.equal(JSON.parse((await mcp('/api/execute/delta', { cookie: 'ok=1' })).body).error, 'NOT_FOUND');
    }),
  );

  it(
    'reuses one backend connection for sequential requests on one client connection (upstream keepalive)',
    withLog(async () => {
      // One client connection: the same nginx worker serves both, and its upstream cache is per worker.
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      try {
        backend.seen.length = 0;
        const replies = [];
        for (const body of [TOOLS_CALL, INITIALIZE]) {
          replies.push(await send(port, { method: 'POST', path: '/api/streamable/alpha', headers: { cookie: 'ok=1' }, body, agent }));
        }
        assert.deepEqual(
          replies.map((r) => r.status),
          [200, 200],
        );
        assert.ok(replies[0]?.localPort !== undefined);
        assert.equal(replies[1]?.localPort, replies[0]?.localPort, 'both requests came over one client connection');
        assert.deepEqual(
          backend.seen.map((s) => s.body),
          [TOOLS_CALL, INITIALIZE],
        );
        const [first, second] = backend.seen;
        assert.ok(first?.remotePort !== undefined);
        assert.equal(second?.remotePort, first?.remotePort, 'nginx sent both over one TCP connection to the backend');
        // Connection "" on the location: nginx does not ask the backend to close.
        assert.equal(first?.headers.connection, undefined);
      } finally {
        agent.destroy();
      }
    }),
  );

  it(
    'keeps /auth/validate unreachable from outside, whatever its spelling',
    withLog(async () => {
      const before = registry.seen.length;
      for (const path of ['/auth/validate', '/auth/validate/', '/AUTH/Validate', '/auth//validate', '/auth/%76alidate', '/auth/validate?x=1']) {
        const reply = await mcp(path, { cookie: 'ok=1', 'x-mcp-server': 'alpha' });
        assert.equal(reply.status, 404, path);
      }
      assert.equal(registry.seen.length, before, 'none of them reached the registry');
    }),
  );

  it(
    'authorizes the server nginx matched, not one named by ../ in the raw URI',
    withLog(async () => {
      backend.seen.length = 0;
      for (const path of ['/api/execute/alpha/../gamma/sse', '/api/execute/alpha/%2e%2e/gamma/sse']) {
        // only-alpha: the check allows alpha and refuses everything else.
        const reply = await mcp(path, { cookie: 'ok=only-alpha' });
        assert.equal(reply.status, 403, path);
        const check = registry.seen.at(-1);
        assert.equal(check?.headers['x-mcp-server'], 'gamma');
        assert.equal(check?.headers['x-original-uri'], path);
        assert.equal(check?.headers['x-mcp-messages'], '-');
        assert.equal(JSON.parse(reply.body).missing_scope, 'mcp:server:gamma:execute', path);
      }
      // The same with a body: the JSON-RPC error names gamma's scope.
      const post = await mcp('/api/execute/alpha/../gamma/messages', { cookie: 'ok=only-alpha' }, TOOLS_CALL);
      assert.equal(post.status, 403);
      assert.equal(JSON.parse(post.body).error.data.missing_scope, 'mcp:server:gamma:execute');
      assert.equal(registry.seen.at(-1)?.headers['x-mcp-server'], 'gamma');
      assert.equal((await mcp('/api/execute/alpha/../nosuch/x', { cookie: 'ok=1' })).status, 404);
      assert.equal(backend.seen.length, 0);
    }),
  );

  it(
    'proxies the web page to the registry with forwarding headers and no client identity headers',
    withLog(async () => {
      const reply = await mcp('/servers', { 'x-user': 'root', 'x-scopes': 'mcp:registry:admin', host: 'gw.example' });
      assert.equal(reply.status, 200);
      const seen = JSON.parse(reply.body) as { page: boolean; headers: Record<string, string> };
      assert.equal(seen.page, true);
      assert.equal(seen.headers['x-user'], undefined);
      assert.equal(seen.headers['x-scopes'], undefined);
      assert.equal(seen.headers['x-forwarded-host'], 'gw.example');
      assert.equal(seen.headers['x-forwarded-proto'], 'http');
      assert.equal(seen.headers['x-forwarded-for'], '127.0.0.1');
    }),
  );

  it(
    'streams the SSE endpoint event rewritten to the gateway path before the stream ends',
    withLog(async () => {
      const headers = { cookie: 'ok=1', accept: 'text/event-stream' };
      // The backend's endpoint, sealed to this principal into the gateway's messages path.
      const sealed = registry.seal('ok=1', 'sse', 'alpha', '/messages?sessionId=abc');
      const first = await readStreamUntil(port, '/api/execute/alpha/sse', headers, '\n\n');
      assert.equal(first.status, 200);
      assert.equal(first.text, `event: endpoint\ndata: /api/execute/alpha/messages?session=${sealed}\n\n`);
      assert.equal(first.ended, false, 'the event arrived while the stream was still open');
      // Later events stream through as well, unchanged.
      const later = await readStreamUntil(port, '/api/execute/alpha/sse', headers, '"}\n\n');
      assert.ok(later.text.endsWith(`messages?session=${sealed}\n\nevent: message\ndata: {"later":"data: /x"}\n\n`), later.text);
      assert.equal(later.ended, false);
      assert.equal(checksOf('alpha').at(-1)?.headers['x-mcp-transport'], 'sse');
      assert.equal(registry.messages.at(-1), '-');

      backend.seen.length = 0;
      const body = '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"get_x"}}';
      // The backend's own spelling, or the seal of another principal: unknown, nothing forwarded.
      for (const [path, cookie] of [
        ['/api/execute/alpha/messages?sessionId=abc', 'ok=1'],
        [`/api/execute/alpha/messages?session=${sealed}`, 'ok=filter'],
      ] as const) {
        const refused = await mcp(path, { cookie }, body);
        assert.equal(refused.status, 404, path);
        assert.equal(JSON.parse(refused.body).error.data.error, 'MCP_SESSION_UNKNOWN');
      }
      assert.equal(backend.seen.length, 0);
      const post = await mcp(`/api/execute/alpha/messages?session=${sealed}&sessionId=other`, { cookie: 'ok=1' }, body);
      assert.equal(post.status, 200);
      assert.equal(registry.messages.at(-1), 'tools/call get_x');
      assert.equal(backend.seen[0]?.url, '/messages?sessionId=abc');
      assert.equal(backend.seen[0]?.body, body);
      assert.equal(backend.seen[0]?.headers.cookie, undefined);
    }),
  );

  it(
    'drops the tools a principal may not use from a JSON tools/list result',
    withLog(async () => {
      const full = await mcp('/api/streamable/alpha', { cookie: 'ok=1' }, TOOLS_LIST);
      assert.equal(full.status, 200);
      assert.equal(full.body, TOOLS_LIST_RESULT, 'no filter without X-MCP-Tool-Filter');

      backend.seen.length = 0;
      const filtered = await mcp('/api/streamable/alpha', { cookie: 'ok=filter', authorization: 'Bearer t' }, TOOLS_LIST);
      assert.equal(filtered.status, 200);
      assert.equal(registry.messages.at(-1), 'tools/list');
      assert.equal(filtered.headers['content-type'], 'application/json');
      assert.equal(filtered.headers['content-length'], undefined, "the backend's length no longer holds");
      assert.deepEqual(JSON.parse(filtered.body), JSON.parse(ONLY_A));
      // The filtered route proxies like the plain one.
      const upstream = backend.seen[0];
      assert.equal(upstream?.url, '/mcp');
      assert.equal(upstream?.body, TOOLS_LIST);
      assert.equal(upstream?.headers.cookie, undefined);
      assert.equal(upstream?.headers.authorization, undefined);
      assert.equal(upstream?.headers['x-user'], 'user-1');
      assert.equal(upstream?.headers['x-scopes'], 'mcp:server:alpha:tool:a');
      assert.equal(upstream?.headers['x-mcp-tool-filter'], undefined);

      // Other answers pass through the filtered route untouched.
      const call = await mcp('/api/streamable/alpha', { cookie: 'ok=filter' }, TOOLS_CALL);
      assert.equal(call.status, 200);
      assert.equal(JSON.parse(call.body).body, TOOLS_CALL);
    }),
  );

  it(
    'drops them from a tools/list result on an event stream too, event by event',
    withLog(async () => {
      const headers = { cookie: 'ok=filter', accept: 'application/json, text/event-stream', 'content-type': 'application/json' };
      const path = '/api/streamable/alpha?reply=sse';
      const started = Date.now();
      const first = await readStreamUntil(port, path, headers, '}\n\n', { body: TOOLS_LIST });
      assert.equal(first.status, 200);
      assert.match(String(first.headers['content-type']), /^text\/event-stream/);
      assert.equal(first.text, `event: message\ndata: ${ONLY_A}\n\n`);
      assert.equal(first.ended, false, 'the event arrived while the stream was still open');
      assert.ok(Date.now() - started < TOOLS_STREAM_OPEN_MS, 'and before the backend ended it');

      // The whole stream, to its end: still only `a`, nothing lost or added.
      const whole = await send(port, { method: 'POST', path, headers, body: TOOLS_LIST });
      assert.equal(whole.status, 200);
      assert.equal(whole.body, `event: message\ndata: ${ONLY_A}\n\n`);
      const unfiltered = await send(port, { method: 'POST', path, headers: { ...headers, cookie: 'ok=1' }, body: TOOLS_LIST });
      assert.equal(unfiltered.body, `event: message\ndata: ${TOOLS_LIST_RESULT}\n\n`);

      // The legacy SSE stream on the filtered route still streams, with its endpoint rewritten.
      const legacy = await readStreamUntil(port, '/api/execute/alpha/sse', { cookie: 'ok=filter', accept: 'text/event-stream' }, '\n\n');
      assert.equal(
        legacy.text,
        `event: endpoint\ndata: /api/execute/alpha/messages?session=${registry.seal('ok=filter', 'sse', 'alpha', '/messages?sessionId=abc')}\n\n`,
      );
      assert.equal(legacy.ended, false);
    }),
  );

  it(
    'refuses a body on a method other than POST instead of forwarding it unread',
    withLog(async () => {
      for (const method of ['PUT', 'PATCH', 'GET', 'DELETE']) {
        backend.seen.length = 0;
        const reply = await send(port, {
          method,
          path: '/api/streamable/alpha',
          headers: { cookie: 'ok=filter', 'content-length': String(TOOLS_CALL.length) },
          body: TOOLS_CALL,
        });
        assert.equal(
          backend.seen.length,
          0,
          `${method}: the backend got ${JSON.stringify(backend.seen[0]?.body)} while the check saw ${registry.messages.at(-1)}`,
        );
        assert.ok(reply.status === 405 || reply.status === 400, `${method}: ${reply.status}`);
      }
    }),
  );

  it(
    'fails closed when the filter cannot read a tools/list answer',
    withLog(async () => {
      // Nested deeper than njs's JSON.parse takes: passed through whole, tool b included.
      const deep = await mcp('/api/streamable/alpha?reply=deep', { cookie: 'ok=filter' }, TOOLS_LIST);
      assert.doesNotMatch(deep.body, /"name":"b"/, 'deep JSON');
      // CR line endings: never split into events, so held to the end and then sent unfiltered.
      const cr = await mcp('/api/streamable/alpha?reply=sse-cr', { cookie: 'ok=filter' }, TOOLS_LIST);
      assert.doesNotMatch(cr.body, /"name":"b"/, 'SSE with CR line endings');
      assert.match(cr.body, /"name":"a"/, 'and tool a still comes through');
      // The last event with no blank line after it, at the end of the stream.
      const noBlank = await mcp('/api/streamable/alpha?reply=sse-noblank', { cookie: 'ok=filter' }, TOOLS_LIST);
      assert.doesNotMatch(noBlank.body, /"name":"b"/, 'final event without a blank line');
      assert.match(noBlank.body, /"name":"a"/);
    }),
  );

  it(
    'answers 502 JSON when the backend is down',
    withLog(async () => {
      const reply = await mcp('/api/streamable/omega', { cookie: 'ok=1' }, TOOLS_CALL);
      assert.equal(reply.status, 502);
      assert.equal(JSON.parse(reply.body).error, 'BACKEND_UNAVAILABLE');
    }),
  );

  it(
    'answers 413 JSON above the body limit, so nothing is authorized on part of a body',
    withLog(async () => {
      backend.seen.length = 0;
      const checks = checkCount();
      // Valid JSON-RPC, one byte over 1m: with Content-Length, and chunked (size learned while reading).
      const big = `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{"s":"${'x'.repeat(1024 * 1024)}"}}}`;
      for (const chunked of [false, true]) {
        const reply = await send(port, { method: 'POST', path: '/api/streamable/alpha', headers: { cookie: 'ok=1' }, body: big, chunked });
        assert.equal(reply.status, 413, `chunked: ${chunked}`);
        assert.equal(reply.headers['content-type'], 'application/json');
        assert.deepEqual(JSON.parse(reply.body), { error: 'BODY_TOO_LARGE', message: 'request body too large' });
      }
      assert.equal(checkCount(), checks, 'the check was never asked');
      assert.equal(backend.seen.length, 0, 'the backend received nothing');

      // Just under the limit, the whole body is checked and forwarded byte for byte.
      const fits = `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{"s":"${'y'.repeat(1024 * 1024 - 200)}"}}}`;
      for (const chunked of [false, true]) {
        backend.seen.length = 0;
        const reply = await send(port, { method: 'POST', path: '/api/streamable/alpha', headers: { cookie: 'ok=1' }, body: fits, chunked });
        assert.equal(reply.status, 200, `chunked: ${chunked}`);
        assert.equal(registry.messages.at(-1), 'tools/call x');
        assert.equal(backend.seen[0]?.body, fits);
      }
    }),
  );

  it(
    'speaks TLS to an https backend with SNI and Host naming the backend, not the upstream block',
    withLog(async (t) => {
      const identity = await selfSignedLocalhost();
      // Where /etc/hosts also maps localhost to ::1, nginx tries that address too, finds nothing
      // listening and moves on to 127.0.0.1 (a refused connect is retried, even for a POST).
      const tls = await startBackend({ tls: identity });
      try {
        // A catalog change: routed at once, without a reload (an origin nginx started without: its IP address).
        catalog.set([...servers, definition('secure', `${tls.url}/base`, { 'streamable-http': '/mcp', sse: '/sse' })]);
        await routes.settled();
        assert.deepEqual(routes.status().withoutKeepalive, [`https://localhost:${tls.port}`]);
        const reply = await mcp('/api/streamable/secure?x=1', { cookie: 'ok=1', authorization: 'Bearer client-token' }, TOOLS_CALL);
        assert.equal(reply.status, 200);
        const stream = await readStreamUntil(port, '/api/execute/secure/sse', { cookie: 'ok=1' }, '\n\n');
        // Resolved against the backend's SSE URL (https://localhost:<port>/base/sse): same origin, its own path.
        assert.equal(
          stream.text,
          `event: endpoint\ndata: /api/execute/secure/messages?session=${registry.seal('ok=1', 'sse', 'secure', '/messages?sessionId=abc')}\n\n`,
        );
        assert.deepEqual(
          tls.seen.map((s) => [s.method, s.url]),
          [
            ['POST', '/base/mcp?x=1'],
            ['GET', '/base/sse'],
          ],
        );
        for (const seen of tls.seen) {
          assert.equal(seen.servername, 'localhost', 'SNI is the backend host');
          assert.equal(seen.headers.host, `localhost:${tls.port}`, 'Host is host:port as the URL spells it');
          assert.equal(seen.headers.cookie, undefined);
          assert.equal(seen.headers.authorization, undefined);
        }
        assert.equal(tls.seen[0]?.body, TOOLS_CALL);
      } finally {
        await tls.close();
        catalog.set(servers);
      }
    }),
  );

  it(
    'skips a reload when the config is unchanged',
    withLog(async () => {
      assert.deepEqual(await nginx.apply(render()), { changed: false });
    }),
  );

  it(
    'names no server in the config: whatever the catalog holds, the rendered config is the same',
    withLog(async () => {
      const config = await readFile(nginx.configPath, 'utf8');
      for (const name of ['alpha', 'gamma', 'delta', 'omega']) assert.doesNotMatch(config, new RegExp(`\\b${name}\\b`), name);
    }),
  );

  it(
    'takes a toggle into effect at the next request, on the same client connection',
    withLog(async () => {
      // A reload would close this idle keep-alive connection; a toggle must not.
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      const call = () => send(port, { method: 'POST', path: '/api/streamable/alpha', headers: { cookie: 'ok=1' }, body: TOOLS_CALL, agent });
      const pid = nginx.status().pid;
      try {
        const first = await call();
        assert.equal(first.status, 200);
        // What the catalog does on a toggle: the check's answer changes, and the config does not.
        registry.disabled.add('alpha');
        backend.seen.length = 0;
        const off = await call();
        assert.equal(off.status, 503);
        assert.deepEqual(JSON.parse(off.body), { error: 'SERVER_DISABLED', message: 'server alpha is disabled' });
        assert.equal(backend.seen.length, 0);
        registry.disabled.delete('alpha');
        const on = await call();
        assert.equal(on.status, 200);
        assert.equal(JSON.parse(on.body).body, TOOLS_CALL);
        assert.deepEqual([off.localPort, on.localPort], [first.localPort, first.localPort], 'one client connection throughout');
        assert.equal(nginx.status().pid, pid);
      } finally {
        registry.disabled.delete('alpha');
        agent.destroy();
      }
    }),
  );

  it(
    'refuses a config nginx rejects and keeps serving the old one',
    withLog(async () => {
      await assert.rejects(nginx.apply(`${render()}\nthis_is_not_a_directive on;\n`), (err: unknown) => {
        assert.ok(err instanceof GatewayError);
        assert.equal(err.code, 'NGINX_CONFIG_REJECTED');
        assert.match(err.message, /unknown directive "this_is_not_a_directive"/);
        return true;
      });
      assert.match(nginx.lastError ?? '', /this_is_not_a_directive/);
      assert.equal((await mcp('/api/streamable/alpha', { cookie: 'ok=1' }, TOOLS_CALL)).status, 200);
      assert.deepEqual(await nginx.apply(render()), { changed: false }, 'the live config is still the old one');
    }),
  );

  it(
    'tells onApply of every apply: reloaded, unchanged, failed (for the reload metrics)',
    withLog(async () => {
      const dir = await mkdtemp(join(tmpdir(), 'mcp-nginx-observed-'));
      const outcomes: string[] = [];
      const observed = new NginxController({ nginxBin, runtimeDir: dir, log: createLogger('silent'), onApply: (outcome) => outcomes.push(outcome) });
      const own = await freePort();
      const at = (maxBodySize = '1m') => render({ runtimeDir: dir, listen: { host: '127.0.0.1', port: own }, maxBodySize });
      try {
        await observed.start(at());
        assert.deepEqual(outcomes, [], 'start is not a reload');
        await observed.apply(at());
        await observed.apply(at('2m'));
        await assert.rejects(observed.apply(`${at()}\nthis_is_not_a_directive on;\n`));
        await new Promise((r) => setImmediate(r));
        assert.deepEqual(outcomes, ['unchanged', 'reloaded', 'failed']);
      } finally {
        await observed.stop();
        await rm(dir, { recursive: true, force: true });
      }
    }),
  );

  it(
    'rolls back when the master cannot load a config that passed nginx -t (port taken)',
    withLog(async () => {
      // nginx -t does not bind, so a taken port only fails at reload time, in the master.
      const live = await readFile(nginx.configPath, 'utf8');
      await assert.rejects(nginx.apply(render({ listen: { host: '127.0.0.1', port: backend.port } })), (err: unknown) => {
        assert.ok(err instanceof GatewayError);
        assert.equal(err.code, 'NGINX_CONFIG_REJECTED');
        assert.match(err.message, /Address already in use/);
        return true;
      });
      assert.equal(await readFile(nginx.configPath, 'utf8'), live, 'nginx.conf is the live config again');
      assert.equal((await mcp('/api/streamable/alpha', { cookie: 'ok=1' }, TOOLS_CALL)).status, 200);
    }),
  );

  it(
    'routes a catalog change at the next request without a reload: alpha removed is a 404 at once, added back it serves',
    withLog(async () => {
      const pid = nginx.status().pid;
      const config = await readFile(nginx.configPath, 'utf8');
      assert.equal((await mcp('/api/streamable/alpha', { cookie: 'ok=1' }, TOOLS_CALL)).status, 200);
      catalog.set(servers.filter((s) => s.name !== 'alpha'));
      const reply = await mcp('/api/streamable/alpha', { cookie: 'ok=1' }, TOOLS_CALL);
      assert.equal(reply.status, 404);
      assert.deepEqual(JSON.parse(reply.body), { error: 'SERVER_UNKNOWN', message: 'no such MCP server' });
      catalog.set(servers);
      assert.equal((await mcp('/api/streamable/alpha', { cookie: 'ok=1' }, TOOLS_CALL)).status, 200);
      assert.equal(await readFile(nginx.configPath, 'utf8'), config);
      assert.equal(nginx.status().pid, pid);
    }),
  );

  it(
    'applies a new config, one apply at a time',
    withLog(async () => {
      const started = Date.now();
      // Two applies at once: they run in call order, so the second one wins.
      const [first, second] = await Promise.all([nginx.apply(render({ maxBodySize: '2m' })), nginx.apply(render({ maxBodySize: '3m' }))]);
      assert.deepEqual([first, second], [{ changed: true }, { changed: true }]);
      assert.ok(Date.now() - started < 5000);
      assert.equal(await readFile(nginx.configPath, 'utf8'), render({ maxBodySize: '3m' }), 'the second apply is live');
      assert.equal((await mcp('/api/streamable/alpha', { cookie: 'ok=1' }, TOOLS_CALL)).status, 200);
      const gamma = `/api/execute/gamma/messages?session=${registry.seal('ok=1', 'sse', 'gamma', '/messages?sessionId=abc')}`;
      assert.equal((await mcp(gamma, { cookie: 'ok=1' }, TOOLS_CALL)).status, 200, 'the other servers still serve');
      assert.equal(nginx.status().running, true);
      assert.equal(nginx.lastError, undefined);
    }),
  );

  it(
    'answers 500 JSON when the registry is unreachable (fails closed)',
    withLog(async () => {
      await registry.close();
      // Not a well-formed name: nginx's own 404, no check needed.
      const reply = await mcp('/api/streamable/Beta_never', {});
      assert.equal(reply.status, 404);
      backend.seen.length = 0;
      for (const body of [undefined, TOOLS_CALL]) {
        const denied = await mcp(body === undefined ? '/api/execute/gamma/sse' : '/api/execute/gamma/messages', { cookie: 'ok=1' }, body);
        assert.equal(denied.status, 500, String(body));
        assert.equal(denied.headers['content-type'], 'application/json');
        assert.deepEqual(JSON.parse(denied.body), { error: 'INTERNAL', message: 'the access check failed' });
      }
      assert.equal(backend.seen.length, 0);
    }),
  );

  it(
    'applies a config with no upstream blocks: every MCP path still answers (the check is down: 500, fail closed)',
    withLog(async () => {
      assert.deepEqual(await nginx.apply(render({ upstreams: [] })), { changed: true });
      const reply = await mcp('/api/execute/gamma/sse', { cookie: 'ok=1' });
      assert.equal(reply.status, 500);
      assert.equal(JSON.parse(reply.body).error, 'INTERNAL');
    }),
  );
});
