/**
 * A backend that speaks the 2026-07-28 MCP revision, built with the v2 server SDK
 * (`@modelcontextprotocol/server`, `createMcpHandler`): `server/discover`, per-request `_meta`,
 * `subscriptions/listen`, and the stateless 2025 fallback the SDK serves by default. Its
 * web-standard handler is mounted on a plain `node:http` server on a loopback port.
 */
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { McpServer, createMcpHandler, type McpHttpHandler } from '@modelcontextprotocol/server';
import { z } from 'zod';
import type { ReceivedRequest } from '../../../servers/shared/serve-mcp.ts';

export const MODERN_TOOLS = ['add', 'echo', 'secret_admin'] as const;

export interface RunningModernServer {
  /** Base URL; the MCP endpoint is `/mcp`. */
  readonly url: string;
  readonly handler: McpHttpHandler;
  close(): Promise<void>;
}

function buildModernServer(): McpServer {
  // A list shared caches may keep, so the test can see the gateway mark a filtered one private.
  const server = new McpServer(
    { name: 'modern', version: '1.0.0' },
    { capabilities: { tools: { listChanged: true } }, cacheHints: { 'tools/list': { ttlMs: 60_000, cacheScope: 'public' } } },
  );
  server.registerTool('echo', { description: 'echo', inputSchema: z.object({ message: z.string() }) }, ({ message }) => ({
    content: [{ type: 'text', text: `Echo: ${message}` }],
  }));
  server.registerTool('add', { description: 'add', inputSchema: z.object({ a: z.number(), b: z.number() }) }, ({ a, b }) => ({
    content: [{ type: 'text', text: String(a + b) }],
  }));
  server.registerTool('secret_admin', { description: 'only for the full user' }, () => ({ content: [{ type: 'text', text: 'admin' }] }));
  return server;
}

/** Starts the modern backend; `onRequest` sees every HTTP request that reached it. */
export async function serveModern(onRequest?: (info: ReceivedRequest) => void): Promise<RunningModernServer> {
  const handler = createMcpHandler(() => buildModernServer(), { keepAliveMs: 0 });
  const http = createServer(async (req, res) => {
    try {
      const body = req.method === 'POST' || req.method === 'PUT' ? await readAll(req) : undefined;
      const url = new URL(req.url ?? '/', 'http://127.0.0.1');
      let parsed: unknown;
      try {
        parsed = body === undefined ? undefined : JSON.parse(body.toString('utf8'));
      } catch {
        parsed = undefined;
      }
      onRequest?.({
        method: req.method ?? 'GET',
        path: url.pathname,
        url: req.url ?? '/',
        headers: { ...req.headers },
        ...(parsed === undefined ? {} : { body: parsed }),
      });
      const abort = new AbortController();
      res.on('close', () => abort.abort());
      const headers = new Headers();
      for (const [name, value] of Object.entries(req.headers)) {
        if (typeof value === 'string') headers.set(name, value);
        else if (Array.isArray(value)) for (const v of value) headers.append(name, v);
      }
      const request = new Request(`http://127.0.0.1${req.url ?? '/'}`, {
        method: req.method ?? 'GET',
        headers,
        signal: abort.signal,
        ...(body === undefined ? {} : { body: new Uint8Array(body) }),
      });
      const response = await handler.fetch(request);
      res.writeHead(response.status, Object.fromEntries(response.headers.entries()));
      if (response.body === null) return void res.end();
      const reader = response.body.getReader();
      for (;;) {
        const chunk = await reader.read();
        if (chunk.done) break;
        res.write(chunk.value);
      }
      res.end();
    } catch {
      if (!res.headersSent) res.writeHead(500);
      res.end();
    }
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const port = (http.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    handler,
    async close() {
      await handler.close();
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
}

async function readAll(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}
