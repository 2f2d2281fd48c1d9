import { LATEST_PROTOCOL_VERSION } from '@modelcontextprotocol/sdk/types.js';
import autocannon from 'autocannon';
import { reconnectFix } from './reconnect.ts';

/** One HTTP request, sent over and over by every connection. */
export interface Target {
  readonly url: string;
  readonly method: 'GET' | 'POST';
  readonly headers: Record<string, string>;
  /** `[<id>]` is replaced by a fresh id per request (concurrent requests of one MCP session need distinct ids). */
  readonly body?: string;
}

export interface LoadOptions {
  readonly connections: number;
  /** Seconds measured. */
  readonly duration: number;
  /** Seconds of the same load first, whose numbers are discarded. */
  readonly warmup: number;
}

export interface Measured {
  readonly requests: number;
  readonly seconds: number;
  readonly rps: number;
  readonly p50: number;
  readonly p99: number;
  readonly p90: number;
  readonly mean: number;
  readonly non2xx: number;
  /** Socket errors, timeouts and requests lost to a closed connection: requests that got no answer. */
  readonly errors: number;
  readonly timeouts: number;
  /** Requests lost because the server closed the connection (FIN) while they were in flight; part of `errors`. */
  readonly closedInFlight: number;
  /** Status code -> count, and error code -> count, for reading a bad row. */
  readonly statusCodes: Record<string, number>;
  readonly errorCodes: Record<string, number>;
}

export const MCP_HEADERS = { accept: 'application/json, text/event-stream', 'content-type': 'application/json' } as const;

/** The request every MCP row sends. */
export const TOOL_CALL_BODY = JSON.stringify({
  jsonrpc: '2.0',
  id: '[<id>]',
  method: 'tools/call',
  params: { name: 'get_stock_aggregates', arguments: { ticker: 'AAPL' } },
});

/**
 * Opens a Streamable HTTP session through `url` with `auth` headers (`initialize`, then
 * `notifications/initialized`) and checks that one tool call (`body`, the row's) succeeds through
 * the same path. Returns the headers every request of the row carries.
 */
export async function openMcpSession(url: string, auth: Record<string, string>, body = TOOL_CALL_BODY): Promise<Record<string, string>> {
  const post = (body: unknown, headers: Record<string, string>) =>
    fetch(url, { method: 'POST', headers: { ...MCP_HEADERS, ...auth, ...headers }, body: JSON.stringify(body) });
  const init = await post(
    {
      jsonrpc: '2.0',
      id: 0,
      method: 'initialize',
      params: { protocolVersion: LATEST_PROTOCOL_VERSION, capabilities: {}, clientInfo: { name: 'bench', version: '0' } },
    },
    {},
  );
  const initText = await init.text();
  const sessionId = init.headers.get('mcp-session-id');
  if (init.status !== 200 || !sessionId) throw new Error(`initialize at ${url} answered ${init.status} without a session id: ${initText.slice(0, 300)}`);
  const version = (jsonRpcMessage(initText) as { result?: { protocolVersion?: string } }).result?.protocolVersion ?? LATEST_PROTOCOL_VERSION;
  const headers = { ...MCP_HEADERS, ...auth, 'mcp-session-id': sessionId, 'mcp-protocol-version': version };

  const initialized = await post({ jsonrpc: '2.0', method: 'notifications/initialized' }, headers);
  await initialized.arrayBuffer();
  if (initialized.status !== 202) throw new Error(`notifications/initialized at ${url} answered ${initialized.status}`);

  const call = await post(JSON.parse(body.replace('[<id>]', 'check')), headers);
  const answer = jsonRpcMessage(await call.text()) as { result?: { isError?: boolean }; error?: unknown };
  if (call.status !== 200 || !answer.result || answer.result.isError)
    throw new Error(`tools/call at ${url} answered ${call.status}: ${JSON.stringify(answer).slice(0, 300)}`);
  return headers;
}

/** The JSON-RPC message of a JSON or single-event SSE answer. */
export function jsonRpcMessage(text: string): unknown {
  const data = text
    .split('\n')
    .filter((line) => line.startsWith('data:'))
    .map((line) => line.slice(5).trim());
  try {
    return JSON.parse(data.length > 0 ? data.join('\n') : text);
  } catch {
    throw new Error(`not a JSON-RPC answer: ${text.slice(0, 300)}`);
  }
}

/**
 * Runs the warm-up, then the measured run, with the same connections. `during` starts just
 * before the measured run and stops just after it (row (f)'s catalog toggler, row (j)'s count
 * of requests that reached the backend).
 */
export async function measure(target: Target, options: LoadOptions, during?: () => Promise<() => Promise<void>>): Promise<Measured> {
  if (options.warmup > 0) await run(target, options.connections, options.warmup);
  const stop = await during?.();
  try {
    return await run(target, options.connections, options.duration);
  } finally {
    await stop?.();
  }
}

/**
 * One autocannon run. Latencies come from autocannon's per-response event (a float in ms),
 * not its histogram, which records whole milliseconds: the targets are in tenths of a ms.
 */
async function run(target: Target, connections: number, seconds: number): Promise<Measured> {
  const latencies: number[] = [];
  const errorCodes: Record<string, number> = {};
  const lost = { closed: 0 };
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon(
      {
        url: target.url,
        method: target.method,
        headers: target.headers,
        ...(target.body === undefined ? {} : { body: target.body, idReplacement: true }),
        connections,
        pipelining: 1,
        duration: seconds,
        timeout: 10,
        setupClient: reconnectFix(lost),
      },
      (err, done) => (err ? reject(err) : resolve(done)),
    );
    instance.on('response', (_client, _status, _bytes, ms) => void latencies.push(ms));
    instance.on('reqError', (err: { code?: string; message?: string }) => {
      const key = err.code ?? err.message ?? 'unknown';
      errorCodes[key] = (errorCodes[key] ?? 0) + 1;
    });
  });
  if (lost.closed > 0) errorCodes['closed with the request in flight'] = lost.closed;
  latencies.sort((a, b) => a - b);
  const statusCodes: Record<string, number> = {};
  for (const [code, stats] of Object.entries(result.statusCodeStats ?? {})) statusCodes[code] = (stats as { count: number }).count;
  return {
    requests: latencies.length,
    seconds: result.duration,
    rps: latencies.length / result.duration,
    p50: percentile(latencies, 0.5),
    p99: percentile(latencies, 0.99),
    p90: percentile(latencies, 0.9),
    mean: latencies.reduce((a, b) => a + b, 0) / latencies.length,
    non2xx: result.non2xx,
    errors: result.errors + lost.closed,
    timeouts: result.timeouts,
    closedInFlight: lost.closed,
    statusCodes,
    errorCodes,
  };
}

/** Nearest-rank percentile of sorted values; NaN when there are none. */
function percentile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? Number.NaN;
}
