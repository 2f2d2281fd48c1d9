/**
 * The scope grammar: the strings operators already know from the Python gateway, parsed into a
 * tagged union and formatted back. Strict on purpose: anything that is not exactly one of the
 * forms below is `undefined`, never a best guess, because a scope that parses loosely is a
 * scope that grants more than it says.
 *
 *   mcp:registry:admin
 *   mcp:registry:read
 *   mcp:server:<name>:read | execute | toggle | edit
 *   mcp:server:<name>:resources:read
 *   mcp:server:<name>:prompts:read
 *   mcp:server:<name>:tool:<tool>:execute
 */

/**
 * Server names, `[a-z0-9][a-z0-9-]{0,62}`. A copy of `catalog/server-definition.ts`'s pattern:
 * scopes/ imports nothing from the project so it stays a leaf that can be reviewed alone;
 * `scope.test.ts` fails if the two copies drift apart.
 */
export const SERVER_NAME_PATTERN = /^[a-z0-9][a-z0-9-]{0,62}$/;

/**
 * Tool names as the MCP spec allows them (SEP-986): 1-128 of `A-Z a-z 0-9 _ - .`. A copy of the
 * catalog's pattern (see above). It has no `:`, which is what lets a tool scope be split on `:`.
 */
export const TOOL_NAME_PATTERN = /^[A-Za-z0-9_.-]{1,128}$/;

/** Stands for every server, and only in the server position; only the mapping file may use it. */
export const ANY_SERVER = '*';

export const REGISTRY_ADMIN = 'mcp:registry:admin';
export const REGISTRY_READ = 'mcp:registry:read';

export const SERVER_ACTIONS = ['read', 'execute', 'toggle', 'edit'] as const;
export type ServerAction = (typeof SERVER_ACTIONS)[number];

/** One parsed scope. `server` is a valid server name, or `*` only when parsed as a pattern. */
export type Scope =
  | { readonly kind: 'registry-admin' }
  | { readonly kind: 'registry-read' }
  | { readonly kind: 'server'; readonly server: string; readonly action: ServerAction }
  | { readonly kind: 'resources'; readonly server: string }
  | { readonly kind: 'prompts'; readonly server: string }
  | { readonly kind: 'tool'; readonly server: string; readonly tool: string };

/** True for a valid server name (not `*`). */
export function isServerName(name: string): boolean {
  return SERVER_NAME_PATTERN.test(name);
}

/** True for a valid MCP tool name. */
export function isToolName(tool: string): boolean {
  return TOOL_NAME_PATTERN.test(tool);
}

function isServerAction(s: string): s is ServerAction {
  return (SERVER_ACTIONS as readonly string[]).includes(s);
}

/**
 * Splits by fixed positions. Tool names cannot hold `:` (TOOL_NAME_PATTERN), so every piece is
 * at a known index and a tool name with `.`, `-` or `_` is never split; this is the same answer
 * DESIGN.md's "parse from the right" gives, with no room for a piece to absorb a separator.
 */
function parse(s: string, allowAnyServer: boolean): Scope | undefined {
  if (typeof s !== 'string') return undefined;
  const parts = s.split(':');
  if (parts[0] !== 'mcp') return undefined;
  if (parts.length === 3 && parts[1] === 'registry') {
    if (parts[2] === 'admin') return { kind: 'registry-admin' };
    if (parts[2] === 'read') return { kind: 'registry-read' };
    return undefined;
  }
  if (parts[1] !== 'server') return undefined;
  const server = parts[2] ?? '';
  if (!(isServerName(server) || (allowAnyServer && server === ANY_SERVER))) return undefined;
  if (parts.length === 4) {
    const action = parts[3] ?? '';
    return isServerAction(action) ? { kind: 'server', server, action } : undefined;
  }
  if (parts.length === 5 && parts[4] === 'read') {
    const area = parts[3];
    if (area === 'resources' || area === 'prompts') return { kind: area, server };
    return undefined;
  }
  if (parts.length === 6 && parts[3] === 'tool' && parts[5] === 'execute') {
    const tool = parts[4] ?? '';
    return isToolName(tool) ? { kind: 'tool', server, tool } : undefined;
  }
  return undefined;
}

/**
 * Parses one scope string held by a user or asked for by a check.
 * @returns the scope, or `undefined` for anything unknown or malformed: wrong prefix, unknown
 *   action, a server name outside SERVER_NAME_PATTERN (including `*`), a tool name outside
 *   TOOL_NAME_PATTERN, extra or missing `:` pieces, surrounding whitespace, other case.
 */
export function parseScope(s: string): Scope | undefined {
  return parse(s, false);
}

/**
 * Parses a scope that may use `*` in the server position (`mcp:server:*:read`,
 * `mcp:server:*:tool:search:execute`), as the mapping file allows. `*` anywhere else, or mixed
 * with other characters (`gh*`), is malformed.
 * @returns the scope with `server: '*'` for a wildcard, or `undefined` as for parseScope.
 */
export function parseScopePattern(s: string): Scope | undefined {
  return parse(s, true);
}

function checkServer(server: string): string {
  if (!isServerName(server) && server !== ANY_SERVER) {
    throw new TypeError(`invalid server name for a scope: ${JSON.stringify(server)}`);
  }
  return server;
}

/**
 * Formats a scope back to its string; `formatScope(parseScope(s)!) === s` for every valid `s`.
 * @throws TypeError when the server is neither a valid name nor `*`, or the tool name is
 *   invalid: a programmer error, since names reach here only after validation. Throwing keeps
 *   an ungrammatical scope (say one holding `:`) from ever being produced.
 */
export function formatScope(scope: Scope): string {
  switch (scope.kind) {
    case 'registry-admin':
      return REGISTRY_ADMIN;
    case 'registry-read':
      return REGISTRY_READ;
    case 'server':
      if (!isServerAction(scope.action)) throw new TypeError(`invalid server action: ${String(scope.action)}`);
      return `mcp:server:${checkServer(scope.server)}:${scope.action}`;
    case 'resources':
    case 'prompts':
      return `mcp:server:${checkServer(scope.server)}:${scope.kind}:read`;
    case 'tool':
      if (!isToolName(scope.tool)) throw new TypeError(`invalid tool name for a scope: ${JSON.stringify(scope.tool)}`);
      return `mcp:server:${checkServer(scope.server)}:tool:${scope.tool}:execute`;
  }
}

/**
 * `mcp:server:<name>:<action>`.
 * @throws TypeError for an invalid server name (see formatScope).
 */
export function serverScope(name: string, action: ServerAction): string {
  return formatScope({ kind: 'server', server: name, action });
}

/**
 * `mcp:server:<name>:resources:read`: list, read and subscribe to the server's resources.
 * @throws TypeError for an invalid server name (see formatScope).
 */
export function resourcesScope(name: string): string {
  return formatScope({ kind: 'resources', server: name });
}

/**
 * `mcp:server:<name>:prompts:read`: list and get the server's prompts.
 * @throws TypeError for an invalid server name (see formatScope).
 */
export function promptsScope(name: string): string {
  return formatScope({ kind: 'prompts', server: name });
}

/**
 * `mcp:server:<name>:tool:<tool>:execute`.
 * @throws TypeError for an invalid server or tool name (see formatScope).
 */
export function toolScope(name: string, tool: string): string {
  return formatScope({ kind: 'tool', server: name, tool });
}
