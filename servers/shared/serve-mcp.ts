import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { AuthInfo } from '@modelcontextprotocol/sdk/server/auth/types.js';
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { SSEServerTransport } from '@modelcontextprotocol/sdk/server/sse.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { isInitializeRequest } from '@modelcontextprotocol/sdk/types.js';
import {
  JSONRPC_INTERNAL_ERROR,
  JSONRPC_INVALID_REQUEST,
  JSONRPC_PARSE_ERROR,
  JSONRPC_SERVER_ERROR,
  readJsonBody,
  sendJson,
  sendJsonRpcError,
} from './http-io.ts';

export const STREAMABLE_PATH = '/mcp';
export const SSE_PATH = '/sse';
export const SSE_MESSAGES_PATH = '/messages';
export const HEALTH_PATH = '/healthz';

/** What a backend received, as reported to {@link ServeMcpOptions.onRequest}. */
export type ReceivedRequest = {
  method: string;
  /** Path without the query string, e.g. `/messages`. */
  path: string;
  /** Path and query exactly as received, e.g. `/messages?sessionId=…`. */
  url: string;
  headers: Record<string, string | string[] | undefined>;
  /** Parsed JSON body; absent for bodiless requests. */
  body?: unknown;
};

export type ServeMcpOptions = {
  /** Interface to bind; defaults to loopback so examples are never exposed by accident. */
  host?: string;
  /** Port to bind; 0 (the default) picks a free one. */
  port?: number;
  log?: (msg: string) => void;
  /** Called once per HTTP request, before it is handled, so tests can see what reached the backend. */
  onRequest?: (info: ReceivedRequest) => void;
  /**
   * Runs first, before the body is read: answers the request itself and returns true (to refuse
   * it, or to serve a path of its own), or returns false to let MCP handle it. What it sets on
   * `req.auth` reaches tool handlers as `extra.authInfo`. For protected test backends.
   */
  intercept?: (req: IncomingMessage & { auth?: AuthInfo }, res: ServerResponse) => boolean | Promise<boolean>;
};

export type RunningMcpServer = {
  /** Base URL, e.g. `http://127.0.0.1:8001` (append `/mcp` or `/sse`). */
  url: string;
  port: number;
  /** Closes every MCP session, drops open connections (SSE streams included) and stops listening. */
  close(): Promise<void>;
};

type Session = { server: McpServer; transport: StreamableHTTPServerTransport | SSEServerTransport };

/**
 * Serves MCP servers built by `buildServer` over both HTTP transports on one port:
 * Streamable HTTP (stateful, one McpServer per `Mcp-Session-Id`) at `/mcp`, and the
 * legacy HTTP+SSE transport at `GET /sse` + `POST /messages?sessionId=…`.
 * `GET /healthz` answers `{"status":"ok"}`.
 *
 * Errors on `/mcp`: a POST without a session id that is not `initialize` → 400; an unknown
 * session id → 404 (both as JSON-RPC error bodies). `/messages` with an unknown session → 404.
 * Rejects if the port cannot be bound.
 */
export async function serveMcp(buildServer: () => McpServer, options: ServeMcpOptions = {}): Promise<RunningMcpServer> {
  const log = options.log ?? (() => {});
  // Kept apart so a legacy SSE session id can never address a Streamable HTTP session, or the reverse.
  const streamable = new Map<string, Session>();
  const sse = new Map<string, Session>();

  async function handleStreamable(req: IncomingMessage, res: ServerResponse, body: unknown): Promise<void> {
    const sessionId = headerValue(req.headers['mcp-session-id']);
    if (sessionId !== undefined) {
      const session = streamable.get(sessionId);
      if (!session) return sendJsonRpcError(res, 404, JSONRPC_SERVER_ERROR, 'Session not found');
      return (session.transport as StreamableHTTPServerTransport).handleRequest(req, res, body);
    }
    if (req.method !== 'POST' || !isInitializeRequest(body)) {
      return sendJsonRpcError(res, 400, JSONRPC_INVALID_REQUEST, 'Bad Request: no valid session id provided');
    }
    await startStreamableSession(req, res, body);
  }

  async function startStreamableSession(req: IncomingMessage, res: ServerResponse, body: unknown): Promise<void> {
    const server = buildServer();
    const transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: randomUUID,
      onsessioninitialized: (id) => {
        streamable.set(id, { server, transport });
        log(`streamable session ${id} opened`);
      },
    });
    transport.onclose = () => {
      if (transport.sessionId && streamable.delete(transport.sessionId)) {
        log(`streamable session ${transport.sessionId} closed`);
      }
    };
    await server.connect(transport);
    await transport.handleRequest(req, res, body);
    // A rejected initialize never gets a session id; nothing else would ever close this server.
    if (transport.sessionId === undefined) await server.close();
  }

  async function openSseStream(res: ServerResponse): Promise<void> {
    const server = buildServer();
    const transport = new SSEServerTransport(SSE_MESSAGES_PATH, res);
    const id = transport.sessionId;
    sse.set(id, { server, transport });
    transport.onclose = () => {
      if (sse.delete(id)) log(`sse session ${id} closed`);
    };
    log(`sse session ${id} opened`);
    await server.connect(transport); // connect() starts the transport, which writes the `endpoint` event
  }

  async function postSseMessage(req: IncomingMessage, res: ServerResponse, url: URL, body: unknown): Promise<void> {
    const session = sse.get(url.searchParams.get('sessionId') ?? '');
    if (!session) return sendJsonRpcError(res, 404, JSONRPC_SERVER_ERROR, 'Session not found');
    await (session.transport as SSEServerTransport).handlePostMessage(req, res, body);
  }

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (options.intercept && (await options.intercept(req, res))) return;
    const url = new URL(req.url ?? '/', 'http://localhost');
    const method = req.method ?? 'GET';
    let body: unknown;
    if (method === 'POST') {
      const read = await readJsonBody(req);
      if (!read.ok) return sendJsonRpcError(res, read.status, JSONRPC_PARSE_ERROR, read.message);
      body = read.body;
    }
    options.onRequest?.({ method, path: url.pathname, url: req.url ?? '/', headers: { ...req.headers }, ...(body === undefined ? {} : { body }) });

    if (url.pathname === STREAMABLE_PATH && ['GET', 'POST', 'DELETE'].includes(method)) return handleStreamable(req, res, body);
    if (url.pathname === SSE_PATH && method === 'GET') return openSseStream(res);
    if (url.pathname === SSE_MESSAGES_PATH && method === 'POST') return postSseMessage(req, res, url, body);
    if (url.pathname === HEALTH_PATH && method === 'GET') return sendJson(res, 200, { status: 'ok' });
    sendJson(res, 404, { error: 'not_found' });
  }

  const http = createServer((req, res) => {
    route(req, res).catch((err: unknown) => {
      log(`error handling ${req.method} ${req.url}: ${err instanceof Error ? err.message : String(err)}`);
      sendJsonRpcError(res, 500, JSONRPC_INTERNAL_ERROR, 'Internal server error');
    });
  });

  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(options.port ?? 0, host, () => {
      http.off('error', reject);
      resolve();
    });
  });
  const port = (http.address() as AddressInfo).port;

  async function close(): Promise<void> {
    const stopped = new Promise<void>((resolve) => http.close(() => resolve()));
    const sessions = [...streamable.values(), ...sse.values()];
    await Promise.allSettled(sessions.map((s) => s.server.close()));
    // Long-lived SSE responses (and keep-alive sockets) would otherwise keep close() waiting forever.
    http.closeAllConnections();
    await stopped;
  }

  return { url: `http://${formatHost(host)}:${port}`, port, close };
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/** IPv6 literals need brackets inside a URL. */
function formatHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}
