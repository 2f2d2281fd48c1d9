/**
 * Test support for the nginx integration tests: tiny real HTTP peers (MCP-ish backends and a
 * stand-in for the registry's /auth/validate) and a raw HTTP client. The stand-in is a double
 * of the registry only; nginx is always the real binary.
 */
import { createServer, request as httpRequest, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { MISSING_SCOPE_HEADER, SCOPES_HEADER, SERVER_HEADER, USER_HEADER, USERNAME_HEADER, VALIDATE_PATH } from '../authz/paths.ts';
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

/**
 * An MCP-ish backend: `GET <any>/sse` opens an event stream that announces
 * `data: /messages?sessionId=abc`, sends one more event 50 ms later and stays open; every
 * other request is echoed as JSON.
 */
export async function startBackend(): Promise<Peer> {
  const seen: Seen[] = [];
  const open = new Set<ServerResponse>();
  const server = createServer((req, res) => {
    void record(seen, req).then((entry) => {
      if (req.method === 'GET' && entry.url.endsWith('/sse')) {
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
        res.write('event: endpoint\ndata: /messages?sessionId=abc\n\n');
        // A later event on the same stream: it must arrive too, unchanged, while still open.
        const later = setTimeout(() => res.write('event: message\ndata: {"later":"data: /x"}\n\n'), 50);
        res.on('close', () => clearTimeout(later));
        open.add(res);
        res.on('close', () => open.delete(res));
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(entry));
    });
  });
  return listen(server, open, seen);
}

/**
 * Stands in for the registry. On VALIDATE_PATH: cookie `ok=1` → 200 with identity headers;
 * `ok=only-alpha` → 200 for server alpha only, else 403; `ok=forbidden` → 403 naming the
 * server's execute scope; no cookie → 401 with a Bearer challenge. Anything else is the
 * "web page": a JSON echo.
 */
export async function startRegistryDouble(): Promise<Peer> {
  const seen: Seen[] = [];
  const server = createServer((req, res) => {
    void record(seen, req).then((entry) => {
      if (entry.url.split('?')[0] !== VALIDATE_PATH) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ page: true, ...entry }));
        return;
      }
      const cookie = String(req.headers.cookie ?? '');
      const target = String(req.headers[SERVER_HEADER] ?? '');
      const forbid = (): void => {
        res.writeHead(403, { [MISSING_SCOPE_HEADER]: `mcp:server:${target}:execute` });
        res.end();
      };
      if (/(^|;\s*)ok=1(;|$)/.test(cookie) || (/(^|;\s*)ok=only-alpha(;|$)/.test(cookie) && target === 'alpha')) {
        res.writeHead(200, { [USER_HEADER]: 'user-1', [USERNAME_HEADER]: 'alice', [SCOPES_HEADER]: `mcp:server:${target}:execute` });
        res.end();
      } else if (/ok=(forbidden|only-alpha)/.test(cookie)) {
        forbid();
      } else {
        res.writeHead(401, { 'www-authenticate': 'Bearer realm="x"', 'content-type': 'application/json' });
        res.end('{"error":"AUTH_NO_CREDENTIALS"}');
      }
    });
  });
  return listen(server, new Set(), seen);
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

/** One request with node:http, which (unlike fetch) sends the path exactly as written. */
export function send(port: number, options: { method?: string; path: string; headers?: Record<string, string>; body?: string }): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, method: options.method ?? 'GET', path: options.path, headers: options.headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, rawHeaders: res.rawHeaders, body }));
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

/**
 * Opens an event stream and resolves as soon as `wanted` appears in the bytes read so far,
 * reporting whether the stream had ended by then. Rejects after `timeoutMs`.
 */
export function readStreamUntil(port: number, path: string, headers: Record<string, string>, wanted: string, timeoutMs = 3000): Promise<{ status: number; text: string; ended: boolean }> {
  return new Promise((resolve, reject) => {
    let text = '';
    let ended = false;
    const req = httpRequest({ host: '127.0.0.1', port, path, headers, agent: false }, (res) => {
      res.setEncoding('utf8');
      res.on('end', () => (ended = true));
      res.on('data', (chunk: string) => {
        text += chunk;
        if (text.includes(wanted)) {
          clearTimeout(timer);
          resolve({ status: res.statusCode ?? 0, text, ended });
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
    req.end();
  });
}

/** A frozen-shaped server definition with defaults for the fields the config ignores. */
export function definition(name: string, url: string, transports: ServerDefinition['transports'], enabled = true): ServerDefinition {
  return { name, description: '', url, transports, enabled, tags: [], tools: [] };
}
