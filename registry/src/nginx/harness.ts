/**
 * Test support for the nginx integration tests: tiny real HTTP peers (MCP-ish backends and a
 * stand-in for the registry's /auth/validate) and a raw HTTP client. The stand-in is a double
 * of the registry only; nginx is always the real binary.
 */
import { createServer, request as httpRequest, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { MESSAGES_HEADER, MISSING_SCOPE_HEADER, SCOPES_HEADER, SERVER_HEADER, TOOL_FILTER_HEADER, USER_HEADER, USERNAME_HEADER, VALIDATE_PATH } from '../authz/paths.ts';
import type { ServerDefinition } from '../catalog/server-definition.ts';

export interface Seen {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
}

export interface Peer {
  port: number;
  url: string;
  seen: Seen[];
  close(): Promise<void>;
}

async function listen(server: Server, openStreams: Set<ServerResponse>, seen: Seen[]): Promise<Peer> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        for (const res of openStreams) res.end();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function record(seen: Seen[], req: import('node:http').IncomingMessage): Promise<Seen> {
  return new Promise((resolve) => {
    let body = '';
    req.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      const entry = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body };
      seen.push(entry);
      resolve(entry);
    });
  });
}

/** What the backend answers to `tools/list`: two tools, so a filter has something to drop. */
export const TOOLS_LIST_RESULT = '{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"},{"name":"b"}]}}';

/** How long the backend keeps a `tools/list` event stream open after its one event. */
export const TOOLS_STREAM_OPEN_MS = 400;

/**
 * An MCP-ish backend:
 * - `GET <any>/sse` opens an event stream that announces `data: /messages?sessionId=abc`,
 *   sends one more event 50 ms later and stays open;
 * - a POSTed JSON-RPC `tools/list` is answered with TOOLS_LIST_RESULT, as JSON, or with
 *   `?reply=sse` in the query as one `event: message` on an event stream that stays open
 *   TOOLS_STREAM_OPEN_MS and then ends (`?reply=sse-cr`: the same with CR line endings;
 *   `?reply=sse-noblank`: the stream ends after the data line, with no blank line;
 *   `?reply=deep`: JSON whose tool `b` has an inputSchema nested 30 levels deep);
 * - every other request is echoed as JSON.
 */
export async function startBackend(): Promise<Peer> {
  const seen: Seen[] = [];
  const open = new Set<ServerResponse>();
  const keep = (res: ServerResponse): void => {
    open.add(res);
    res.on('close', () => open.delete(res));
  };
  const server = createServer((req, res) => {
    void record(seen, req).then((entry) => {
      if (req.method === 'GET' && entry.url.endsWith('/sse')) {
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
        res.write('event: endpoint\ndata: /messages?sessionId=abc\n\n');
        // A later event on the same stream: it must arrive too, unchanged, while still open.
        const later = setTimeout(() => res.write('event: message\ndata: {"later":"data: /x"}\n\n'), 50);
        res.on('close', () => clearTimeout(later));
        keep(res);
        return;
      }
      if (methodOf(entry.body) === 'tools/list') {
        const reply = new URL(entry.url, 'http://x').searchParams.get('reply');
        if (reply === 'deep') {
          // Legal JSON a JSON-RPC client reads, nested past what njs's JSON.parse accepts (32).
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(TOOLS_LIST_RESULT.replace('{"name":"b"}', `{"name":"b","inputSchema":${'{"p":'.repeat(30)}1${'}'.repeat(30)}}`));
          return;
        }
        if (reply === 'sse' || reply === 'sse-cr' || reply === 'sse-noblank') {
          // `sse-cr`: the same event with CR line endings, which text/event-stream allows;
          // `sse-noblank`: the stream ends right after the data line, with no blank line.
          const event = `event: message\ndata: ${TOOLS_LIST_RESULT}\n\n`;
          res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
          res.write(reply === 'sse' ? event : reply === 'sse-cr' ? event.replace(/\n/g, '\r') : event.trimEnd());
          const end = setTimeout(() => res.end(), TOOLS_STREAM_OPEN_MS);
          res.on('close', () => clearTimeout(end));
          keep(res);
          return;
        }
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(TOOLS_LIST_RESULT);
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(entry));
    });
  });
  return listen(server, open, seen);
}

function methodOf(body: string): unknown {
  try {
    return (JSON.parse(body) as { method?: unknown }).method;
  } catch {
    return undefined;
  }
}

/** The stand-in registry; `messages` holds each check's X-MCP-Messages, in order. */
export type RegistryDouble = Peer & { messages: Array<string | undefined> };

/**
 * Stands in for the registry. On VALIDATE_PATH: cookie `ok=1` → 200 with identity headers;
 * `ok=filter` → 200 with `X-MCP-Tool-Filter: ["a"]` (a principal that may use tool `a` only);
 * `ok=only-alpha` → 200 for server alpha only, else 403; `ok=forbidden` → 403 naming the
 * server's execute scope; no cookie → 401 with a Bearer challenge. Anything else is the
 * "web page": a JSON echo. Every check is recorded in `seen` (headers included, so a test
 * reads the X-MCP-Messages nginx sent) and its X-MCP-Messages value also in `messages`.
 */
export async function startRegistryDouble(): Promise<RegistryDouble> {
  const seen: Seen[] = [];
  const messages: Array<string | undefined> = [];
  const server = createServer((req, res) => {
    void record(seen, req).then((entry) => {
      if (entry.url.split('?')[0] !== VALIDATE_PATH) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ page: true, ...entry }));
        return;
      }
      const header = req.headers[MESSAGES_HEADER];
      messages.push(Array.isArray(header) ? header.join('|') : header);
      const cookie = String(req.headers.cookie ?? '');
      const target = String(req.headers[SERVER_HEADER] ?? '');
      const has = (value: string): boolean => new RegExp(`(^|;\\s*)ok=${value}(;|$)`).test(cookie);
      const identity = { [USER_HEADER]: 'user-1', [USERNAME_HEADER]: 'alice', [SCOPES_HEADER]: `mcp:server:${target}:execute` };
      if (has('1') || (has('only-alpha') && target === 'alpha')) {
        res.writeHead(200, identity);
        res.end();
      } else if (has('filter')) {
        res.writeHead(200, { ...identity, [SCOPES_HEADER]: `mcp:server:${target}:tool:a`, [TOOL_FILTER_HEADER]: '["a"]' });
        res.end();
      } else if (has('forbidden') || has('only-alpha')) {
        res.writeHead(403, { [MISSING_SCOPE_HEADER]: `mcp:server:${target}:execute` });
        res.end();
      } else {
        res.writeHead(401, { 'www-authenticate': 'Bearer realm="x"', 'content-type': 'application/json' });
        res.end('{"error":"AUTH_NO_CREDENTIALS"}');
      }
    });
  });
  return { ...(await listen(server, new Set(), seen)), messages };
}

/** A port that was free a moment ago (listen on 0, read it, close). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  rawHeaders: string[];
  body: string;
}

/**
 * One request with node:http, which (unlike fetch) sends the path exactly as written. With
 * `chunked`, the body goes without a Content-Length.
 */
export function send(
  port: number,
  options: { method?: string; path: string; headers?: Record<string, string>; body?: string | Buffer; chunked?: boolean },
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, method: options.method ?? 'GET', path: options.path, headers: options.headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, rawHeaders: res.rawHeaders, body }));
    });
    req.on('error', reject);
    if (options.chunked === true && options.body !== undefined) {
      // Written before end() with no Content-Length: node sends Transfer-Encoding: chunked,
      // so nginx learns the size only while reading.
      req.write(options.body);
      req.end();
    } else {
      req.end(options.body);
    }
  });
}

/**
 * Opens an event stream (a GET, or a POST when `body` is given) and resolves as soon as
 * `wanted` appears in the bytes read so far, reporting whether the stream had ended by then.
 * Rejects after `timeoutMs`.
 */
export function readStreamUntil(
  port: number,
  path: string,
  headers: Record<string, string>,
  wanted: string,
  options: { timeoutMs?: number; body?: string } = {},
): Promise<{ status: number; headers: IncomingHttpHeaders; text: string; ended: boolean }> {
  const timeoutMs = options.timeoutMs ?? 3000;
  return new Promise((resolve, reject) => {
    let text = '';
    let ended = false;
    const method = options.body === undefined ? 'GET' : 'POST';
    const req = httpRequest({ host: '127.0.0.1', port, method, path, headers, agent: false }, (res) => {
      res.setEncoding('utf8');
      res.on('end', () => (ended = true));
      res.on('data', (chunk: string) => {
        text += chunk;
        if (text.includes(wanted)) {
          clearTimeout(timer);
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, ended });
          req.destroy();
        }
      });
    });
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error(`no ${JSON.stringify(wanted)} within ${timeoutMs} ms; read ${JSON.stringify(text)}`));
    }, timeoutMs);
    req.on('error', (err) => {
      if (!text.includes(wanted)) reject(err);
    });
    req.end(options.body);
  });
}

/** A frozen-shaped server definition with defaults for the fields the config ignores. */
export function definition(name: string, url: string, transports: ServerDefinition['transports'], enabled = true): ServerDefinition {
  return { name, description: '', url, transports, enabled, tags: [], tools: [] };
}
