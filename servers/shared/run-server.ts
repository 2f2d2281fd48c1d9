import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { serveMcp } from './serve-mcp.ts';

/**
 * The entry point of an example server run directly: HOST (default 127.0.0.1) and PORT, one
 * startup line, a clean exit on SIGINT/SIGTERM.
 */
export async function runServer(name: string, buildServer: () => McpServer, defaultPort: number): Promise<void> {
  const host = process.env['HOST'] ?? '127.0.0.1';
  const port = Number(process.env['PORT'] ?? defaultPort);
  const running = await serveMcp(buildServer, { host, port, log: (msg) => console.error(msg) });
  const stop = (): void => {
    running.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  // Only after the handlers: a supervisor may signal as soon as it reads this line, and with
  // the line first, Node 24 was seen to die of an early SIGTERM before the handler took effect.
  console.log(`${name} MCP server on ${running.url} (streamable: /mcp, sse: /sse)`);
}
