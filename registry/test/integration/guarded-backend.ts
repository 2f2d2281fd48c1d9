/**
 * A backend that wants its own credential: the fininfo MCP server behind a loopback proxy that
 * answers 401 unless `refusal(headers)` says nothing is wrong. It records the headers of every
 * request a person's MCP call brought through nginx in `seen` (they carry the check's `X-User`),
 * and the gateway's own health checks and tool discovery apart in `probes`: those run on their
 * own schedule, so counting them with a test's calls would make the counts race the schedule.
 */
import { createServer, request as httpRequest, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { buildServer as buildFininfo } from '../../../servers/fininfo/server.ts';
import { serveMcp, type RunningMcpServer } from '../../../servers/shared/serve-mcp.ts';

export interface GuardedBackend {
  readonly url: string;
  readonly seen: IncomingHttpHeaders[];
  readonly probes: IncomingHttpHeaders[];
  close(): Promise<void>;
}

/** `refusal` returns the 401's error text, or undefined to let the request through. */
export async function guardedBackend(refusal: (headers: IncomingHttpHeaders) => string | undefined): Promise<GuardedBackend> {
  const inner: RunningMcpServer = await serveMcp(buildFininfo, { port: 0 });
  const seen: IncomingHttpHeaders[] = [];
  const probes: IncomingHttpHeaders[] = [];
  const server: Server = createServer((req, res) => {
    (req.headers['x-user'] ? seen : probes).push(req.headers);
    const refused = refusal(req.headers);
    if (refused !== undefined) {
      res.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ error: refused }));
      req.resume();
      return;
    }
    // Hop-by-hop headers are this hop's (a forwarded `Connection: close` would end the inner exchange early).
    const { connection: _connection, 'keep-alive': _keepAlive, ...headers } = req.headers;
    const upstream = httpRequest(`${inner.url}${req.url}`, { method: req.method, headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    probes,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await inner.close();
    },
  };
}
