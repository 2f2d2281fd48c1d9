/**
 * Paths shared by the Express routes and the rendered nginx config, so the two cannot disagree.
 */

/** The realm of every `WWW-Authenticate: Bearer` challenge (the MCP check and the REST API). */
export const BEARER_REALM = 'mcp-gateway';

/** The registry route the njs check's subrequests reach (loopback only, never public). */
export const VALIDATE_PATH = '/auth/validate';

/** Public MCP paths. `<name>` is a validated server name. */
export const STREAMABLE_PREFIX = '/api/streamable/';
export const EXECUTE_PREFIX = '/api/execute/';

/** Headers nginx sets on the auth subrequest (from the location, never from the client). */
export const SERVER_HEADER = 'x-mcp-server';
export const TRANSPORT_HEADER = 'x-mcp-transport';
export const ORIGINAL_URI_HEADER = 'x-original-uri';
export const ORIGINAL_METHOD_HEADER = 'x-original-method';
export const REQUEST_ID_HEADER = 'x-request-id';

/** Headers the check answers with; njs copies them into variables for the backend request. */
export const USER_HEADER = 'x-user';
export const USERNAME_HEADER = 'x-username';
export const SCOPES_HEADER = 'x-scopes';
export const MISSING_SCOPE_HEADER = 'x-missing-scope';

/** What the njs step read from the body: `method[ tool]` entries, comma-separated; `-` for none. */
export const MESSAGES_HEADER = 'x-mcp-messages';
/** On a 200 for a principal limited to some tools: a JSON array of the tools it may see and call. */
export const TOOL_FILTER_HEADER = 'x-mcp-tool-filter';

/**
 * MCP session binding (session-binding.ts). nginx sends the client's sealed session id (the
 * Mcp-Session-Id header, or the legacy messages URL's `session` query parameter) in
 * X-MCP-Session; on a 200 the check answers with the principal's sealing key (for njs only,
 * never forwarded) and, when the id was the principal's, the backend's own value.
 */
export const SESSION_HEADER = 'x-mcp-session';
export const SESSION_KEY_HEADER = 'x-mcp-session-key';
export const BACKEND_SESSION_HEADER = 'x-mcp-backend-session';
export const BACKEND_TARGET_HEADER = 'x-mcp-backend-target';
/** On a 404: the session id is not this principal's (or does not exist); njs answers MCP_SESSION_UNKNOWN. */
export const SESSION_UNKNOWN_HEADER = 'x-mcp-session-unknown';
/** On a 503: which fault (`STORE_UNAVAILABLE`: the state store cannot be read); without it a 503 means the server is disabled. */
export const ERROR_HEADER = 'x-mcp-error';
/**
 * On a 403 BACKEND_CONNECT_REQUIRED (issue 13): the page where the person fixes it themselves
 * (connect-url.ts checks it is on GATEWAY_PUBLIC_URL), and `url` in X-MCP-Session-Elicitation
 * when the client's MCP session declared URL-mode elicitation at initialize (session-binding.ts).
 */
export const CONNECT_URL_HEADER = 'x-mcp-connect-url';
export const SESSION_ELICITATION_HEADER = 'x-mcp-session-elicitation';
/** The gateway path a legacy client posts to; the sealed backend endpoint rides in `?session=`. */
export { SSE_MESSAGES_PATH } from '../catalog/server-definition.ts';
/** The gateway's own credential for the backend, on the check's 200 (credentials/backend-credentials.ts). */
export { BACKEND_CREDENTIAL_HEADER, BACKEND_SLOT_HEADER_PREFIX, ERROR_DETAIL_HEADER } from '../credentials/answer.ts';
