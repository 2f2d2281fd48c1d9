/**
 * Test support for the nginx integration tests: tiny real HTTP peers (MCP-ish backends and a
 * stand-in for the registry's /auth/validate) and a raw HTTP client. The stand-in is a double
 * of the registry only; nginx is always the real binary.
 */
import { freePort } from '../../../servers/shared/free-port.ts';
import { readFile } from 'node:fs/promises';
import {
  createServer,
  request as httpRequest,
  type Agent,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type RequestListener,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import {
  BACKEND_SESSION_HEADER,
  BACKEND_TARGET_HEADER,
  MESSAGES_HEADER,
  MISSING_SCOPE_HEADER,
  ORIGINAL_METHOD_HEADER,
  SCOPES_HEADER,
  SERVER_HEADER,
  SESSION_HEADER,
  SESSION_KEY_HEADER,
  SESSION_UNKNOWN_HEADER,
  TOOL_FILTER_HEADER,
  TRANSPORT_HEADER,
  USER_HEADER,
  USERNAME_HEADER,
  VALIDATE_PATH,
} from '../authz/paths.ts';
import { PATH_HEADER, ROUTE_ALLOW_HEADER, ROUTE_HEADER, ROUTE_REFUSED_HEADER, type RouteLookup } from '../authz/route.ts';
import { createSessionBinding, type SessionKind } from '../authz/session-binding.ts';
import type { ServerDefinition } from '../catalog/server-definition.ts';

export interface Seen {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
  /** The peer's TCP port: equal ports on two requests mean one reused connection. */
  remotePort: number | undefined;
  /** The TLS server name (SNI) the peer sent; undefined over plain HTTP or without SNI. */
  servername: string | undefined;
}

export interface Peer {
  port: number;
  url: string;
  seen: Seen[];
  close(): Promise<void>;
}

async function listen(server: Server, openStreams: Set<ServerResponse>, seen: Seen[], origin = (port: number) => `http://127.0.0.1:${port}`): Promise<Peer> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    url: origin(port),
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
      const servername = (req.socket as Partial<TLSSocket>).servername;
      const entry = {
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body,
        remotePort: req.socket.remotePort,
        servername: servername || undefined,
      };
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
 * With `tls`, it speaks HTTPS and its url names `localhost` (so nginx sends SNI).
 */
export async function startBackend(options: { tls?: TlsIdentity } = {}): Promise<Peer> {
  const seen: Seen[] = [];
  const open = new Set<ServerResponse>();
  const keep = (res: ServerResponse): void => {
    open.add(res);
    res.on('close', () => open.delete(res));
  };
  const handler: RequestListener = (req, res) => {
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
  };
  if (options.tls === undefined) return listen(createServer(handler), open, seen);
  // By name, not IP: a client sends no SNI for an IP address.
  return listen(createHttpsServer(options.tls, handler), open, seen, (port) => `https://localhost:${port}`);
}

export interface TlsIdentity {
  key: Buffer;
  cert: Buffer;
}

/**
 * The committed self-signed test certificate for `localhost` (registry/test/fixtures/tls; nginx
 * does not verify backend certificates here, so self-signed is enough).
 */
export async function selfSignedLocalhost(): Promise<TlsIdentity> {
  const dir = join(import.meta.dirname, '..', '..', 'test', 'fixtures', 'tls');
  return { key: await readFile(join(dir, 'localhost-key.pem')), cert: await readFile(join(dir, 'localhost-cert.pem')) };
}

function methodOf(body: string): unknown {
  try {
    return (JSON.parse(body) as { method?: unknown }).method;
  } catch {
    return undefined;
  }
}

/**
 * The stand-in registry; `messages` holds each check's X-MCP-Messages, in order. `disabled`
 * names the servers the catalog has disabled: the check's view, which a test may change at
 * any time (the nginx config does not depend on it).
 */
export type RegistryDouble = Peer & {
  messages: Array<string | undefined>;
  disabled: Set<string>;
  /** The session id njs hands the principal behind `cookie` for a backend value (session-binding.ts). */
  seal(cookie: string, kind: SessionKind, server: string, value: string): string;
};

/**
 * Stands in for the registry. On VALIDATE_PATH, in the order decideAccess uses (credentials,
 * then the server, then scopes): no known `ok=` cookie → 401 with a Bearer challenge; a server
 * in `disabled` → 503; cookie `ok=1` → 200 with identity headers; `ok=filter` → 200 with
 * `X-MCP-Tool-Filter: ["a"]` (a principal that may use tool `a` only); `ok=only-alpha` → 200
 * for server alpha only, else 403; `ok=forbidden` → 403 naming the server's execute scope.
 * Sessions are bound as the real check binds them, each cookie a principal: a 200 carries the
 * cookie's sealing key, and an X-MCP-Session that does not open for it (or a legacy POST
 * without one) is a 404 with X-MCP-Session-Unknown.
 * Anything else is the "web page": a JSON echo. Every check is recorded in `seen` (headers
 * included, so a test reads the X-MCP-Messages nginx sent) and its X-MCP-Messages value also
 * in `messages`.
 */
/**
 * A stand-in for the registry's check. `route` is the real route table's lookup
 * (nginx/route.ts) over the test's catalog: it refuses paths and methods before credentials,
 * as the real check does, and names the backend on a 200.
 */
export async function startRegistryDouble(options: { disabled?: readonly string[]; route?: RouteLookup } = {}): Promise<RegistryDouble> {
  const seen: Seen[] = [];
  const messages: Array<string | undefined> = [];
  const disabled = new Set(options.disabled ?? []);
  const binding = createSessionBinding('registry-double-secret');
  /** The real check's session rule, for an allowed request: extra headers, or undefined for a 404. */
  const bound = (req: IncomingMessage, cookie: string, target: string): Record<string, string> | undefined => {
    const key = binding.keyFor(cookie);
    const kind: SessionKind = req.headers[TRANSPORT_HEADER] === 'sse' ? 'sse' : 'streamable';
    const sealed = String(req.headers[SESSION_HEADER] ?? '');
    if (sealed === '') return kind === 'sse' && req.headers[ORIGINAL_METHOD_HEADER] === 'POST' ? undefined : { [SESSION_KEY_HEADER]: key.header };
    const opened = binding.open(kind, target, sealed, key);
    if (!opened.ok) return undefined;
    return { [SESSION_KEY_HEADER]: key.header, [kind === 'sse' ? BACKEND_TARGET_HEADER : BACKEND_SESSION_HEADER]: opened.value };
  };
  const server = createServer((req, res) => {
    void record(seen, req).then(async (entry) => {
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
      const path = String(req.headers[PATH_HEADER] ?? '-');
      const routed = options.route?.({
        server: target,
        transport: req.headers[TRANSPORT_HEADER] === 'sse' ? 'sse' : 'streamable-http',
        method: String(req.headers[ORIGINAL_METHOD_HEADER] ?? ''),
        path: path === '-' ? '' : path,
      });
      if (routed !== undefined && !routed.ok) {
        const refusal = routed.refusal;
        res.writeHead(refusal.status, {
          ...(refusal.refused === 'SERVER_UNKNOWN' ? {} : { [ROUTE_REFUSED_HEADER]: refusal.refused }),
          ...(refusal.status === 405 ? { [ROUTE_ALLOW_HEADER]: refusal.allow } : {}),
        });
        res.end();
        return;
      }
      const backend = routed === undefined ? undefined : await routed.backend();
      const route: Record<string, string> =
        backend === undefined ? {} : backend.ok ? { [ROUTE_HEADER]: backend.header } : { [ROUTE_REFUSED_HEADER]: 'BACKEND_UNAVAILABLE' };
      const identity = { [USER_HEADER]: 'user-1', [USERNAME_HEADER]: 'alice', [SCOPES_HEADER]: `mcp:server:${target}:execute` };
      const signedIn = has('1') || has('filter') || has('only-alpha') || has('forbidden');
      if (!signedIn) {
        res.writeHead(401, { 'www-authenticate': 'Bearer realm="x"', 'content-type': 'application/json' });
        res.end('{"error":"AUTH_NO_CREDENTIALS"}');
      } else if (disabled.has(target)) {
        // decideAccess: a disabled server is refused before any scope, admins included.
        res.writeHead(503);
        res.end();
      } else if ((has('1') || (has('only-alpha') && target === 'alpha') || has('filter')) && bound(req, cookie, target) === undefined) {
        res.writeHead(404, { [SESSION_UNKNOWN_HEADER]: '1' });
        res.end();
      } else if (has('1') || (has('only-alpha') && target === 'alpha')) {
        res.writeHead(backend?.ok === false ? 502 : 200, { ...identity, ...bound(req, cookie, target), ...route });
        res.end();
      } else if (has('filter')) {
        res.writeHead(backend?.ok === false ? 502 : 200, {
          ...identity,
          ...bound(req, cookie, target),
          ...route,
          [SCOPES_HEADER]: `mcp:server:${target}:tool:a`,
          [TOOL_FILTER_HEADER]: '["a"]',
        });
        res.end();
      } else {
        // forbidden, or only-alpha on another server.
        res.writeHead(403, {
          [MISSING_SCOPE_HEADER]: `mcp:server:${target}:execute`,
          'www-authenticate': `Bearer error="insufficient_scope", scope="mcp:server:${target}:execute"`,
        });
        res.end();
      }
    });
  });
  const seal = (cookie: string, kind: SessionKind, target: string, value: string) => binding.seal(kind, target, value, binding.keyFor(cookie));
  return { ...(await listen(server, new Set(), seen)), messages, disabled, seal };
}

export interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  rawHeaders: string[];
  body: string;
  /** The client's own TCP port: equal on two replies when they came over one connection. */
  localPort: number | undefined;
}

/**
 * One request with node:http, which (unlike fetch) sends the path exactly as written. With
 * `chunked`, the body goes without a Content-Length. A new connection per request, closed
 * after it, unless `agent` is given (a keep-alive Agent sends several on one connection).
 */
export function send(
  port: number,
  options: { method?: string; path: string; headers?: Record<string, string>; body?: string | Buffer; chunked?: boolean; agent?: Agent },
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: '127.0.0.1', port, method: options.method ?? 'GET', path: options.path, headers: options.headers, agent: options.agent ?? false },
      (res) => {
        let body = '';
        // Read now: once the reply ends, the socket may be closed or handed to the next request.
        const localPort = res.socket.localPort;
        res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, rawHeaders: res.rawHeaders, body, localPort }));
      },
    );
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

export { freePort };
