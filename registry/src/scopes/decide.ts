/**
 * The access decision behind `/auth/validate`, and the scope tests the registry's own pages use.
 * Pure: the caller looks the server up in the catalog and the scopes up in the session.
 */
import {
  ANY_SERVER,
  REGISTRY_ADMIN,
  REGISTRY_READ,
  isServerName,
  parseScope,
  parseScopePattern,
  serverScope,
  toolScope,
  type Scope,
} from './scope.ts';

/** What the check needs to know about one request. */
export type AccessInput = {
  /** The session's scopes (from scopesForGroups), possibly holding mapped `*` wildcards. */
  readonly scopes: readonly string[];
  /** The catalog's entry for the server named by the location, or undefined if none. */
  readonly server: { readonly name: string; readonly enabled: boolean } | undefined;
  /** JSON-RPC method (X-MCP-Method). Accepted, not yet used: see decideAccess. */
  readonly method?: string;
  /** Tool name of a `tools/call` (X-MCP-Tool). Accepted, not yet used: see decideAccess. */
  readonly tool?: string;
};

export type DenyReason = 'server-unknown' | 'server-disabled' | 'scope-missing';

export type Decision =
  | { readonly allow: true }
  | {
      readonly allow: false;
      readonly status: 403 | 404 | 503;
      readonly reason: DenyReason;
      /** For 403 only: the scope that would have allowed the request, safe to show the client. */
      readonly missingScope?: string;
    };

type Denial = Extract<Decision, { allow: false }>;
/** One named rule: returns a denial, or undefined to let the next rule decide. */
type Check = (input: AccessInput) => Denial | undefined;

const ALLOW: Decision = Object.freeze({ allow: true });

/**
 * The scope strings any one of which grants `wanted` (besides mcp:registry:admin, which grants
 * everything). Implications follow DESIGN.md's scope table: registry read sees every server;
 * server execute covers every tool; a mapped `*` stands for any server name.
 */
function grantorsOf(wanted: Scope): string[] {
  switch (wanted.kind) {
    case 'registry-admin':
      return [REGISTRY_ADMIN];
    case 'registry-read':
      return [REGISTRY_READ];
    case 'server': {
      const grantors = [serverScope(wanted.server, wanted.action), serverScope(ANY_SERVER, wanted.action)];
      return wanted.action === 'read' ? [...grantors, REGISTRY_READ] : grantors;
    }
    case 'tool':
      return [
        toolScope(wanted.server, wanted.tool),
        toolScope(ANY_SERVER, wanted.tool),
        serverScope(wanted.server, 'execute'),
        serverScope(ANY_SERVER, 'execute'),
      ];
  }
}

/**
 * True when `scopes` grant `wanted`: it is held exactly, or with `*` in the server position,
 * or implied (mcp:registry:admin implies everything, mcp:registry:read implies every
 * `mcp:server:<name>:read`, `mcp:server:<name>:execute` implies every tool scope of `<name>`).
 * @param wanted a concrete scope (no `*`). Malformed or wildcard `wanted` -> false, even for
 *   an admin: a check asking for a non-scope is a bug, and failing closed keeps it visible.
 */
export function hasScope(scopes: readonly string[], wanted: string): boolean {
  const scope = parseScope(wanted);
  if (scope === undefined) return false;
  if (scopes.includes(REGISTRY_ADMIN)) return true;
  return grantorsOf(scope).some((grantor) => scopes.includes(grantor));
}

/**
 * True when the user may see server `name` (its listing, tools and health): admin, registry
 * read, or any scope about that server (`read`, `execute`, `toggle`, `edit` or a tool scope),
 * including mapped `*` wildcards. False for an invalid server name.
 */
export function canReadServer(scopes: readonly string[], name: string): boolean {
  if (!isServerName(name)) return false;
  if (hasScope(scopes, serverScope(name, 'read'))) return true;
  return scopes.some((held) => {
    const scope = parseScopePattern(held);
    return (scope?.kind === 'server' || scope?.kind === 'tool') && (scope.server === name || scope.server === ANY_SERVER);
  });
}

/** True when the user may enable or disable server `name`: admin or its toggle scope. */
export function canToggleServer(scopes: readonly string[], name: string): boolean {
  return isServerName(name) && hasScope(scopes, serverScope(name, 'toggle'));
}

/** True when the user may change server `name`'s definition: admin or its edit scope. */
export function canEditServer(scopes: readonly string[], name: string): boolean {
  return isServerName(name) && hasScope(scopes, serverScope(name, 'edit'));
}

/**
 * 404 for no catalog entry, and for an entry whose name is not a valid server name (it cannot
 * have come from the catalog, so treat it as unknown rather than format a scope from it);
 * 503 for a disabled server. Both come before any scope check, so these answers do not depend
 * on who asks, and nothing is ever allowed through to a server that is missing or switched off.
 */
const serverKnownAndEnabled: Check = ({ server }) => {
  if (server === undefined || !isServerName(server.name)) return { allow: false, status: 404, reason: 'server-unknown' };
  if (!server.enabled) return { allow: false, status: 503, reason: 'server-disabled' };
  return undefined;
};

/** 403 naming `mcp:server:<name>:execute` unless the scopes grant it (see hasScope). */
const hasServerScope: Check = ({ scopes, server }) => {
  // Unreachable after serverKnownAndEnabled; here so a reordering of CHECKS still fails closed.
  if (server === undefined || !isServerName(server.name)) return { allow: false, status: 404, reason: 'server-unknown' };
  const wanted = serverScope(server.name, 'execute');
  if (hasScope(scopes, wanted)) return undefined;
  return { allow: false, status: 403, reason: 'scope-missing', missingScope: wanted };
};

/** In order; the first refusal wins. The tool-level rule (hasToolScope) slots in after hasServerScope. */
const CHECKS: readonly Check[] = [serverKnownAndEnabled, hasServerScope];

/**
 * Decides one MCP request to one server.
 *
 * - server unknown (no catalog entry) -> `{ allow: false, status: 404, reason: 'server-unknown' }`
 * - server disabled -> `{ allow: false, status: 503, reason: 'server-disabled' }`
 * - scopes hold mcp:registry:admin, `mcp:server:<name>:execute` or a mapped
 *   `mcp:server:*:execute` -> `{ allow: true }`
 * - otherwise -> `{ allow: false, status: 403, reason: 'scope-missing',
 *   missingScope: 'mcp:server:<name>:execute' }`
 *
 * `method` and `tool` are accepted but not used yet: only the server rule applies, so a session
 * holding only tool scopes (`mcp:server:<name>:tool:<tool>:execute`) is refused with 403 until
 * the tool-level rule lands. The 404/503 answers come before the scope check whatever the scopes.
 */
export function decideAccess(input: AccessInput): Decision {
  for (const check of CHECKS) {
    const denial = check(input);
    if (denial !== undefined) return denial;
  }
  return ALLOW;
}
