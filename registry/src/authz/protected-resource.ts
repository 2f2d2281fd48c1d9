/**
 * The gateway as an OAuth protected resource (MCP authorization spec, revisions 2025-06-18 to
 * 2026-07-28; RFC 9728): what a standard MCP client reads to find out how to get a token.
 *
 * Each MCP URL a client is given is its own resource:
 *   `<public>/api/streamable/<name>`      metadata at `<public>/.well-known/oauth-protected-resource/api/streamable/<name>`
 *   `<public>/api/execute/<name><sse>`    metadata at `<public>/.well-known/oauth-protected-resource/api/execute/<name><sse>`
 * and the gateway as a whole (the REST API) is `<public>`, metadata at the root well-known URL.
 * RFC 9728 section 3.1 inserts the well-known segment between the host and the path.
 *
 * Pure: every URL is built from GATEWAY_PUBLIC_URL (never from a request's Host, which a client
 * chooses), the server from the catalog's definition.
 */
import type { ServerDefinition, Transport } from '../catalog/server-definition.ts';
import { promptsScope, resourcesScope, serverScope, toolScope, REGISTRY_ADMIN, REGISTRY_READ } from '../scopes/scope.ts';
import { headerQuotedValue } from './header-value.ts';
import { EXECUTE_PREFIX, STREAMABLE_PREFIX } from './paths.ts';

/** RFC 9728 section 3: the well-known URI suffix. */
export const PROTECTED_RESOURCE_WELL_KNOWN = '/.well-known/oauth-protected-resource';

/** RFC 9728 section 2, the fields we publish. */
export interface ProtectedResourceMetadata {
  readonly resource: string;
  readonly authorization_servers: readonly string[];
  readonly scopes_supported: readonly string[];
  readonly bearer_methods_supported: readonly ['header'];
  readonly resource_name: string;
}

/** What a server's resource needs of its definition. */
export type ResourceServer = Pick<ServerDefinition, 'name' | 'transports' | 'tools'>;

/** The public MCP URL of `server` for `transport` (what the registry lists as its endpoint), or undefined without it. */
export function resourceUrl(publicUrl: string, server: Pick<ServerDefinition, 'name' | 'transports'>, transport: Transport): string | undefined {
  if (transport === 'streamable-http') return server.transports['streamable-http'] === undefined ? undefined : `${publicUrl}${STREAMABLE_PREFIX}${server.name}`;
  return server.transports.sse === undefined ? undefined : `${publicUrl}${EXECUTE_PREFIX}${server.name}${server.transports.sse}`;
}

/**
 * RFC 9728 section 3.1: the metadata URL of a resource, the well-known segment inserted
 * between the host and the resource's path (`https://h/p` -> `https://h/.well-known/oauth-protected-resource/p`).
 */
export function metadataUrl(resource: string): string {
  const url = new URL(resource);
  const path = url.pathname === '/' ? '' : url.pathname;
  return `${url.origin}${PROTECTED_RESOURCE_WELL_KNOWN}${path}`;
}

/**
 * The scopes that exist for one server: execute, one per tool of its definition, resources and
 * prompts read. Never `offline_access` or registry scopes: a client asks for what it needs here.
 */
export function serverScopesSupported(server: Pick<ServerDefinition, 'name' | 'tools'>): string[] {
  return [
    serverScope(server.name, 'execute'),
    ...server.tools.map((tool) => toolScope(server.name, tool.name)),
    resourcesScope(server.name),
    promptsScope(server.name),
  ];
}

/** The metadata of one server's MCP URL for `transport`; undefined when the server has no such transport. */
export function serverResourceMetadata(publicUrl: string, server: ResourceServer, transport: Transport): ProtectedResourceMetadata | undefined {
  const resource = resourceUrl(publicUrl, server, transport);
  if (resource === undefined) return undefined;
  return Object.freeze({
    resource,
    authorization_servers: Object.freeze([publicUrl]),
    scopes_supported: Object.freeze(serverScopesSupported(server)),
    bearer_methods_supported: Object.freeze(['header'] as const),
    resource_name: `MCP server ${server.name}${transport === 'sse' ? ' (HTTP+SSE)' : ''}`,
  });
}

/** The gateway as a whole (its REST API): resource = the public URL itself. */
export function gatewayResourceMetadata(publicUrl: string): ProtectedResourceMetadata {
  return Object.freeze({
    resource: publicUrl,
    authorization_servers: Object.freeze([publicUrl]),
    scopes_supported: Object.freeze([REGISTRY_READ, REGISTRY_ADMIN]),
    bearer_methods_supported: Object.freeze(['header'] as const),
    resource_name: 'MCP Gateway Registry',
  });
}

/** How a Bearer challenge was refused: RFC 6750 section 3.1 `error`, or none for a request without credentials. */
export type ChallengeError = 'invalid_token' | 'invalid_request' | 'insufficient_scope' | undefined;

/**
 * A `WWW-Authenticate: Bearer` value (RFC 6750 section 3; RFC 9728 section 5.1 for
 * `resource_metadata`; the MCP spec's scope challenge for `scope`). Every value is escaped as
 * a quoted-string (header-value.ts). Parameters in a fixed order: realm, error, scope,
 * resource_metadata; each only when given.
 */
export function bearerChallenge(options: { realm?: string; error?: ChallengeError; scope?: string; resourceMetadata?: string }): string {
  const params: string[] = [];
  if (options.realm !== undefined) params.push(`realm="${headerQuotedValue(options.realm)}"`);
  if (options.error !== undefined) params.push(`error="${options.error}"`);
  if (options.scope !== undefined && options.scope !== '') params.push(`scope="${headerQuotedValue(options.scope)}"`);
  if (options.resourceMetadata !== undefined) params.push(`resource_metadata="${headerQuotedValue(options.resourceMetadata)}"`);
  return params.length ? `Bearer ${params.join(', ')}` : 'Bearer';
}
