/**
 * The routing half of the check: which backend an MCP request goes to. nginx no longer has a
 * location per server (catalog changes never reload it, docs/nginx.md "Routing without
 * reloads"): it matches any well-formed server name, and the check, which knows the catalog,
 * decides the endpoint and answers where to proxy. The table itself lives in the nginx layer
 * (nginx/route.ts, it validates with names.ts); the composition root hands its lookup in.
 */
import type { Transport } from '../catalog/server-definition.ts';

/** On the check's subrequest: the path below `/api/execute/<name>` nginx matched (legacy transport; `-` when none). */
export const PATH_HEADER = 'x-mcp-path';
/**
 * On a 200: where njs sends the request, one header of space-separated checked values:
 * `<kind> <scheme> <upstream> <host> <uri>` (kind `streamable`, `sse` or `sse-messages`;
 * upstream an upstream block's name or an `IP:port`; uri `-` for the messages endpoint, whose
 * target is X-MCP-Backend-Target).
 */
export const ROUTE_HEADER = 'x-mcp-route';
/**
 * Why the route refused, for njs's JSON answer: NOT_FOUND (404: no such endpoint of the
 * server), METHOD_NOT_ALLOWED (405: the legacy stream / messages endpoint, with
 * ROUTE_ALLOW_HEADER), or
 * BACKEND_UNAVAILABLE (502). A 404 without it is SERVER_UNKNOWN.
 */
export const ROUTE_REFUSED_HEADER = 'x-mcp-route-refused';
/** With a METHOD_NOT_ALLOWED refusal: the one method the endpoint takes (njs answers it as `Allow`). */
export const ROUTE_ALLOW_HEADER = 'x-mcp-route-allow';

export interface RouteRequest {
  readonly server: string;
  readonly transport: Transport;
  readonly method: string;
  /** Legacy transport: the normalized path after `/api/execute/<name>` ('' for none). */
  readonly path: string;
}

export type RouteRefusal =
  | { readonly status: 404; readonly refused: 'SERVER_UNKNOWN' | 'NOT_FOUND' }
  | { readonly status: 405; readonly refused: 'METHOD_NOT_ALLOWED'; readonly allow: 'GET' | 'POST' };

/**
 * A request's endpoint: refused (before any credential is looked at, as nginx's own 404/405
 * were), or `backend()`, asked once the request is allowed: the ROUTE_HEADER value, or why the
 * backend cannot be reached now (502).
 */
export type RouteDecision = { readonly ok: false; readonly refusal: RouteRefusal } | { readonly ok: true; backend(): RouteBackend | Promise<RouteBackend> };

export type RouteBackend = { readonly ok: true; readonly header: string } | { readonly ok: false; readonly reason: string };

export type RouteLookup = (request: RouteRequest) => RouteDecision;
