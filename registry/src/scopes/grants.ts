/**
 * What a set of scopes grants: the scope tests the registry's pages use, and the summary of one
 * server's grants that the MCP access decision (decide.ts) reads. Pure.
 */
import {
  ANY_SERVER,
  REGISTRY_ADMIN,
  REGISTRY_READ,
  isServerName,
  parseScope,
  parseScopePattern,
  promptsScope,
  resourcesScope,
  serverScope,
  toolScope,
  type Scope,
} from './scope.ts';

/**
 * The scope strings any one of which grants `wanted` (besides mcp:registry:admin, which grants
 * everything). Implications follow DESIGN.md's scope table: registry read sees every server;
 * server execute covers every tool, resource and prompt of it; a mapped `*` stands for any
 * server name.
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
    case 'resources':
      return [resourcesScope(wanted.server), resourcesScope(ANY_SERVER), ...executeOf(wanted.server)];
    case 'prompts':
      return [promptsScope(wanted.server), promptsScope(ANY_SERVER), ...executeOf(wanted.server)];
    case 'tool':
      return [toolScope(wanted.server, wanted.tool), toolScope(ANY_SERVER, wanted.tool), ...executeOf(wanted.server)];
  }
}

function executeOf(server: string): string[] {
  return [serverScope(server, 'execute'), serverScope(ANY_SERVER, 'execute')];
}

/**
 * True when `scopes` grant `wanted`: it is held exactly, or with `*` in the server position,
 * or implied (mcp:registry:admin implies everything, mcp:registry:read implies every
 * `mcp:server:<name>:read`, `mcp:server:<name>:execute` implies every tool scope of `<name>`
 * and its `resources:read` and `prompts:read`).
 * @param wanted a concrete scope (no `*`). Malformed or wildcard `wanted` -> false, even for
 *   an admin: a check asking for a non-scope is a bug, and failing closed keeps it visible.
 */
export function hasScope(scopes: readonly string[], wanted: string): boolean {
  const scope = parseScope(wanted);
  if (scope === undefined) return false;
  if (scopes.includes(REGISTRY_ADMIN)) return true;
  return grantorsOf(scope).some((grantor) => scopes.includes(grantor));
}

/** The held scopes that name server `name` or `*`, parsed; malformed ones are left out. */
function scopesOnServer(scopes: readonly string[], name: string): Scope[] {
  return scopes
    .map((held) => parseScopePattern(held))
    .filter((scope): scope is Scope => scope !== undefined && 'server' in scope && (scope.server === name || scope.server === ANY_SERVER));
}

/**
 * True when the user may see server `name` (its listing, tools and health): admin, registry
 * read, or any scope about that server (`read`, `execute`, `toggle`, `edit`, `resources:read`,
 * `prompts:read` or a tool scope), including mapped `*` wildcards. False for an invalid name.
 */
export function canReadServer(scopes: readonly string[], name: string): boolean {
  if (!isServerName(name)) return false;
  return hasScope(scopes, serverScope(name, 'read')) || scopesOnServer(scopes, name).length > 0;
}

/** True when the user may enable or disable server `name`: admin or its toggle scope. */
export function canToggleServer(scopes: readonly string[], name: string): boolean {
  return isServerName(name) && hasScope(scopes, serverScope(name, 'toggle'));
}

/** True when the user may change server `name`'s definition: admin or its edit scope. */
export function canEditServer(scopes: readonly string[], name: string): boolean {
  return isServerName(name) && hasScope(scopes, serverScope(name, 'edit'));
}

/** What a session may do over MCP on one server; see grantsOnServer. */
export interface ServerGrants {
  /** mcp:registry:admin, `mcp:server:<name>:execute` or `mcp:server:*:execute`: everything. */
  readonly execute: boolean;
  /** The tool names of the held tool scopes on `<name>` or `*`: sorted, de-duplicated, frozen. */
  readonly tools: readonly string[];
  /** `mcp:server:<name>:resources:read`, its `*` form, or execute. */
  readonly resources: boolean;
  /** `mcp:server:<name>:prompts:read`, its `*` form, or execute. */
  readonly prompts: boolean;
}

/**
 * Sums up what `scopes` grant over MCP on server `name`, once per request. `tools` lists only
 * tools named by tool scopes, even when execute grants every tool: it is the list a
 * tools-only session's `tools/list` is filtered to, and the list its `tools/call` is checked
 * against, so the two cannot disagree.
 * @throws TypeError for an invalid server name (a programmer error: check it first).
 */
export function grantsOnServer(scopes: readonly string[], name: string): ServerGrants {
  // The check asks this on every MCP request with the same (frozen-in-practice) scope list of a
  // session: remember the answer per list and server. Lists are never mutated after login or
  // refresh (a refresh stores a new list), so the cache cannot go stale.
  let perServer = GRANTS_CACHE.get(scopes);
  if (perServer === undefined) {
    perServer = new Map();
    GRANTS_CACHE.set(scopes, perServer);
  }
  let grants = perServer.get(name);
  if (grants === undefined) {
    grants = computeGrants(scopes, name);
    if (perServer.size < 1000) perServer.set(name, grants);
  }
  return grants;
}

const GRANTS_CACHE = new WeakMap<readonly string[], Map<string, ServerGrants>>();

function computeGrants(scopes: readonly string[], name: string): ServerGrants {
  const tools = new Set<string>();
  for (const scope of scopesOnServer(scopes, name)) if (scope.kind === 'tool') tools.add(scope.tool);
  return Object.freeze({
    execute: hasScope(scopes, serverScope(name, 'execute')),
    tools: Object.freeze([...tools].sort()),
    resources: hasScope(scopes, resourcesScope(name)),
    prompts: hasScope(scopes, promptsScope(name)),
  });
}
