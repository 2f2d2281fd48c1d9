import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { serveMcp, type ReceivedRequest, type RunningMcpServer } from '../../../servers/shared/serve-mcp.ts';
import type { ServerDefinition } from '../../src/catalog/server-definition.ts';
import { DEV_MACHINE_CLIENT_ID } from '../../src/identity/dev.ts';
import { ApiClient, machineToken } from './api-client.ts';
import { eventually, startTestGateway, TEST_SECRET_KEY, type TestGateway } from './harness.ts';

/*
 * Issue 12: adding, editing, toggling or removing servers while clients are connected. Routing
 * is the check's (registry/src/nginx/route.ts): nginx is never reloaded for a catalog change,
 * so the open streams of other servers are never cut, a new server (on a backend origin nginx
 * started without, too) answers at once, and a removed one is a 404 at once.
 */

/** A backend whose `announce` tool sends tools/list_changed outside any request: it travels on the session's stream. */
function buildAnnouncer(): McpServer {
  const server = new McpServer({ name: 'announcer', version: '1.0.0' }, { capabilities: { tools: { listChanged: true } } });
  server.registerTool('announce', { description: 'sends notifications/tools/list_changed' }, () => {
    server.sendToolListChanged();
    return { content: [{ type: 'text', text: 'announced' }] };
  });
  return server;
}

let gw: TestGateway;
let api: ApiClient;
let token = '';
let home: RunningMcpServer;
let other: RunningMcpServer;
let third: RunningMcpServer;
const homeSeen: ReceivedRequest[] = [];

const definition = (name: string, url: string, extra: Partial<ServerDefinition> = {}) => ({
  name,
  description: `${name} (catalog-changes test)`,
  url,
  transports: { 'streamable-http': '/mcp', sse: '/sse' },
  enabled: true,
  ...extra,
});

const auth = () => ({ authorization: `Bearer ${token}` });
const reloads = () => gw.errorLog().split('signal 1 (SIGHUP) received').length - 1;
const conf = () => readFileSync(join(gw.gateway.runtimeDir, 'nginx.conf'), 'utf8');

/** Resolves when the catalog announces a list that satisfies `pred` (the event the route table follows). */
function announced(pred: (defs: readonly ServerDefinition[]) => boolean): Promise<void> {
  return new Promise((resolve) => {
    const listener = (defs: readonly ServerDefinition[]) => {
      if (!pred(defs)) return;
      gw.gateway.catalog.off('changed', listener);
      resolve();
    };
    gw.gateway.catalog.on('changed', listener);
  });
}

/** One MCP session through the gateway: initialize, tools/list, close. */
async function works(name: string): Promise<boolean> {
  const client = new Client({ name: 'catalog-changes', version: '1' });
  try {
    await client.connect(new StreamableHTTPClientTransport(new URL(`${gw.url}/api/streamable/${name}`), { requestInit: { headers: auth() } }));
    return (await client.listTools()).tools.some((t) => t.name === 'announce');
  } catch {
    return false;
  } finally {
    await client.close().catch(() => undefined);
  }
}

async function status(name: string): Promise<{ status: number; error: string }> {
  const res = await fetch(`${gw.url}/api/streamable/${name}`, {
    method: 'POST',
    headers: { ...auth(), 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' }),
  });
  const text = await res.text();
  return { status: res.status, error: res.status === 200 ? '' : ((JSON.parse(text) as { error?: string }).error ?? '') };
}

describe('catalog changes while clients are connected', () => {
  before(async () => {
    home = await serveMcp(buildAnnouncer, { port: 0, onRequest: (r) => homeSeen.push(r) });
    other = await serveMcp(buildAnnouncer, { port: 0 });
    third = await serveMcp(buildAnnouncer, { port: 0 });
    gw = await startTestGateway({
      definitions: [definition('home', home.url), definition('neighbour', other.url)],
      mapping: `clients:\n  ${JSON.stringify(DEV_MACHINE_CLIENT_ID)}: ["mcp:registry:admin"]\n`,
    });
    api = new ApiClient(gw.url);
    token = await machineToken(gw.url, TEST_SECRET_KEY);
  });
  after(async () => {
    if (process.exitCode) process.stderr.write(`nginx error.log:\n${gw?.errorLog()}\n`);
    await gw?.[Symbol.asyncDispose]();
    await home?.close();
    await other?.close();
    await third?.close();
  });

  test("add, edit, toggle and delete other servers (one on a new backend origin): home's open streams still deliver, nginx never reloads", async () => {
    // home's Streamable HTTP session with its GET stream, and a legacy SSE session.
    const streamable = new Client({ name: 'streamable', version: '1' });
    const streamableNotes: string[] = [];
    streamable.setNotificationHandler(ToolListChangedNotificationSchema, (n) => void streamableNotes.push(n.method));
    await streamable.connect(new StreamableHTTPClientTransport(new URL(`${gw.url}/api/streamable/home`), { requestInit: { headers: auth() } }));
    await eventually(async () => homeSeen.some((r) => r.method === 'GET' && r.path === '/mcp'));
    const legacy = new Client({ name: 'legacy', version: '1' });
    const legacyNotes: string[] = [];
    legacy.setNotificationHandler(ToolListChangedNotificationSchema, (n) => void legacyNotes.push(n.method));
    await legacy.connect(new SSEClientTransport(new URL(`${gw.url}/api/execute/home/sse`), { requestInit: { headers: auth() } }));
    await eventually(async () => homeSeen.some((r) => r.method === 'GET' && r.path === '/sse'));
    const streamsOpened = () => homeSeen.filter((r) => r.method === 'GET').length;
    const opened = streamsOpened();

    const reloadsBefore = reloads();
    const configBefore = conf();
    try {
      for (let round = 0; round < 3; round++) {
        const extra = `extra-${round}`;
        const added = await api.call('registerServer', { as: { bearer: token }, body: definition(extra, other.url) });
        assert.equal(added.status, 201, added.text);
        assert.equal(added.body.server.routed, true);
        assert.equal(await works(extra), true, `${extra} answers as soon as the API did`);
        // Re-point the neighbour between two backends (home's is never touched), toggle it off and on.
        const target = round % 2 === 0 ? third.url : other.url;
        const edited = await api.call('updateServer', {
          as: { bearer: token },
          params: { name: 'neighbour' },
          body: definition('neighbour', target, { description: `round ${round}` }),
        });
        assert.equal(edited.status, 200, edited.text);
        assert.equal(await works('neighbour'), true);
        assert.equal((await api.call('toggleServer', { as: { bearer: token }, params: { name: 'neighbour' }, body: { enabled: false } })).status, 200);
        assert.deepEqual(await status('neighbour'), { status: 503, error: 'SERVER_DISABLED' });
        assert.equal((await api.call('toggleServer', { as: { bearer: token }, params: { name: 'neighbour' }, body: { enabled: true } })).status, 200);
        const deleted = await api.call('deleteServer', { as: { bearer: token }, params: { name: extra } });
        assert.equal(deleted.status, 200, deleted.text);
        assert.deepEqual(await status(extra), { status: 404, error: 'SERVER_UNKNOWN' }, `${extra} is gone at once`);
      }

      // A backend origin nginx started without, written as a file: serving as soon as the catalog announces it.
      const fresh = await serveMcp(buildAnnouncer, { port: 0 });
      try {
        const seen = announced((defs) => defs.some((d) => d.name === 'fresh'));
        const written = Date.now();
        writeFileSync(join(gw.catalogDir, 'fresh.json'), JSON.stringify(definition('fresh', fresh.url)));
        await seen;
        assert.equal(await works('fresh'), true);
        const took = Date.now() - written;
        assert.ok(took < 1000, `fresh answered ${took} ms after its file was written`);
        await gw.gateway.nginx.settled();
        // Shown (third, where the neighbour moved, too): no upstream keep-alive until a restart.
        assert.deepEqual(gw.gateway.nginx.status().withoutKeepalive, [fresh.url, third.url].sort());
      } finally {
        await fresh.close();
      }

      // home's streams were open throughout, and still deliver what the backend sends on them.
      const viaStream = await streamable.callTool({ name: 'announce', arguments: {} });
      assert.deepEqual(viaStream.content, [{ type: 'text', text: 'announced' }]);
      await eventually(async () => streamableNotes.length === 1);
      // The legacy transport answers everything on its stream: the result itself proves it.
      const viaLegacy = await legacy.callTool({ name: 'announce', arguments: {} });
      assert.deepEqual(viaLegacy.content, [{ type: 'text', text: 'announced' }]);
      await eventually(async () => legacyNotes.length === 1);
      assert.equal(streamsOpened(), opened, 'no stream was reopened');

      assert.equal(reloads(), reloadsBefore, 'nginx was never reloaded');
      assert.equal(conf(), configBefore, 'nor its config re-rendered');
      assert.equal(gw.gateway.nginx.status().lastError, undefined);
    } finally {
      await streamable.close().catch(() => undefined);
      await legacy.close().catch(() => undefined);
    }
  });

  test('a removed server is a 404 at once, for new sessions and for the requests of one already open', async () => {
    const client = new Client({ name: 'doomed', version: '1' });
    const transport = new StreamableHTTPClientTransport(new URL(`${gw.url}/api/streamable/neighbour`), { requestInit: { headers: auth() } });
    await client.connect(transport);
    const session = transport.sessionId ?? '';
    assert.notEqual(session, '');
    try {
      const gone = announced((defs) => !defs.some((d) => d.name === 'neighbour'));
      const deleted = await api.call('deleteServer', { as: { bearer: token }, params: { name: 'neighbour' } });
      assert.equal(deleted.status, 200, deleted.text);
      await gone;
      assert.deepEqual(await status('neighbour'), { status: 404, error: 'SERVER_UNKNOWN' });
      // A request of the session opened before: refused the same way, nothing forwarded.
      const inSession = await fetch(`${gw.url}/api/streamable/neighbour`, {
        method: 'POST',
        headers: { ...auth(), 'mcp-session-id': session, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list' }),
      });
      assert.equal(inSession.status, 404);
      assert.equal(((await inSession.json()) as { error: string }).error, 'SERVER_UNKNOWN');
    } finally {
      await client.close().catch(() => undefined);
    }
  });
});
