/**
 * RFC 9728 protected-resource metadata documents (authz/protected-resource.ts builds them):
 *   GET /.well-known/oauth-protected-resource                               the gateway (REST API)
 *   GET /.well-known/oauth-protected-resource/api/streamable/<name>         a server's Streamable HTTP URL
 *   GET /.well-known/oauth-protected-resource/api/execute/<name><sse path>  a server's HTTP+SSE URL
 * Unauthenticated, as RFC 9728 intends. A server that is disabled still has its document (its
 * MCP URL exists and answers 401, then 503); an unknown server, or a transport it does not
 * offer, is a JSON 404. Every URL comes from GATEWAY_PUBLIC_URL, never from the request.
 */
import express, { type Request, type Response } from 'express';
import { gatewayResourceMetadata, PROTECTED_RESOURCE_WELL_KNOWN, serverResourceMetadata, type ResourceServer } from '../../authz/protected-resource.ts';
import { EXECUTE_PREFIX, STREAMABLE_PREFIX } from '../../authz/paths.ts';
import type { Transport } from '../../catalog/server-definition.ts';
import { GatewayError, toHttp } from '../../errors.ts';

/** Catalog-derived (a server's tools name its scopes): short, so an edit shows within a minute. */
const CACHE_CONTROL = 'public, max-age=60';

/** `<prefix><name><rest>` -> name and rest, for a path under one of the MCP prefixes. */
function serverPath(path: string): { transport: Transport; name: string; rest: string } | undefined {
  for (const [prefix, transport] of [
    [STREAMABLE_PREFIX, 'streamable-http'],
    [EXECUTE_PREFIX, 'sse'],
  ] as const) {
    if (!path.startsWith(prefix)) continue;
    const tail = path.slice(prefix.length);
    const slash = tail.indexOf('/');
    return slash === -1 ? { transport, name: tail, rest: '' } : { transport, name: tail.slice(0, slash), rest: tail.slice(slash) };
  }
  return undefined;
}

function notFound(res: Response): void {
  const { status, body } = toHttp(new GatewayError('SERVER_UNKNOWN', 'There is no MCP server at this resource path.'));
  res.status(status).set('Cache-Control', 'no-store').json(body);
}

export function protectedResourceRoutes(options: { publicUrl: string; catalog: { get(name: string): ResourceServer | undefined } }): express.Router {
  const { publicUrl, catalog } = options;
  const root = JSON.stringify(gatewayResourceMetadata(publicUrl));
  const router = express.Router({ caseSensitive: true, strict: true });
  router.get(PROTECTED_RESOURCE_WELL_KNOWN, (_req: Request, res: Response) => void res.set('Cache-Control', CACHE_CONTROL).type('application/json').send(root));
  router.get(`${PROTECTED_RESOURCE_WELL_KNOWN}/{*path}`, (req: Request, res: Response) => {
    const found = serverPath(req.path.slice(PROTECTED_RESOURCE_WELL_KNOWN.length));
    const server = found && catalog.get(found.name);
    // The path must be exactly the resource's: the streamable URL has nothing after the name,
    // the SSE URL exactly the definition's stream path.
    const exact = found && server && (found.transport === 'streamable-http' ? found.rest === '' : found.rest === server.transports.sse);
    const metadata = exact && server ? serverResourceMetadata(publicUrl, server, found.transport) : undefined;
    if (!metadata) return notFound(res);
    res.set('Cache-Control', CACHE_CONTROL).json(metadata);
  });
  return router;
}
