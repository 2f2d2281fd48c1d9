/**
 * What one JSON-RPC message needs, by its MCP method: the protocol half of the access decision.
 * decide.ts checks each need against the session's grants on the server.
 *
 * Methods are compared exactly. JSON-RPC method names are case-sensitive and an MCP server
 * dispatches on the exact string, so `tools/CALL` or `tools/call ` is not `tools/call`; and since
 * every method not listed here needs execute, no other spelling can unlock more than the exact one.
 */
import { isToolName } from './scope.ts';

/** One JSON-RPC message of the request body, as nginx's njs step reports it. */
export type McpMessage =
  | {
      readonly kind: 'request' | 'notification';
      readonly method: string;
      /** `params.name` of a `tools/call`; `''` or absent when missing, not a string, or not a valid tool name. */
      readonly tool?: string;
      /**
       * What a `subscriptions/listen` (MCP 2026-07-28) opts in to, from its `params.notifications`;
       * absent when njs did not report it, which needs execute. Empty for an empty filter.
       */
      readonly listen?: readonly ListenKind[];
    }
  /** A client's JSON-RPC response (to a server's sampling or elicitation request): no method. */
  | { readonly kind: 'response' };

/**
 * The notification families a `subscriptions/listen` filter can open: `tools` (toolsListChanged),
 * `prompts` (promptsListChanged), `resources` (resourcesListChanged or resourceSubscriptions),
 * `other` (any filter key MCP 2026-07-28 does not define, or a filter njs could not read).
 */
export type ListenKind = 'tools' | 'prompts' | 'resources' | 'other';
export const LISTEN_KINDS: readonly ListenKind[] = Object.freeze(['tools', 'prompts', 'resources', 'other']);

/**
 * What a message needs on its server. `mcp:server:<s>:execute` (or admin, or `*:execute`)
 * covers every need.
 */
export type Need =
  /** Any tool, resources or prompts scope on the server: the session plumbing. */
  | { readonly kind: 'server-access' }
  /** At least one tool scope on the server. */
  | { readonly kind: 'any-tool' }
  /** The tool scope for this (valid) tool name. */
  | { readonly kind: 'tool'; readonly tool: string }
  | { readonly kind: 'resources' }
  | { readonly kind: 'prompts' }
  | { readonly kind: 'execute' };

export const SERVER_ACCESS: Need = Object.freeze({ kind: 'server-access' });
const ANY_TOOL: Need = Object.freeze({ kind: 'any-tool' });
const RESOURCES: Need = Object.freeze({ kind: 'resources' });
const PROMPTS: Need = Object.freeze({ kind: 'prompts' });
const EXECUTE: Need = Object.freeze({ kind: 'execute' });

/** Every `notifications/...` method (initialized, cancelled, progress, roots/list_changed, ...). */
const NOTIFICATION_PREFIX = 'notifications/';

/** MCP 2026-07-28: the long-lived notification stream that replaces the GET stream and resources/subscribe. */
const LISTEN = 'subscriptions/listen';

/** What each family of a listen filter needs: the same scope that lists or reads that family. */
const LISTEN_NEEDS: Readonly<Record<ListenKind, Need>> = Object.freeze({ tools: ANY_TOOL, prompts: PROMPTS, resources: RESOURCES, other: EXECUTE });

/** The methods a session without execute may use; `tools/call`, `subscriptions/listen` and notifications are rules of their own. */
const METHOD_NEEDS: ReadonlyMap<string, Need> = new Map<string, Need>([
  ['initialize', SERVER_ACCESS],
  ['server/discover', SERVER_ACCESS],
  ['ping', SERVER_ACCESS],
  ['logging/setLevel', SERVER_ACCESS],
  ['tools/list', ANY_TOOL],
  ['resources/list', RESOURCES],
  ['resources/read', RESOURCES],
  ['resources/templates/list', RESOURCES],
  ['resources/subscribe', RESOURCES],
  ['resources/unsubscribe', RESOURCES],
  ['prompts/list', PROMPTS],
  ['prompts/get', PROMPTS],
]);

/**
 * The needs of one message, all of which must be covered:
 * - a response -> server access;
 * - `tools/call` with a valid tool name T -> T's tool scope; with none or an invalid one -> execute;
 * - `subscriptions/listen` -> the need of each family its filter opts in to (tools: any tool
 *   scope, prompts: prompts, resources: resources, other: execute); an empty filter -> server
 *   access; a filter njs did not report -> execute;
 * - `notifications/...` -> server access;
 * - a method of METHOD_NEEDS -> its need;
 * - anything else (`completion/complete`, `sampling/...`, `tasks/...`, unknown methods, other
 *   spellings, a non-string method, an unknown kind) -> execute.
 * Requests and notifications are judged alike: what the server does depends on the method.
 */
export function needsOf(message: McpMessage): readonly Need[] {
  switch (message.kind) {
    case 'response':
      return [SERVER_ACCESS];
    case 'request':
    case 'notification':
      if (message.method === LISTEN) return listenNeeds(message.listen);
      return [needOfMethod(message.method, message.tool)];
    default:
      return [EXECUTE];
  }
}

function listenNeeds(kinds: unknown): readonly Need[] {
  if (!Array.isArray(kinds)) return [EXECUTE];
  if (kinds.length === 0) return [SERVER_ACCESS];
  return kinds.map((kind: unknown) => (typeof kind === 'string' && Object.hasOwn(LISTEN_NEEDS, kind) ? LISTEN_NEEDS[kind as ListenKind] : EXECUTE));
}

function needOfMethod(method: unknown, tool: unknown): Need {
  if (typeof method !== 'string') return EXECUTE;
  if (method === 'tools/call') return typeof tool === 'string' && isToolName(tool) ? { kind: 'tool', tool } : EXECUTE;
  if (method.startsWith(NOTIFICATION_PREFIX)) return SERVER_ACCESS;
  return METHOD_NEEDS.get(method) ?? EXECUTE;
}
