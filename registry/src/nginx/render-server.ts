/**
 * The nginx locations of the MCP endpoints. Pure; called by render.ts. None of them depends on
 * the catalog: nginx matches any well-formed server name, the check (nginx/route.ts) decides
 * the endpoint and the backend, and njs proxies there through the named locations below. A
 * catalog change therefore never changes this config and never reloads nginx
 * (docs/nginx.md, "Routing without reloads"). Only the upstream blocks (keep-alive) come from
 * the catalog, as it was at start.
 */
import { PATH_HEADER, ROUTE_ALLOW_HEADER, ROUTE_HEADER, ROUTE_REFUSED_HEADER } from '../authz/route.ts';
import {
  BACKEND_CREDENTIAL_HEADER,
  BACKEND_SLOT_HEADER_PREFIX,
  ERROR_DETAIL_HEADER,
  BACKEND_SESSION_HEADER,
  BACKEND_TARGET_HEADER,
  EXECUTE_PREFIX,
  SESSION_HEADER,
  SESSION_KEY_HEADER,
  SESSION_UNKNOWN_HEADER,
  MESSAGES_HEADER,
  MISSING_SCOPE_HEADER,
  TOOL_FILTER_HEADER,
  ORIGINAL_METHOD_HEADER,
  ORIGINAL_URI_HEADER,
  REQUEST_ID_HEADER,
  SCOPES_HEADER,
  SERVER_HEADER,
  STREAMABLE_PREFIX,
  TRANSPORT_HEADER,
  USER_HEADER,
  USERNAME_HEADER,
  VALIDATE_PATH,
  CONNECT_URL_HEADER,
  SESSION_ELICITATION_HEADER,
} from '../authz/paths.ts';
import { SERVER_NAME_PATTERN } from '../catalog/server-definition.ts';
import { quoted, type FilePath, type HeaderName } from './names.ts';
import { corsAnswer, corsEntry, hideUpstreamCors } from './render-cors.ts';
import { UPSTREAM_NAME_PATTERN, type BackendUpstream } from './route.ts';
import { block, type Lines } from './render-lines.ts';

export { block, type Lines } from './render-lines.ts';

/** The upstream block name for the registry; render.ts declares it. */
export const REGISTRY_UPSTREAM = 'mcp_registry';

/** Variables the njs step sets; declared at http level so every location may use them. */
const NJS_VARIABLES = [
  '$mcp_messages',
  '$mcp_user',
  '$mcp_username',
  '$mcp_scopes',
  '$mcp_tool_filter',
  '$mcp_session_key',
  '$mcp_unsealed_session',
  // `u` when the initialize request declared URL-mode elicitation: sealed into the session id (issue 13).
  '$mcp_elicitation',
  // The path below /api/execute/<name> once njs checked its characters, for the check.
  '$mcp_route_path',
  // Where the check's X-MCP-Route says the request goes (njs copies it; nginx/route.ts builds it).
  '$mcp_backend_scheme',
  '$mcp_backend_upstream',
  '$mcp_backend_host',
  '$mcp_backend_sni',
  '$mcp_backend_uri',
  // The legacy stream: the backend's SSE URL (to resolve the endpoint event) and the gateway's messages URL.
  '$mcp_backend_sse',
  '$mcp_messages_url',
  // Cached decisions (authz/check-cache.ts): the hashed key, `1` to neither read nor fill the
  // cache, and the audit line of a request the check never saw (nginx logs it; nginx/audit-tail.ts).
  '$mcp_check_key',
  '$mcp_check_nocache',
  '$mcp_audit',
] as const;

/** The check's session vocabulary: never from a client, never to a backend. */
export const SESSION_HEADERS = [
  SESSION_HEADER,
  SESSION_KEY_HEADER,
  BACKEND_SESSION_HEADER,
  BACKEND_TARGET_HEADER,
  SESSION_UNKNOWN_HEADER,
  SESSION_ELICITATION_HEADER,
] as const;

/** The check's routing vocabulary (authz/route.ts): never from a client, never to a backend. */
export const ROUTE_HEADERS = [PATH_HEADER, ROUTE_HEADER, ROUTE_REFUSED_HEADER, ROUTE_ALLOW_HEADER] as const;

/**
 * The backend credential slots (issue 13): `authorization`, then `h1`.. for each header name of
 * BACKEND_CREDENTIAL_HEADERS. njs fills `$mcp_backend_<slot>` from the check's 200; the backend
 * locations send each as its header (empty: none is sent).
 */
function credentialSlots(headers: readonly HeaderName[]): { slot: string; header: string }[] {
  return [{ slot: 'authorization', header: 'Authorization' }, ...headers.map((header, i) => ({ slot: `h${i + 1}`, header }))];
}

/** The check's credential vocabulary: never from a client, never to a backend. */
export function credentialHeaders(headers: readonly HeaderName[]): string[] {
  return [BACKEND_CREDENTIAL_HEADER, ERROR_DETAIL_HEADER, CONNECT_URL_HEADER, ...credentialSlots(headers).map(({ slot }) => BACKEND_SLOT_HEADER_PREFIX + slot)];
}

export function renderNjsVariables(headers: readonly HeaderName[]): Lines {
  return [
    ...NJS_VARIABLES.map((variable) => `js_var ${variable};`),
    // The gateway's own credential for the backend, per slot, from the check's 200 (njs).
    ...credentialSlots(headers).map(({ slot }) => `js_var $mcp_backend_${slot};`),
  ];
}

/**
 * A fixed JSON body for `return`. Single-quoted because JSON is full of `"`; the values in it
 * are checked names, and this refuses the characters that are special in that context.
 */
export function jsonReturn(status: number, body: Record<string, string>): string {
  const json = JSON.stringify(body);
  if (/['\\$]/.test(json)) throw new Error(`refusing to put ${json} into a return`);
  return `return ${status} '${json}';`;
}

/** The internal location the njs step calls for the check. */
export const AUTH_LOCATION = '/_mcp_auth';

/**
 * The check's subrequest. The server is the name nginx matched on the normalized URI
 * (`$mcp_server`, set from the public location's regex capture), never parsed from
 * `$request_uri`: the raw URI can name a different server than the normalized one nginx
 * matched (`/api/execute/a/../b/`), so the check guards the server this request is routed to,
 * and gets the raw URI for logs only.
 */
function renderAuthLocation(cache: boolean): Lines {
  return block(`location = ${AUTH_LOCATION}`, [
    'internal;',
    ...(cache ? renderCheckCache() : []),
    `proxy_pass http://${REGISTRY_UPSTREAM}${VALIDATE_PATH};`,
    // The subrequest carries headers only: nginx cannot send the body twice, and a body-less
    // request that still said Content-Length: N would make the registry wait for N bytes.
    'proxy_pass_request_body off;',
    'proxy_set_header Content-Length "";',
    'proxy_set_header Connection "";',
    // Spelled out although proxying passes client headers by default: these two are what the
    // check authenticates, and an http-level `proxy_set_header Cookie ""` added later would
    // otherwise silently make every request anonymous.
    'proxy_set_header Cookie $http_cookie;',
    'proxy_set_header Authorization $http_authorization;',
    `proxy_set_header ${SERVER_HEADER} $mcp_server;`,
    `proxy_set_header ${TRANSPORT_HEADER} $mcp_transport;`,
    `proxy_set_header ${PATH_HEADER} $mcp_route_path;`,
    `proxy_set_header ${ORIGINAL_URI_HEADER} $request_uri;`,
    `proxy_set_header ${ORIGINAL_METHOD_HEADER} $request_method;`,
    `proxy_set_header ${REQUEST_ID_HEADER} $request_id;`,
    // Identity and routing headers come from nginx or nobody: a client's copies are dropped.
    `proxy_set_header ${USER_HEADER} "";`,
    `proxy_set_header ${USERNAME_HEADER} "";`,
    `proxy_set_header ${SCOPES_HEADER} "";`,
    `proxy_set_header ${MISSING_SCOPE_HEADER} "";`,
    // What njs read from the body; set on every check, '-' when there is no body.
    `proxy_set_header ${MESSAGES_HEADER} $mcp_messages;`,
    // The client's sealed session id, as the public location read it ($mcp_session); the
    // check opens it for this principal only (registry/src/authz/session-binding.ts).
    `proxy_set_header ${SESSION_HEADER} $mcp_session;`,
    'proxy_set_header Host $http_host;',
    'proxy_set_header X-Forwarded-For $remote_addr;',
    'proxy_set_header X-Forwarded-Proto $scheme;',
    'proxy_set_header X-Forwarded-Host $http_host;',
    'proxy_set_header X-Forwarded-Port $server_port;',
    // X-Scopes can be long; the default 4k header buffer would turn it into a 502 (= deny).
    'proxy_buffer_size 16k;',
    'proxy_buffers 4 16k;',
    // Fail closed, and fast: a hung registry is a 500 in seconds, not a client stuck for 60 s.
    'proxy_connect_timeout 2s;',
    'proxy_read_timeout 10s;',
  ]);
}

/** The keys zone of the check's cache (render.ts declares its proxy_cache_path when caching is on). */
export const CHECK_CACHE_ZONE = 'mcp_check';

/**
 * The check's answers, cached (authz/check-cache.ts). Kept only as long as the answer's own
 * X-Accel-Expires says (the registry sets it on an answer that carries no secret, never past the
 * credential's end), under the hash njs computed ($mcp_check_key). Nothing else makes an answer
 * cacheable: no proxy_cache_valid, and the registry's Cache-Control / Expires / Vary are ignored.
 * No lock: a request waiting on another's miss would wait in 500 ms steps; a miss just asks.
 */
function renderCheckCache(): Lines {
  return [
    `proxy_cache ${CHECK_CACHE_ZONE};`,
    'proxy_cache_key $mcp_check_key;',
    'proxy_cache_methods GET;',
    'proxy_ignore_headers Cache-Control Expires Vary;',
    // No generation readable: neither served from the cache nor stored (njs sets it).
    'proxy_cache_bypass $mcp_check_nocache;',
    'proxy_no_cache $mcp_check_nocache;',
    'proxy_cache_lock off;',
    'proxy_cache_use_stale off;',
  ];
}

/** The server-name part of the public location regexes: the catalog's own pattern. */
function serverNameRegex(): string {
  const source = SERVER_NAME_PATTERN.source.replace(/^\^|\$$/g, '');
  // It goes inside a double-quoted regex: only what a name pattern needs.
  if (!/^[a-z0-9[\]{},-]+$/.test(source)) throw new Error(`refusing to write ${source} into a location regex`);
  return source;
}

/**
 * A public MCP location: njs reads the whole body, asks the check, and redirects to the named
 * backend location the check's answer names, which proxies that same buffered body. `session`
 * is where the client's sealed session id is: the Mcp-Session-Id header or the legacy
 * `session` query parameter (njs drops it on the legacy stream).
 */
function renderEntry(
  transport: 'streamable-http' | 'sse',
  session: '$http_mcp_session_id' | '$arg_session',
  path: '""' | '$mcp_rest',
  generationFile: FilePath | undefined,
): Lines {
  return [
    'set $mcp_server $mcp_name;',
    // The file holding the check cache's generation, read by njs per request (none: no cache).
    `set $mcp_check_generation ${generationFile === undefined ? '""' : quoted(generationFile)};`,
    `set $mcp_transport "${transport}";`,
    `set $mcp_session ${session};`,
    `set $mcp_path ${path};`,
    // A body over client_max_body_size never reaches njs: nginx answers 413 while reading it.
    'error_page 413 = @mcp_413;',
    'js_content mcp.handle;',
  ];
}

/**
 * The two public MCP locations, for every server the catalog has or will have. The regexes
 * match the normalized `$uri` and accept only well-formed names (anything else falls to the
 * JSON 404 of the prefix locations). Streamable HTTP: `/api/streamable/<name>` with or
 * without the slash. Legacy: everything below `/api/execute/<name>`; the check routes exactly
 * GET on the definition's SSE path and POST on `/messages`, and answers a JSON 404 or 405 for
 * the rest, before any credential is looked at (nginx/route.ts).
 */
export function renderMcpLocations(cors: boolean, generationFile?: FilePath): Lines {
  const name = serverNameRegex();
  return [
    ...block(`location ~ "^${STREAMABLE_PREFIX}(?<mcp_name>${name})/?$"`, [
      ...corsEntry(cors),
      ...renderEntry('streamable-http', '$http_mcp_session_id', '""', generationFile),
    ]),
    ...block(`location ~ "^${EXECUTE_PREFIX}(?<mcp_name>${name})(?<mcp_rest>/.*)?$"`, [
      ...corsEntry(cors),
      ...renderEntry('sse', '$arg_session', '$mcp_rest', generationFile),
    ]),
    ...renderAuthLocation(generationFile !== undefined),
  ];
}

/**
 * One upstream per backend origin of the catalog at start, so nginx keeps connections to the
 * backend open (keepalive) instead of a new TCP connection per MCP request. The port is
 * explicit: an upstream has no scheme to default it from.
 */
export function renderBackendUpstream(upstream: BackendUpstream): Lines {
  if (!UPSTREAM_NAME_PATTERN.test(upstream.name)) throw new Error(`refusing upstream name ${JSON.stringify(upstream.name)}`);
  return block(`upstream ${upstream.name}`, [
    `server ${quoted(upstream.server)};`,
    'keepalive 16;',
    // Shorter than Node's 5 s idle timeout (the SDK servers' default): nginx must drop an idle
    // connection before the backend does, or a POST sent as the backend closes it fails (502).
    'keepalive_timeout 4s;',
  ]);
}

/** The named locations njs redirects to after a 200, by the route's kind (and `_filtered` for a tool-limited principal). */
export const BACKEND_LOCATIONS = [
  '@mcp_streamable',
  '@mcp_streamable_session',
  '@mcp_streamable_filtered',
  '@mcp_sse',
  '@mcp_sse_filtered',
  '@mcp_sse_messages',
] as const;

/**
 * The Mcp-Session-Id a response of `@mcp_streamable_session` carries: the client's own sealed id
 * when the backend echoed the id it was sent (what every response of an open session does), and
 * none otherwise. That location serves requests whose answer holds no sealing key (anything but an
 * initialize), so it has nothing to seal a new id with: a new id is dropped, as njs drops one it
 * cannot seal. nginx does this with a map instead of an njs header filter, which would cost
 * the request a second njs VM (docs/performance.md).
 */
export function renderSessionEchoMap(): Lines {
  return block('map "$upstream_http_mcp_session_id $mcp_unsealed_session" $mcp_session_echo', [
    'default "";',
    // Both halves equal and made of visible ASCII (a session id's characters; no space).
    '"~^(?<mcp_echoed>[\\x21-\\x7e]{1,256}) \\k<mcp_echoed>$" $mcp_session;',
  ]);
}

/** Directives of a named location that proxies to the backend the check answered. */
function renderBackend(location: (typeof BACKEND_LOCATIONS)[number], cors: boolean, headers: readonly HeaderName[]): Lines {
  const filtered = location.endsWith('_filtered');
  const stream = location === '@mcp_sse' || location === '@mcp_sse_filtered';
  return block(`location ${location}`, [
    // Every part set by njs from the check's X-MCP-Route (nginx/route.ts: checked values). The
    // upstream is an upstream block's name (keep-alive) or an IP literal: nginx needs no
    // resolver. With variables, proxy_pass sends this URI as it is.
    'proxy_pass $mcp_backend_scheme://$mcp_backend_upstream$mcp_backend_uri;',
    // TLS to the backend names the backend's host (SNI), not the upstream block (unused for http).
    'proxy_ssl_server_name on;',
    'proxy_ssl_name $mcp_backend_sni;',
    // nginx's own 502/504 (backend unreachable); the backend's responses pass untouched.
    'error_page 502 504 = @mcp_502;',
    // Stream responses (SSE) as they come; never cache a per-user answer.
    'proxy_buffering off;',
    'proxy_cache off;',
    // The body was read whole before the check; this sends exactly those bytes.
    'proxy_request_buffering on;',
    'proxy_read_timeout 3600s;',
    'proxy_send_timeout 3600s;',
    // The gateway's CORS_ALLOWED_ORIGINS is the only cross-origin policy: a backend's own
    // Access-Control-* headers never reach the client, and the gateway's are added when set.
    ...hideUpstreamCors(),
    ...corsAnswer(cors),
    'proxy_set_header Host $mcp_backend_host;',
    'proxy_set_header Connection "";',
    // No token passthrough: the client's credentials are for the gateway, not the backend. The
    // backend gets the gateway's own credential for it, when its definition has one (the check's
    // answer, copied by njs; empty otherwise, which sends no header). A client's header of a slot's
    // name is replaced the same way, so it never reaches a backend either.
    'proxy_set_header Cookie "";',
    ...credentialSlots(headers).map(({ slot, header }) => `proxy_set_header ${header} $mcp_backend_${slot};`),
    // Set by njs from the check's answer. proxy_set_header replaces a client-sent header of
    // the same name, and an empty value sends none, so a forged `X-User: root` never arrives.
    `proxy_set_header ${USER_HEADER} $mcp_user;`,
    `proxy_set_header ${USERNAME_HEADER} $mcp_username;`,
    `proxy_set_header ${SCOPES_HEADER} $mcp_scopes;`,
    ...[
      MISSING_SCOPE_HEADER,
      SERVER_HEADER,
      TRANSPORT_HEADER,
      ...ROUTE_HEADERS,
      MESSAGES_HEADER,
      TOOL_FILTER_HEADER,
      ...SESSION_HEADERS,
      ...credentialHeaders(headers),
    ].map((h) => `proxy_set_header ${h} "";`),
    `proxy_set_header ${REQUEST_ID_HEADER} $request_id;`,
    // The backend's own session id, unsealed by the check for this principal; never the
    // client's value (empty: none is sent). MCP-Protocol-Version and Last-Event-ID pass through.
    'proxy_set_header Mcp-Session-Id $mcp_unsealed_session;',
    // njs rewrites response bodies (tools/list, the endpoint event): plain text upstream.
    ...(filtered || stream ? ['proxy_set_header Accept-Encoding "";'] : []),
    // The backend's Mcp-Session-Id goes out sealed to this principal; for a principal limited to
    // some tools, njs also drops the others from every tools/list result.
    ...(filtered
      ? ['js_header_filter mcp.filterHeaders;', 'js_body_filter mcp.filterBody;']
      : stream
        ? ['js_header_filter mcp.sseHeaders;', 'js_body_filter mcp.filterBody;']
        : location === '@mcp_streamable'
          ? ['js_header_filter mcp.sessionHeaders;']
          : location === '@mcp_streamable_session'
            ? ['proxy_hide_header Mcp-Session-Id;', 'add_header Mcp-Session-Id $mcp_session_echo always;']
            : []),
  ]);
}

/*
 * Enabled or not, a server is routed the same: the check answers 503 for a disabled server
 * (decideAccess). Added, edited or removed, too: the check reads the catalog on each request.
 */
export function renderBackendLocations(cors: boolean, headers: readonly HeaderName[]): Lines {
  return BACKEND_LOCATIONS.flatMap((location) => renderBackend(location, cors, headers));
}
