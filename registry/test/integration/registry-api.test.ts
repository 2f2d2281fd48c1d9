import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { buildServer as buildFininfo } from '../../../servers/fininfo/server.ts';
import { serveMcp, type RunningMcpServer } from '../../../servers/shared/serve-mcp.ts';
import { DEV_MACHINE_CLIENT_ID } from '../../src/identity/dev.ts';
import { API_PREFIX, API_ROUTES } from '../../src/web/api/routes.ts';
import {
  auditListSchema,
  healthListSchema,
  meSchema,
  serverDetailSchema,
  serverListSchema,
  signedInUsersSchema,
  toolSearchResultSchema,
  toolsResultSchema,
  whoCanResultSchema,
} from '../../src/web/api/schemas.ts';
import { ApiClient, assertError, machineToken, type ApiResponse, type Caller } from './api-client.ts';
import { ADMIN_PASSWORD, freePort, startTestGateway, TEST_SECRET_KEY, type TestGateway } from './harness.ts';
import { login } from './login.ts';
import { connectClientOverHttp } from './oauth-flow.ts';

/*
 * The REST API under /api/registry, through nginx, against the real registry: one gateway for
 * the whole file. Each route is called by its operationId (api-client.ts); the last test
 * checks that every route in the table answered with its success status at least once.
 */

let gw: TestGateway;
let fininfo: RunningMcpServer;
let api: ApiClient;
/** A client-credentials token of mcp-dev-machine, which the mapping file makes registry admin. */
let token = '';
let deadPort = 0;

type Signed = { cookie: string; csrf: string };
const signed: Record<string, Signed> = {};
const PASSWORDS: Record<string, string> = {
  admin: ADMIN_PASSWORD,
  operator: 'demo',
  user: 'demo',
  'tool-user': 'demo',
  analyst: 'demo',
  researcher: 'demo',
  'no-groups': 'demo',
  editor: 'editor-pw',
  toggler: 'toggler-pw',
};
const as = (username: string): Caller => {
  const s = signed[username];
  assert.ok(s, `${username} is not signed in`);
  return { cookie: s.cookie, csrf: s.csrf };
};
const bearer = (): Caller => ({ bearer: token });

const ALL_FININFO_TOOLS = ['get-market.status', 'get_company_overview', 'get_stock_aggregates', 'print_stuff'];

before(async () => {
  fininfo = await serveMcp(buildFininfo, { port: 0 });
  deadPort = await freePort(); // nothing listens here
  gw = await startTestGateway({
    definitions: [
      { name: 'fininfo', url: fininfo.url, transports: { 'streamable-http': '/mcp', sse: '/sse' }, enabled: true },
      { name: 'deadend', url: `http://127.0.0.1:${deadPort}`, transports: { 'streamable-http': '/mcp' }, enabled: true },
    ],
    users: [
      { username: 'editor', password: 'editor-pw', groups: ['mcp-server-currenttime-edit'] },
      { username: 'toggler', password: 'toggler-pw', groups: ['mcp-server-currenttime-toggle'] },
    ],
    mapping: `clients:\n  ${JSON.stringify(DEV_MACHINE_CLIENT_ID)}: ["mcp:registry:admin"]\n`,
  });
  api = new ApiClient(gw.url);
  token = await machineToken(gw.url, TEST_SECRET_KEY);
  await Promise.all(
    Object.entries(PASSWORDS).map(async ([username, password]) => {
      const { cookie } = await login(gw.url, username, password);
      const me = await api.call('getMe', { as: { cookie } });
      assert.equal(me.status, 200);
      assert.equal(me.body.username, username);
      assert.ok(me.body.csrfToken, 'a cookie caller gets its CSRF token from /me');
      signed[username] = { cookie, csrf: me.body.csrfToken };
    }),
  );
  await gw.gateway.monitor.settled();
  await gw.gateway.nginx.settled();
});

after(async () => {
  if (process.exitCode) process.stderr.write(`nginx error.log:\n${gw?.errorLog()}\n`);
  await gw?.[Symbol.asyncDispose]();
  await fininfo?.close();
});

// ---- helpers ---------------------------------------------------------------------------------

const file = (name: string) => join(gw.catalogDir, `${name}.json`);
const readDefinition = (name: string) => JSON.parse(readFileSync(file(name), 'utf8')) as Record<string, any>;
const catalogFiles = () =>
  readdirSync(gw.catalogDir)
    .filter((f) => !f.startsWith('.'))
    .sort();
const names = (res: ApiResponse) => (res.body.servers as { name: string }[]).map((s) => s.name).sort();
const definitionOf = (name: string, extra: Record<string, unknown> = {}) => ({
  name,
  description: `registered by the API test: ${name}`,
  url: fininfo.url,
  transports: { 'streamable-http': '/mcp' },
  enabled: true,
  tags: ['api-test'],
  ...extra,
});

/** The current definition (as the API shows it to an editor) and its ETag. */
async function current(name: string, who: Caller = bearer()): Promise<{ definition: Record<string, any>; etag: string }> {
  const res = await api.call('getServer', { params: { name }, as: who });
  assert.equal(res.status, 200, res.text);
  const etag = res.headers.get('etag');
  assert.ok(etag, 'GET /servers/:name has an ETag');
  assert.equal(etag, `"${res.body.version}"`, 'the ETag is the version');
  assert.ok(res.body.definition, 'an editor sees the definition');
  return { definition: res.body.definition, etag };
}

const initialize = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
});
/** One raw MCP initialize through nginx; returns the status and the body. */
async function mcpPost(server: string, headers: Record<string, string>): Promise<{ status: number; text: string }> {
  const res = await fetch(`${gw.url}/api/streamable/${server}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
    body: initialize,
  });
  return { status: res.status, text: await res.text() };
}

/** Lists tools through nginx with the real MCP SDK client. */
async function mcpTools(server: string, headers: Record<string, string>): Promise<string[]> {
  const client = new Client({ name: 'registry-api-test', version: '1' });
  await client.connect(new StreamableHTTPClientTransport(new URL(`${gw.url}/api/streamable/${server}`), { requestInit: { headers } }));
  try {
    return (await client.listTools()).tools.map((t) => t.name).sort();
  } finally {
    await client.close();
  }
}

/** Any valid body for routes that need one (for credential checks, where the body is never read). */
function bodyFor(operationId: string): unknown {
  switch (operationId) {
    case 'registerServer':
    case 'updateServer':
      return definitionOf('currenttime');
    case 'toggleServer':
      return { enabled: false };
    case 'whoCan':
      return { groups: ['mcp-admin'], server: 'currenttime' };
    case 'createToken':
      return { name: 'any', servers: ['currenttime'], lifetimeDays: 1 };
    default:
      return undefined;
  }
}

// ---- credentials -----------------------------------------------------------------------------

describe('credentials', () => {
  test('every endpoint without credentials: 401 AUTH_NO_CREDENTIALS with a Bearer challenge, nothing changed', async () => {
    const before = catalogFiles();
    for (const route of API_ROUTES) {
      const res = await api.call(route.operationId, { params: { name: 'currenttime', id: 'x' }, body: bodyFor(route.operationId) });
      assertError(res, 401, 'AUTH_NO_CREDENTIALS', route.operationId);
      assert.equal(
        res.headers.get('www-authenticate'),
        `Bearer realm="mcp-gateway", scope="mcp:registry:read", resource_metadata="${gw.url}/.well-known/oauth-protected-resource"`,
        route.operationId,
      );
    }
    assert.deepEqual(catalogFiles(), before);
    assert.equal(gw.gateway.catalog.get('currenttime')?.enabled, true);
  });

  test('every endpoint with a garbage or forged bearer token: 401 error="invalid_token", even next to a valid admin cookie', async () => {
    const [header = '', payload = '', signature = ''] = token.split('.');
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString()) as Record<string, unknown>;
    const enc = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
    const bad = [
      'garbage', // not a JWT at all (an opaque token)
      'a.b.c', // JWT-shaped, header not JSON
      `${header}.${enc({ ...claims, client_id: 'someone-else', sub: 'someone-else' })}.${signature}`, // tampered payload
      `${enc({ alg: 'none', typ: 'at+jwt' })}.${payload}.`, // unsigned
    ];
    const before = catalogFiles();
    for (const route of API_ROUTES) {
      for (const forged of bad) {
        const res = await api.call(route.operationId, {
          params: { name: 'currenttime', id: 'x' },
          body: bodyFor(route.operationId),
          as: { bearer: forged, cookie: signed['admin']!.cookie },
          headers: { 'x-csrf-token': signed['admin']!.csrf },
        });
        assertError(res, 401, 'AUTH_NO_CREDENTIALS', `${route.operationId} with ${forged.slice(0, 20)}`);
        assert.equal(
          res.headers.get('www-authenticate'),
          `Bearer realm="mcp-gateway", error="invalid_token", scope="mcp:registry:read", resource_metadata="${gw.url}/.well-known/oauth-protected-resource"`,
          route.operationId,
        );
      }
    }
    assert.deepEqual(catalogFiles(), before);
    assert.equal(gw.gateway.catalog.get('currenttime')?.enabled, true);
    // The MCP path shares the verifier: a token that is not a JWT is a 401 there too, not a 500.
    const mcp = await mcpPost('currenttime', { authorization: 'Bearer garbage' });
    assert.equal(mcp.status, 401, mcp.text);
  });

  test('another scheme or a forged session cookie: 401', async () => {
    const basic = await api.call('listServers', { as: { headers: { authorization: 'Basic YWRtaW46eA==' } } });
    assertError(basic, 401, 'AUTH_NO_CREDENTIALS');
    assert.equal(
      basic.headers.get('www-authenticate'),
      `Bearer realm="mcp-gateway", error="invalid_request", scope="mcp:registry:read", resource_metadata="${gw.url}/.well-known/oauth-protected-resource"`,
      'RFC 6750: not a Bearer header is a malformed request',
    );
    const spaced = await api.call('listServers', { as: { headers: { authorization: 'Bearer not a token' } } });
    assertError(spaced, 401, 'AUTH_NO_CREDENTIALS');
    assert.match(spaced.headers.get('www-authenticate') ?? '', /^Bearer realm="mcp-gateway", error="invalid_request", /, 'the same error as the MCP path');
    for (const cookie of ['mcp_gateway_session=s%3Aforged.c2lnbmF0dXJl', 'mcp_gateway_session=unsigned-id']) {
      const res = await api.call('listServers', { as: { cookie } });
      assertError(res, 401, 'AUTH_NO_CREDENTIALS', cookie);
      assert.match(res.headers.get('www-authenticate') ?? '', /^Bearer realm="mcp-gateway"/);
    }
  });

  test('a bearer token wins over a cookie; /me gives a CSRF token to cookie callers only', async () => {
    const both = await api.call('getMe', { as: { bearer: token, cookie: signed['no-groups']!.cookie } });
    assert.equal(both.status, 200);
    assert.equal(both.body.username, `client:${DEV_MACHINE_CLIENT_ID}`);
    assert.deepEqual(both.body.scopes, ['mcp:registry:admin']);
    assert.equal(both.body.csrfToken, undefined, 'no CSRF token for bearer callers');
    const cookie = await api.call('getMe', { as: as('no-groups') });
    assert.equal(cookie.body.username, 'no-groups');
    assert.deepEqual(cookie.body.scopes, []);
    assert.equal(cookie.body.csrfToken, signed['no-groups']!.csrf, 'the same token for the whole session');
    const user = await api.call('getMe', { as: as('user') });
    assert.deepEqual(user.body.groups, ['mcp-server-currenttime', 'mcp-server-fininfo']);
    assert.deepEqual([...user.body.scopes].sort(), [
      'mcp:server:currenttime:execute',
      'mcp:server:currenttime:read',
      'mcp:server:fininfo:execute',
      'mcp:server:fininfo:read',
    ]);
    assert.notEqual(user.body.csrfToken, cookie.body.csrfToken, 'each session has its own CSRF token');
  });
});

// ---- scope refusals --------------------------------------------------------------------------

describe('scope refusals', () => {
  test('register needs mcp:registry:admin; nothing is written', async () => {
    for (const who of ['operator', 'user', 'editor', 'toggler', 'tool-user', 'no-groups']) {
      const res = await api.call('registerServer', { as: as(who), body: definitionOf('refused') });
      const body = assertError(res, 403, 'AUTH_SCOPE_MISSING', who);
      assert.equal(body.missing_scope, 'mcp:registry:admin', who);
    }
    assert.equal(existsSync(file('refused')), false);
  });

  test('delete needs mcp:registry:admin; a caller who cannot read the server gets 404', async () => {
    for (const who of ['operator', 'user', 'editor', 'toggler', 'tool-user']) {
      const res = await api.call('deleteServer', { params: { name: 'currenttime' }, as: as(who) });
      const body = assertError(res, 403, 'AUTH_SCOPE_MISSING', who);
      assert.equal(body.missing_scope, 'mcp:registry:admin', who);
    }
    for (const who of ['no-groups', 'analyst']) {
      assertError(await api.call('deleteServer', { params: { name: 'currenttime' }, as: as(who) }), 404, 'SERVER_UNKNOWN', who);
    }
    assert.ok(existsSync(file('currenttime')));
    assert.ok(gw.gateway.catalog.get('currenttime'));
  });

  test('update needs mcp:server:<name>:edit', async () => {
    const before = readFileSync(file('currenttime'), 'utf8');
    const { definition } = await current('currenttime');
    for (const who of ['operator', 'user', 'toggler', 'tool-user']) {
      const res = await api.call('updateServer', { params: { name: 'currenttime' }, as: as(who), body: { ...definition, description: 'hijacked' } });
      const body = assertError(res, 403, 'AUTH_SCOPE_MISSING', who);
      assert.equal(body.missing_scope, 'mcp:server:currenttime:edit', who);
    }
    const fin = await current('fininfo');
    const res = await api.call('updateServer', { params: { name: 'fininfo' }, as: as('operator'), body: { ...fin.definition, description: 'hijacked' } });
    assert.equal(assertError(res, 403, 'AUTH_SCOPE_MISSING').missing_scope, 'mcp:server:fininfo:edit');
    assert.equal(readFileSync(file('currenttime'), 'utf8'), before);
  });

  test('toggle needs mcp:server:<name>:toggle (edit does not imply it)', async () => {
    for (const who of ['user', 'editor', 'tool-user']) {
      const res = await api.call('toggleServer', { params: { name: 'currenttime' }, as: as(who), body: { enabled: false } });
      assert.equal(assertError(res, 403, 'AUTH_SCOPE_MISSING', who).missing_scope, 'mcp:server:currenttime:toggle', who);
    }
    const res = await api.call('toggleServer', { params: { name: 'fininfo' }, as: as('operator'), body: { enabled: false } });
    assert.equal(assertError(res, 403, 'AUTH_SCOPE_MISSING').missing_scope, 'mcp:server:fininfo:toggle');
    assertError(await api.call('toggleServer', { params: { name: 'fininfo' }, as: as('toggler'), body: { enabled: false } }), 404, 'SERVER_UNKNOWN');
    assert.equal(gw.gateway.catalog.get('currenttime')?.enabled, true);
    assert.equal(gw.gateway.catalog.get('fininfo')?.enabled, true);
  });

  test('who-can and users need mcp:registry:read', async () => {
    for (const who of ['user', 'editor', 'toggler', 'analyst', 'no-groups']) {
      const whoCan = await api.call('whoCan', { as: as(who), body: { groups: ['mcp-admin'], server: 'currenttime' } });
      assert.equal(assertError(whoCan, 403, 'AUTH_SCOPE_MISSING', who).missing_scope, 'mcp:registry:read', who);
      const users = await api.call('listSignedInUsers', { as: as(who) });
      assert.equal(assertError(users, 403, 'AUTH_SCOPE_MISSING', who).missing_scope, 'mcp:registry:read', who);
    }
  });

  test('audit needs registry read, or toggle or edit on some server', async () => {
    for (const who of ['user', 'analyst', 'tool-user', 'researcher', 'no-groups']) {
      const res = await api.call('listAudit', { as: as(who) });
      assert.equal(assertError(res, 403, 'AUTH_SCOPE_MISSING', who).missing_scope, 'mcp:registry:read', who);
    }
  });
});

// ---- visibility ------------------------------------------------------------------------------

describe('visibility', () => {
  test('user lists exactly currenttime and fininfo, without the backend URL', async () => {
    const res = await api.call('listServers', { as: as('user') });
    assert.equal(res.status, 200);
    assert.deepEqual(names(res), ['currenttime', 'fininfo']);
    for (const s of res.body.servers) {
      assert.equal(s.definition, undefined, 'no definition without the edit scope');
      assert.deepEqual(s.permissions, { toggle: false, edit: false, delete: false, allTools: true });
    }
    const admin = await api.call('listServers', { as: bearer() });
    assert.deepEqual(names(admin), ['currenttime', 'deadend', 'fininfo', 'offline']);
    const operator = await api.call('listServers', { as: as('operator') });
    assert.deepEqual(names(operator), ['currenttime', 'deadend', 'fininfo', 'offline'], 'registry read sees all');
  });

  test('tool-scope-only callers see their server and only their tools', async () => {
    const toolUser = await api.call('listServers', { as: as('tool-user') });
    assert.deepEqual(names(toolUser), ['currenttime']);
    assert.equal(toolUser.body.servers[0].permissions.allTools, false);
    const tools = await api.call('listTools', { params: { name: 'currenttime' }, as: as('tool-user') });
    assert.equal(tools.status, 200);
    assert.deepEqual(
      tools.body.tools.map((t: { name: string }) => t.name),
      ['current_time_by_timezone'],
    );

    const analyst = await api.call('listServers', { as: as('analyst') });
    assert.deepEqual(names(analyst), ['fininfo']);
    assert.equal(analyst.body.servers[0].toolCount, 1);
    const all = await api.call('listTools', { params: { name: 'fininfo' }, as: as('user') });
    assert.deepEqual(all.body.tools.map((t: { name: string }) => t.name).sort(), ALL_FININFO_TOOLS);
    const only = await api.call('listTools', { params: { name: 'fininfo' }, as: as('analyst') });
    assert.deepEqual(
      only.body.tools.map((t: { name: string }) => t.name),
      ['get_stock_aggregates'],
    );
    const detail = await api.call('getServer', { params: { name: 'fininfo' }, as: as('analyst') });
    assert.deepEqual(
      detail.body.tools.tools.map((t: { name: string }) => t.name),
      ['get_stock_aggregates'],
    );
    assertError(await api.call('getServer', { params: { name: 'currenttime' }, as: as('analyst') }), 404, 'SERVER_UNKNOWN');
  });

  test('no-groups sees nothing; a hidden server answers exactly like a missing one', async () => {
    assert.deepEqual((await api.call('listServers', { as: as('no-groups') })).body, { servers: [] });
    assert.deepEqual((await api.call('listHealth', { as: as('no-groups') })).body, { servers: [] });
    assert.deepEqual((await api.call('searchTools', { as: as('no-groups'), query: { q: '' } })).body, { query: '', matches: [] });
    const unknown = assertError(await api.call('getServer', { params: { name: 'no-such-server' }, as: as('no-groups') }), 404, 'SERVER_UNKNOWN');
    for (const hidden of ['currenttime', 'fininfo', 'offline']) {
      const calls: [string, unknown][] = [
        ['getServer', undefined],
        ['listTools', undefined],
        ['refreshServer', undefined],
        ['toggleServer', { enabled: false }],
        ['updateServer', definitionOf(hidden)],
        ['deleteServer', undefined],
      ];
      for (const [operationId, body] of calls) {
        const res = await api.call(operationId, { params: { name: hidden }, as: as('no-groups'), body });
        const refused = assertError(res, 404, 'SERVER_UNKNOWN', `${operationId} ${hidden}`);
        assert.deepEqual(Object.keys(refused).sort(), Object.keys(unknown).sort());
        assert.equal(refused.message.replace(hidden, 'no-such-server'), unknown.message, 'the message differs only by the name asked for');
      }
    }
    assert.equal(gw.gateway.catalog.get('currenttime')?.enabled, true);
  });

  test('tool search never returns tools of servers (or tools) the caller cannot see', async () => {
    const search = async (who: string, q: string) => {
      const res = await api.call('searchTools', { as: who === 'machine' ? bearer() : as(who), query: { q } });
      assert.equal(res.status, 200, res.text);
      assert.equal(res.body.query, q);
      return (res.body.matches as { server: string; tool: { name: string } }[]).map((m) => `${m.server}/${m.tool.name}`).sort();
    };
    assert.ok((await search('user', 'market')).includes('fininfo/get-market.status'), 'the search finds what may be seen');
    assert.ok((await search('machine', 'time zone')).includes('currenttime/current_time_by_timezone'));
    assert.deepEqual(await search('tool-user', ''), ['currenttime/current_time_by_timezone']);
    assert.deepEqual(await search('tool-user', 'market'), []);
    assert.deepEqual(await search('analyst', ''), ['fininfo/get_stock_aggregates']);
    assert.deepEqual(await search('analyst', 'market'), [], "a tool of a readable server outside the caller's tool scopes");
    assert.deepEqual(await search('analyst', 'time zone'), []);
    assert.deepEqual(await search('researcher', ''), [], 'resources and prompts scopes show no tools');
    assert.deepEqual(await search('no-groups', 'time'), []);
    for (const who of ['user', 'tool-user', 'analyst', 'toggler', 'editor', 'operator']) {
      const readable = new Set(names(await api.call('listServers', { as: as(who) })));
      for (const match of await search(who, '')) assert.ok(readable.has(match.split('/')[0]!), `${who} found ${match}`);
    }
  });

  test('audit: a toggle-only (or edit-only) operator sees only the servers they operate', async () => {
    // Access decisions on two servers, and a refused one.
    assert.equal((await mcpPost('currenttime', { cookie: signed['user']!.cookie })).status, 200);
    assert.equal((await mcpPost('fininfo', { cookie: signed['user']!.cookie })).status, 200);
    assert.equal((await mcpPost('fininfo', { cookie: signed['no-groups']!.cookie })).status, 403);
    const all = await api.call('listAudit', { as: bearer() });
    assert.equal(all.status, 200);
    const servers = new Set((all.body.entries as { server: string }[]).map((e) => e.server));
    assert.ok(servers.has('currenttime') && servers.has('fininfo'), `admin sees every server: ${[...servers].join(', ')}`);
    const times = (all.body.entries as { time: string }[]).map((e) => e.time);
    assert.deepEqual(times, [...times].sort().reverse(), 'newest first');

    for (const who of ['toggler', 'editor']) {
      const own = await api.call('listAudit', { as: as(who) });
      assert.equal(own.status, 200, own.text);
      assert.ok(own.body.entries.length > 0, `${who} sees currenttime's entries`);
      for (const e of own.body.entries) assert.equal(e.server, 'currenttime', `${who} saw an entry of ${e.server}`);
      const other = await api.call('listAudit', { as: as(who), query: { server: 'fininfo' } });
      assert.deepEqual(other.body.entries, [], `${who} asked for fininfo`);
    }
    const operator = await api.call('listAudit', { as: as('operator'), query: { server: 'fininfo', decision: 'deny' } });
    assert.ok(operator.body.entries.length > 0, 'registry read sees other servers');
    for (const e of operator.body.entries) {
      assert.equal(e.server, 'fininfo');
      assert.equal(e.decision, 'deny');
    }
    const limited = await api.call('listAudit', { as: as('operator'), query: { limit: '1' } });
    assert.equal(limited.body.entries.length, 1);
    assertError(await api.call('listAudit', { as: as('operator'), query: { limit: '0' } }), 400, 'REQUEST_INVALID');
    assertError(await api.call('listAudit', { as: as('operator'), query: { decision: 'maybe' } }), 400, 'REQUEST_INVALID');
  });
});

// ---- register --------------------------------------------------------------------------------

describe('personal access tokens', () => {
  test('user creates one for currenttime: shown once, works there through nginx, 401 on fininfo; listed without the token', async () => {
    const created = await api.call('createToken', { as: as('user'), body: { name: 'laptop', servers: ['currenttime'], lifetimeDays: 30 } });
    assert.equal(created.status, 201, created.text);
    const pat = created.body.token as string;
    assert.match(pat, /^mgp_/);
    assert.deepEqual(created.body.tokenInfo.servers, ['currenttime']);
    assert.equal(created.body.mcpUrls.currenttime, `${gw.url}/api/streamable/currenttime`);
    const days = (Date.parse(created.body.tokenInfo.expiresAt) - Date.now()) / 86_400_000;
    assert.ok(days > 29.9 && days <= 30, `expires in ${days} days`);
    assert.ok((await mcpTools('currenttime', { authorization: `Bearer ${pat}` })).length > 0);
    const other = await mcpPost('fininfo', { authorization: `Bearer ${pat}` });
    assert.equal(other.status, 401, other.text);
    const tampered = await mcpPost('currenttime', { authorization: `Bearer ${pat.slice(0, -2)}xx` });
    assert.equal(tampered.status, 401);
    const listed = await api.call('listTokens', { as: as('user') });
    assert.equal(listed.status, 200);
    const mine = listed.body.tokens.find((t: { id: string }) => t.id === created.body.tokenInfo.id);
    assert.ok(mine, 'listed');
    assert.ok(!listed.text.includes(pat.slice(-43)), 'the list never holds the secret');
    // Another person neither sees nor revokes it; an admin sees it with its owner.
    const theirs = await api.call('listTokens', { as: as('analyst') });
    assert.equal(theirs.body.tokens.length, 0);
    assertError(await api.call('revokeToken', { as: as('analyst'), params: { id: mine.id } }), 404, 'NOT_FOUND');
    const all = await api.call('listTokens', { as: as('admin') });
    assert.equal(all.body.tokens.find((t: { id: string }) => t.id === mine.id)?.owner, 'user');
    assert.equal((await mcpPost('currenttime', { authorization: `Bearer ${pat}` })).status, 200, 'still works');
    // Revoked: the next request is refused.
    const revoked = await api.call('revokeToken', { as: as('user'), params: { id: mine.id } });
    assert.equal(revoked.status, 200, revoked.text);
    assert.equal((await mcpPost('currenttime', { authorization: `Bearer ${pat}` })).status, 401);
    assertError(await api.call('revokeToken', { as: as('user'), params: { id: mine.id } }), 404, 'NOT_FOUND');
  });

  test('lifetime above PAT_MAX_LIFETIME_DAYS (90), a server without scopes or no server: 400; nothing created', async () => {
    const before = (await api.call('listTokens', { as: as('admin') })).body.tokens.length;
    assertError(await api.call('createToken', { as: as('user'), body: { name: 'long', servers: ['currenttime'], lifetimeDays: 91 } }), 400, 'REQUEST_INVALID');
    assertError(await api.call('createToken', { as: as('no-groups'), body: { name: 'x', servers: ['currenttime'], lifetimeDays: 1 } }), 400, 'REQUEST_INVALID');
    assertError(await api.call('createToken', { as: as('user'), body: { name: 'x', servers: [], lifetimeDays: 1 } }), 400, 'REQUEST_INVALID');
    assertError(
      await api.call('createToken', { as: as('user'), body: { name: 'x', servers: ['currenttime'], lifetimeDays: 1 }, headers: { 'x-csrf-token': 'wrong' } }),
      403,
      'CSRF_TOKEN_INVALID',
    );
    assert.equal((await api.call('listTokens', { as: as('admin') })).body.tokens.length, before);
  });

  test("an admin revokes someone else's token; one token for two servers works on both", async () => {
    const created = await api.call('createToken', { as: as('user'), body: { name: 'both', servers: ['currenttime', 'fininfo'], lifetimeDays: 1 } });
    assert.equal(created.status, 201, created.text);
    const pat = created.body.token as string;
    assert.equal((await mcpPost('currenttime', { authorization: `Bearer ${pat}` })).status, 200);
    assert.equal((await mcpPost('fininfo', { authorization: `Bearer ${pat}` })).status, 200);
    assert.equal((await api.call('revokeToken', { as: as('admin'), params: { id: created.body.tokenInfo.id } })).status, 200);
    assert.equal((await mcpPost('fininfo', { authorization: `Bearer ${pat}` })).status, 401);
  });
});

describe('connected clients', () => {
  test('an OAuth grant is listed (name as text, redirect host, servers); another person gets 404; revoking stops its refresh token and its access token at once', async () => {
    const { jar } = await login(gw.url, 'user', 'demo');
    const flow = await connectClientOverHttp(gw.url, jar, { clientName: '<script>alert(1)</script> CLI', server: 'currenttime' });
    const listed = await api.call('listConnections', { as: as('user') });
    assert.equal(listed.status, 200, listed.text);
    const grant = listed.body.connections.find((c: { clientId: string }) => c.clientId === flow.clientId);
    assert.ok(grant, listed.text);
    assert.equal(grant.clientName, '<script>alert(1)</script> CLI');
    assert.deepEqual(grant.redirectHosts, ['127.0.0.1:9']);
    assert.equal(grant.username, 'user');
    assert.deepEqual(
      grant.servers.map((s: { server: string }) => s.server),
      ['currenttime'],
    );
    assert.ok(grant.servers[0].scopes.length > 0);
    assert.ok(grant.lastUsedAt, 'the refresh token it holds dates its last use');
    assert.equal((await api.call('listConnections', { as: as('analyst') })).body.connections.length, 0);
    assertError(await api.call('revokeConnection', { as: as('analyst'), params: { id: grant.id } }), 404, 'NOT_FOUND');
    assert.ok((await api.call('listConnections', { as: as('admin') })).body.connections.some((c: { id: string }) => c.id === grant.id));
    assert.equal((await mcpPost('currenttime', { authorization: `Bearer ${flow.accessToken}` })).status, 200);

    const revoked = await api.call('revokeConnection', { as: as('user'), params: { id: grant.id } });
    assert.equal(revoked.status, 200, revoked.text);
    const refresh = await flow.refresh();
    assert.equal(refresh.status, 400);
    assert.equal(refresh.body.error, 'invalid_grant');
    // The access token it already holds is refused on its next use (the check reads the
    // disconnection from the store's memory), on every transport of that server.
    assert.equal((await mcpPost('currenttime', { authorization: `Bearer ${flow.accessToken}` })).status, 401);
    // Authorized again, the client's new token works: only tokens from before the disconnection are refused.
    const again = await connectClientOverHttp(gw.url, jar, { clientName: 'again', server: 'currenttime' });
    assert.equal((await mcpPost('currenttime', { authorization: `Bearer ${again.accessToken}` })).status, 200);
    const second = (await api.call('listConnections', { as: as('user') })).body.connections;
    assert.equal(second.length, 1);
    assert.equal((await api.call('revokeConnection', { as: as('admin'), params: { id: second[0].id } })).status, 200, "an admin revokes anyone's");
    assert.equal((await mcpPost('currenttime', { authorization: `Bearer ${again.accessToken}` })).status, 401);
    assert.equal((await api.call('listConnections', { as: as('user') })).body.connections.length, 0);
  });
});

describe('register', () => {
  const assertRegistered = (res: ApiResponse, name: string) => {
    assert.equal(res.status, 201, res.text);
    const s = res.body.server;
    assert.equal(s.name, name);
    assert.equal(s.description, `registered by the API test: ${name}`);
    assert.equal(s.enabled, true);
    assert.deepEqual(s.transports, ['streamable-http']);
    assert.deepEqual(s.tags, ['api-test']);
    assert.deepEqual(s.endpoints, { 'streamable-http': `${gw.url}/api/streamable/${name}` });
    assert.equal(s.definition.url, fininfo.url);
    assert.equal(res.headers.get('etag'), `"${s.version}"`);
    assert.ok(res.body.nginx.lastAppliedAt, 'nginx took a config');
    assert.equal(res.body.nginx.lastError, undefined);
    const onDisk = readDefinition(name);
    assert.equal(onDisk['name'], name);
    assert.equal(onDisk['url'], fininfo.url);
    assert.deepEqual(onDisk['transports'], { 'streamable-http': '/mcp' });
  };

  test('an admin registers with a bearer token (no CSRF token): 201, the file, and MCP through nginx at once', async () => {
    const res = await api.call('registerServer', { as: bearer(), body: definitionOf('fin-bearer') });
    assertRegistered(res, 'fin-bearer');
    assert.deepEqual(await mcpTools('fin-bearer', { authorization: `Bearer ${token}` }), ALL_FININFO_TOOLS);
  });

  test('an admin registers with the session cookie and X-CSRF-Token: the same', async () => {
    const res = await api.call('registerServer', { as: as('admin'), body: definitionOf('fin-cookie') });
    assertRegistered(res, 'fin-cookie');
    assert.deepEqual(await mcpTools('fin-cookie', { cookie: signed['admin']!.cookie }), ALL_FININFO_TOOLS);
    const audit = await api.call('listAudit', { as: bearer(), query: { event: 'change', server: 'fin-cookie' } });
    assert.deepEqual(
      audit.body.entries.map((e: { action: string; user: string }) => `${e.action} by ${e.user}`),
      ['register by admin'],
    );
  });

  test('an existing name: 409 SERVER_EXISTS, the file untouched', async () => {
    const before = readFileSync(file('currenttime'), 'utf8');
    assertError(await api.call('registerServer', { as: bearer(), body: definitionOf('currenttime') }), 409, 'SERVER_EXISTS');
    assertError(await api.call('registerServer', { as: bearer(), body: definitionOf('fin-bearer', { description: 'again' }) }), 409, 'SERVER_EXISTS');
    assert.equal(readFileSync(file('currenttime'), 'utf8'), before);
    assert.equal(readDefinition('fin-bearer')['description'], 'registered by the API test: fin-bearer');
  });

  test('invalid definitions: 400 REQUEST_INVALID naming the field; nothing written, nginx not reloaded', async () => {
    await gw.gateway.nginx.settled();
    const applied = gw.gateway.nginx.status().lastAppliedAt;
    const files = catalogFiles();
    const { transports: _t, ...withoutTransports } = definitionOf('bad-none');
    const cases: { label: string; body: Record<string, unknown>; field: string; mentions?: string }[] = [
      { label: 'name A;B', body: definitionOf('A;B'), field: 'name' },
      { label: 'url with a query', body: definitionOf('bad-query', { url: 'http://127.0.0.1:1/x?y' }), field: 'url' },
      { label: 'url with ;proxy_pass', body: definitionOf('bad-semicolon', { url: 'http://h/x;proxy_pass' }), field: 'url' },
      { label: 'no transports', body: definitionOf('bad-empty', { transports: {} }), field: 'transports' },
      { label: 'transports missing', body: withoutTransports, field: 'transports' },
      { label: 'unknown transport', body: definitionOf('bad-transport', { transports: { websocket: '/ws' } }), field: 'transports', mentions: 'websocket' },
      { label: 'unknown key', body: definitionOf('bad-key', { proxy_pass: 'http://evil' }), field: 'proxy_pass', mentions: 'proxy_pass' },
      { label: 'path with a space', body: definitionOf('bad-space', { transports: { 'streamable-http': '/m cp' } }), field: 'transports.streamable-http' },
      { label: 'port out of range', body: definitionOf('bad-port', { url: 'http://127.0.0.1:70000' }), field: 'url' },
      { label: 'name too long', body: definitionOf('a'.repeat(64)), field: 'name' },
    ];
    for (const c of cases) {
      const body = assertError(await api.call('registerServer', { as: bearer(), body: c.body }), 400, 'REQUEST_INVALID', c.label);
      assert.ok(body.fields && body.fields.length > 0, `${c.label}: fields`);
      assert.ok(
        body.fields.some((f) => f.field === c.field),
        `${c.label}: fields name ${c.field}: ${JSON.stringify(body.fields)}`,
      );
      if (c.mentions)
        assert.ok(
          body.fields.some((f) => f.message.includes(c.mentions!)),
          `${c.label}: names ${c.mentions}: ${JSON.stringify(body.fields)}`,
        );
    }
    assert.deepEqual(catalogFiles(), files, 'no file appeared');
    assert.deepEqual(
      readdirSync(gw.catalogDir).filter((f) => f.endsWith('.tmp')),
      [],
      'no temp file left',
    );
    await gw.gateway.nginx.settled();
    assert.equal(gw.gateway.nginx.status().lastAppliedAt, applied);
  });
});

// ---- update ----------------------------------------------------------------------------------

describe('update', () => {
  test('PUT with the current ETag: 200 and the file changes; a stale ETag: 412; a rename: 400', async () => {
    const first = await current('fin-bearer');
    const res = await api.call('updateServer', {
      params: { name: 'fin-bearer' },
      as: bearer(),
      headers: { 'if-match': first.etag },
      body: { ...first.definition, description: 'changed once', tags: ['api-test', 'changed'] },
    });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.body.server.description, 'changed once');
    const newEtag = res.headers.get('etag');
    assert.equal(newEtag, `"${res.body.server.version}"`);
    assert.notEqual(newEtag, first.etag);
    assert.equal(readDefinition('fin-bearer')['description'], 'changed once');
    assert.deepEqual(readDefinition('fin-bearer')['tags'], ['api-test', 'changed']);
    assert.equal((await current('fin-bearer')).etag, newEtag, "GET agrees with the PUT's ETag");
    const head = await api.fetch('HEAD', api.path('getServer', { name: 'fin-bearer' }), { authorization: `Bearer ${token}` });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('etag'), newEtag, 'HEAD gives the ETag too (curl -I in the docs)');

    const stale = await api.call('updateServer', {
      params: { name: 'fin-bearer' },
      as: bearer(),
      headers: { 'if-match': first.etag },
      body: { ...first.definition, description: 'lost update' },
    });
    assertError(stale, 412, 'SERVER_CHANGED');
    assert.equal(readDefinition('fin-bearer')['description'], 'changed once');

    const renamed = await api.call('updateServer', {
      params: { name: 'fin-bearer' },
      as: bearer(),
      headers: { 'if-match': newEtag! },
      body: { ...first.definition, name: 'fin-renamed' },
    });
    const refused = assertError(renamed, 400, 'REQUEST_INVALID');
    assert.ok(refused.fields?.some((f) => f.field === 'name'));
    assert.equal(existsSync(file('fin-renamed')), false);
    assert.equal(readDefinition('fin-bearer')['description'], 'changed once');

    // A weak validator of the current version is accepted too.
    const weak = await api.call('updateServer', {
      params: { name: 'fin-bearer' },
      as: bearer(),
      headers: { 'if-match': `W/${newEtag}` },
      body: { ...first.definition, description: 'changed twice' },
    });
    assert.equal(weak.status, 200, weak.text);
    assert.equal(readDefinition('fin-bearer')['description'], 'changed twice');
    // An invalid body is refused before anything is written.
    const invalid = await api.call('updateServer', { params: { name: 'fin-bearer' }, as: bearer(), body: { ...first.definition, url: 'ftp://x' } });
    assert.ok(assertError(invalid, 400, 'REQUEST_INVALID').fields?.some((f) => f.field === 'url'));
    assert.equal(readDefinition('fin-bearer')['url'], fininfo.url);
    // The MCP route still works after the edits.
    assert.deepEqual(await mcpTools('fin-bearer', { authorization: `Bearer ${token}` }), ALL_FININFO_TOOLS);
  });

  test('a user with only mcp-server-currenttime-edit updates currenttime (cookie + CSRF), and nothing else', async () => {
    const original = readFileSync(file('currenttime'), 'utf8');
    const { definition, etag } = await current('currenttime', as('editor'));
    assert.equal(definition['url'], gw.backend.url, 'an editor sees the backend URL');
    const res = await api.call('updateServer', {
      params: { name: 'currenttime' },
      as: as('editor'),
      headers: { 'if-match': etag },
      body: { ...definition, description: 'edited by editor' },
    });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.body.server.permissions.edit, true);
    assert.equal(res.body.server.permissions.toggle, false);
    assert.equal(readDefinition('currenttime')['description'], 'edited by editor');
    const back = await api.call('updateServer', {
      params: { name: 'currenttime' },
      as: as('editor'),
      headers: { 'if-match': res.headers.get('etag')! },
      body: definition,
    });
    assert.equal(back.status, 200, back.text);
    assert.equal(readDefinition('currenttime')['description'], JSON.parse(original).description);
    const audit = await api.call('listAudit', { as: as('editor'), query: { event: 'change', user: 'editor' } });
    assert.deepEqual(
      audit.body.entries.map((e: { action: string }) => e.action),
      ['update', 'update'],
    );
    assertError(await api.call('getServer', { params: { name: 'fininfo' }, as: as('editor') }), 404, 'SERVER_UNKNOWN');
    assertError(await api.call('updateServer', { params: { name: 'fininfo' }, as: as('editor'), body: definitionOf('fininfo') }), 404, 'SERVER_UNKNOWN');
  });
});

// ---- toggle ----------------------------------------------------------------------------------

describe('toggle', () => {
  test('disable through the API: MCP through nginx gets 503 at once; enable: it works again', async () => {
    const off = await api.call('toggleServer', { params: { name: 'currenttime' }, as: bearer(), body: { enabled: false } });
    assert.equal(off.status, 200, off.text);
    assert.equal(off.body.server.enabled, false);
    try {
      assert.equal(readDefinition('currenttime')['enabled'], false);
      const refused = await mcpPost('currenttime', { cookie: signed['user']!.cookie });
      assert.equal(refused.status, 503, refused.text);
      assert.equal(JSON.parse(refused.text).error, 'SERVER_DISABLED');
      assert.equal((await api.call('getServer', { params: { name: 'currenttime' }, as: as('user') })).body.enabled, false);
    } finally {
      const on = await api.call('toggleServer', { params: { name: 'currenttime' }, as: as('toggler'), body: { enabled: true } });
      assert.equal(on.status, 200, on.text);
      assert.equal(on.body.server.enabled, true);
    }
    assert.equal(readDefinition('currenttime')['enabled'], true);
    assert.deepEqual(await mcpTools('currenttime', { cookie: signed['user']!.cookie }), ['current_time_by_timezone']);
    const audit = await api.call('listAudit', { as: as('toggler'), query: { event: 'change' } });
    const actions = audit.body.entries.map((e: { action: string; user: string }) => `${e.action} by ${e.user}`);
    assert.deepEqual(actions.slice(0, 2), ['enable by toggler', `disable by client:${DEV_MACHINE_CLIENT_ID}`]);
  });

  test('a toggle body must be exactly { enabled: boolean }', async () => {
    for (const body of [{ enabled: 'no' }, {}, { enabled: false, extra: 1 }]) {
      const res = await api.call('toggleServer', { params: { name: 'currenttime' }, as: bearer(), body });
      assertError(res, 400, 'REQUEST_INVALID', JSON.stringify(body));
    }
    assert.equal(gw.gateway.catalog.get('currenttime')?.enabled, true);
  });
});

// ---- CSRF ------------------------------------------------------------------------------------

describe('CSRF', () => {
  test('cookie writes without a valid X-CSRF-Token: 403 CSRF_TOKEN_INVALID, nothing changed', async () => {
    const cookie = signed['admin']!.cookie;
    const files = catalogFiles();
    const finBearer = readFileSync(file('fin-bearer'), 'utf8');
    const { definition } = await current('fin-bearer');
    for (const csrf of [undefined, '', 'not-the-token', signed['user']!.csrf]) {
      const who: Caller = csrf === undefined ? { cookie } : { cookie, csrf };
      const label = `token ${JSON.stringify(csrf)}`;
      assertError(await api.call('registerServer', { as: who, body: definitionOf('csrf-x') }), 403, 'CSRF_TOKEN_INVALID', label);
      assertError(
        await api.call('updateServer', { params: { name: 'fin-bearer' }, as: who, body: { ...definition, description: 'csrf' } }),
        403,
        'CSRF_TOKEN_INVALID',
        label,
      );
      assertError(await api.call('deleteServer', { params: { name: 'fin-bearer' }, as: who }), 403, 'CSRF_TOKEN_INVALID', label);
      assertError(await api.call('toggleServer', { params: { name: 'currenttime' }, as: who, body: { enabled: false } }), 403, 'CSRF_TOKEN_INVALID', label);
      assertError(await api.call('refreshServer', { params: { name: 'currenttime' }, as: who }), 403, 'CSRF_TOKEN_INVALID', label);
      assertError(await api.call('whoCan', { as: who, body: { groups: [], server: 'currenttime' } }), 403, 'CSRF_TOKEN_INVALID', label);
    }
    assert.deepEqual(catalogFiles(), files);
    assert.equal(readFileSync(file('fin-bearer'), 'utf8'), finBearer);
    assert.equal(gw.gateway.catalog.get('currenttime')?.enabled, true);
    // Reads need no token.
    assert.equal((await api.call('listServers', { as: { cookie } })).status, 200);
  });

  test('a cookie write that is not application/json is refused, even with the token', async () => {
    const files = catalogFiles();
    for (const contentType of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x']) {
      const withToken = await api.call('registerServer', { as: as('admin'), rawBody: JSON.stringify(definitionOf('csrf-plain')), contentType });
      assertError(withToken, 400, 'REQUEST_INVALID', contentType);
      const without = await api.call('registerServer', {
        as: { cookie: signed['admin']!.cookie },
        rawBody: JSON.stringify(definitionOf('csrf-plain')),
        contentType,
      });
      assertError(without, 403, 'CSRF_TOKEN_INVALID', contentType);
      const toggle = await api.call('toggleServer', { params: { name: 'currenttime' }, as: as('admin'), rawBody: '{"enabled":false}', contentType });
      assert.ok(toggle.status >= 400 && toggle.status < 500, `${contentType}: ${toggle.status}`);
    }
    assert.deepEqual(catalogFiles(), files);
    assert.equal(gw.gateway.catalog.get('currenttime')?.enabled, true);
  });
});

// ---- delete ----------------------------------------------------------------------------------

describe('delete', () => {
  test('admin deletes: a stale If-Match is 412; then 200, the file is gone and nginx answers 404', async () => {
    const { etag } = await current('fin-cookie', as('admin'));
    const stale = await api.call('deleteServer', { params: { name: 'fin-cookie' }, as: as('admin'), headers: { 'if-match': '"not-the-version"' } });
    assertError(stale, 412, 'SERVER_CHANGED');
    assert.ok(existsSync(file('fin-cookie')));
    assert.equal((await mcpPost('fin-cookie', { cookie: signed['admin']!.cookie })).status, 200, 'still routed');

    const res = await api.call('deleteServer', { params: { name: 'fin-cookie' }, as: as('admin'), headers: { 'if-match': etag } });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.body.deleted, 'fin-cookie');
    assert.ok(res.body.nginx.lastAppliedAt);
    assert.equal(existsSync(file('fin-cookie')), false);
    const gone = await mcpPost('fin-cookie', { cookie: signed['admin']!.cookie });
    assert.equal(gone.status, 404, 'nginx dropped the route before the API answered');
    assert.equal(JSON.parse(gone.text).error, 'SERVER_UNKNOWN');
    assertError(await api.call('getServer', { params: { name: 'fin-cookie' }, as: as('admin') }), 404, 'SERVER_UNKNOWN');
    assertError(await api.call('deleteServer', { params: { name: 'fin-cookie' }, as: as('admin') }), 404, 'SERVER_UNKNOWN');
  });

  test('a bearer delete without If-Match', async () => {
    const res = await api.call('deleteServer', { params: { name: 'fin-bearer' }, as: bearer() });
    assert.equal(res.status, 200, res.text);
    assert.equal(existsSync(file('fin-bearer')), false);
    assert.equal((await mcpPost('fin-bearer', { authorization: `Bearer ${token}` })).status, 404);
  });
});

// ---- malformed requests ----------------------------------------------------------------------

describe('malformed requests', () => {
  test('a body that is not JSON: 400 REQUEST_INVALID; over 256 KiB: 413 BODY_TOO_LARGE; nothing written', async () => {
    const files = catalogFiles();
    for (const rawBody of ['{ "name": ', '{"name":"x",}', 'null', '"a string"', '[]']) {
      assertError(await api.call('registerServer', { as: bearer(), rawBody }), 400, 'REQUEST_INVALID', rawBody);
    }
    const big = JSON.stringify(definitionOf('too-big', { description: 'x'.repeat(300 * 1024) }));
    assertError(await api.call('registerServer', { as: bearer(), rawBody: big }), 413, 'BODY_TOO_LARGE');
    assertError(await api.call('whoCan', { as: bearer(), rawBody: big }), 413, 'BODY_TOO_LARGE');
    assert.deepEqual(catalogFiles(), files);
  });

  test('a bad server name in the path: JSON SERVER_NAME_INVALID or 404, never a page', async () => {
    for (const name of ['A', '..%2Fetc', '%2E%2E%2Fetc', 'a%3Bb', 'a%20b', '-x', 'a'.repeat(64)]) {
      for (const [operationId, body] of [
        ['getServer', undefined],
        ['updateServer', definitionOf('x')],
        ['deleteServer', undefined],
        ['toggleServer', { enabled: false }],
        ['listTools', undefined],
        ['refreshServer', undefined],
      ] as const) {
        const res = await api.call(operationId, { params: { name }, as: bearer(), body });
        assertError(res, 400, 'SERVER_NAME_INVALID', `${operationId} ${name}`);
      }
    }
    // A literal ../ is resolved by the client: it is just another path, and a JSON 404.
    const dotted = await api.fetch('GET', `${API_PREFIX}/servers/../etc`, { authorization: `Bearer ${token}` });
    assertError(dotted, 404, 'NOT_FOUND');
    assertError(await api.call('whoCan', { as: bearer(), body: { groups: [], server: 'A' } }), 400, 'REQUEST_INVALID');
    assertError(await api.call('listAudit', { as: bearer(), query: { server: '../etc' } }), 400, 'REQUEST_INVALID');
  });

  test('an unknown endpoint or method: 404 JSON NOT_FOUND, with or without credentials', async () => {
    for (const [method, path] of [
      ['GET', '/nope'],
      ['GET', '/servers/currenttime/nope'],
      ['PATCH', '/servers/currenttime'],
      ['DELETE', '/servers'],
      ['GET', '/'],
    ] as const) {
      for (const headers of [{}, { authorization: `Bearer ${token}` }] as Record<string, string>[]) {
        const res = await api.fetch(method, `${API_PREFIX}${path}`, headers);
        assertError(res, 404, 'NOT_FOUND', `${method} ${path}`);
      }
    }
  });

  test('a search query that is too long or repeated: 400', async () => {
    assertError(await api.call('searchTools', { as: bearer(), query: { q: 'x'.repeat(201) } }), 400, 'REQUEST_INVALID');
    assertError(await api.fetch('GET', `${API_PREFIX}/tools?q=a&q=b`, { authorization: `Bearer ${token}` }), 400, 'REQUEST_INVALID');
  });
});

// ---- who-can ---------------------------------------------------------------------------------

describe('who-can', () => {
  const ask = async (body: Record<string, unknown>) => {
    const res = await api.call('whoCan', { as: as('operator'), body });
    assert.equal(res.status, 200, res.text);
    return res.body;
  };
  const ANALYST_GROUPS = ['mcp-server-fininfo-tool-get_stock_aggregates'];

  test('groups with one tool scope: the other tool is refused naming its scope; their own is allowed with a tool filter', async () => {
    const deny = await ask({ groups: ANALYST_GROUPS, server: 'fininfo', tool: 'print_stuff' });
    assert.equal(deny.decision, 'deny');
    assert.equal(deny.status, 403);
    assert.equal(deny.reason, 'scope-missing');
    assert.equal(deny.missingScope, 'mcp:server:fininfo:tool:print_stuff:execute');
    assert.deepEqual(deny.request, { method: 'tools/call', tool: 'print_stuff' });
    assert.deepEqual(deny.scopes, ['mcp:server:fininfo:tool:get_stock_aggregates:execute']);
    assert.deepEqual(deny.registry, { read: true, toggle: false, edit: false, delete: false });

    const allow = await ask({ groups: ANALYST_GROUPS, server: 'fininfo', tool: 'get_stock_aggregates' });
    assert.equal(allow.decision, 'allow');
    assert.equal(allow.status, 200);
    assert.deepEqual(allow.toolFilter, ['get_stock_aggregates']);
    assert.equal(allow.missingScope, undefined);

    const full = await ask({ groups: ['mcp-server-fininfo'], server: 'fininfo', tool: 'print_stuff' });
    assert.equal(full.decision, 'allow');
    assert.equal(full.toolFilter, undefined, 'execute covers every tool');
  });

  test('a disabled server: 503 server-disabled; an unknown one: 404', async () => {
    const disabled = await ask({ groups: ['mcp-admin'], server: 'offline' });
    assert.equal(disabled.decision, 'deny');
    assert.equal(disabled.status, 503);
    assert.equal(disabled.reason, 'server-disabled');
    const unknown = await ask({ groups: ['mcp-admin'], server: 'no-such-server' });
    assert.equal(unknown.status, 404);
    assert.equal(unknown.reason, 'server-unknown');
    assert.deepEqual(unknown.registry, { read: false, toggle: false, edit: false, delete: false });
  });

  test("by signed-in user: their session's groups and scopes are used", async () => {
    const me = (await api.call('getMe', { as: as('tool-user') })).body;
    const allow = await ask({ user: 'tool-user', server: 'currenttime', tool: 'current_time_by_timezone' });
    assert.deepEqual(allow.subject, { groups: me.groups, user: 'tool-user' });
    assert.deepEqual(allow.scopes, me.scopes);
    assert.equal(allow.decision, 'allow');
    assert.deepEqual(allow.toolFilter, ['current_time_by_timezone']);
    const deny = await ask({ user: 'tool-user', server: 'fininfo', tool: 'print_stuff' });
    assert.equal(deny.decision, 'deny');
    assert.equal(deny.missingScope, 'mcp:server:fininfo:tool:print_stuff:execute');
    const editor = await ask({ user: 'editor', server: 'currenttime' });
    assert.equal(editor.decision, 'deny', 'edit does not open an MCP session');
    assert.deepEqual(editor.registry, { read: true, toggle: false, edit: true, delete: false });
  });

  test('both groups and user, neither, or a user not signed in: 400', async () => {
    for (const body of [
      { groups: ['mcp-admin'], user: 'tool-user', server: 'currenttime' },
      { server: 'currenttime' },
      { groups: ['mcp-admin'], server: 'currenttime', extra: true },
    ]) {
      assertError(await api.call('whoCan', { as: as('operator'), body }), 400, 'REQUEST_INVALID', JSON.stringify(body));
    }
    const nobody = assertError(
      await api.call('whoCan', { as: as('operator'), body: { user: 'nobody-signed-in', server: 'currenttime' } }),
      400,
      'REQUEST_INVALID',
    );
    assert.ok(nobody.fields?.some((f) => f.field === 'user'));
  });

  test('users: everyone signed in, once each, with their groups', async () => {
    const res = await api.call('listSignedInUsers', { as: as('operator') });
    assert.equal(res.status, 200);
    const users = res.body.users as { username: string; groups: string[]; provider: string }[];
    const byName = new Map(users.map((u) => [u.username, u]));
    for (const username of Object.keys(PASSWORDS)) assert.ok(byName.has(username), `${username} is listed`);
    assert.equal(users.length, byName.size, 'one entry per user');
    assert.deepEqual(
      users.map((u) => u.username),
      [...users.map((u) => u.username)].sort((a, b) => a.localeCompare(b)),
    );
    assert.deepEqual(byName.get('tool-user')?.groups, ['mcp-server-currenttime-tool-current_time_by_timezone']);
    assert.equal(byName.get('editor')?.provider, 'dev');
    assert.equal(byName.has(`client:${DEV_MACHINE_CLIENT_ID}`), false, 'a bearer caller has no session');
  });
});

// ---- OpenAPI ---------------------------------------------------------------------------------

describe('OpenAPI', () => {
  test('served without credentials: 3.1, every route with its method and operationId, every $ref resolves', async () => {
    const res = await api.fetch('GET', `${API_PREFIX}/openapi.json`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
    const doc = res.body as {
      openapi: string;
      paths: Record<string, Record<string, any>>;
      components: { schemas: Record<string, unknown> };
      servers: { url: string }[];
    };
    assert.ok(doc.openapi.startsWith('3.1'), doc.openapi);
    assert.deepEqual(doc.servers, [{ url: gw.url }]);

    const operations = new Set<string>();
    for (const route of API_ROUTES) {
      const path = `${API_PREFIX}${route.path.replace(/:([A-Za-z]+)/g, '{$1}')}`;
      const op = doc.paths[path]?.[route.method];
      assert.ok(op, `${route.method.toUpperCase()} ${path} is documented`);
      assert.equal(op.operationId, route.operationId);
      assert.ok(op.responses[String(route.status)], `${route.operationId} documents ${route.status}`);
      for (const status of [401, ...route.errors]) assert.ok(op.responses[String(status)], `${route.operationId} documents ${status}`);
      if (route.path.includes(':name'))
        assert.ok(op.parameters.some((p: { name: string; in: string; required: boolean }) => p.name === 'name' && p.in === 'path' && p.required));
      assert.equal(Boolean(op.requestBody), Boolean(route.body), `${route.operationId} requestBody`);
      operations.add(`${route.method} ${path}`);
    }
    const documented = Object.entries(doc.paths).flatMap(([path, methods]) => Object.keys(methods).map((m) => `${m} ${path}`));
    assert.deepEqual(documented.sort(), [...operations].sort(), 'nothing documented that is not served');

    const refs: string[] = [];
    const walk = (value: unknown): void => {
      if (Array.isArray(value)) return value.forEach(walk);
      if (value === null || typeof value !== 'object') return;
      for (const [k, v] of Object.entries(value)) {
        if (k === '$ref') refs.push(String(v));
        else walk(v);
      }
    };
    walk(doc);
    assert.ok(refs.length > 0);
    for (const ref of new Set(refs)) {
      const match = /^#\/components\/schemas\/(.+)$/.exec(ref);
      assert.ok(match, `${ref} points into components.schemas`);
      assert.ok(Object.hasOwn(doc.components.schemas, match[1]!), `${ref} resolves`);
    }

    const resolve = (schema: any): any => (schema?.$ref ? doc.components.schemas[String(schema.$ref).split('/').pop()!] : schema);
    const register = resolve(doc.paths[`${API_PREFIX}/servers`]?.['post']?.requestBody?.content?.['application/json']?.schema);
    assert.ok(register, 'registerServer has a request body schema');
    for (const field of ['name', 'url', 'transports'])
      assert.ok(register.required?.includes(field), `registerServer requires ${field}: ${JSON.stringify(register.required)}`);
    assert.equal(register.additionalProperties, false, 'unknown keys are refused, as the API does');
  });
});

// ---- response schemas ------------------------------------------------------------------------

describe('responses match their zod schemas', () => {
  test('list, detail, who-can, tools, search, health, me, users and audit', async () => {
    const checks: [string, { safeParse(v: unknown): { success: boolean; error?: unknown } }, Promise<ApiResponse>][] = [
      ['listServers', serverListSchema, api.call('listServers', { as: bearer() })],
      ['getServer', serverDetailSchema, api.call('getServer', { params: { name: 'currenttime' }, as: as('user') })],
      [
        'whoCan',
        whoCanResultSchema,
        api.call('whoCan', { as: bearer(), body: { groups: ['mcp-server-fininfo-tool-get_stock_aggregates'], server: 'fininfo', tool: 'print_stuff' } }),
      ],
      ['listTools', toolsResultSchema, api.call('listTools', { params: { name: 'fininfo' }, as: as('analyst') })],
      ['searchTools', toolSearchResultSchema, api.call('searchTools', { as: as('user'), query: { q: 'stock' } })],
      ['listHealth', healthListSchema, api.call('listHealth', { as: bearer() })],
      ['getMe', meSchema, api.call('getMe', { as: as('admin') })],
      ['listSignedInUsers', signedInUsersSchema, api.call('listSignedInUsers', { as: bearer() })],
      ['listAudit', auditListSchema, api.call('listAudit', { as: bearer() })],
    ];
    for (const [label, schema, pending] of checks) {
      const res = await pending;
      assert.equal(res.status, 200, `${label}: ${res.text}`);
      const parsed = schema.safeParse(res.body);
      assert.ok(parsed.success, `${label}: ${String(parsed.error)}`);
    }
    // The strict reading: a detail has nothing the schema does not know.
    const detail = await api.call('getServer', { params: { name: 'currenttime' }, as: bearer() });
    assert.ok(serverDetailSchema.strict().safeParse(detail.body).success);
  });
});

// ---- tools, refresh and health ---------------------------------------------------------------

describe('tools, refresh and health', () => {
  test('tools come from the backend once checked; refresh checks now; the health list has every readable server', async () => {
    await gw.gateway.monitor.settled();
    const tools = await api.call('listTools', { params: { name: 'currenttime' }, as: as('user') });
    assert.equal(tools.status, 200);
    assert.equal(tools.body.source, 'backend');
    assert.ok(tools.body.fetchedAt);
    const tool = tools.body.tools.find((t: { name: string }) => t.name === 'current_time_by_timezone');
    assert.ok(tool, 'current_time_by_timezone is listed');
    assert.equal(tool.title, 'Current time by time zone');
    assert.equal(tool.inputSchema.type, 'object');
    assert.ok(tool.inputSchema.properties.tz_name, 'the input schema from the backend');

    const before = tools.body.health.checkedAt as string | undefined;
    const refreshed = await api.call('refreshServer', { params: { name: 'currenttime' }, as: as('user') });
    assert.equal(refreshed.status, 200, refreshed.text);
    assert.equal(refreshed.body.health.status, 'healthy');
    assert.equal(typeof refreshed.body.health.latencyMs, 'number');
    assert.ok(Number.isInteger(refreshed.body.health.latencyMs) && refreshed.body.health.latencyMs >= 0);
    assert.deepEqual(refreshed.body.health.serverInfo, { name: 'currenttime', version: '0.1.0' });
    assert.ok(before, 'checked at start');
    assert.ok(refreshed.body.health.checkedAt > before, 'a new check');
    assert.equal(refreshed.body.source, 'backend');

    const own = await api.call('refreshServer', { params: { name: 'fininfo' }, as: as('analyst') });
    assert.deepEqual(
      own.body.tools.map((t: { name: string }) => t.name),
      ['get_stock_aggregates'],
      "a refresh shows only the caller's tools",
    );

    const health = await api.call('listHealth', { as: as('user') });
    assert.equal(health.status, 200);
    const byName = new Map((health.body.servers as { name: string; enabled: boolean; health: { status: string } }[]).map((s) => [s.name, s]));
    assert.deepEqual([...byName.keys()].sort(), ['currenttime', 'fininfo']);
    assert.equal(byName.get('currenttime')?.health.status, 'healthy');
    assert.equal(byName.get('currenttime')?.enabled, true);
  });

  test('a failing check: unhealthy with an error; nginx is not reloaded and the route stays (502, not 404)', async () => {
    await gw.gateway.nginx.settled();
    const conf = () => readFileSync(join(gw.gateway.runtimeDir, 'nginx.conf'), 'utf8');
    const appliedBefore = gw.gateway.nginx.status().lastAppliedAt;
    const confBefore = conf();
    assert.ok(appliedBefore);
    for (let i = 0; i < 3; i++) {
      const res = await api.call('refreshServer', { params: { name: 'deadend' }, as: bearer() });
      assert.equal(res.status, 200, res.text);
      assert.equal(res.body.health.status, 'unhealthy');
      assert.ok(typeof res.body.health.error === 'string' && res.body.health.error.length > 0, 'says why');
      assert.equal(res.body.source, 'definition', 'no tools from a backend that never answered');
    }
    assert.equal((await api.call('refreshServer', { params: { name: 'currenttime' }, as: bearer() })).body.health.status, 'healthy');
    const health = await api.call('listHealth', { as: bearer() });
    assert.equal(health.body.servers.find((s: { name: string }) => s.name === 'deadend')?.health.status, 'unhealthy');
    await gw.gateway.nginx.settled();
    assert.equal(gw.gateway.nginx.status().lastAppliedAt, appliedBefore, 'no reload');
    assert.equal(conf(), confBefore);
    assert.ok(gw.gateway.catalog.get('deadend'), 'still in the catalog');
    const mcp = await mcpPost('deadend', { authorization: `Bearer ${token}` });
    assert.equal(mcp.status, 502, mcp.text);
    assert.equal(JSON.parse(mcp.text).error, 'BACKEND_UNAVAILABLE');
  });
});

describe('backend credentials', () => {
  test('PUT sets a secret write-only, GET shows it set (never the value), DELETE clears it; editors only', async () => {
    const backendAuth = { type: 'headers', headers: [{ name: 'X-API-Key', from: 'vault' }] };
    const registered = await api.call('registerServer', { body: definitionOf('keyed', { backendAuth }), as: bearer() });
    assert.equal(registered.status, 201, registered.text);
    assert.deepEqual(registered.body.server.definition.backendAuth, backendAuth);
    const put = await api.call('setCredentials', { params: { name: 'keyed' }, body: { headers: { 'X-API-Key': 'api-test-secret-1' } }, as: bearer() });
    assert.equal(put.status, 200, put.text);
    assert.ok(!put.text.includes('api-test-secret-1'));
    const get = await api.call('getCredentials', { params: { name: 'keyed' }, as: as('admin') });
    assert.equal(get.status, 200);
    assert.equal(get.body.type, 'headers');
    assert.equal(get.body.secrets[0].set, true);
    assert.ok(!get.text.includes('api-test-secret-1'));
    // Without the edit scope: 403 for one who may read the server, 404 for one who may not (as everywhere).
    assertError(await api.call('getCredentials', { params: { name: 'currenttime' }, as: as('user') }), 403, 'AUTH_SCOPE_MISSING');
    assertError(await api.call('getCredentials', { params: { name: 'keyed' }, as: as('user') }), 404, 'SERVER_UNKNOWN');
    // An editor of a server without backendAuth sees that it has none.
    const none = await api.call('getCredentials', { params: { name: 'currenttime' }, as: as('editor') });
    assert.deepEqual(none.body, { server: 'currenttime', type: 'none', secrets: [] });
    const cleared = await api.call('clearCredentials', { params: { name: 'keyed' }, as: as('admin') });
    assert.equal(cleared.status, 200);
    assert.equal(cleared.body.secrets[0].set, false);
    assert.equal((await api.call('deleteServer', { params: { name: 'keyed' }, as: bearer() })).status, 200);
  });

  test('the key ring of backend secrets and resealing: registry admins only', async () => {
    const keys = await api.call('getSecretKeys', { as: bearer() });
    assert.equal(keys.status, 200, keys.text);
    assert.ok(keys.body.keys.some((k: { sealing: boolean }) => k.sealing));
    const resealed = await api.call('resealSecrets', { as: as('admin') });
    assert.equal(resealed.status, 200, resealed.text);
    assert.equal(typeof resealed.body.resealed, 'number');
    assertError(await api.call('getSecretKeys', { as: as('editor') }), 403, 'AUTH_SCOPE_MISSING');
  });

  test("my-token: a person's own token for an uploaded server: PUT stores it, GET shows its status (never the token), DELETE removes it", async () => {
    const backendAuth = { type: 'uploaded', instructions: 'Create one under Settings > Tokens' };
    const registered = await api.call('registerServer', { body: definitionOf('uploads', { backendAuth }), as: bearer() });
    assert.equal(registered.status, 201, registered.text);
    const none = await api.call('getMyToken', { params: { name: 'uploads' }, as: as('admin') });
    assert.equal(none.status, 200, none.text);
    assert.deepEqual(none.body, {
      server: 'uploads',
      set: false,
      expired: false,
      instructions: 'Create one under Settings > Tokens',
      uploadUrl: `${gw.url}/servers/uploads/token`,
    });
    // Cookie writes need the CSRF token.
    assertError(
      await api.call('setMyToken', { params: { name: 'uploads' }, body: { token: 'api-uploaded-1' }, as: { cookie: signed['admin']!.cookie } }),
      403,
      'CSRF_TOKEN_INVALID',
    );
    const put = await api.call('setMyToken', { params: { name: 'uploads' }, body: { token: 'api-uploaded-1', expiresAt: '2099-01-01' }, as: as('admin') });
    assert.equal(put.status, 200, put.text);
    assert.equal(put.body.set, true);
    assert.equal(put.body.expiresAt, '2099-01-02T00:00:00.000Z');
    assert.ok(!put.text.includes('api-uploaded-1'));
    const get = await api.call('getMyToken', { params: { name: 'uploads' }, as: as('admin') });
    assert.equal(get.body.set, true);
    assert.ok(!get.text.includes('api-uploaded-1'));
    // Someone else's status is their own: another person has none.
    const editorCreds = await api.call('getCredentials', { params: { name: 'uploads' }, as: as('admin') });
    assert.equal(editorCreds.body.uploadedTokens, 1);
    assertError(await api.call('getMyToken', { params: { name: 'currenttime' }, as: as('admin') }), 400, 'REQUEST_INVALID');
    assertError(await api.call('getMyToken', { params: { name: 'uploads' }, as: as('user') }), 404, 'SERVER_UNKNOWN');
    const bad = await api.call('setMyToken', { params: { name: 'uploads' }, body: { token: 'a\r\nInjected: 1' }, as: as('admin') });
    assertError(bad, 400, 'REQUEST_INVALID');
    assert.ok(!bad.text.includes('Injected'));
    const cleared = await api.call('clearMyToken', { params: { name: 'uploads' }, as: as('admin') });
    assert.equal(cleared.status, 200);
    assert.equal(cleared.body.set, false);
    assert.equal((await api.call('deleteServer', { params: { name: 'uploads' }, as: bearer() })).status, 200);
  });

  test("connection: a person's own account at a user_oauth server: GET shows none (and where to connect), DELETE of none is harmless", async () => {
    const backendAuth = { type: 'user_oauth', authorizationServer: 'https://as.example.com', provider: 'Example Cloud' };
    const registered = await api.call('registerServer', { body: definitionOf('oauthy', { backendAuth }), as: bearer() });
    assert.equal(registered.status, 201, registered.text);
    const none = await api.call('getMyConnection', { params: { name: 'oauthy' }, as: as('admin') });
    assert.equal(none.status, 200, none.text);
    assert.deepEqual(none.body, { server: 'oauthy', provider: 'Example Cloud', state: 'none', connectUrl: `${gw.url}/servers/oauthy/connect` });
    const creds = await api.call('getCredentials', { params: { name: 'oauthy' }, as: as('admin') });
    assert.equal(creds.body.connections, 0, creds.text);
    const gone = await api.call('disconnect', { params: { name: 'oauthy' }, as: as('admin') });
    assert.equal(gone.status, 200, gone.text);
    assert.equal(gone.body.state, 'none');
    assert.equal(gone.body.revoked, 'nothing');
    assertError(await api.call('getMyConnection', { params: { name: 'currenttime' }, as: as('admin') }), 400, 'REQUEST_INVALID');
    assertError(await api.call('getMyConnection', { params: { name: 'oauthy' }, as: as('user') }), 404, 'SERVER_UNKNOWN');
    assert.equal((await api.call('deleteServer', { params: { name: 'oauthy' }, as: bearer() })).status, 200);
  });
});

// ---- coverage --------------------------------------------------------------------------------

test('every route in API_ROUTES answered with its success status at least once', () => {
  const missing = API_ROUTES.map((r) => r.operationId).filter((id) => !api.succeeded.has(id));
  assert.deepEqual(missing, []);
  assert.equal(api.succeeded.size, API_ROUTES.length);
});
