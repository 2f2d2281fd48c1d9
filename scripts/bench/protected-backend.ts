import { createServer } from 'node:http';
import { startProtectedBackend, type ReceivedRequest } from '../../registry/test/fixtures/protected-backend.ts';

/**
 * Row (j)'s backend, as a process of its own (`node scripts/bench/protected-backend.ts`, PORT):
 * the test fixture's OAuth-protected MCP server and its authorization server (oidc-provider,
 * DCR, alice / alice-pw), apart from the load generator so that neither takes the other's CPU,
 * as fininfo is. Access tokens live an hour: nothing is refreshed during a run.
 *
 * `GET http://127.0.0.1:PORT/status` (loopback only) answers what the benchmark needs: the
 * issuer and MCP URL, the pre-registered machine client (for the direct reference run), and how
 * many MCP requests reached the protected endpoint with a bearer token and how many token
 * requests the AS had.
 */
const backend = await startProtectedBackend({ accessTokenTtlSeconds: 3600 });
// The fixture keeps every request it received (tests look at them); at thousands a second that
// would grow the heap, and its garbage collection, for the whole run. Counted, then dropped.
const received = backend.received as ReceivedRequest[];
let bearerCounted = 0;
const count = (): number => {
  bearerCounted += received.filter((r) => r.endpoint === 'oauth' && /^Bearer /i.test(r.authorization ?? '')).length;
  received.length = 0;
  return bearerCounted;
};
setInterval(count, 250).unref();
const status = createServer((req, res) => {
  if (req.url !== '/status' && req.url !== '/healthz') return void res.writeHead(404).end();
  const bearer = count();
  res.writeHead(200, { 'content-type': 'application/json' }).end(
    JSON.stringify({
      issuer: backend.issuer,
      mcpUrl: backend.mcpUrl,
      tokenEndpoint: backend.endpoints.token,
      client: backend.client,
      receivedWithBearer: bearer,
      tokenRequests: backend.tokenRequests,
    }),
  );
});
status.listen(Number(process.env['PORT']), '127.0.0.1');
const stop = () => {
  status.close();
  void backend.close().finally(() => process.exit(0));
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
