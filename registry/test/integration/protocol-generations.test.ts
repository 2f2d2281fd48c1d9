/**
 * Both MCP protocol generations through the real nginx + njs + registry, on one tool-limited
 * user and one full user: the 2026-07-28 revision (no initialize, no sessions, server/discover,
 * subscriptions/listen, Mcp-Method / Mcp-Name headers) with the unmodified v2 SDK client and a
 * v2 SDK backend, and the 2025 revisions (initialize + Mcp-Session-Id) with the SDK 1.x client.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Client as ModernClient, StreamableHTTPClientTransport as ModernTransport } from '@modelcontextprotocol/client';
import { Client as LegacyClient } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport as LegacyTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { ReceivedRequest } from '../../../servers/shared/serve-mcp.ts';
import { startTestGateway, type TestGateway } from './harness.ts';
import { login } from './login.ts';
import { serveModern, type RunningModernServer } from './modern-server.ts';

const V = '2026-07-28';
const USERS = [
  { username: 'one-tool', password: 'pw-tool', groups: ['mcp-server-modern-tool-echo', 'mcp-server-currenttime-tool-current_time_by_timezone'] },
  { username: 'full', password: 'pw-full', groups: ['mcp-server-modern', 'mcp-server-currenttime'] },
  { username: 'nothing', password: 'pw-none', groups: [] },
];

let gw: TestGateway;
let modern: RunningModernServer;
const modernReceived: ReceivedRequest[] = [];
const cookies: Record<string, string> = {};

before(async () => {
  modern = await serveModern((r) => modernReceived.push(r));
  gw = await startTestGateway({
    definitions: [{ name: 'modern', url: modern.url, transports: { 'streamable-http': '/mcp' }, enabled: true }],
    users: USERS,
  });
  for (const u of USERS) cookies[u.username] = (await login(gw.url, u.username, u.password)).cookie;
});

after(async () => {
  if (process.exitCode) process.stderr.write(`nginx error.log:\n${gw?.errorLog()}\n`);
  await gw?.[Symbol.asyncDispose]();
  await modern?.close();
});

const endpoint = (server: string) => new URL(`${gw.url}/api/streamable/${server}`);
const text = (result: unknown) => (result as { content: Array<{ text?: string }> }).content[0]?.text ?? '';
const calls = (received: readonly ReceivedRequest[], tool: string) =>
  received.filter(
    (r) =>
      (r.body as { method?: string; params?: { name?: string } } | undefined)?.method === 'tools/call' &&
      (r.body as { params: { name?: string } }).params.name === tool,
  ).length;

/** The unmodified v2 client, negotiating as a 2026-07-28 client would ('auto': server/discover first). */
async function connectModern(server: string, user: string): Promise<ModernClient> {
  const client = new ModernClient({ name: 'generations', version: '1.0.0' }, { versionNegotiation: { mode: 'auto' } });
  await client.connect(new ModernTransport(endpoint(server), { requestInit: { headers: { cookie: cookies[user] ?? '' } } }));
  return client;
}

async function connectLegacy(server: string, user: string): Promise<LegacyClient> {
  const client = new LegacyClient({ name: 'generations-1x', version: '1.0.0' });
  await client.connect(new LegacyTransport(endpoint(server), { requestInit: { headers: { cookie: cookies[user] ?? '' } } }));
  return client;
}

/** A raw 2026-07-28 POST (for what an unmodified client never sends). */
async function rawModern(user: string, body: Record<string, unknown>, headers: Record<string, string>): Promise<Response> {
  const params = {
    ...((body['params'] as Record<string, unknown> | undefined) ?? {}),
    _meta: {
      'io.modelcontextprotocol/protocolVersion': V,
      'io.modelcontextprotocol/clientInfo': { name: 'raw', version: '1' },
      'io.modelcontextprotocol/clientCapabilities': {},
    },
  };
  return fetch(endpoint('modern'), {
    method: 'POST',
    headers: {
      cookie: cookies[user] ?? '',
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': V,
      ...headers,
    },
    body: JSON.stringify({ jsonrpc: '2.0', ...body, params }),
  });
}

describe('MCP 2026-07-28 (v2 client, v2 backend)', () => {
  test('one-tool: server/discover works; tools/list shows only echo; echo works; add is refused 403 naming its scope and never reaches the backend', async () => {
    const client = await connectModern('modern', 'one-tool');
    try {
      assert.equal(client.getProtocolEra(), 'modern');
      assert.deepEqual(client.getDiscoverResult()?.supportedVersions, [V]);
      assert.ok(
        modernReceived.some((r) => r.headers['mcp-method'] === 'server/discover'),
        'the probe reached the backend',
      );
      assert.deepEqual(
        (await client.listTools()).tools.map((t) => t.name),
        ['echo'],
      );
      assert.equal(text(await client.callTool({ name: 'echo', arguments: { message: 'hi' } })), 'Echo: hi');
      const before = modernReceived.length;
      await assert.rejects(client.callTool({ name: 'add', arguments: { a: 1, b: 2 } }), /mcp:server:modern:tool:add:execute/);
      await assert.rejects(client.callTool({ name: 'secret_admin', arguments: {} }), /mcp:server:modern:tool:secret_admin:execute/);
      assert.equal(modernReceived.length, before, 'no refused request reached the backend');
      assert.ok(!modernReceived.some((r) => r.headers['mcp-session-id'] !== undefined), 'no session on the new generation');
    } finally {
      await client.close();
    }
  });

  test('one-tool: subscriptions/listen for tool-list changes streams them; for resource changes it is refused naming resources:read', async () => {
    const client = await connectModern('modern', 'one-tool');
    try {
      let changes = 0;
      client.setNotificationHandler('notifications/tools/list_changed', () => void changes++);
      const subscription = await client.listen({ toolsListChanged: true });
      assert.deepEqual(subscription.honoredFilter, { toolsListChanged: true });
      modern.handler.notify.toolsChanged();
      const start = Date.now();
      while (changes === 0 && Date.now() - start < 2000) await new Promise((r) => setTimeout(r, 20));
      assert.equal(changes, 1, 'the change notification came through the filtered stream');
      assert.deepEqual(
        (await client.listTools()).tools.map((t) => t.name),
        ['echo'],
        'and the re-listed tools are filtered',
      );
      await subscription.close();
      const before = modernReceived.length;
      await assert.rejects(client.listen({ resourcesListChanged: true }), /mcp:server:modern:resources:read/);
      await assert.rejects(client.listen({ toolsListChanged: true, resourceSubscriptions: ['modern://x'] }), /mcp:server:modern:resources:read/);
      assert.equal(modernReceived.length, before);
    } finally {
      await client.close();
    }
  });

  test('full: every tool listed and callable; listen for every family allowed', async () => {
    const client = await connectModern('modern', 'full');
    try {
      assert.deepEqual((await client.listTools()).tools.map((t) => t.name).sort(), ['add', 'echo', 'secret_admin']);
      assert.equal(text(await client.callTool({ name: 'add', arguments: { a: 2, b: 3 } })), '5');
      assert.equal(text(await client.callTool({ name: 'secret_admin', arguments: {} })), 'admin');
      const subscription = await client.listen({ toolsListChanged: true, promptsListChanged: true, resourcesListChanged: true });
      assert.equal(subscription.honoredFilter.toolsListChanged, true);
      await subscription.close();
    } finally {
      await client.close();
    }
  });

  test('nothing: server/discover and subscriptions/listen are refused 403 and reach no backend', async () => {
    const before = modernReceived.length;
    for (const [method, params] of [
      ['server/discover', {}],
      ['subscriptions/listen', { notifications: {} }],
    ] as const) {
      const res = await rawModern('nothing', { id: 1, method, params }, { 'mcp-method': method });
      assert.equal(res.status, 403, method);
      const answer = (await res.json()) as { error: { code: number; data: { missing_scope: string } } };
      assert.equal(answer.error.data.missing_scope, 'mcp:server:modern:execute', method);
    }
    await assert.rejects(connectModern('modern', 'nothing'));
    assert.equal(modernReceived.length, before);
  });

  test("a filtered tools/list says cacheScope private; the full user's unfiltered one keeps the backend's public", async () => {
    const scopes: Record<string, unknown> = {};
    for (const user of ['one-tool', 'full']) {
      const res = await rawModern(user, { id: 3, method: 'tools/list' }, { 'mcp-method': 'tools/list' });
      assert.equal(res.status, 200, user);
      const answer = (await res.json()) as { result: { tools: unknown[]; cacheScope: string; ttlMs: number } };
      scopes[user] = [answer.result.cacheScope, answer.result.tools.length];
    }
    assert.deepEqual(scopes, { 'one-tool': ['private', 1], full: ['public', 3] });
  });

  test('a header/body mismatch is refused with 400 and -32020, and nothing reaches the backend', async () => {
    const before = modernReceived.length;
    const cases: Array<[string, Record<string, unknown>, Record<string, string>]> = [
      [
        'Mcp-Name names the permitted tool, the body another',
        { id: 5, method: 'tools/call', params: { name: 'add', arguments: { a: 1, b: 1 } } },
        { 'mcp-method': 'tools/call', 'mcp-name': 'echo' },
      ],
      [
        'Mcp-Method says tools/list, the body calls a tool',
        { id: 6, method: 'tools/call', params: { name: 'echo', arguments: { message: 'x' } } },
        { 'mcp-method': 'tools/list', 'mcp-name': 'echo' },
      ],
      [
        'Mcp-Name missing on a 2026-07-28 tools/call',
        { id: 7, method: 'tools/call', params: { name: 'echo', arguments: { message: 'x' } } },
        { 'mcp-method': 'tools/call' },
      ],
      ['Mcp-Method missing on a 2026-07-28 request', { id: 8, method: 'tools/list' }, {}],
    ];
    for (const [what, body, headers] of cases) {
      for (const user of ['one-tool', 'full']) {
        const res = await rawModern(user, body, headers);
        assert.equal(res.status, 400, `${user}: ${what}`);
        const answer = (await res.json()) as { id: unknown; error: { code: number; message: string; data: { error: string } } };
        assert.equal(answer.error.code, -32020, `${user}: ${what}`);
        assert.equal(answer.id, body['id'], what);
        assert.match(answer.error.message, /^Header mismatch: /);
        assert.equal(answer.error.data.error, 'MCP_HEADER_MISMATCH');
      }
    }
    assert.equal(modernReceived.length, before, 'no mismatched request reached the backend');
    const agreed = await rawModern(
      'one-tool',
      { id: 9, method: 'tools/call', params: { name: 'echo', arguments: { message: 'ok' } } },
      { 'mcp-method': 'tools/call', 'mcp-name': 'echo' },
    );
    const reply = await agreed.text();
    assert.equal(agreed.status, 200, `the same request with agreeing headers passes: ${reply}`);
    assert.match(reply, /Echo: ok/);
  });
});

describe('the 2025 generation on the same users', () => {
  test('one-tool with the SDK 1.x client on currenttime: initialize and a session, its one tool listed and called', async () => {
    const client = await connectLegacy('currenttime', 'one-tool');
    try {
      assert.deepEqual(
        (await client.listTools()).tools.map((t) => t.name),
        ['current_time_by_timezone'],
      );
      assert.match(text(await client.callTool({ name: 'current_time_by_timezone', arguments: { tz_name: 'Europe/Berlin' } })), /Europe\/Berlin/);
      assert.ok(gw.received.some((r) => (r.body as { method?: string } | undefined)?.method === 'initialize'));
      assert.ok(
        gw.received.some((r) => typeof r.headers['mcp-session-id'] === 'string'),
        'the session id went through',
      );
    } finally {
      await client.close();
    }
  });

  test('one-tool with the SDK 1.x client on the v2 backend (its 2025 fallback): only echo, add refused', async () => {
    const client = await connectLegacy('modern', 'one-tool');
    try {
      assert.deepEqual(
        (await client.listTools()).tools.map((t) => t.name),
        ['echo'],
      );
      assert.equal(text(await client.callTool({ name: 'echo', arguments: { message: 'old' } })), 'Echo: old');
      const before = calls(modernReceived, 'add');
      await assert.rejects(client.callTool({ name: 'add', arguments: { a: 1, b: 2 } }), /mcp:server:modern:tool:add:execute/);
      assert.equal(calls(modernReceived, 'add'), before);
    } finally {
      await client.close();
    }
  });

  test('one-tool with the v2 client on currenttime: server/discover is refused by the old backend, it falls back to initialize', async () => {
    const client = await connectModern('currenttime', 'one-tool');
    try {
      assert.equal(client.getProtocolEra(), 'legacy');
      assert.deepEqual(
        (await client.listTools()).tools.map((t) => t.name),
        ['current_time_by_timezone'],
      );
      assert.match(text(await client.callTool({ name: 'current_time_by_timezone', arguments: { tz_name: 'UTC' } })), /UTC/);
    } finally {
      await client.close();
    }
  });
});
