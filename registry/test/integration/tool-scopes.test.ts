import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { startEverything, type RunningEverything } from '../../../servers/everything/run-everything.ts';
import { buildServer as buildFininfo } from '../../../servers/fininfo/server.ts';
import { serveMcp, type ReceivedRequest, type RunningMcpServer } from '../../../servers/shared/serve-mcp.ts';
import { ADMIN_PASSWORD, startTestGateway, type TestGateway } from './harness.ts';
import { login } from './login.ts';
import { buildPagedServer } from './paged-server.ts';

type TransportName = 'streamable-http' | 'sse';
const TRANSPORTS: TransportName[] = ['streamable-http', 'sse'];

let gw: TestGateway;
let fininfo: RunningMcpServer;
let paged: RunningMcpServer;
let everything: RunningEverything;
let everythingSse: RunningEverything;
const fininfoReceived: ReceivedRequest[] = [];
const cookies: Record<string, string> = {};

const USERS = [
  { username: 'full', password: 'pw-full', groups: ['mcp-server-fininfo', 'mcp-server-paged', 'mcp-server-everything', 'mcp-server-everything-sse'] },
  {
    username: 'one-tool',
    password: 'pw-tool',
    groups: [
      'mcp-server-fininfo-tool-get_stock_aggregates',
      'mcp-server-paged-tool-p3',
      'mcp-server-everything-tool-echo',
      'mcp-server-everything-sse-tool-echo',
    ],
  },
  { username: 'nothing', password: 'pw-none', groups: [] },
  { username: 'reader', password: 'pw-read', groups: ['mcp-server-fininfo-resources', 'mcp-server-fininfo-prompts'] },
];

before(async () => {
  fininfo = await serveMcp(buildFininfo, { port: 0, onRequest: (r) => fininfoReceived.push(r) });
  paged = await serveMcp(buildPagedServer, { port: 0 });
  everything = await startEverything({ transport: 'streamable-http' });
  everythingSse = await startEverything({ transport: 'sse' });
  const both = { 'streamable-http': '/mcp', sse: '/sse' };
  gw = await startTestGateway({
    definitions: [
      { name: 'fininfo', url: fininfo.url, transports: both, enabled: true },
      { name: 'paged', url: paged.url, transports: both, enabled: true },
      { name: 'everything', url: everything.url, transports: { 'streamable-http': '/mcp' }, enabled: true },
      { name: 'everything-sse', url: everythingSse.url, transports: { sse: '/sse' }, enabled: true },
    ],
    users: USERS,
  });
  for (const u of USERS) cookies[u.username] = (await login(gw.url, u.username, u.password)).cookie;
  cookies['admin'] = (await login(gw.url, 'admin', ADMIN_PASSWORD)).cookie;
});

after(async () => {
  if (process.exitCode) process.stderr.write(`nginx error.log:\n${gw?.errorLog()}\n`);
  await gw?.[Symbol.asyncDispose]();
  await Promise.all([fininfo?.close(), paged?.close(), everything?.close(), everythingSse?.close()]);
});

function transportFor(server: string, transport: TransportName, cookie: string) {
  const init = { requestInit: { headers: { cookie } } };
  return transport === 'streamable-http'
    ? new StreamableHTTPClientTransport(new URL(`${gw.url}/api/streamable/${server}`), init)
    : new SSEClientTransport(new URL(`${gw.url}/api/execute/${server}/sse`), init);
}

async function connect(server: string, transport: TransportName, user: string): Promise<Client> {
  const client = new Client({ name: 'matrix', version: '1.0.0' });
  await client.connect(transportFor(server, transport, cookies[user] ?? ''));
  return client;
}

const text = (result: unknown) => (result as { content: Array<{ text?: string }> }).content[0]?.text ?? '';

/** A raw JSON-RPC POST, for users whose `initialize` is already refused. */
async function rawPost(server: string, transport: TransportName, user: string, body: unknown): Promise<Response> {
  const path = transport === 'streamable-http' ? `/api/streamable/${server}` : `/api/execute/${server}/messages?sessionId=00000000-0000-0000-0000-000000000000`;
  return fetch(`${gw.url}${path}`, {
    method: 'POST',
    headers: { cookie: cookies[user] ?? '', 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify(body),
  });
}

const ALL_FININFO_TOOLS = ['get-market.status', 'get_company_overview', 'get_stock_aggregates', 'print_stuff'];
const call = (name: string, args: Record<string, unknown> = {}) => ({ name, arguments: args });

for (const transport of TRANSPORTS) {
  describe(`matrix on ${transport}`, () => {
    for (const user of ['full', 'admin']) {
      test(`${user}: initialize, every tool listed and callable, resources/read and prompts/get allowed`, async () => {
        const client = await connect('fininfo', transport, user);
        try {
          assert.deepEqual((await client.listTools()).tools.map((t) => t.name).sort(), ALL_FININFO_TOOLS);
          assert.match(text(await client.callTool(call('get_stock_aggregates', { ticker: 'AAPL' }))), /AAPL/);
          assert.match(text(await client.callTool(call('print_stuff', { stuff: 'hello' }))), /hello/);
          assert.ok((await client.readResource({ uri: 'fininfo://tickers' })).contents.length > 0);
          assert.ok((await client.getPrompt({ name: 'analyze_ticker', arguments: { ticker: 'MSFT' } })).messages.length > 0);
        } finally {
          await client.close();
        }
      });
    }

    test('one-tool: initialize; tools/list shows only get_stock_aggregates; that call works; every other call, resources/read and prompts/get are refused naming the scope', async () => {
      const client = await connect('fininfo', transport, 'one-tool');
      try {
        assert.deepEqual(
          (await client.listTools()).tools.map((t) => t.name),
          ['get_stock_aggregates'],
        );
        assert.match(text(await client.callTool(call('get_stock_aggregates', { ticker: 'NVDA' }))), /NVDA/);
        const before = fininfoReceived.length;
        await assert.rejects(client.callTool(call('print_stuff', { stuff: 'x' })), /mcp:server:fininfo:tool:print_stuff:execute/);
        await assert.rejects(client.callTool(call('get-market.status')), /mcp:server:fininfo:tool:get-market\.status:execute/);
        await assert.rejects(client.readResource({ uri: 'fininfo://tickers' }), /mcp:server:fininfo:resources:read/);
        await assert.rejects(client.getPrompt({ name: 'analyze_ticker', arguments: { ticker: 'X' } }), /mcp:server:fininfo:prompts:read/);
        assert.equal(fininfoReceived.length, before, 'no refused request reached the backend');
      } finally {
        await client.close();
      }
    });

    test('nothing: every method is refused with 403 and reaches no backend', async () => {
      const before = fininfoReceived.length;
      const bodies = [
        { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'x', version: '1' } } },
        { jsonrpc: '2.0', id: 2, method: 'tools/list' },
        { jsonrpc: '2.0', id: 3, method: 'tools/call', params: call('get_stock_aggregates', { ticker: 'AAPL' }) },
        { jsonrpc: '2.0', id: 4, method: 'tools/call', params: call('print_stuff') },
        { jsonrpc: '2.0', id: 5, method: 'resources/read', params: { uri: 'fininfo://tickers' } },
        { jsonrpc: '2.0', id: 6, method: 'prompts/get', params: { name: 'analyze_ticker', arguments: { ticker: 'X' } } },
      ];
      for (const body of bodies) {
        const res = await rawPost('fininfo', transport, 'nothing', body);
        assert.equal(res.status, 403, body.method);
        const answer = (await res.json()) as { id: number; error: { code: number; data: { missing_scope: string } } };
        assert.equal(answer.id, body.id, 'the JSON-RPC error carries the request id');
        assert.equal(answer.error.code, -32001);
        assert.match(answer.error.data.missing_scope, /^mcp:server:fininfo:/);
      }
      if (transport === 'sse') {
        const stream = await fetch(`${gw.url}/api/execute/fininfo/sse`, { headers: { cookie: cookies['nothing'] ?? '' } });
        assert.equal(stream.status, 403, 'no SSE stream without a scope on the server');
        await stream.body?.cancel();
      }
      assert.equal(fininfoReceived.length, before);
    });

    test('reader (resources + prompts groups): resources/read and prompts/get work, tools are refused', async () => {
      const client = await connect('fininfo', transport, 'reader');
      try {
        assert.ok((await client.readResource({ uri: 'fininfo://tickers' })).contents.length > 0);
        assert.ok((await client.getPrompt({ name: 'analyze_ticker', arguments: { ticker: 'MSFT' } })).messages.length > 0);
        await assert.rejects(client.listTools(), /mcp:server:fininfo:execute/);
        await assert.rejects(client.callTool(call('get_stock_aggregates', { ticker: 'AAPL' })), /mcp:server:fininfo:tool:get_stock_aggregates:execute/);
      } finally {
        await client.close();
      }
    });

    test('a paged tools/list is filtered page by page, cursors kept', async () => {
      const client = await connect('paged', transport, 'one-tool');
      try {
        const seen: string[] = [];
        let cursor: string | undefined;
        let pages = 0;
        do {
          const page = await client.listTools(cursor === undefined ? {} : { cursor });
          seen.push(...page.tools.map((t) => t.name));
          cursor = page.nextCursor;
          pages++;
        } while (cursor !== undefined && pages < 10);
        assert.equal(pages, 3, 'all three pages were walked');
        assert.deepEqual(seen, ['p3']);
      } finally {
        await client.close();
      }
    });
  });
}

describe('the unmodified server-everything behind the gateway', () => {
  for (const [server, transport] of [
    ['everything', 'streamable-http'],
    ['everything-sse', 'sse'],
  ] as const) {
    test(`${server}: the one-tool user sees and calls only echo; full access sees every tool, resource and prompt`, async () => {
      const limited = await connect(server, transport, 'one-tool');
      try {
        assert.deepEqual(
          (await limited.listTools()).tools.map((t) => t.name),
          ['echo'],
        );
        assert.equal(text(await limited.callTool(call('echo', { message: 'hi' }))), 'Echo: hi');
        await assert.rejects(limited.callTool(call('get-sum', { a: 1, b: 2 })), new RegExp(`mcp:server:${server}:tool:get-sum:execute`));
        await assert.rejects(limited.listResources(), new RegExp(`mcp:server:${server}:resources:read`));
      } finally {
        await limited.close();
      }
      const full = await connect(server, transport, 'full');
      try {
        assert.ok((await full.listTools()).tools.length > 5);
        assert.ok((await full.listResources()).resources.length > 0);
        assert.ok((await full.getPrompt({ name: 'simple-prompt' })).messages.length > 0);
      } finally {
        await full.close();
      }
    });
  }
});

describe('audit log', () => {
  test('every decision, allow and deny, is a JSON line with user, server, method, tool, decision and missing scope, and no secrets', async () => {
    await gw.gateway.audit.flush();
    const lines = readFileSync(gw.gateway.auditFile, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const denied = lines.find((l) => l['user'] === 'one-tool' && l['tool'] === 'print_stuff');
    assert.ok(denied, 'the refused print_stuff call is audited');
    assert.equal(denied['decision'], 'deny');
    assert.equal(denied['status'], 403);
    assert.equal(denied['missingScope'], 'mcp:server:fininfo:tool:print_stuff:execute');
    assert.equal(denied['method'], 'tools/call');
    assert.equal(denied['server'], 'fininfo');
    assert.match(String(denied['requestId']), /^[0-9a-f]{32}$/);
    assert.ok(lines.some((l) => l['user'] === 'one-tool' && l['tool'] === 'get_stock_aggregates' && l['decision'] === 'allow'));
    const raw = readFileSync(gw.gateway.auditFile, 'utf8');
    for (const secret of Object.values(cookies)) assert.ok(!raw.includes(secret.split('=')[1] ?? '!'), 'no cookie in the audit log');
  });
});
