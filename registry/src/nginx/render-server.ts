/**
 * The nginx locations for one MCP server. Pure; called by render.ts with values that already
 * passed names.ts (the branded types make that the only way in).
 */
import {
  BACKEND_SESSION_HEADER,
  BACKEND_TARGET_HEADER,
  EXECUTE_PREFIX,
  SESSION_HEADER,
  SESSION_KEY_HEADER,
  SESSION_UNKNOWN_HEADER,
  SSE_MESSAGES_PATH,
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
} from '../authz/paths.ts';
import type { Transport } from '../catalog/server-definition.ts';
import {
  backendBasePath,
  backendOrigin,
  backendTarget,
  hostOf,
  quoted,
  type BackendPath,
  type BackendTarget,
  type BackendUrl,
  type ServerName,
} from './names.ts';
import { corsAnswer, corsEntry, hideUpstreamCors } from './render-cors.ts';
import { block, type Lines } from './render-lines.ts';

export { block, type Lines } from './render-lines.ts';

/** A server definition reduced to what the config needs, every string checked. */
export interface CheckedServer {
  readonly name: ServerName;
  readonly url: BackendUrl;
  readonly streamable: BackendPath | undefined;
  readonly sse: BackendPath | undefined;
}

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
  '$mcp_unsealed_target',
] as const;

/** The check's session vocabulary: never from a client, never to a backend. */
export const SESSION_HEADERS = [SESSION_HEADER, SESSION_KEY_HEADER, BACKEND_SESSION_HEADER, BACKEND_TARGET_HEADER, SESSION_UNKNOWN_HEADER] as const;

export function renderNjsVariables(): Lines {
  return NJS_VARIABLES.map((variable) => `js_var ${variable};`);
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

function authLocation(name: ServerName, transport: Transport): string {
  return `/_mcp_auth/${name}/${transport}`;
}

/**
 * The internal location the njs step calls for the check. The server and transport are literals written
 * here, never parsed from the request: `$request_uri` is the raw URI and can name a different
 * server than the normalized one nginx matched (`/api/execute/a/../b/`), so the check learns
 * which server it guards from the location that matched, and gets the raw URI for logs only.
 */
function renderAuthLocation(name: ServerName, transport: Transport): Lines {
  return block(`location = ${authLocation(name, transport)}`, [
    'internal;',
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
    `proxy_set_header ${SERVER_HEADER} ${quoted(name)};`,
    `proxy_set_header ${TRANSPORT_HEADER} "${transport}";`,
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

/** The named location the njs step redirects to after a 200: `@mcp_<name>_<transport>[_filtered]`. */
function backendLocation(name: ServerName, transport: Transport, filtered: boolean): string {
  return `@mcp_${name}_${transport}${filtered ? '_filtered' : ''}`;
}

/**
 * A public MCP location: njs reads the whole body, asks the check, and redirects to the named
 * backend location, which proxies that same buffered body. `$mcp_server` / `$mcp_transport` are
 * literals from the catalog, never parsed from the URI. `session` is where the client's sealed
 * session id is: the Mcp-Session-Id header, the legacy `session` query parameter, or nowhere.
 */
function renderCheckedEntry(name: ServerName, transport: Transport, session: '$http_mcp_session_id' | '$arg_session' | '""'): Lines {
  return [
    `set $mcp_server ${quoted(name)};`,
    `set $mcp_transport "${transport}";`,
    `set $mcp_session ${session};`,
    // A body over client_max_body_size never reaches njs: nginx answers 413 while reading it.
    'error_page 413 = @mcp_413;',
    'js_content mcp.handle;',
  ];
}

/** A location for one method only (the legacy transport's stream is GET, its messages POST). */
function onlyMethod(method: 'GET' | 'POST', what: string, cors: boolean): Lines {
  return [
    'default_type application/json;',
    ...block(`if ($request_method != ${method})`, [
      // add_header inside `if` replaces the location's: the CORS headers are repeated here.
      ...corsAnswer(cors),
      `add_header Allow "${method}" always;`,
      jsonReturn(405, { error: 'METHOD_NOT_ALLOWED', message: `${what} takes ${method} only` }),
    ]),
  ];
}

/** The upstream block name of a server's backend. */
function backendUpstream(name: ServerName): string {
  return `mcp_backend_${name}`;
}

/**
 * One upstream per server, so nginx keeps connections to the backend open (keepalive) instead
 * of a new TCP connection per MCP request. The port is explicit: an upstream has no scheme to
 * default it from.
 */
export function renderBackendUpstream(server: CheckedServer): Lines {
  const origin = backendOrigin(server.url);
  const https = origin.startsWith('https:');
  const host = hostOf(origin);
  const withPort = /:\d+$/.test(host) ? host : `${host}:${https ? 443 : 80}`;
  return block(`upstream ${backendUpstream(server.name)}`, [
    `server ${quoted(withPort as ServerName)};`,
    'keepalive 16;',
    // Shorter than Node's 5 s idle timeout (the SDK servers' default): nginx must drop an idle
    // connection before the backend does, or a POST sent as the backend closes it fails (502).
    'keepalive_timeout 4s;',
  ]);
}

/** What differs between the named backend locations of one server. */
interface BackendRoute {
  readonly transport: Transport;
  /** `@mcp_<name>_<transport>[_filtered]`, or the legacy messages location. */
  readonly location: string;
  /** Sets the backend URI: a `rewrite` to a fixed path, or a proxy_pass with $mcp_unsealed_target. */
  readonly uri: { readonly rewrite: string } | { readonly target: true };
  /** tools/list filtering for a tool-limited principal (njs). */
  readonly filtered: boolean;
  /** The legacy stream: njs seals its endpoint event; this is the backend's SSE URL to resolve it against. */
  readonly stream?: BackendTarget;
}

/** Directives of a named location that proxies to a backend after the check said 200. */
function renderBackend(server: CheckedServer, route: BackendRoute, cors: boolean): Lines {
  const origin = backendOrigin(server.url);
  const https = origin.startsWith('https:');
  const scheme = https ? 'https' : 'http';
  const { filtered, stream } = route;
  return block(`location ${route.location}`, [
    ...(stream === undefined
      ? []
      : [
          // What njs needs to seal the endpoint event (set before rewrite's `break`).
          `set $mcp_backend_sse ${quoted(stream)};`,
          `set $mcp_messages_url ${quoted(`${EXECUTE_PREFIX}${server.name}${SSE_MESSAGES_PATH}` as ServerName)};`,
        ]),
    ...('rewrite' in route.uri
      ? [
          // Named locations cannot carry a URI in proxy_pass; rewrite sets it (query string kept).
          route.uri.rewrite,
          `proxy_pass ${scheme}://${backendUpstream(server.name)};`,
        ]
      : [
          // The messages endpoint the backend announced, unsealed by the check for this
          // principal only. With a variable, proxy_pass sends that URI as it is (no query added).
          `proxy_pass ${scheme}://${backendUpstream(server.name)}$mcp_unsealed_target;`,
        ]),
    // TLS to the backend names the backend's host (SNI), not the upstream block.
    ...(https ? ['proxy_ssl_server_name on;', `proxy_ssl_name ${quoted(hostOf(origin).replace(/:\d+$/, '') as ServerName)};`] : []),
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
    `proxy_set_header Host ${quoted(hostOf(origin))};`,
    'proxy_set_header Connection "";',
    // No token passthrough: the client's credentials are for the gateway, not the backend.
    'proxy_set_header Cookie "";',
    'proxy_set_header Authorization "";',
    // Set by njs from the check's answer. proxy_set_header replaces a client-sent header of
    // the same name, and an empty value sends none, so a forged `X-User: root` never arrives.
    `proxy_set_header ${USER_HEADER} $mcp_user;`,
    `proxy_set_header ${USERNAME_HEADER} $mcp_username;`,
    `proxy_set_header ${SCOPES_HEADER} $mcp_scopes;`,
    ...[MISSING_SCOPE_HEADER, SERVER_HEADER, TRANSPORT_HEADER, MESSAGES_HEADER, TOOL_FILTER_HEADER, ...SESSION_HEADERS].map((h) => `proxy_set_header ${h} "";`),
    `proxy_set_header ${REQUEST_ID_HEADER} $request_id;`,
    // The backend's own session id, unsealed by the check for this principal; never the
    // client's value (empty: none is sent). MCP-Protocol-Version and Last-Event-ID pass through.
    'proxy_set_header Mcp-Session-Id $mcp_unsealed_session;',
    // njs rewrites response bodies (tools/list, the endpoint event): plain text upstream.
    ...(filtered || stream !== undefined ? ['proxy_set_header Accept-Encoding "";'] : []),
    // The backend's Mcp-Session-Id goes out sealed to this principal; for a principal limited to
    // some tools, njs also drops the others from every tools/list result.
    ...(filtered
      ? ['js_header_filter mcp.filterHeaders;', 'js_body_filter mcp.filterBody;']
      : stream !== undefined
        ? ['js_header_filter mcp.sseHeaders;', 'js_body_filter mcp.filterBody;']
        : route.transport === 'streamable-http'
          ? ['js_header_filter mcp.sessionHeaders;']
          : []),
  ]);
}

/*
 * Enabled or not, a server renders the same: the check answers 503 for a disabled server
 * (decideAccess), so enabling and disabling never changes the config and never reloads nginx.
 * A reload closes keep-alive connections in flight (the benchmark lost requests on each one),
 * and the check sees a toggle at once, where a reload takes a moment.
 */
function renderStreamable(server: CheckedServer, path: BackendPath, cors: boolean): Lines {
  const out: Lines = [];
  // Exact matches only, with and without the slash: a prefix would let `a` catch `a-b`.
  for (const location of [`= ${STREAMABLE_PREFIX}${server.name}`, `= ${STREAMABLE_PREFIX}${server.name}/`]) {
    out.push(...block(`location ${location}`, [...corsEntry(cors), ...renderCheckedEntry(server.name, 'streamable-http', '$http_mcp_session_id')]));
  }
  const uri = { rewrite: `rewrite ^ ${quoted(backendTarget(backendBasePath(server.url), path))} break;` };
  for (const filtered of [false, true]) {
    out.push(
      ...renderBackend(server, { transport: 'streamable-http', location: backendLocation(server.name, 'streamable-http', filtered), uri, filtered }, cors),
    );
  }
  return out;
}

/**
 * The legacy transport, routed exactly: GET on the definition's SSE path opens the stream (njs
 * seals the `endpoint` event it announces into `/api/execute/<name>/messages?session=...`),
 * POST on that messages path goes to exactly the endpoint the sealed id names, and nothing
 * else under `/api/execute/<name>/` reaches the backend.
 */
function renderSse(server: CheckedServer, path: BackendPath, cors: boolean): Lines {
  const prefix = `${EXECUTE_PREFIX}${server.name}`;
  const notFound = (message: string) => ['default_type application/json;', ...corsAnswer(cors), jsonReturn(404, { error: 'NOT_FOUND', message })];
  // The trailing `?` drops the client's query: the backend gets exactly its SSE path.
  const uri = { rewrite: `rewrite ^ ${quoted(`${backendTarget(backendBasePath(server.url), path)}?` as BackendTarget)} break;` };
  const stream = backendTarget(server.url, path);
  return [
    // The bare name is not an endpoint; a redirect to the slash form would GET the backend root.
    ...block(`location = ${prefix}`, notFound(`the endpoints of ${server.name} are ${prefix}${path} and ${prefix}${SSE_MESSAGES_PATH}`)),
    ...block(`location = ${prefix}${path}`, [
      ...corsEntry(cors),
      ...onlyMethod('GET', 'the SSE stream', cors),
      ...renderCheckedEntry(server.name, 'sse', '""'),
    ]),
    ...block(`location = ${prefix}${SSE_MESSAGES_PATH}`, [
      ...corsEntry(cors),
      ...onlyMethod('POST', 'the messages endpoint', cors),
      ...renderCheckedEntry(server.name, 'sse', '$arg_session'),
    ]),
    // Slash-terminated prefix: `/api/execute/a/` cannot match `/api/execute/ab/...`.
    ...block(`location ${prefix}/`, notFound(`the endpoints of ${server.name} are ${prefix}${path} and ${prefix}${SSE_MESSAGES_PATH}`)),
    ...renderBackend(server, { transport: 'sse', location: backendLocation(server.name, 'sse', false), uri, filtered: false, stream }, cors),
    ...renderBackend(server, { transport: 'sse', location: backendLocation(server.name, 'sse', true), uri, filtered: true, stream }, cors),
    ...renderBackend(server, { transport: 'sse', location: `@mcp_${server.name}_sse_messages`, uri: { target: true }, filtered: false }, cors),
  ];
}

/** The internal auth locations and the public locations of one server; `cors` when CORS_ALLOWED_ORIGINS is set. */
export function renderServerLocations(server: CheckedServer, cors: boolean): Lines {
  const transports: Transport[] = [];
  if (server.streamable !== undefined) transports.push('streamable-http');
  if (server.sse !== undefined) transports.push('sse');
  const out: Lines = [`# ${server.name}: ${transports.join(', ')}`, ...transports.flatMap((transport) => renderAuthLocation(server.name, transport))];
  if (server.streamable !== undefined) out.push(...renderStreamable(server, server.streamable, cors));
  if (server.sse !== undefined) out.push(...renderSse(server, server.sse, cors));
  return out;
}
