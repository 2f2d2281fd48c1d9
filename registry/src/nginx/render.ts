/**
 * Renders the whole nginx config. Pure: no file system, no processes; the same input gives the
 * same bytes. The catalog is not in it, except as the upstream blocks of the backend origins
 * nginx starts with (keep-alive): servers are routed by the check (nginx/route.ts), so catalog
 * changes never re-render nor reload (docs/nginx.md, "Routing without reloads").
 */
import {
  EXECUTE_PREFIX,
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
import { CLIENT_ADDRESS_HEADER } from '../metrics/paths.ts';
import { GatewayError } from '../errors.ts';
import { MAX_CHECK_CACHE_SECONDS } from '../config/schema.ts';
import {
  assertBackendPath,
  assertBodySize,
  assertCorsOrigin,
  assertFilePath,
  assertListenHost,
  assertPort,
  assertHeaderName,
  assertWorkerUser,
  hostPort,
  quoted,
  type CorsOrigin,
  type FilePath,
} from './names.ts';
import { corsAnswer, corsPreflight, corsResponseHeaders, hideUpstreamCors, renderCorsMaps } from './render-cors.ts';
import {
  block,
  CHECK_CACHE_ZONE,
  jsonReturn,
  REGISTRY_UPSTREAM,
  renderBackendLocations,
  renderBackendUpstream,
  renderMcpLocations,
  renderNjsVariables,
  renderSessionEchoMap,
  credentialHeaders,
  ROUTE_HEADERS,
  SESSION_HEADERS,
  type Lines,
} from './render-server.ts';
import type { BackendUpstream } from './route.ts';

export interface NginxRenderInput {
  readonly listen: { readonly host: string; readonly port: number };
  /** Absolute directory for the pid file, logs and temp files. */
  readonly runtimeDir: string;
  /** The registry always listens on 127.0.0.1. */
  readonly registry: { readonly port: number };
  /** `ngx_http_js_module.so` (Debian package libnginx-mod-http-js). */
  readonly njsModulePath: string;
  /** Absolute folder holding `mcp.js`, the njs body check (the repository's `nginx/njs`). */
  readonly njsDir: string;
  /** `user` for the workers, e.g. `nobody nogroup` when the master runs as root. */
  readonly workerUser?: string;
  /**
   * The scheme people and clients use (GATEWAY_PUBLIC_URL's). Behind a TLS-terminating load
   * balancer nginx itself sees http; the registry must still know the public side is https to
   * set Secure cookies and build https URLs. Default: what nginx sees (`$scheme`).
   */
  readonly publicScheme?: 'http' | 'https';
  /**
   * Browser origins allowed cross-origin on the MCP endpoints, /.well-known/ and /oauth2/
   * (CORS_ALLOWED_ORIGINS). Empty or absent: no CORS at all (preflights get njs's 405).
   */
  readonly corsOrigins?: readonly string[];
  /**
   * Header names besides Authorization nginx sets from the check's answer on backend requests
   * (BACKEND_CREDENTIAL_HEADERS), one slot each; default none.
   */
  readonly backendCredentialHeaders?: readonly string[];
  /** Largest request body; default `1m`. */
  readonly maxBodySize?: string;
  /** One upstream block per backend origin known at start (nginx/route.ts RouteTable.start). */
  readonly upstreams: readonly BackendUpstream[];
  /**
   * Cached decisions (authz/check-cache.ts): the folder nginx keeps them in (CHECK_CACHE_DIR,
   * checked by check-cache-dir.ts before nginx starts) and CHECK_CACHE_SECONDS. Absent: nothing
   * is cached and every MCP request asks the check.
   */
  readonly checkCache?: { readonly dir: string; readonly generationFile: string; readonly seconds: number };
}

/** Beside the cache folder: the check cache's generation, written by the registry (check-generation.ts), read by njs. */
export const CHECK_GENERATION_FILE = 'check-generation';
/** In the runtime folder: nginx's audit lines for the requests the check never saw (nginx/audit-tail.ts). */
export const MCP_AUDIT_LOG = 'mcp-audit.log';

const TEMP_PATHS = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'] as const;

/** The allow-list, checked and without repeats (a repeated `map` key stops nginx). */
function checkCorsOrigins(origins: readonly string[]): CorsOrigin[] {
  return [...new Set(origins.map((origin) => assertCorsOrigin(origin)))];
}

/** BACKEND_CREDENTIAL_HEADERS, checked (and each once: two slots of one name would send both). */
function credentialHeaderNames(input: NginxRenderInput) {
  const names = (input.backendCredentialHeaders ?? []).map((name) => assertHeaderName(name));
  const lower = names.map((n) => n.toLowerCase());
  if (lower.includes('authorization') || new Set(lower).size !== lower.length)
    throw new GatewayError('CONFIG_INVALID', 'backend credential headers must be distinct and not Authorization');
  return names;
}

/** CHECK_CACHE_DIR and CHECK_CACHE_SECONDS, checked; undefined when caching is off. */
function checkCacheOf(cache: NginxRenderInput['checkCache']): { dir: FilePath; generationFile: FilePath; seconds: number } | undefined {
  if (cache === undefined || cache.seconds === 0) return undefined;
  if (!Number.isInteger(cache.seconds) || cache.seconds < 0 || cache.seconds > MAX_CHECK_CACHE_SECONDS)
    throw new GatewayError('CONFIG_INVALID', `the check cache's seconds must be an integer from 0 to ${MAX_CHECK_CACHE_SECONDS}`);
  return { dir: assertFilePath(cache.dir.replace(/\/+$/, '') || '/'), generationFile: assertFilePath(cache.generationFile), seconds: cache.seconds };
}

/** Where the MCP error pages live: JSON for clients that parse JSON, never the web page. */
function renderErrorLocations(cors: boolean): Lines {
  return [
    // 401 and 403 are answered by njs (nginx/njs/mcp.js), which knows the JSON-RPC id.
    ...block('location @mcp_500', ['default_type application/json;', ...corsAnswer(cors), jsonReturn(500, { error: 'INTERNAL', message: 'internal error' })]),
    ...block('location @mcp_502', [
      'default_type application/json;',
      ...corsAnswer(cors),
      jsonReturn(502, { error: 'BACKEND_UNAVAILABLE', message: 'the MCP server did not answer' }),
    ]),
    ...block('location @mcp_413', [
      'default_type application/json;',
      ...corsAnswer(cors),
      jsonReturn(413, { error: 'BODY_TOO_LARGE', message: 'request body too large' }),
    ]),
  ];
}

/**
 * `location /` to the registry, and with CORS the two registry paths browser MCP clients call
 * cross-origin: /.well-known/ (protected-resource and authorization-server metadata) and
 * /oauth2/ (the authorization server's endpoints). Their preflights are answered here; the
 * registry's own Access-Control-* headers are dropped so the allow-list is the only policy.
 */
function renderRegistryLocations(publicScheme: 'http' | 'https' | undefined, cors: boolean): Lines {
  const proxy = registryProxy(publicScheme);
  const crossOrigin = (path: string) => block(`location ${path}`, [...corsPreflight(), ...corsResponseHeaders(), ...hideUpstreamCors(), ...proxy]);
  return [...(cors ? [...crossOrigin('/.well-known/'), ...crossOrigin('/oauth2/')] : []), ...block('location /', proxy)];
}

function registryProxy(publicScheme: 'http' | 'https' | undefined): Lines {
  // Typed, but checked too: it is written into the config.
  if (publicScheme !== undefined && publicScheme !== 'http' && publicScheme !== 'https') {
    throw new GatewayError('CONFIG_INVALID', `public scheme must be http or https, not ${JSON.stringify(publicScheme)}`);
  }
  return [
    `proxy_pass http://${REGISTRY_UPSTREAM};`,
    'proxy_set_header Connection "";',
    'proxy_set_header Host $http_host;',
    'proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;',
    `proxy_set_header X-Forwarded-Proto ${publicScheme ?? '$scheme'};`,
    'proxy_set_header X-Forwarded-Host $http_host;',
    'proxy_set_header X-Forwarded-Port $server_port;',
    `proxy_set_header ${REQUEST_ID_HEADER} $request_id;`,
    // The client's address as nginx saw it, for /metrics (loopback or the scrape token): every
    // socket the registry sees is nginx's own. Set on every registry location, whatever the path's
    // spelling, and it replaces a copy the client sent; X-Forwarded-For would need parsing to
    // tell the client's own entries from nginx's.
    `proxy_set_header ${CLIENT_ADDRESS_HEADER} $remote_addr;`,
    // Identity reaches the registry as a session or token only; these headers are the
    // check's vocabulary and mean nothing when a client sends them.
    ...[
      USER_HEADER,
      USERNAME_HEADER,
      SCOPES_HEADER,
      MISSING_SCOPE_HEADER,
      SERVER_HEADER,
      TRANSPORT_HEADER,
      ORIGINAL_URI_HEADER,
      ORIGINAL_METHOD_HEADER,
      MESSAGES_HEADER,
      TOOL_FILTER_HEADER,
      ...ROUTE_HEADERS,
      ...SESSION_HEADERS,
      ...credentialHeaders([]),
    ].map((header) => `proxy_set_header ${header} "";`),
  ];
}

function renderServerBlock(input: NginxRenderInput, cors: boolean, generationFile: FilePath | undefined): Lines {
  const host = assertListenHost(input.listen.host);
  const port = assertPort(input.listen.port, 'listen port');
  const bodySize = assertBodySize(input.maxBodySize ?? '1m');
  const validatePath = assertBackendPath(VALIDATE_PATH);
  return block('server', [
    `listen ${quoted(hostPort(host, port))};`,
    // Equal sizes: the njs body reader needs the whole body in memory (r.requestText fails on
    // a body spooled to disk), and so the bytes authorized are the bytes forwarded. Bigger
    // bodies get 413 before anything else happens.
    `client_max_body_size ${bodySize};`,
    `client_body_buffer_size ${bodySize};`,
    '',
    '# Every MCP server, whatever the catalog holds now or later: the check routes (nginx/route.ts).',
    ...renderMcpLocations(cors, generationFile),
    '',
    '# Where njs sends a request the check allowed, to the backend the check named.',
    ...renderBackendLocations(cors, credentialHeaderNames(input)),
    '',
    '# Any other MCP path (not a well-formed server name): a JSON 404, never the web page.',
    ...[STREAMABLE_PREFIX, EXECUTE_PREFIX].flatMap((prefix) =>
      block(`location ${prefix}`, [
        'default_type application/json;',
        ...corsAnswer(cors),
        jsonReturn(404, { error: 'SERVER_UNKNOWN', message: 'no such MCP server' }),
      ]),
    ),
    '',
    // The check is reachable only through the internal locations above. A regex, matched
    // case-insensitively with any trailing slashes, because Express routes /Auth/Validate/ to
    // the same handler while nginx locations are case-sensitive.
    `# ${validatePath} answers the njs check subrequests only.`,
    ...block(`location ~* ^${validatePath}/*$`, ['default_type application/json;', jsonReturn(404, { error: 'NOT_FOUND', message: 'not found' })]),
    '',
    ...renderErrorLocations(cors),
    '',
    '# The web page, login, OAuth and the dev IdP live in the registry.',
    ...renderRegistryLocations(input.publicScheme, cors),
  ]);
}

/**
 * Renders the complete nginx config.
 *
 * Every value from `input` passes names.ts before it is written, and upstreams are sorted by
 * name, so equal input gives equal output.
 * @throws GatewayError `CONFIG_INVALID` for a bad listen address, port, path, worker user, body
 *   size or CORS origin, or an upstream declared twice. Nothing is rendered when any check fails.
 */
export function renderNginxConfig(input: NginxRenderInput): string {
  const runtimeDir = assertFilePath(input.runtimeDir.replace(/\/+$/, '') || '/');
  const registryPort = assertPort(input.registry.port, 'registry port');
  const upstreams = [...input.upstreams].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (let i = 1; i < upstreams.length; i++) {
    if (upstreams[i]?.name === upstreams[i - 1]?.name) throw new GatewayError('CONFIG_INVALID', `upstream ${upstreams[i]?.name} is declared twice`);
  }
  const corsOrigins = checkCorsOrigins(input.corsOrigins ?? []);
  const cors = corsOrigins.length > 0;
  const file = (name: string): string => quoted(assertFilePath(`${runtimeDir}/${name}`));
  const cache = checkCacheOf(input.checkCache);

  const main: Lines = [
    '# Generated by registry/src/nginx/render.ts from the server catalog. Do not edit.',
    // The registry supervises nginx as a child process: foreground master, no daemon.
    'daemon off;',
    'master_process on;',
    'worker_processes 2;',
    `pid ${file('nginx.pid')};`,
    // notice: apply.ts reads "start worker processes" / [emerg] after a reload from this log.
    `error_log ${file('error.log')} notice;`,
    // Catalog changes never reload nginx (the check routes). Only stopping nginx (a registry
    // restart: SIGQUIT) waits for open requests, and apply.ts escalates after 5 s anyway.
  ];
  if (input.workerUser !== undefined) {
    const parts = assertWorkerUser(input.workerUser).split(' ');
    main.push(`user ${parts.map((part) => quoted(assertWorkerUser(part))).join(' ')};`);
  }
  main.push(`load_module ${quoted(assertFilePath(input.njsModulePath))};`);

  const http = block('http', [
    ...TEMP_PATHS.map((kind) => `${kind}_temp_path ${file(`tmp/${kind}`)};`),
    'default_type application/octet-stream;',
    'server_tokens off;',
    // Redirects nginx makes itself stay relative, never naming an internal host or port.
    'absolute_redirect off;',
    // The path without the query string: OAuth codes and session ids travel in queries.
    'map $request_uri $mcp_log_path {',
    '    ~^(?<path>[^?]*) $path;',
    '}',
    `log_format mcp_gateway '$remote_addr [$time_local] "$request_method $mcp_log_path $server_protocol" $status $body_bytes_sent $request_time $request_id';`,
    `access_log ${file('access.log')} mcp_gateway buffer=32k flush=1s;`,
    // The audit lines of MCP requests the check never saw (a cached answer, or one njs refused
    // first): `$mcp_audit` is set by njs for those only. The registry reads them into the audit.
    `log_format mcp_audit escape=json '{"time":"$time_iso8601","requestId":"$request_id","server":"$mcp_server","transport":"$mcp_transport","status":"$status","traceparent":"$http_traceparent","audit":"$mcp_audit"}';`,
    `access_log ${file(MCP_AUDIT_LOG)} mcp_audit if=$mcp_audit buffer=64k flush=1s;`,
    ...(cache === undefined
      ? []
      : [
          // Kept as long as each answer says (X-Accel-Expires, at most CHECK_CACHE_SECONDS); files
          // unused for `inactive` go. Written in place (use_temp_path=off): one folder to check.
          `proxy_cache_path ${quoted(cache.dir)} levels=1:2 keys_zone=${CHECK_CACHE_ZONE}:10m max_size=256m inactive=${Math.max(60, 2 * cache.seconds)}s use_temp_path=off;`,
        ]),
    // Upstream keepalive (with Connection "" per location) needs HTTP/1.1; so does streaming.
    'proxy_http_version 1.1;',
    // The njs step that reads each MCP body and asks the check (nginx/njs/mcp.js).
    `js_path ${quoted(assertFilePath(input.njsDir.replace(/\/+$/, '')))};`,
    'js_import mcp from mcp.js;',
    ...renderNjsVariables(credentialHeaderNames(input)),
    ...renderSessionEchoMap(),
    ...(cors ? renderCorsMaps(corsOrigins) : []),
    // No http-level proxy_set_header: nginx inherits them only into locations that set none,
    // so each location below lists its headers in full and can be read on its own.
    '',
    ...block(`upstream ${REGISTRY_UPSTREAM}`, [`server ${quoted(hostPort(assertListenHost('127.0.0.1'), registryPort))};`, 'keepalive 16;']),
    '',
    ...upstreams.flatMap((upstream) => [...renderBackendUpstream(upstream), '']),
    ...renderServerBlock(input, cors, cache?.generationFile),
  ]);

  return [...main, '', ...block('events', ['worker_connections 1024;']), '', ...http, ''].join('\n');
}
