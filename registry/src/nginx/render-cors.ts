/**
 * CORS for browser-based MCP clients (CORS_ALLOWED_ORIGINS), rendered only when the allow-list
 * is not empty. Pure; the origins passed names.ts's assertCorsOrigin.
 *
 * - `map $http_origin $mcp_cors_origin` turns the request's Origin into itself when listed
 *   (exactly, case included), else "" (an `add_header` with an empty value adds nothing): a
 *   refused origin gets no Access-Control-* header at all. The value written is the listed
 *   literal, never the client's bytes.
 * - Preflights (OPTIONS) are answered by nginx in the rewrite phase, before njs and the check:
 *   browsers send them without credentials, so the check could only refuse them.
 * - No Access-Control-Allow-Credentials: MCP clients send tokens in Authorization, not cookies,
 *   so a cross-origin page never rides on the operator's session.
 * - The backend's and the registry's own Access-Control-* headers are hidden: the gateway's
 *   allow-list is the only CORS policy (see HIDDEN_UPSTREAM_CORS).
 */
import type { CorsOrigin } from './names.ts';
import { block, type Lines } from './render-lines.ts';

/** Request headers an MCP client sends (MCP 2025-06-18 to 2026-07-28, Streamable HTTP). */
export const CORS_ALLOW_HEADERS = [
  'Authorization',
  'Content-Type',
  'Mcp-Session-Id',
  'MCP-Protocol-Version',
  'Last-Event-ID',
  'Mcp-Method',
  'Mcp-Name',
] as const;
/** Response headers a page's script may read: the session id to send back, the challenge to follow. */
export const CORS_EXPOSE_HEADERS = ['Mcp-Session-Id', 'WWW-Authenticate'] as const;
export const CORS_ALLOW_METHODS = ['GET', 'POST', 'DELETE', 'OPTIONS'] as const;
/** Seconds a browser may cache a preflight; Chromium caps it at 7200. */
export const CORS_MAX_AGE = 7200;

/**
 * Access-Control-Request-Headers that are reflected as they came: only the headers above and
 * `Mcp-Param-<name>` (MCP 2026-07-28 mirrors annotated tool arguments into those; the names
 * come from each tool's schema, so they cannot be listed, and CORS has no wildcard with
 * Authorization). Anything else gets the fixed list, which the browser then refuses.
 * Browsers send the list lowercased and comma-separated.
 */
const REQUESTED_HEADERS_PATTERN = `~*^(?:[ ]*(?:${CORS_ALLOW_HEADERS.map((h) => h.toLowerCase()).join('|')}|mcp-param-[a-z0-9_.-]+)[ ]*(?:,|$))+$`;

/** Response headers a backend or the registry may set that would contradict the allow-list. */
export const HIDDEN_UPSTREAM_CORS = [
  'Access-Control-Allow-Origin',
  'Access-Control-Allow-Credentials',
  'Access-Control-Allow-Methods',
  'Access-Control-Allow-Headers',
  'Access-Control-Expose-Headers',
  'Access-Control-Max-Age',
] as const;

/**
 * A case-sensitive regex for exactly `origin`: nginx compares a map's string keys
 * case-insensitively, and an origin is compared byte for byte (RFC 6454). A checked origin holds
 * only `a-z 0-9 . - : / [ ]`; the regex metacharacters among them are escaped, and none of them
 * needs quoting in nginx config.
 */
function exactly(origin: CorsOrigin): string {
  if (!/^[a-z0-9.:/[\]-]+$/.test(origin)) throw new Error(`refusing to put ${JSON.stringify(origin)} into a map`);
  return `~^${origin.replace(/[.[\]]/g, (c) => `\\${c}`)}$`;
}

/** http-level maps; the locations below read only their results. */
export function renderCorsMaps(origins: readonly CorsOrigin[]): Lines {
  const onlyWhenAllowed = (variable: string, value: string): Lines => block(`map $mcp_cors_origin ${variable}`, ['"" "";', `default ${value};`]);
  return [
    '# CORS_ALLOWED_ORIGINS: the Origin when listed, else "" (no Access-Control-* header is added).',
    ...block('map $http_origin $mcp_cors_origin', ['default "";', ...origins.map((origin) => `${exactly(origin)} "${origin}";`)]),
    ...onlyWhenAllowed('$mcp_cors_expose', `"${CORS_EXPOSE_HEADERS.join(', ')}"`),
    ...onlyWhenAllowed('$mcp_cors_methods', `"${CORS_ALLOW_METHODS.join(', ')}"`),
    ...onlyWhenAllowed('$mcp_cors_max_age', `"${CORS_MAX_AGE}"`),
    ...block('map $http_access_control_request_headers $mcp_cors_requested', [
      `default "${CORS_ALLOW_HEADERS.join(', ')}";`,
      `"${REQUESTED_HEADERS_PATTERN}" $http_access_control_request_headers;`,
    ]),
    ...onlyWhenAllowed('$mcp_cors_allow_headers', '$mcp_cors_requested'),
  ];
}

/** On every answer of a CORS location, errors included (`always`). */
export function corsResponseHeaders(): Lines {
  return [
    'add_header Access-Control-Allow-Origin $mcp_cors_origin always;',
    'add_header Access-Control-Expose-Headers $mcp_cors_expose always;',
    'add_header Vary Origin always;',
  ];
}

/**
 * The preflight, first in the location: answered here, never reaching njs, the check or an
 * upstream. A `return` inside `if` is the safe use of `if` in a location.
 */
export function corsPreflight(): Lines {
  return block('if ($request_method = OPTIONS)', [
    'add_header Access-Control-Allow-Origin $mcp_cors_origin always;',
    'add_header Access-Control-Allow-Methods $mcp_cors_methods always;',
    'add_header Access-Control-Allow-Headers $mcp_cors_allow_headers always;',
    'add_header Access-Control-Max-Age $mcp_cors_max_age always;',
    'add_header Vary "Origin, Access-Control-Request-Headers" always;',
    'return 204;',
  ]);
}

export function hideUpstreamCors(): Lines {
  return HIDDEN_UPSTREAM_CORS.map((header) => `proxy_hide_header ${header};`);
}

/**
 * CORS on a public MCP location: the preflight first, answered before njs,
 * then the headers every answer carries. Nothing when CORS_ALLOWED_ORIGINS is empty.
 */
export function corsEntry(cors: boolean): Lines {
  return cors ? [...corsPreflight(), ...corsResponseHeaders()] : [];
}

/** The CORS headers alone, for locations that answer after the check (or instead of it). */
export function corsAnswer(cors: boolean): Lines {
  return cors ? corsResponseHeaders() : [];
}
