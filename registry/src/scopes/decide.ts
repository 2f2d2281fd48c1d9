/**
 * The access decision behind `/auth/validate`: may this session send these JSON-RPC messages to
 * this server? docs/authorization.md holds the table it implements. Pure: the caller looks the
 * server up in the catalog, the scopes up in the session, and takes the messages from nginx's
 * njs step. What a message needs is in method-rules.ts, what scopes grant in grants.ts.
 */
import { grantsOnServer, type ServerGrants } from './grants.ts';
import { SERVER_ACCESS, needsOf, type McpMessage, type Need } from './method-rules.ts';
import { isServerName, promptsScope, resourcesScope, serverScope, toolScope } from './scope.ts';

export { canEditServer, canReadServer, canToggleServer, hasScope } from './grants.ts';
export type { ListenKind, McpMessage } from './method-rules.ts';

/** What the check needs to know about one request. */
export interface AccessInput {
  /** The session's scopes (from scopesForGroups), possibly holding mapped `*` wildcards. */
  readonly scopes: readonly string[];
  /** The catalog's entry for the server named by the location, or undefined if none. */
  readonly server: { readonly name: string; readonly enabled: boolean } | undefined;
  /** Empty for a request without a body (GET stream, DELETE). One entry, or several for a JSON-RPC batch. */
  readonly messages: readonly McpMessage[];
}

export type DenyReason = 'server-unknown' | 'server-disabled' | 'scope-missing';

export type Decision =
  | {
      readonly allow: true;
      /**
       * Present exactly when the session may use only some tools (no execute, no admin): the
       * tool names its tool scopes grant on this server, sorted, possibly empty. The server's
       * answers to `tools/list` must be filtered to these names.
       */
      readonly toolFilter?: readonly string[];
    }
  | {
      readonly allow: false;
      readonly status: 403 | 404 | 503;
      readonly reason: DenyReason;
      /** For 403 only: the scope that would have allowed the first refused message; safe to show the client. */
      readonly missingScope?: string;
      /** For 403 only, when the refused message has one: its method, as received (escape it before use). */
      readonly method?: string;
    };

type Denial = Extract<Decision, { allow: false }>;

const SERVER_UNKNOWN: Decision = Object.freeze({ allow: false, status: 404, reason: 'server-unknown' });
const SERVER_DISABLED: Decision = Object.freeze({ allow: false, status: 503, reason: 'server-disabled' });
const ALLOW_ALL: Decision = Object.freeze({ allow: true });

/** True when `grants` cover `need`; execute covers every need. */
function covers(grants: ServerGrants, need: Need): boolean {
  if (grants.execute) return true;
  switch (need.kind) {
    case 'server-access':
      return grants.tools.length > 0 || grants.resources || grants.prompts;
    case 'any-tool':
      return grants.tools.length > 0;
    case 'tool':
      return grants.tools.includes(need.tool);
    case 'resources':
      return grants.resources;
    case 'prompts':
      return grants.prompts;
    case 'execute':
      return false;
  }
}

/** The scope to name in a 403 for `need`: the narrowest single scope that would cover it. */
function scopeFor(need: Need, server: string): string {
  switch (need.kind) {
    case 'tool':
      return toolScope(server, need.tool);
    case 'resources':
      return resourcesScope(server);
    case 'prompts':
      return promptsScope(server);
    default:
      return serverScope(server, 'execute');
  }
}

/** The 403 for the first message `grants` do not cover (no messages: as one session message), or undefined. */
function firstRefusal(server: string, grants: ServerGrants, messages: readonly McpMessage[]): Denial | undefined {
  if (messages.length === 0 && !covers(grants, SERVER_ACCESS)) return refusal(server, SERVER_ACCESS, undefined);
  for (const message of messages) {
    for (const need of needsOf(message)) {
      if (!covers(grants, need)) return refusal(server, need, message.kind === 'response' ? undefined : message.method);
    }
  }
  return undefined;
}

function refusal(server: string, need: Need, method: string | undefined): Denial {
  const denial = { allow: false, status: 403, reason: 'scope-missing', missingScope: scopeFor(need, server) } as const;
  return Object.freeze(typeof method === 'string' ? { ...denial, method } : denial);
}

/**
 * Decides one MCP request to one server, in this order:
 * 1. no catalog entry, or one whose name is not a valid server name -> 404 `server-unknown`;
 * 2. server disabled -> 503 `server-disabled`. Both before any scope, so admins get them too
 *    and nothing reaches a server that is missing or switched off;
 * 3. mcp:registry:admin, `mcp:server:<s>:execute` or `mcp:server:*:execute` -> allow, no toolFilter;
 * 4. every message covered by the session's tool, resources and prompts scopes (see
 *    method-rules.ts; no messages counts as one session message) -> allow with `toolFilter`;
 * 5. otherwise -> 403 `scope-missing` for the first need not covered, message by message, with
 *    `missingScope` (tools/call T: T's tool scope; resources/* and prompts/*, and a
 *    subscriptions/listen family of theirs: their read scope; else `mcp:server:<s>:execute`) and
 *    that message's `method` when it has one.
 */
export function decideAccess({ scopes, server, messages }: AccessInput): Decision {
  if (server === undefined || !isServerName(server.name)) return SERVER_UNKNOWN;
  if (!server.enabled) return SERVER_DISABLED;
  const grants = grantsOnServer(scopes, server.name);
  if (grants.execute) return ALLOW_ALL;
  return firstRefusal(server.name, grants, messages) ?? Object.freeze({ allow: true, toolFilter: grants.tools });
}
