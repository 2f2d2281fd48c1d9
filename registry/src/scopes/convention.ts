/**
 * Groups from the identity provider -> scope strings, computed once at login (and on refresh)
 * and stored in the session. Two sources, added together: the naming convention below, and an
 * optional mapping file for IdPs whose group names cannot follow it.
 */
import {
  REGISTRY_ADMIN,
  REGISTRY_READ,
  formatScope,
  isServerName,
  isToolName,
  parseScopePattern,
  promptsScope,
  resourcesScope,
  serverScope,
  toolScope,
} from './scope.ts';

/** Group -> scope strings, as the mapping file holds it. `*` is allowed in the server position. */
export type GroupMapping = Readonly<Record<string, readonly string[]>>;

const SERVER_PREFIX = 'mcp-server-';
const TOOL_SEPARATOR = '-tool-';

/** Exact group names; matched case-sensitively, so `MCP-ADMIN` or `mcp-admin ` grant nothing. */
const FIXED_GROUPS: ReadonlyMap<string, string> = new Map([
  ['mcp-admin', REGISTRY_ADMIN],
  ['mcp-user', REGISTRY_READ],
]);

/**
 * `mcp-server-<name><suffix>` -> the scopes it grants on `<name>` (a valid server name). Checked
 * before `-tool-`. `-admin` needs no resources or prompts scope: its execute covers them.
 */
const ROLE_SUFFIXES: ReadonlyArray<readonly [string, (server: string) => string[]]> = [
  ['-admin', (s) => [serverScope(s, 'read'), serverScope(s, 'execute'), serverScope(s, 'toggle'), serverScope(s, 'edit')]],
  ['-toggle', (s) => [serverScope(s, 'toggle')]],
  ['-edit', (s) => [serverScope(s, 'edit')]],
  ['-resources', (s) => [resourcesScope(s)]],
  ['-prompts', (s) => [promptsScope(s)]],
];

/**
 * The scopes one group grants by convention, or `[]`.
 *
 * Server names may contain `-`, so `mcp-server-<rest>` is read in this order:
 * 1. `rest` ends in `-admin`, `-toggle`, `-edit`, `-resources` or `-prompts`: that role for the
 *    server before the suffix (`mcp-server-my-app-admin` -> server `my-app`, read, execute,
 *    toggle and edit; `mcp-server-docs-resources` -> `mcp:server:docs:resources:read`);
 * 2. else `rest` contains `-tool-`: the FIRST one splits server from tool, so a tool name may
 *    itself contain `-tool-`, `-`, `_` or `.` (`mcp-server-gh-tool-list-tool-x` -> server `gh`,
 *    tool `list-tool-x`);
 * 3. else the whole of `rest` is the server name: read + execute.
 * So a server whose name ends in one of those suffixes or contains `-tool-`, and a tool whose
 * name ends in one (`mcp-server-gh-tool-export-prompts` is the prompts group of server
 * `gh-tool-export`), cannot be named by convention: use the mapping file.
 *
 * The resulting server name must match SERVER_NAME_PATTERN and the tool TOOL_NAME_PATTERN, or
 * the group grants nothing. That check is the security boundary: group names come from the IdP
 * and may hold anything (`;`, `..`, `:`, newlines, look-alike letters), and a `:` let through
 * would forge a different scope.
 */
export function conventionScopes(group: string): string[] {
  if (typeof group !== 'string') return [];
  const fixed = FIXED_GROUPS.get(group);
  if (fixed !== undefined) return [fixed];
  if (!group.startsWith(SERVER_PREFIX)) return [];
  const rest = group.slice(SERVER_PREFIX.length);

  for (const [suffix, grants] of ROLE_SUFFIXES) {
    if (rest.endsWith(suffix)) {
      const server = rest.slice(0, -suffix.length);
      return isServerName(server) ? grants(server) : [];
    }
  }
  const at = rest.indexOf(TOOL_SEPARATOR);
  if (at !== -1) {
    const server = rest.slice(0, at);
    const tool = rest.slice(at + TOOL_SEPARATOR.length);
    return isServerName(server) && isToolName(tool) ? [toolScope(server, tool)] : [];
  }
  return isServerName(rest) ? [serverScope(rest, 'read'), serverScope(rest, 'execute')] : [];
}

/**
 * True when `s` may appear in the mapping file: a scope parseScopePattern accepts, i.e. a valid
 * scope with a server name or `*` in the server position. The mapping loader uses this to
 * refuse a bad file at start; scopesForGroups uses it to skip bad entries.
 */
export function validateMappedScope(s: string): boolean {
  return parseScopePattern(s) !== undefined;
}

/** The mapped scopes for one group; own keys only, so `constructor` or `__proto__` map to nothing. */
function mappedScopes(group: string, mapping: GroupMapping | undefined): string[] {
  if (mapping === undefined || !Object.hasOwn(mapping, group)) return [];
  const entries = mapping[group];
  if (!Array.isArray(entries)) return [];
  const out: string[] = [];
  for (const entry of entries as readonly unknown[]) {
    if (typeof entry !== 'string') continue;
    const scope = parseScopePattern(entry);
    if (scope !== undefined) out.push(formatScope(scope));
  }
  return out;
}

/**
 * The scopes a user's groups grant: the convention (see conventionScopes) plus the mapping.
 * Group names are matched exactly (case-sensitive, no trimming or normalising).
 *
 * @param groups the IdP's group claim; non-string members are ignored.
 * @param mapping group -> scope strings. Wildcard entries such as `mcp:server:*:read` are kept
 *   as-is for hasScope to match. Invalid entries are skipped here; the mapping loader rejects
 *   them at start (validateMappedScope).
 * @returns sorted, de-duplicated scope strings; `[]` when nothing is granted.
 */
export function scopesForGroups(groups: readonly string[], mapping?: GroupMapping): string[] {
  const scopes = new Set<string>();
  for (const group of groups) {
    if (typeof group !== 'string') continue;
    for (const scope of conventionScopes(group)) scopes.add(scope);
    for (const scope of mappedScopes(group, mapping)) scopes.add(scope);
  }
  return [...scopes].sort();
}
