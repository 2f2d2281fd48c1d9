import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import { discoverOAuthProtectedResourceMetadata, extractWWWAuthenticateParams } from '@modelcontextprotocol/sdk/client/auth.js';
import { DEMO_PASSWORD } from '../../src/config/dev-users.ts';
import { startTestGateway, type TestGateway } from './harness.ts';
import { login } from './login.ts';

/*
 * The gateway as an OAuth protected resource (MCP authorization spec; RFC 9728) and CORS for
 * browser MCP clients, through the real nginx + njs + registry.
 */

const ALLOWED = 'https://app.example.com';
const REFUSED = 'https://evil.example';
const TOOL = 'current_time_by_timezone';

let gw: TestGateway;
const cookies: Record<string, string> = {};

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  raw: string[];
  body: string;
}

/** node:http: fetch will not send a chosen Host or Origin. */
function send(method: string, path: string, headers: Record<string, string> = {}, body?: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      new URL(path, gw.url),
      { method, headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, raw: res.rawHeaders, body: text }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

const ACCEPT = { accept: 'application/json, text/event-stream' };
const initialize = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'it', version: '1' } },
});
const call = (tool: string) => JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: tool, arguments: {} } });
const prm = (path: string) => `${gw.url}/.well-known/oauth-protected-resource${path}`;
/** How many times the header appears in the raw response. */
const count = (a: Answer, name: string) => a.raw.filter((v, i) => i % 2 === 0 && v.toLowerCase() === name.toLowerCase()).length;

async function auditLines(): Promise<Record<string, unknown>[]> {
  await gw.gateway.audit.flush();
  if (!existsSync(gw.gateway.auditFile)) return [];
  return readFileSync(gw.gateway.auditFile, 'utf8')
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

before(async () => {
  gw = await startTestGateway({ env: { CORS_ALLOWED_ORIGINS: `${ALLOWED}, http://localhost:6274` } });
  for (const user of ['user', 'tool-user']) cookies[user] = (await login(gw.url, user, DEMO_PASSWORD)).cookie;
});

after(async () => {
  if (process.exitCode) process.stderr.write(`nginx error.log:\n${gw?.errorLog()}\n`);
  await gw?.[Symbol.asyncDispose]();
});

describe('RFC 9728 protected-resource metadata', () => {
  const scopes = [
    'mcp:server:currenttime:execute',
    `mcp:server:currenttime:tool:${TOOL}:execute`,
    'mcp:server:currenttime:resources:read',
    'mcp:server:currenttime:prompts:read',
  ];

  test('one document per MCP URL a client is given, and one for the gateway itself', async () => {
    const expected: Array<[string, Record<string, unknown>]> = [
      [
        '/api/streamable/currenttime',
        {
          resource: `${gw.url}/api/streamable/currenttime`,
          authorization_servers: [gw.url],
          scopes_supported: scopes,
          bearer_methods_supported: ['header'],
          resource_name: 'MCP server currenttime',
        },
      ],
      [
        '/api/execute/currenttime/sse',
        {
          resource: `${gw.url}/api/execute/currenttime/sse`,
          authorization_servers: [gw.url],
          scopes_supported: scopes,
          bearer_methods_supported: ['header'],
          resource_name: 'MCP server currenttime (HTTP+SSE)',
        },
      ],
      [
        '',
        {
          resource: gw.url,
          authorization_servers: [gw.url],
          scopes_supported: ['mcp:registry:read', 'mcp:registry:admin'],
          bearer_methods_supported: ['header'],
          resource_name: 'MCP Gateway Registry',
        },
      ],
    ];
    for (const [path, document] of expected) {
      const res = await fetch(prm(path));
      assert.equal(res.status, 200, path);
      assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
      assert.equal(res.headers.get('cache-control'), 'public, max-age=60');
      assert.deepEqual(await res.json(), document, path);
    }
  });

  test('a disabled server keeps its document; an unknown server, a transport path it lacks or another spelling is a JSON 404', async () => {
    assert.equal((await fetch(prm('/api/streamable/offline'))).status, 200);
    for (const path of [
      '/api/streamable/nosuch',
      '/api/execute/currenttime/messages',
      '/api/execute/currenttime',
      '/api/streamable/currenttime/',
      '/api/other/currenttime',
      '/API/streamable/currenttime',
    ]) {
      const res = await fetch(prm(path));
      assert.equal(res.status, 404, path);
      assert.equal(((await res.json()) as { error: string }).error, 'SERVER_UNKNOWN', path);
    }
  });

  const variations: Record<string, string>[] = [
    { host: 'evil.example' },
    { 'x-forwarded-host': 'evil.example', 'x-forwarded-proto': 'https' },
    { forwarded: 'host=evil.example;proto=https' },
  ];
  for (const headers of variations) {
    test(`documents and challenges ignore ${Object.keys(headers).join(' + ')}`, async () => {
      for (const path of ['', '/api/streamable/currenttime', '/api/execute/currenttime/sse']) {
        const res = await send('GET', `/.well-known/oauth-protected-resource${path}`, headers);
        assert.equal(res.status, 200, path);
        assert.ok(!res.body.includes('evil') && !res.body.includes('https:'), res.body);
        assert.ok((JSON.parse(res.body) as { resource: string }).resource.startsWith(gw.url));
      }
      const challenge = await send('POST', '/api/streamable/currenttime', { ...ACCEPT, ...headers }, initialize);
      assert.equal(challenge.status, 401);
      assert.match(String(challenge.headers['www-authenticate']), new RegExp(`resource_metadata="${prm('/api/streamable/currenttime')}"`));
      const api = await send('GET', '/api/registry/servers', headers);
      assert.equal(api.status, 401);
      assert.match(String(api.headers['www-authenticate']), new RegExp(`resource_metadata="${prm('')}"`));
    });
  }
});

describe('challenges on the MCP paths', () => {
  test('401 for initialize names the Streamable HTTP metadata and the execute scope, once', async () => {
    const res = await send('POST', '/api/streamable/currenttime', ACCEPT, initialize);
    assert.equal(res.status, 401);
    assert.equal(count(res, 'www-authenticate'), 1);
    assert.equal(
      res.headers['www-authenticate'],
      `Bearer realm="mcp-gateway", scope="mcp:server:currenttime:execute", resource_metadata="${prm('/api/streamable/currenttime')}"`,
    );
  });

  test('401 for tools/call names the tool scope; on the legacy transport its own metadata; a refused token adds invalid_token', async () => {
    const res = await send('POST', '/api/streamable/currenttime', ACCEPT, call(TOOL));
    assert.equal(
      res.headers['www-authenticate'],
      `Bearer realm="mcp-gateway", scope="mcp:server:currenttime:tool:${TOOL}:execute", resource_metadata="${prm('/api/streamable/currenttime')}"`,
    );
    const sse = await send('GET', '/api/execute/currenttime/sse', { accept: 'text/event-stream' });
    assert.equal(sse.status, 401);
    assert.equal(
      sse.headers['www-authenticate'],
      `Bearer realm="mcp-gateway", scope="mcp:server:currenttime:execute", resource_metadata="${prm('/api/execute/currenttime/sse')}"`,
    );
    const forged = await send('POST', '/api/streamable/currenttime', { ...ACCEPT, authorization: 'Bearer a.b.c' }, initialize);
    assert.equal(forged.status, 401);
    assert.match(
      String(forged.headers['www-authenticate']),
      /^Bearer realm="mcp-gateway", error="invalid_token", scope="mcp:server:currenttime:execute", resource_metadata="/,
    );
  });

  test('403 for a tool outside the scopes: insufficient_scope naming that tool scope, next to the JSON-RPC error', async () => {
    const res = await send('POST', '/api/streamable/currenttime', { ...ACCEPT, cookie: cookies['tool-user']! }, call('another_tool'));
    assert.equal(res.status, 403);
    const scope = 'mcp:server:currenttime:tool:another_tool:execute';
    assert.equal(count(res, 'www-authenticate'), 1);
    assert.equal(
      res.headers['www-authenticate'],
      `Bearer error="insufficient_scope", scope="${scope}", resource_metadata="${prm('/api/streamable/currenttime')}"`,
    );
    assert.deepEqual(JSON.parse(res.body), {
      jsonrpc: '2.0',
      id: 2,
      error: { code: -32001, message: `missing scope ${scope}`, data: { error: 'AUTH_SCOPE_MISSING', missing_scope: scope } },
    });
  });

  test("the REST API's 401 names the gateway's metadata and mcp:registry:read", async () => {
    const res = await send('GET', '/api/registry/servers');
    assert.equal(res.status, 401);
    assert.equal(res.headers['www-authenticate'], `Bearer realm="mcp-gateway", scope="mcp:registry:read", resource_metadata="${prm('')}"`);
  });
});

describe('the unmodified MCP SDK discovers the metadata', () => {
  for (const path of ['/api/streamable/currenttime', '/api/execute/currenttime/sse']) {
    test(`from the well-known path and from a 401's header: ${path}`, async () => {
      const serverUrl = `${gw.url}${path}`;
      const byPath = await discoverOAuthProtectedResourceMetadata(serverUrl);
      assert.equal(byPath.resource, serverUrl);
      assert.deepEqual(byPath.authorization_servers, [gw.url]);
      const unauthorized = await fetch(
        serverUrl,
        path.endsWith('/sse')
          ? { headers: { accept: 'text/event-stream' } }
          : { method: 'POST', headers: { ...ACCEPT, 'content-type': 'application/json' }, body: initialize },
      );
      assert.equal(unauthorized.status, 401);
      const params = extractWWWAuthenticateParams(unauthorized);
      assert.equal(params.resourceMetadataUrl?.href, prm(path));
      assert.equal(params.scope, 'mcp:server:currenttime:execute');
      const byHeader = await discoverOAuthProtectedResourceMetadata(serverUrl, { resourceMetadataUrl: params.resourceMetadataUrl });
      assert.deepEqual(byHeader, byPath);
    });
  }
});

describe('CORS for browser MCP clients', () => {
  const preflight = (path: string, origin: string, requested = 'authorization,content-type,mcp-protocol-version') =>
    send('OPTIONS', path, { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': requested });

  test('a preflight from an allowed origin is answered by nginx: 204, methods, headers, max-age, no credentials, never the check', async () => {
    const before = (await auditLines()).length;
    const seen = gw.received.length;
    for (const path of [
      '/api/streamable/currenttime',
      '/api/execute/currenttime/sse',
      '/api/execute/currenttime/messages',
      '/.well-known/oauth-protected-resource/api/streamable/currenttime',
      '/oauth2/token',
    ]) {
      const res = await preflight(path, ALLOWED);
      assert.equal(res.status, 204, path);
      assert.equal(res.headers['access-control-allow-origin'], ALLOWED, path);
      assert.equal(res.headers['access-control-allow-methods'], 'GET, POST, DELETE, OPTIONS');
      assert.equal(res.headers['access-control-allow-headers'], 'authorization,content-type,mcp-protocol-version');
      assert.equal(res.headers['access-control-max-age'], '7200');
      assert.equal(res.headers['access-control-allow-credentials'], undefined);
      assert.equal(count(res, 'access-control-allow-origin'), 1);
    }
    // Mcp-Param-* (MCP 2026-07-28) is reflected; a header outside the MCP vocabulary gets the fixed list.
    const param = await preflight('/api/streamable/currenttime', ALLOWED, 'content-type,mcp-method,mcp-name,mcp-param-region');
    assert.equal(param.headers['access-control-allow-headers'], 'content-type,mcp-method,mcp-name,mcp-param-region');
    const other = await preflight('/api/streamable/currenttime', ALLOWED, 'authorization,x-evil');
    assert.equal(
      other.headers['access-control-allow-headers'],
      'Authorization, Content-Type, Mcp-Session-Id, MCP-Protocol-Version, Last-Event-ID, Mcp-Method, Mcp-Name',
    );
    assert.equal((await auditLines()).length, before, 'no preflight reached the check');
    assert.equal(gw.received.length, seen, 'no preflight reached the backend');
  });

  test('a preflight or a request from another origin gets no CORS header at all', async () => {
    for (const origin of [REFUSED, `${ALLOWED}.evil.example`, 'null', ALLOWED.toUpperCase()]) {
      const res = await preflight('/api/streamable/currenttime', origin);
      assert.equal(res.status, 204);
      for (const name of Object.keys(res.headers)) assert.ok(!name.startsWith('access-control-'), `${origin}: ${name}`);
      const denied = await send('POST', '/api/streamable/currenttime', { ...ACCEPT, origin }, initialize);
      assert.equal(denied.status, 401);
      for (const name of Object.keys(denied.headers)) assert.ok(!name.startsWith('access-control-'), `${origin}: ${name}`);
    }
  });

  test('real answers carry the origin and expose Mcp-Session-Id and WWW-Authenticate: a 401, a 403, a backend 200 and the metadata', async () => {
    const unauthorized = await send('POST', '/api/streamable/currenttime', { ...ACCEPT, origin: ALLOWED }, initialize);
    const forbidden = await send('POST', '/api/streamable/currenttime', { ...ACCEPT, origin: ALLOWED, cookie: cookies['tool-user']! }, call('another_tool'));
    const ok = await send('POST', '/api/streamable/currenttime', { ...ACCEPT, origin: ALLOWED, cookie: cookies['user']! }, initialize);
    const metadata = await send('GET', '/.well-known/oauth-protected-resource/api/streamable/currenttime', { origin: ALLOWED });
    for (const [what, res, status] of [
      ['401', unauthorized, 401],
      ['403', forbidden, 403],
      ['200', ok, 200],
      ['metadata', metadata, 200],
    ] as const) {
      assert.equal(res.status, status, what);
      assert.equal(res.headers['access-control-allow-origin'], ALLOWED, what);
      assert.equal(count(res, 'access-control-allow-origin'), 1, what);
      assert.equal(res.headers['access-control-expose-headers'], 'Mcp-Session-Id, WWW-Authenticate', what);
      assert.match(String(res.headers['vary']), /Origin/, what);
      assert.equal(res.headers['access-control-allow-credentials'], undefined, what);
    }
    assert.ok(ok.headers['mcp-session-id'], 'the session id a browser client now may read');
  });
});
