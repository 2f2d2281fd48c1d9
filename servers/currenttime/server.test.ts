import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { serveMcp, type ReceivedRequest, type RunningMcpServer } from '../shared/serve-mcp.ts';
import { buildServer, formatInTimeZone, TOOL_NAME } from './server.ts';

const transports: Record<string, (base: string) => Transport> = {
  'Streamable HTTP': (base) => new StreamableHTTPClientTransport(new URL(`${base}/mcp`)),
  'legacy HTTP+SSE': (base) => new SSEClientTransport(new URL(`${base}/sse`)),
};

let running: RunningMcpServer;
const received: ReceivedRequest[] = [];

before(async () => {
  running = await serveMcp(buildServer, { onRequest: (info) => received.push(info) });
});
after(async () => {
  await running.close();
});

function firstText(result: CallToolResult): string {
  const item = result.content[0];
  assert.equal(item?.type, 'text');
  return item.text;
}

async function connectedClient(makeTransport: (base: string) => Transport): Promise<Client> {
  const client = new Client({ name: 'currenttime-test', version: '0.0.0' });
  await client.connect(makeTransport(running.url));
  return client;
}

for (const [name, makeTransport] of Object.entries(transports)) {
  describe(`currenttime over ${name}`, () => {
    let client: Client;
    before(async () => {
      client = await connectedClient(makeTransport);
    });
    after(async () => {
      await client.close();
    });

    test('lists current_time_by_timezone with a described tz_name input', async () => {
      const { tools } = await client.listTools();
      const tool = tools.find((t) => t.name === TOOL_NAME);
      assert.ok(tool, `tools/list should include ${TOOL_NAME}`);
      const tzName = tool.inputSchema.properties?.tz_name as { description?: string } | undefined;
      assert.match(tzName?.description ?? '', /IANA/);
    });

    test('answers with the time in the requested zone', async () => {
      const result = (await client.callTool({ name: TOOL_NAME, arguments: { tz_name: 'Europe/Berlin' } })) as CallToolResult;
      assert.notEqual(result.isError, true);
      assert.match(firstText(result), /Europe\/Berlin: \d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}$/);
    });

    test('returns a tool error naming an unknown zone', async () => {
      const result = (await client.callTool({ name: TOOL_NAME, arguments: { tz_name: 'Mars/Olympus' } })) as CallToolResult;
      assert.equal(result.isError, true);
      assert.equal(firstText(result), 'Unknown time zone "Mars/Olympus". Use an IANA name such as "Europe/Berlin".');
    });

    test('reports the tools/call body to the onRequest hook', () => {
      const calls = received.filter((r) => r.method === 'POST' && isToolCall(r.body, 'Mars/Olympus'));
      const path = name === 'Streamable HTTP' ? '/mcp' : '/messages';
      assert.ok(
        calls.some((r) => r.path === path),
        `expected a tools/call POST to ${path}`,
      );
    });
  });
}

function isToolCall(body: unknown, tzName: string): boolean {
  const msg = body as { method?: string; params?: { name?: string; arguments?: { tz_name?: string } } } | undefined;
  return msg?.method === 'tools/call' && msg.params?.name === TOOL_NAME && msg.params.arguments?.tz_name === tzName;
}

describe('serveMcp HTTP edges', () => {
  const jsonHeaders = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
  const listTools = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' });

  test('GET /healthz answers {"status":"ok"}', async () => {
    const res = await fetch(`${running.url}/healthz`);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { status: 'ok' });
  });

  test('refuses a POST /mcp without session id that is not initialize with 400', async () => {
    const res = await fetch(`${running.url}/mcp`, { method: 'POST', headers: jsonHeaders, body: listTools });
    assert.equal(res.status, 400);
    const body = (await res.json()) as { jsonrpc: string; error: { code: number } };
    assert.equal(body.jsonrpc, '2.0');
    assert.equal(body.error.code, -32600);
  });

  test('answers 404 for an unknown Mcp-Session-Id', async () => {
    const headers = { ...jsonHeaders, 'mcp-session-id': 'no-such-session' };
    const res = await fetch(`${running.url}/mcp`, { method: 'POST', headers, body: listTools });
    assert.equal(res.status, 404);
    await res.body?.cancel();
  });

  test('answers 404 for POST /messages with an unknown sessionId', async () => {
    const res = await fetch(`${running.url}/messages?sessionId=nope`, { method: 'POST', headers: jsonHeaders, body: listTools });
    assert.equal(res.status, 404);
    await res.body?.cancel();
  });

  test('forgets a Streamable HTTP session after DELETE', async () => {
    const transport = new StreamableHTTPClientTransport(new URL(`${running.url}/mcp`));
    const client = new Client({ name: 'delete-test', version: '0.0.0' });
    await client.connect(transport);
    const sessionId = transport.sessionId;
    assert.ok(sessionId);
    await transport.terminateSession();
    await client.close();
    const headers = { ...jsonHeaders, 'mcp-session-id': sessionId };
    const res = await fetch(`${running.url}/mcp`, { method: 'POST', headers, body: listTools });
    assert.equal(res.status, 404);
    await res.body?.cancel();
  });
});

describe('formatInTimeZone', () => {
  const instant = new Date('2025-06-01T12:00:00Z');

  test('renders local time with the zone offset', () => {
    assert.equal(formatInTimeZone(instant, 'Europe/Berlin'), '2025-06-01T14:00:00+02:00');
    assert.equal(formatInTimeZone(instant, 'America/New_York'), '2025-06-01T08:00:00-04:00');
  });

  test('renders offset zero as +00:00', () => {
    assert.equal(formatInTimeZone(instant, 'UTC'), '2025-06-01T12:00:00+00:00');
  });

  test('returns undefined for a name outside the IANA database', () => {
    assert.equal(formatInTimeZone(instant, 'Mars/Olympus'), undefined);
  });
});
