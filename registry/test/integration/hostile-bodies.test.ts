import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { buildServer as buildFininfo } from '../../../servers/fininfo/server.ts';
import { serveMcp, type ReceivedRequest, type RunningMcpServer } from '../../../servers/shared/serve-mcp.ts';
import { startTestGateway, type TestGateway } from './harness.ts';
import { login } from './login.ts';

/*
 * "The bytes authorized are the bytes forwarded." Each case is sent by a user who may call one
 * tool of fininfo (get_stock_aggregates) and nothing else. The fininfo backend records what it
 * receives: a refused case must reach it not at all, an allowed one exactly as sent.
 */

let gw: TestGateway;
let fininfo: RunningMcpServer;
const received: ReceivedRequest[] = [];
let cookie = '';

before(async () => {
  fininfo = await serveMcp(buildFininfo, { port: 0, onRequest: (r) => received.push(r) });
  gw = await startTestGateway({
    definitions: [{ name: 'fininfo', url: fininfo.url, transports: { 'streamable-http': '/mcp', sse: '/sse' }, enabled: true }],
    users: [{ username: 'one-tool', password: 'pw-tool', groups: ['mcp-server-fininfo-tool-get_stock_aggregates'] }],
  });
  cookie = (await login(gw.url, 'one-tool', 'pw-tool')).cookie;
});

after(async () => {
  if (process.exitCode) process.stderr.write(`nginx error.log:\n${gw?.errorLog()}\n`);
  await gw?.[Symbol.asyncDispose]();
  await fininfo?.close();
});

const allowed = { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'get_stock_aggregates', arguments: { ticker: 'AAPL' } } };
const forbidden = { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'print_stuff', arguments: { stuff: 'x' } } };
const json = (value: unknown) => JSON.stringify(value);
const nested = (depth: number) =>
  `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_stock_aggregates","arguments":${'['.repeat(depth)}${']'.repeat(depth)}}}`;

interface Case {
  readonly name: string;
  readonly body: string | Buffer;
  readonly status: number;
  readonly headers?: Record<string, string>;
  /** For allowed cases: the tools/call name the backend must receive. */
  readonly reaches?: string;
  /** The JSON-RPC error code in the refusal, where there is one. */
  readonly code?: number;
}

const CASES: Case[] = [
  { name: 'the allowed call, as a baseline', body: json(allowed), status: 400, reaches: 'get_stock_aggregates' },
  { name: 'a forbidden call', body: json(forbidden), status: 403, code: -32001 },
  {
    name: 'oversized body (> client_max_body_size)',
    body: json({ ...allowed, params: { ...allowed.params, arguments: { pad: 'x'.repeat(1_100_000) } } }),
    status: 413,
  },
  { name: 'truncated JSON', body: json(forbidden).slice(0, -3), status: 400, code: -32700 },
  { name: 'trailing garbage after the object', body: `${json(allowed)}xyz`, status: 400, code: -32700 },
  { name: 'two objects back to back', body: `${json(allowed)}${json(forbidden)}`, status: 400, code: -32700 },
  { name: 'batch smuggling: allowed then forbidden', body: json([allowed, forbidden]), status: 403 },
  { name: 'batch smuggling: initialize then forbidden', body: json([{ jsonrpc: '2.0', id: 9, method: 'initialize', params: {} }, forbidden]), status: 403 },
  { name: 'batch smuggling: a response then forbidden', body: json([{ jsonrpc: '2.0', id: 9, result: {} }, forbidden]), status: 403 },
  { name: 'empty batch', body: '[]', status: 400, code: -32600 },
  { name: 'batch of 101 pings', body: json(Array.from({ length: 101 }, (_, i) => ({ jsonrpc: '2.0', id: i, method: 'ping' }))), status: 400, code: -32600 },
  {
    name: 'duplicate "method" keys (initialize, then tools/call)',
    body: '{"jsonrpc":"2.0","id":1,"method":"initialize","method":"tools/call","params":{"name":"print_stuff"}}',
    status: 400,
    code: -32700,
  },
  {
    name: 'duplicate "name" keys in params',
    body: '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_stock_aggregates","name":"print_stuff"}}',
    status: 400,
    code: -32700,
  },
  {
    name: 'duplicate key spelled with a unicode escape',
    body: '{"jsonrpc":"2.0","id":1,"method":"tools/call","m\\u0065thod":"initialize","params":{"name":"print_stuff"}}',
    status: 400,
    code: -32700,
  },
  {
    name: 'duplicate name key hidden by an escape',
    body: '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_stock_aggregates","n\\u0061me":"print_stuff"}}',
    status: 400,
    code: -32700,
  },
  { name: 'method in odd casing: Tools/call', body: json({ ...forbidden, method: 'Tools/call' }), status: 403 },
  { name: 'method in odd casing: TOOLS/CALL on the allowed tool', body: json({ ...allowed, method: 'TOOLS/CALL' }), status: 403 },
  { name: 'method with a trailing space', body: json({ ...allowed, method: 'tools/call ' }), status: 403 },
  { name: 'method with a NUL byte', body: json({ ...allowed, method: 'tools/call\u0000' }), status: 403 },
  {
    name: 'key in odd casing: "Method" and no "method"',
    body: '{"jsonrpc":"2.0","id":1,"Method":"tools/call","params":{"name":"print_stuff"}}',
    status: 400,
    code: -32600,
  },
  { name: 'params key "Name" instead of "name"', body: json({ ...forbidden, params: { Name: 'print_stuff' } }), status: 403 },
  {
    name: 'unicode escapes in the allowed tool name',
    body: '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get\\u005fstock\\u005faggregates","arguments":{"ticker":"AAPL"}}}',
    status: 400,
    reaches: 'get_stock_aggregates',
  },
  {
    name: 'unicode escapes spelling a forbidden tool',
    body: '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"print\\u005fstuff"}}',
    status: 403,
  },
  { name: 'tool name with a Cyrillic look-alike', body: json({ ...allowed, params: { name: 'get_stоck_aggregates' } }), status: 403 },
  { name: 'tool name with a trailing space', body: json({ ...allowed, params: { name: 'get_stock_aggregates ' } }), status: 403 },
  { name: 'params.name is a number', body: json({ ...allowed, params: { name: 123 } }), status: 403 },
  { name: 'params.name is an array', body: json({ ...allowed, params: { name: ['get_stock_aggregates'] } }), status: 403 },
  { name: 'params.name is an object', body: json({ ...allowed, params: { name: { toString: 'get_stock_aggregates' } } }), status: 403 },
  { name: 'params.name is null', body: json({ ...allowed, params: { name: null } }), status: 403 },
  {
    name: '__proto__ in params does not supply the name',
    body: '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"__proto__":{"name":"get_stock_aggregates"},"name":"print_stuff"}}',
    status: 403,
  },
  { name: 'params is a string', body: json({ ...forbidden, params: 'print_stuff' }), status: 400, code: -32600 },
  { name: 'method is an array', body: json({ ...forbidden, method: ['tools/call'] }), status: 400, code: -32600 },
  { name: 'jsonrpc is "1.0"', body: json({ ...forbidden, jsonrpc: '1.0' }), status: 400, code: -32600 },
  { name: 'jsonrpc is missing', body: json({ id: 1, method: 'tools/call', params: { name: 'print_stuff' } }), status: 400, code: -32600 },
  { name: 'a response that also carries a method', body: json({ ...forbidden, result: {} }), status: 403 },
  { name: 'body is a JSON string', body: '"tools/call"', status: 400, code: -32600 },
  { name: 'body is null', body: 'null', status: 400, code: -32600 },
  { name: 'empty body', body: '', status: 400, code: -32600 },
  { name: 'UTF-8 byte order mark before the object', body: `\ufeff${json(forbidden)}`, status: 400, code: -32700 },
  {
    name: 'non-UTF-8 bytes in a string',
    body: Buffer.concat([
      Buffer.from('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"print_stuff","x":"'),
      Buffer.from([0xff, 0xfe]),
      Buffer.from('"}}'),
    ]),
    status: 400,
    code: -32700,
  },
  {
    name: 'overlong UTF-8 encoding of "_" in the tool name',
    body: Buffer.concat([
      Buffer.from('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get'),
      Buffer.from([0xc1, 0x9f]),
      Buffer.from('stock_aggregates"}}'),
    ]),
    status: 400,
    code: -32700,
  },
  { name: 'deep nesting: 32 levels in all (njs parses 31)', body: nested(30), status: 400, code: -32700 },
  { name: 'deep nesting: 100000 levels of arrays', body: nested(100_000), status: 400, code: -32700 },
  { name: 'nesting at the limit (31 levels) is fine', body: nested(29), status: 400, reaches: 'get_stock_aggregates' },
  { name: 'Mcp-Method header disagrees with the body', body: json(forbidden), headers: { 'mcp-method': 'tools/list' }, status: 400, code: -32020 },
  {
    name: 'Mcp-Name header names the allowed tool, body calls another',
    body: json(forbidden),
    headers: { 'mcp-method': 'tools/call', 'mcp-name': 'get_stock_aggregates' },
    status: 400,
    code: -32020,
  },
  {
    name: 'Mcp-Name header on a method without a name',
    body: json({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
    headers: { 'mcp-name': 'x' },
    status: 400,
    code: -32020,
  },
  { name: 'Mcp-Method header on a batch', body: json([allowed]), headers: { 'mcp-method': 'tools/call' }, status: 400, code: -32020 },
  {
    name: 'Mcp-Name in Base64 names the allowed tool, body calls another',
    body: json(forbidden),
    headers: { 'mcp-method': 'tools/call', 'mcp-name': `=?base64?${Buffer.from('get_stock_aggregates').toString('base64')}?=` },
    status: 400,
    code: -32020,
  },
  {
    name: 'MCP 2026-07-28 tools/call without Mcp-Name',
    body: json({ ...forbidden, params: { name: 'print_stuff', _meta: { 'io.modelcontextprotocol/protocolVersion': '2026-07-28' } } }),
    headers: { 'mcp-protocol-version': '2026-07-28', 'mcp-method': 'tools/call' },
    status: 400,
    code: -32020,
  },
  { name: 'MCP 2026-07-28 batch', body: json([allowed]), headers: { 'mcp-protocol-version': '2026-07-28' }, status: 400, code: -32600 },
  {
    name: 'Mcp-Method and Mcp-Name that agree',
    body: json(allowed),
    headers: { 'mcp-method': 'tools/call', 'mcp-name': 'get_stock_aggregates' },
    status: 400,
    reaches: 'get_stock_aggregates',
  },
];

async function send(path: string, c: Case): Promise<Response> {
  return fetch(`${gw.url}${path}`, {
    method: 'POST',
    headers: { cookie, 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...c.headers },
    body: c.body,
  });
}

describe('hostile request bodies', () => {
  test('the corpus has at least 30 cases', () => assert.ok(CASES.length >= 30, String(CASES.length)));

  for (const c of CASES) {
    test(`${c.name}: ${c.status}${c.reaches ? `, backend receives ${c.reaches}` : ', backend receives nothing'}`, async () => {
      const before = received.length;
      // No Mcp-Session-Id: a request that gets through is answered 400 by the backend itself,
      // which is fine: what matters is what reached it.
      const res = await send('/api/streamable/fininfo', c);
      const text = await res.text();
      assert.equal(res.status, c.status, text.slice(0, 300));
      const arrived = received.slice(before);
      if (c.reaches) {
        assert.equal(arrived.length, 1);
        const body = arrived[0]?.body as { method: string; params: { name: string } };
        assert.equal(body.method, 'tools/call');
        assert.equal(body.params.name, c.reaches);
      } else {
        assert.deepEqual(arrived, [], 'nothing reached the backend');
        assert.match(res.headers.get('content-type') ?? '', /application\/json/);
        if (c.code !== undefined) assert.equal((JSON.parse(text) as { error: { code: number } }).error.code, c.code);
      }
    });
  }

  test('a chunked body is read whole and checked like any other', async () => {
    const before = received.length;
    const chunks = [json(forbidden).slice(0, 20), json(forbidden).slice(20)];
    const stream = new ReadableStream({
      pull(controller) {
        const next = chunks.shift();
        if (next === undefined) controller.close();
        else controller.enqueue(new TextEncoder().encode(next));
      },
    });
    const res = await fetch(`${gw.url}/api/streamable/fininfo`, {
      method: 'POST',
      headers: { cookie, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: stream,
      duplex: 'half',
    } as RequestInit);
    assert.equal(res.status, 403);
    assert.equal(received.length, before);
  });

  test('the legacy /messages endpoint gets the same checks', async () => {
    const before = received.length;
    for (const c of CASES.filter((x) => !x.reaches && x.status !== 413)) {
      const res = await send('/api/execute/fininfo/messages?sessionId=00000000-0000-0000-0000-000000000000', c);
      assert.equal(res.status, c.status, `${c.name} on /messages`);
    }
    assert.equal(received.length, before);
  });
});
