import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { serveMcp, type ReceivedRequest, type RunningMcpServer } from '../shared/serve-mcp.ts';
import {
  ANALYZE_TICKER_PROMPT,
  buildServer,
  COMPANY_OVERVIEW_TOOL,
  dailyBar,
  DEFAULT_FROM,
  DEFAULT_TO,
  MARKET_STATUS_TOOL,
  marketStatus,
  PRINT_STUFF_TOOL,
  STOCK_AGGREGATES_TOOL,
  stockAggregatesResult,
  TICKERS_RESOURCE_URI,
} from './server.ts';

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

async function call(client: Client, name: string, args?: Record<string, unknown>): Promise<CallToolResult> {
  return (await client.callTool({ name, ...(args ? { arguments: args } : {}) })) as CallToolResult;
}

for (const [name, makeTransport] of Object.entries(transports)) {
  describe(`fininfo over ${name}`, () => {
    let client: Client;
    before(async () => {
      client = new Client({ name: 'fininfo-test', version: '0.0.0' });
      await client.connect(makeTransport(running.url));
    });
    after(async () => {
      await client.close();
    });

    test('lists exactly the four tools, get-market.status included', async () => {
      const { tools } = await client.listTools();
      assert.deepEqual(tools.map((t) => t.name).sort(), [COMPANY_OVERVIEW_TOOL, MARKET_STATUS_TOOL, STOCK_AGGREGATES_TOOL, PRINT_STUFF_TOOL].sort());
    });

    test('get_stock_aggregates returns weekday bars for the default window', async () => {
      const result = await call(client, STOCK_AGGREGATES_TOOL, { ticker: 'aapl' });
      assert.notEqual(result.isError, true);
      const body = JSON.parse(firstText(result)) as { ticker: string; from: string; to: string; results: { date: string }[] };
      assert.equal(body.ticker, 'AAPL');
      assert.deepEqual([body.from, body.to], [DEFAULT_FROM, DEFAULT_TO]);
      // 2025-01-02 is a Thursday: Thu, Fri, (weekend), Mon, Tue, Wed.
      assert.deepEqual(
        body.results.map((r) => r.date),
        ['2025-01-02', '2025-01-03', '2025-01-06', '2025-01-07', '2025-01-08'],
      );
    });

    test('get_stock_aggregates answers a malformed date with a tool error naming the field', async () => {
      const result = await call(client, STOCK_AGGREGATES_TOOL, { ticker: 'AAPL', from: 'yesterday' });
      assert.equal(result.isError, true);
      assert.match(firstText(result), /from/);
    });

    test('print_stuff echoes its input', async () => {
      const result = await call(client, PRINT_STUFF_TOOL, { stuff: 'hello "world" 🚀' });
      assert.equal(firstText(result), 'hello "world" 🚀');
    });

    test('get_company_overview answers for a known ticker and errors for an unknown one', async () => {
      const known = await call(client, COMPANY_OVERVIEW_TOOL, { ticker: 'MSFT' });
      assert.equal((JSON.parse(firstText(known)) as { name: string }).name, 'Microsoft Corporation');
      const unknown = await call(client, COMPANY_OVERVIEW_TOOL, { ticker: 'NOPE' });
      assert.equal(unknown.isError, true);
      assert.match(firstText(unknown), /Unknown ticker "NOPE"/);
    });

    test('get-market.status answers without arguments', async () => {
      const result = await call(client, MARKET_STATUS_TOOL);
      assert.notEqual(result.isError, true);
      assert.match((JSON.parse(firstText(result)) as { market: string }).market, /^(open|closed)$/);
    });

    test('reads the fininfo://tickers resource', async () => {
      const { resources } = await client.listResources();
      assert.deepEqual(
        resources.map((r) => r.uri),
        [TICKERS_RESOURCE_URI],
      );
      const { contents } = await client.readResource({ uri: TICKERS_RESOURCE_URI });
      const text = contents[0] && 'text' in contents[0] ? contents[0].text : '';
      const tickers = (JSON.parse(text) as { ticker: string }[]).map((t) => t.ticker);
      assert.ok(tickers.includes('AAPL'));
    });

    test('gets the analyze_ticker prompt with its required ticker argument', async () => {
      const { prompts } = await client.listPrompts();
      assert.deepEqual(
        prompts.map((p) => [p.name, p.arguments?.map((a) => [a.name, a.required])]),
        [[ANALYZE_TICKER_PROMPT, [['ticker', true]]]],
      );
      const prompt = await client.getPrompt({ name: ANALYZE_TICKER_PROMPT, arguments: { ticker: 'nvda' } });
      const content = prompt.messages[0]?.content;
      assert.equal(content?.type, 'text');
      assert.match(content.text, /^Analyze NVDA\./);
    });

    test('the tools/call for get-market.status reaches the backend with its name intact', () => {
      const path = name === 'Streamable HTTP' ? '/mcp' : '/messages';
      const calls = received.filter((r) => r.path === path && isToolCall(r.body, MARKET_STATUS_TOOL));
      assert.ok(calls.length > 0, `expected a tools/call for ${MARKET_STATUS_TOOL} at ${path}`);
    });
  });
}

function isToolCall(body: unknown, tool: string): boolean {
  const msg = body as { method?: string; params?: { name?: string } } | undefined;
  return msg?.method === 'tools/call' && msg.params?.name === tool;
}

describe('stockAggregatesResult', () => {
  test('is deterministic and agrees across overlapping windows', () => {
    const a = JSON.parse(firstText(stockAggregatesResult('XOM', '2025-03-03', '2025-03-07'))) as { results: unknown[] };
    const b = JSON.parse(firstText(stockAggregatesResult('xom', '2025-03-05', '2025-03-14'))) as { results: unknown[] };
    assert.equal(a.results.length, 5);
    assert.deepEqual(a.results.slice(2), b.results.slice(0, 3));
    assert.deepEqual(stockAggregatesResult('XOM', '2025-03-03', '2025-03-07'), stockAggregatesResult('XOM', '2025-03-03', '2025-03-07'));
  });

  test('keeps low <= open, close <= high', () => {
    const bar = dailyBar('JPM', Date.parse('2025-02-03T00:00:00Z'));
    assert.ok(bar.l <= Math.min(bar.o, bar.c) && Math.max(bar.o, bar.c) <= bar.h, JSON.stringify(bar));
  });

  const errors: [string, string, string, string, RegExp][] = [
    ['an unknown ticker', 'ZZZZ', '2025-01-02', '2025-01-03', /Unknown ticker "ZZZZ"/],
    ['from after to', 'AAPL', '2025-02-01', '2025-01-01', /is after/],
    ['a window over a year', 'AAPL', '2023-01-01', '2025-01-01', /at most 366 days/],
  ];
  for (const [what, ticker, from, to, message] of errors) {
    test(`is a tool error for ${what}`, () => {
      const result = stockAggregatesResult(ticker, from, to);
      assert.equal(result.isError, true);
      assert.match(firstText(result), message);
    });
  }
});

describe('marketStatus', () => {
  const cases: [string, string, 'open' | 'closed'][] = [
    ['a Wednesday at 10:00 New York (EDT)', '2025-06-04T14:00:00Z', 'open'],
    ['a Wednesday at 09:29 New York', '2025-06-04T13:29:00Z', 'closed'],
    ['a Wednesday at 16:00 New York', '2025-06-04T20:00:00Z', 'closed'],
    ['a Monday at 15:59 New York (EST)', '2025-01-06T20:59:00Z', 'open'],
    ['a Saturday at noon New York', '2025-06-07T16:00:00Z', 'closed'],
  ];
  for (const [what, iso, expected] of cases) {
    test(`is ${expected} on ${what}`, () => {
      assert.equal(marketStatus(new Date(iso)).market, expected);
    });
  }
});

describe('fininfo run directly', () => {
  test('prints one startup line on the given PORT and exits 0 on SIGTERM', { timeout: 15_000 }, async (t) => {
    const probe = await serveMcp(buildServer);
    const port = probe.port; // a port known to be free once the probe closes
    await probe.close();
    const child = spawn(process.execPath, [fileURLToPath(new URL('./server.ts', import.meta.url))], {
      env: { PORT: String(port) },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    t.after(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    const [line] = (await once(child.stdout, 'data')) as [Buffer];
    assert.equal(line.toString(), `fininfo MCP server on http://127.0.0.1:${port} (streamable: /mcp, sse: /sse)\n`);
    child.kill('SIGTERM');
    const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
    assert.deepEqual({ code, signal }, { code: 0, signal: null });
  });
});
