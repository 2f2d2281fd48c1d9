import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { CallToolResult, GetPromptResult, ReadResourceResult } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import { runServer } from '../shared/run-server.ts';

/**
 * Tool names, exported so scope tests spell them the same way. `get-market.status` carries a
 * `-` and a `.` on purpose: scope strings (`mcp:server:fininfo:tool:<name>:execute`) and the
 * nginx-side body parsing must cope with both.
 */
export const STOCK_AGGREGATES_TOOL = 'get_stock_aggregates';
export const PRINT_STUFF_TOOL = 'print_stuff';
export const COMPANY_OVERVIEW_TOOL = 'get_company_overview';
export const MARKET_STATUS_TOOL = 'get-market.status';
export const TICKERS_RESOURCE_URI = 'fininfo://tickers';
export const ANALYZE_TICKER_PROMPT = 'analyze_ticker';

/** Default window for `get_stock_aggregates`: fixed, so answers never depend on the clock. */
export const DEFAULT_FROM = '2025-01-02';
export const DEFAULT_TO = '2025-01-08';
/** Longest window served in one call, so a single request cannot ask for megabytes of bars. */
export const MAX_RANGE_DAYS = 366;
const DAY_MS = 24 * 60 * 60 * 1000;

type Company = { ticker: string; name: string; sector: string; exchange: string; description: string };

/** The whole (fake) universe. No network: every answer is computed from this table. */
export const COMPANIES: readonly Company[] = Object.freeze([
  { ticker: 'AAPL', name: 'Apple Inc.', sector: 'Technology', exchange: 'XNAS', description: 'Consumer devices and services.' },
  { ticker: 'MSFT', name: 'Microsoft Corporation', sector: 'Technology', exchange: 'XNAS', description: 'Software and cloud.' },
  { ticker: 'NVDA', name: 'NVIDIA Corporation', sector: 'Technology', exchange: 'XNAS', description: 'Accelerated computing.' },
  { ticker: 'JPM', name: 'JPMorgan Chase & Co.', sector: 'Financials', exchange: 'XNYS', description: 'Banking and markets.' },
  { ticker: 'XOM', name: 'Exxon Mobil Corporation', sector: 'Energy', exchange: 'XNYS', description: 'Oil and gas.' },
]);

const tickerInput = z.string().min(1).max(10).describe('Ticker symbol such as "AAPL" (case-insensitive)');
const isoDate = z.iso.date().describe('ISO date, YYYY-MM-DD');

/**
 * Builds the example "fininfo" MCP server: four tools, one resource (`fininfo://tickers`) and one
 * prompt (`analyze_ticker`), all answering from fixed fake data. One instance per session.
 */
export function buildServer(): McpServer {
  const server = new McpServer({ name: 'fininfo', version: '0.1.0' });
  const readOnly = { readOnlyHint: true, openWorldHint: false };

  server.registerTool(
    STOCK_AGGREGATES_TOOL,
    {
      title: 'Daily stock aggregates',
      description: `Daily open/high/low/close/volume bars (weekdays only) for a ticker, as JSON. Fake, deterministic data; defaults to ${DEFAULT_FROM}..${DEFAULT_TO}.`,
      inputSchema: { ticker: tickerInput, from: isoDate.optional(), to: isoDate.optional() },
      annotations: readOnly,
    },
    ({ ticker, from, to }) => stockAggregatesResult(ticker, from ?? DEFAULT_FROM, to ?? DEFAULT_TO),
  );
  server.registerTool(
    PRINT_STUFF_TOOL,
    {
      title: 'Print stuff',
      description: 'Echoes the given text back unchanged.',
      inputSchema: { stuff: z.string().describe('Any text') },
      annotations: readOnly,
    },
    ({ stuff }) => textResult(stuff),
  );
  server.registerTool(
    COMPANY_OVERVIEW_TOOL,
    {
      title: 'Company overview',
      description: 'Name, sector, exchange and a short description for a ticker, as JSON.',
      inputSchema: { ticker: tickerInput },
      annotations: readOnly,
    },
    ({ ticker }) => companyOverviewResult(ticker),
  );
  server.registerTool(
    MARKET_STATUS_TOOL,
    {
      title: 'Market status',
      description: 'Whether the (fake) US equity market is open now: weekdays 09:30–16:00 America/New_York, holidays ignored.',
      annotations: readOnly,
    },
    () => textResult(JSON.stringify(marketStatus(new Date()))),
  );

  server.registerResource(
    'tickers',
    TICKERS_RESOURCE_URI,
    { title: 'Tickers', description: 'Every ticker fininfo knows, with its company name.', mimeType: 'application/json' },
    (uri): ReadResourceResult => ({
      contents: [{ uri: uri.href, mimeType: 'application/json', text: JSON.stringify(COMPANIES.map(({ ticker, name }) => ({ ticker, name }))) }],
    }),
  );

  server.registerPrompt(
    ANALYZE_TICKER_PROMPT,
    {
      title: 'Analyze a ticker',
      description: 'Asks for a short analysis of one ticker using the fininfo tools.',
      argsSchema: { ticker: z.string().describe('Ticker symbol such as "AAPL"') },
    },
    ({ ticker }) => analyzeTickerPrompt(ticker),
  );
  return server;
}

/** Looks a ticker up case-insensitively. */
export function findCompany(ticker: string): Company | undefined {
  const wanted = ticker.trim().toUpperCase();
  return COMPANIES.find((c) => c.ticker === wanted);
}

export type DailyBar = { date: string; t: number; o: number; h: number; l: number; c: number; v: number };

/**
 * Fake daily bars for `ticker` from `from` to `to` inclusive, weekdays only. Each bar depends
 * only on (ticker, date), so overlapping windows agree. Unknown tickers, `from` after `to`, and
 * windows over {@link MAX_RANGE_DAYS} are tool errors the model can read and correct.
 */
export function stockAggregatesResult(ticker: string, from: string, to: string): CallToolResult {
  const company = findCompany(ticker);
  if (!company) return unknownTicker(ticker);
  const start = Date.parse(`${from}T00:00:00Z`);
  const end = Date.parse(`${to}T00:00:00Z`);
  if (Number.isNaN(start) || Number.isNaN(end)) return toolError(`Dates must be YYYY-MM-DD, got from="${from}" to="${to}".`);
  if (start > end) return toolError(`"from" (${from}) is after "to" (${to}).`);
  if ((end - start) / DAY_MS > MAX_RANGE_DAYS) return toolError(`Ask for at most ${MAX_RANGE_DAYS} days at a time.`);

  const results: DailyBar[] = [];
  for (let t = start; t <= end; t += DAY_MS) {
    const weekday = new Date(t).getUTCDay();
    if (weekday !== 0 && weekday !== 6) results.push(dailyBar(company.ticker, t));
  }
  return textResult(JSON.stringify({ ticker: company.ticker, from, to, adjusted: true, resultsCount: results.length, results }));
}

/** One bar, derived from a hash of (ticker, date) so it never changes between calls. */
export function dailyBar(ticker: string, t: number): DailyBar {
  const date = new Date(t).toISOString().slice(0, 10);
  const random = mulberry32(fnv1a(`${ticker}:${date}`));
  const base = 20 + (fnv1a(ticker) % 480);
  const open = base * (0.9 + random() * 0.2);
  const close = open * (0.97 + random() * 0.06);
  const high = Math.max(open, close) * (1 + random() * 0.02);
  const low = Math.min(open, close) * (1 - random() * 0.02);
  const volume = Math.round(1_000_000 + random() * 9_000_000);
  return { date, t, o: cents(open), h: cents(high), l: cents(low), c: cents(close), v: volume };
}

export function companyOverviewResult(ticker: string): CallToolResult {
  const company = findCompany(ticker);
  return company ? textResult(JSON.stringify(company)) : unknownTicker(ticker);
}

export type MarketStatus = { market: 'open' | 'closed'; exchanges: { XNYS: 'open' | 'closed'; XNAS: 'open' | 'closed' }; serverTime: string };

/** Open on weekdays from 09:30 to 16:00 New York time (holidays ignored). */
export function marketStatus(now: Date): MarketStatus {
  const parts = new Intl.DateTimeFormat('en-US', {
    timeZone: 'America/New_York',
    weekday: 'short',
    hour: '2-digit',
    minute: '2-digit',
    hourCycle: 'h23',
  }).formatToParts(now);
  const part = (type: Intl.DateTimeFormatPartTypes): string => parts.find((p) => p.type === type)?.value ?? '';
  const minutes = Number(part('hour')) * 60 + Number(part('minute'));
  const weekday = !['Sat', 'Sun'].includes(part('weekday'));
  const state = weekday && minutes >= 9 * 60 + 30 && minutes < 16 * 60 ? 'open' : 'closed';
  return { market: state, exchanges: { XNYS: state, XNAS: state }, serverTime: now.toISOString() };
}

export function analyzeTickerPrompt(ticker: string): GetPromptResult {
  const symbol = ticker.trim().toUpperCase();
  const text =
    `Analyze ${symbol}. Call ${COMPANY_OVERVIEW_TOOL} for what the company does and ${STOCK_AGGREGATES_TOOL} ` +
    `for its recent daily bars, then summarise the price trend and volume in three sentences.`;
  return { description: `Analysis of ${symbol}`, messages: [{ role: 'user', content: { type: 'text', text } }] };
}

function textResult(text: string): CallToolResult {
  return { content: [{ type: 'text', text }] };
}

function toolError(text: string): CallToolResult {
  return { isError: true, content: [{ type: 'text', text }] };
}

function unknownTicker(ticker: string): CallToolResult {
  return toolError(`Unknown ticker "${ticker}". Known: ${COMPANIES.map((c) => c.ticker).join(', ')} (see ${TICKERS_RESOURCE_URI}).`);
}

function cents(value: number): number {
  return Math.round(value * 100) / 100;
}

/** 32-bit FNV-1a: a stable seed from a string. */
function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

/** Small seeded PRNG (mulberry32), returning floats in [0, 1). */
function mulberry32(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let x = Math.imul(state ^ (state >>> 15), 1 | state);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

if (import.meta.main) {
  await runServer('fininfo', buildServer, 8002);
}
