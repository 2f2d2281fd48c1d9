import { SERVER_NAME_PATTERN } from '../catalog/server-definition.ts';
import { grantsOnServer, hasScope } from '../scopes/grants.ts';
import { parseScope, promptsScope, resourcesScope, serverScope, toolScope } from '../scopes/scope.ts';

/**
 * RFC 8707 resources: each server's two MCP URLs (the same paths nginx serves, authz/paths.ts).
 * A gateway access token names one of them in `aud`, and the check accepts it on that server
 * only, on either transport.
 */
export function resourcesOf(publicUrl: string, server: string): readonly [string, string] {
  return [`${publicUrl}/api/streamable/${server}`, `${publicUrl}/api/execute/${server}/sse`];
}

const RESOURCE_PATH = /^\/api\/(?:streamable\/([a-z0-9][a-z0-9-]{0,62})|execute\/([a-z0-9][a-z0-9-]{0,62})\/sse)$/;

/** The server a resource indicator names, or undefined when it is not one of the gateway's MCP URLs. */
export function serverOfResource(publicUrl: string, resource: string): string | undefined {
  if (!resource.startsWith(`${publicUrl}/`)) return undefined;
  const match = RESOURCE_PATH.exec(resource.slice(publicUrl.length));
  const name = match?.[1] ?? match?.[2];
  return name !== undefined && SERVER_NAME_PATTERN.test(name) ? name : undefined;
}

/**
 * The MCP scopes a person holds on one server, spelled for that server only: what their group
 * scopes grant there (read, execute, resources, prompts, each tool scope), with `*` patterns and
 * the registry-wide scopes (`mcp:registry:admin` implies execute) turned into the server's own
 * names. Never anything about another server, and never toggle/edit (registry management is not
 * an MCP client's business).
 */
export function serverScopes(scopes: readonly string[], server: string): string[] {
  const out: string[] = [];
  if (hasScope(scopes, serverScope(server, 'read'))) out.push(serverScope(server, 'read'));
  if (hasScope(scopes, serverScope(server, 'execute'))) out.push(serverScope(server, 'execute'));
  else {
    const grants = grantsOnServer(scopes, server);
    if (grants.resources) out.push(resourcesScope(server));
    if (grants.prompts) out.push(promptsScope(server));
    for (const tool of grants.tools) out.push(toolScope(server, tool));
  }
  return out;
}

/**
 * How a client's `scope` parameter narrows a token: without any scope about this server the
 * token carries everything the person holds there ({@link serverScopes}); with some, it carries
 * the requested ones the person holds (directly or implied: `execute` covers a tool scope), and
 * for a requested scope the person does not hold, the narrower ones they hold under it (a
 * one-tool person asked for `execute` gets their tool scope). A request never widens anything.
 */
export function narrowScopes(held: readonly string[], requested: readonly string[], server: string): { granted: string[]; rejected: string[] } {
  const mine = requested.filter((s) => {
    const scope = parseScope(s);
    return scope !== undefined && 'server' in scope && scope.server === server;
  });
  if (mine.length === 0) return { granted: [...held], rejected: [] };
  // A requested scope is an upper bound: held, it is granted as asked; otherwise whatever the
  // person holds under it is (a client told `mcp:server:s:execute` by a 401 gets a one-tool
  // person's tool scope, not nothing). Nothing is ever granted above what was asked or held.
  // `rejected` lists what was not granted as asked (the grant records it, so oidc-provider does
  // not ask for consent again for a scope the person cannot have).
  const granted = new Set<string>();
  const rejected: string[] = [];
  for (const asked of mine) {
    if (hasScope(held, asked)) {
      granted.add(asked);
      continue;
    }
    rejected.push(asked);
    for (const scope of held) if (hasScope([asked], scope)) granted.add(scope);
  }
  return { granted: [...granted], rejected };
}
