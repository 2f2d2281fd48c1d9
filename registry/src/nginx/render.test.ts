import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { GatewayError } from '../errors.ts';
import type { HostPort } from './names.ts';
import { renderNginxConfig, type NginxRenderInput } from './render.ts';

const INPUT: NginxRenderInput = {
  listen: { host: '127.0.0.1', port: 8080 },
  runtimeDir: '/var/lib/mcp-gateway/nginx',
  registry: { port: 7860 },
  njsModulePath: '/usr/lib/nginx/modules/ngx_http_js_module.so',
  njsDir: '/opt/mcp-gateway/nginx/njs',
  workerUser: 'nobody nogroup',
  // BACKEND_CREDENTIAL_HEADERS' default: one slot besides Authorization.
  backendCredentialHeaders: ['X-API-Key'],
  // CHECK_CACHE_SECONDS' default, the cache beside the runtime folder (not root: check-cache-dir.ts).
  checkCache: { dir: '/var/lib/mcp-gateway/nginx/check-cache', generationFile: '/var/lib/mcp-gateway/nginx/check-generation', seconds: 5 },
  // What RouteTable.start() gives for the catalog's backend origins; out of order on purpose.
  upstreams: [
    { name: 'mcp_backend_5e0c9d2b7a41', server: '127.0.0.1:8003' as HostPort },
    { name: 'mcp_backend_0a1b2c3d4e5f', server: 'archive.example.com:443' as HostPort },
    { name: 'mcp_backend_31f0aa9e6c2d', server: '127.0.0.1:8001' as HostPort },
  ],
};

/** The body of each `location` in the config, by its argument (`= /_mcp_auth`). */
function locations(config: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const match of config.matchAll(/^ {8}location (.+) \{\n([\s\S]*?)^ {8}\}$/gm)) {
    out.set(match[1] ?? '', match[2] ?? '');
  }
  return out;
}

/** The body of each `upstream` at http level, by its name. */
function upstreams(config: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const match of config.matchAll(/^ {4}upstream ([^ {\n]+) \{\n([\s\S]*?)^ {4}\}$/gm)) {
    out.set(match[1] ?? '', match[2] ?? '');
  }
  return out;
}

const STREAMABLE = '~ "^/api/streamable/(?<mcp_name>[a-z0-9][a-z0-9-]{0,62})/?$"';
const EXECUTE = '~ "^/api/execute/(?<mcp_name>[a-z0-9][a-z0-9-]{0,62})(?<mcp_rest>/.*)?$"';
const BACKENDS = ['@mcp_streamable', '@mcp_streamable_session', '@mcp_streamable_filtered', '@mcp_sse', '@mcp_sse_filtered', '@mcp_sse_messages'];

describe('renderNginxConfig', () => {
  const config = renderNginxConfig(INPUT);
  const byPath = locations(config);

  it('matches the reviewed snapshot', (t) => {
    t.assert.snapshot(config, { serializers: [(value) => value] });
  });

  it('refuses a backend credential header name nginx could misread, or Authorization twice', () => {
    for (const name of ['X Key', 'X-Key;', '$x', 'Authorization', 'x-key,X-KEY'.split(',')[0] + '\n']) {
      assert.throws(
        () => renderNginxConfig({ ...INPUT, backendCredentialHeaders: [name] }),
        (err: unknown) => err instanceof GatewayError && err.code === 'CONFIG_INVALID',
        name,
      );
    }
    assert.throws(() => renderNginxConfig({ ...INPUT, backendCredentialHeaders: ['X-Key', 'x-key'] }), GatewayError);
  });

  it('is deterministic whatever order the upstreams come in', () => {
    assert.equal(renderNginxConfig({ ...INPUT, upstreams: [...INPUT.upstreams].reverse() }), config);
  });

  it('has no location per server: two generic MCP locations, one check, six backend locations, and JSON catch-alls', () => {
    assert.deepEqual(
      [...byPath.keys()],
      [STREAMABLE, EXECUTE, '= /_mcp_auth', ...BACKENDS, '/api/streamable/', '/api/execute/', '~* ^/auth/validate/*$', '@mcp_500', '@mcp_502', '@mcp_413', '/'],
    );
    for (const prefix of ['/api/streamable/', '/api/execute/']) assert.match(byPath.get(prefix) ?? '', /return 404 '\{"error":"SERVER_UNKNOWN"/, prefix);
  });

  it("matches the server name with the catalog's own name pattern, so nothing else reaches njs", () => {
    // The name is captured from the normalized $uri nginx matched: `/api/execute/a/../b/sse` is b's.
    assert.ok(config.includes(`location ${STREAMABLE} {`));
    assert.ok(config.includes(`location ${EXECUTE} {`));
  });

  it('makes the check location internal, naming the matched server from variables the public locations set', () => {
    const body = byPath.get('= /_mcp_auth') ?? '';
    assert.match(body, /^ +internal;$/m);
    assert.match(body, /proxy_pass http:\/\/mcp_registry\/auth\/validate;/);
    assert.match(body, /proxy_pass_request_body off;/);
    assert.match(body, /proxy_set_header Content-Length "";/);
    assert.ok(body.includes('proxy_set_header x-mcp-server $mcp_server;'));
    assert.ok(body.includes('proxy_set_header x-mcp-transport $mcp_transport;'));
    // The legacy path, after njs checked its characters.
    assert.ok(body.includes('proxy_set_header x-mcp-path $mcp_route_path;'));
    assert.match(body, /proxy_set_header Cookie \$http_cookie;/);
    assert.match(body, /proxy_set_header Authorization \$http_authorization;/);
    assert.match(body, /proxy_set_header x-user "";/);
    assert.match(body, /proxy_set_header x-missing-scope "";/);
    assert.match(body, /proxy_set_header x-mcp-messages \$mcp_messages;/);
    assert.match(body, /proxy_set_header x-mcp-session \$mcp_session;/);
  });

  it('hands both public locations to njs, with no proxy_pass of their own', () => {
    for (const [path, transport, session, rest] of [
      [STREAMABLE, 'streamable-http', '$http_mcp_session_id', '""'],
      [EXECUTE, 'sse', '$arg_session', '$mcp_rest'],
    ] as const) {
      const body = byPath.get(path) ?? '';
      assert.ok(body.includes('set $mcp_server $mcp_name;'), path);
      assert.ok(body.includes(`set $mcp_transport "${transport}";`), path);
      assert.ok(body.includes(`set $mcp_session ${session};`), path);
      assert.ok(body.includes(`set $mcp_path ${rest};`), path);
      assert.match(body, /^ +js_content mcp\.handle;$/m, path);
      assert.match(body, /error_page 413 = @mcp_413;/, path);
      assert.doesNotMatch(body, /proxy_pass|proxy_set_header|auth_request|return /, path);
    }
    const handed = [...byPath].filter(([, body]) => body.includes('js_content'));
    assert.deepEqual(
      handed.map(([path]) => path),
      [STREAMABLE, EXECUTE],
    );
    assert.doesNotMatch(config, /^ *auth_request(_set)? /m, 'no auth_request: its subrequests carry no body');
    // Nothing in the config depends on the catalog's enabled flags (the check answers 503).
    assert.doesNotMatch(config, /enabled|disabled|SERVER_DISABLED|return 503/);
  });

  /** One server line, keepalive, and an idle timeout shorter than Node backends' 5 s. */
  function assertUpstream(body: string | undefined, server: string, label: string): void {
    const directives = (body ?? '')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('//') && !l.startsWith('#'));
    assert.deepEqual(directives, [`server "${server}";`, 'keepalive 16;', 'keepalive_timeout 4s;'], label);
  }

  it('declares the upstream blocks it is given, sorted, with keepalive', () => {
    const ups = upstreams(config);
    assert.deepEqual([...ups.keys()], ['mcp_registry', 'mcp_backend_0a1b2c3d4e5f', 'mcp_backend_31f0aa9e6c2d', 'mcp_backend_5e0c9d2b7a41']);
    assertUpstream(ups.get('mcp_backend_0a1b2c3d4e5f'), 'archive.example.com:443', 'archive');
    assertUpstream(ups.get('mcp_backend_31f0aa9e6c2d'), '127.0.0.1:8001', 'github');
    // No location names one: njs picks it from the check's answer ($mcp_backend_upstream).
    assert.doesNotMatch(config, /proxy_pass https?:\/\/mcp_backend_/);
  });

  it('loads the njs module once, at http level, with its variables declared', () => {
    const http = config.slice(config.indexOf('\nhttp {'), config.indexOf('\n    server {'));
    assert.ok(config.includes('\nload_module "/usr/lib/nginx/modules/ngx_http_js_module.so";\n'));
    for (const line of [
      'js_path "/opt/mcp-gateway/nginx/njs";',
      'js_import mcp from mcp.js;',
      'js_var $mcp_messages;',
      'js_var $mcp_user;',
      'js_var $mcp_username;',
      'js_var $mcp_scopes;',
      'js_var $mcp_tool_filter;',
      'js_var $mcp_route_path;',
      'js_var $mcp_backend_scheme;',
      'js_var $mcp_backend_upstream;',
      'js_var $mcp_backend_host;',
      'js_var $mcp_backend_sni;',
      'js_var $mcp_backend_uri;',
      'js_var $mcp_backend_sse;',
      'js_var $mcp_messages_url;',
    ]) {
      assert.ok(http.includes(`\n    ${line}\n`), line);
      assert.equal(config.split(line).length, 2, `${line} once`);
    }
    // The whole body in memory: njs reads it from there, and the same buffer is forwarded.
    assert.ok(config.includes('\n        client_max_body_size 1m;\n        client_body_buffer_size 1m;\n'));
    const small = renderNginxConfig({ ...INPUT, maxBodySize: '256k', njsDir: '/srv/gw/nginx/njs/' });
    assert.ok(small.includes('\n        client_max_body_size 256k;\n        client_body_buffer_size 256k;\n'));
    assert.ok(small.includes('\n    js_path "/srv/gw/nginx/njs";\n'), 'a trailing slash is dropped');
  });

  it("proxies to the backend the check named, with the gateway's own credential in place of the client's Cookie and Authorization", () => {
    const toBackends = [...byPath].filter(([, body]) => /proxy_pass /.test(body) && !body.includes('mcp_registry'));
    assert.deepEqual(
      toBackends.map(([path]) => path),
      BACKENDS,
      'only the named locations njs redirects to reach a backend',
    );
    for (const [path, body] of toBackends) {
      assert.match(body, /^ +proxy_pass \$mcp_backend_scheme:\/\/\$mcp_backend_upstream\$mcp_backend_uri;$/m, path);
      assert.match(body, /proxy_set_header Host \$mcp_backend_host;/, path);
      // SNI (and the name a verified certificate must carry) is the backend's host, never the upstream block's name.
      assert.match(body, /^ +proxy_ssl_server_name on;$/m, path);
      assert.match(body, /^ +proxy_ssl_name \$mcp_backend_sni;$/m, path);
      assert.match(body, /proxy_set_header Connection "";/, 'keepalive to the upstream needs Connection ""');
      assert.match(body, /proxy_set_header Cookie "";/, path);
      // No token passthrough: Authorization is the gateway's credential for the backend (empty: none
      // is sent), and so is each BACKEND_CREDENTIAL_HEADERS slot, whatever the client sent.
      assert.match(body, /^ +proxy_set_header Authorization \$mcp_backend_authorization;$/m, path);
      assert.match(body, /^ +proxy_set_header X-API-Key \$mcp_backend_h1;$/m, path);
      assert.doesNotMatch(body, /proxy_set_header Authorization \$http_authorization/, path);
      assert.match(body, /proxy_set_header x-user \$mcp_user;/, path);
      assert.match(body, /proxy_set_header x-username \$mcp_username;/, path);
      assert.match(body, /proxy_set_header x-scopes \$mcp_scopes;/, path);
      // The backend's own session id, unsealed by the check; never the client's value.
      assert.match(body, /proxy_set_header Mcp-Session-Id \$mcp_unsealed_session;/, path);
      for (const header of [
        'x-missing-scope',
        'x-mcp-server',
        'x-mcp-transport',
        'x-mcp-path',
        'x-mcp-route',
        'x-mcp-route-refused',
        'x-mcp-route-allow',
        'x-mcp-messages',
        'x-mcp-tool-filter',
        'x-mcp-session',
        'x-mcp-session-key',
        'x-mcp-backend-session',
        'x-mcp-backend-target',
        'x-mcp-session-unknown',
      ]) {
        assert.ok(body.includes(`proxy_set_header ${header} "";`), `${path} ${header}`);
      }
      assert.match(body, /proxy_buffering off;/, path);
      assert.match(body, /proxy_request_buffering on;/, path);
      assert.match(body, /error_page 502 504 = @mcp_502;/, path);
      assert.doesNotMatch(body, /js_content|auth_request|rewrite|sub_filter/, path);
    }
  });

  it('filters tools/list only in the _filtered variants, seals sessions and the legacy endpoint event', () => {
    for (const [path, body] of byPath) {
      const filters = /js_header_filter mcp\.filterHeaders;[\s\S]*js_body_filter mcp\.filterBody;/.test(body);
      assert.equal(filters, path.endsWith('_filtered'), path);
      // The filter reads plain text: the backend must not compress.
      if (filters) assert.match(body, /proxy_set_header Accept-Encoding "";/, path);
    }
    // Apart from the filters, a variant proxies exactly like its plain twin.
    const strip = (body: string) => body.replace(/^ +(js_header_filter|js_body_filter|proxy_set_header Accept-Encoding).*\n/gm, '');
    for (const plain of ['@mcp_streamable', '@mcp_sse']) assert.equal(strip(byPath.get(`${plain}_filtered`) ?? 'x'), strip(byPath.get(plain) ?? ''), plain);
    assert.match(byPath.get('@mcp_streamable') ?? '', /js_header_filter mcp\.sessionHeaders;/);
    // Without a sealing key nothing can be sealed: nginx puts the client's own id back, or drops a new one.
    const session = byPath.get('@mcp_streamable_session') ?? '';
    assert.doesNotMatch(session, /js_header_filter|js_body_filter/);
    assert.match(session, /proxy_hide_header Mcp-Session-Id;\n +add_header Mcp-Session-Id \$mcp_session_echo always;/);
    assert.match(
      config,
      /map "\$upstream_http_mcp_session_id \$mcp_unsealed_session" \$mcp_session_echo \{\n +default "";\n +"~\^\(\?<mcp_echoed>\[\\x21-\\x7e\]\{1,256\}\) \\k<mcp_echoed>\$" \$mcp_session;/,
    );
    assert.match(byPath.get('@mcp_sse') ?? '', /js_header_filter mcp\.sseHeaders;[\s\S]*js_body_filter mcp\.filterBody;/);
    assert.match(byPath.get('@mcp_sse') ?? '', /proxy_set_header Accept-Encoding "";/);
    assert.doesNotMatch(byPath.get('@mcp_sse_messages') ?? '', /js_header_filter|js_body_filter/);
  });

  it('never lets the registry location carry client identity or routing headers', () => {
    const body = byPath.get('/') ?? '';
    for (const header of ['x-user', 'x-username', 'x-scopes', 'x-mcp-server', 'x-mcp-path', 'x-mcp-route'])
      assert.ok(body.includes(`proxy_set_header ${header} "";`), header);
  });

  it('answers 401 and 403 from njs, and keeps the JSON pages nginx itself needs', () => {
    assert.ok(!byPath.has('@mcp_401') && !byPath.has('@mcp_403'));
    assert.match(byPath.get('@mcp_413') ?? '', /return 413 '\{"error":"BODY_TOO_LARGE","message":"request body too large"\}';/);
    assert.match(byPath.get('@mcp_502') ?? '', /return 502 '\{"error":"BACKEND_UNAVAILABLE",/);
    assert.match(byPath.get('@mcp_500') ?? '', /return 500 '\{"error":"INTERNAL",/);
  });

  it('renders a config with no upstream blocks (no backend, or nginx refused them at start)', () => {
    const empty = renderNginxConfig({ ...INPUT, upstreams: [] });
    assert.deepEqual([...upstreams(empty).keys()], ['mcp_registry']);
    assert.deepEqual([...locations(empty).keys()], [...byPath.keys()]);
  });

  it('has no worker_shutdown_timeout: nothing reloads nginx while streams are open', () => {
    assert.doesNotMatch(config, /worker_shutdown_timeout/);
  });

  it('is what docs/nginx.md shows for the MCP locations', () => {
    const lines = config.split('\n');
    const start = lines.findIndex((line) => line.startsWith('        # Every MCP server'));
    const end = lines.indexOf('', start);
    const mcp = lines
      .slice(start, end)
      .map((line) => line.slice(8))
      .join('\n');
    const docs = readFileSync(new URL('../../../docs/nginx.md', import.meta.url), 'utf8');
    assert.ok(start > 0 && docs.includes(`\`\`\`nginx\n${mcp}\n\`\`\``), 'docs/nginx.md is out of date: copy the MCP locations block from the snapshot');
  });

  it('tells the registry the public scheme, so Secure cookies work behind a TLS-terminating load balancer', () => {
    const registryBlock = (config: string) => config.slice(config.indexOf('location / {'));
    assert.match(registryBlock(renderNginxConfig({ ...INPUT, publicScheme: 'https' })), /proxy_set_header X-Forwarded-Proto https;/);
    assert.match(registryBlock(renderNginxConfig({ ...INPUT, publicScheme: undefined })), /proxy_set_header X-Forwarded-Proto \$scheme;/);
  });

  it("tells the registry the client's address on every registry location (replacing a client-sent copy), for /metrics", () => {
    for (const corsOrigins of [[], ['https://inspector.example.com']]) {
      const rendered = renderNginxConfig({ ...INPUT, corsOrigins });
      const registryLocations = rendered.split(/\n(?= *location )/).filter((block) => block.includes('proxy_pass http://mcp_registry;'));
      assert.equal(registryLocations.length, corsOrigins.length === 0 ? 1 : 3);
      for (const block of registryLocations) assert.match(block, /proxy_set_header x-gateway-client-address \$remote_addr;/);
    }
  });

  it('throws before rendering anything when a value is hostile', () => {
    const hostile: Array<[Partial<NginxRenderInput>, string]> = [
      [{ upstreams: [INPUT.upstreams[0]!, INPUT.upstreams[0]!] }, 'CONFIG_INVALID'],
      [{ listen: { host: '127.0.0.1;', port: 80 } }, 'CONFIG_INVALID'],
      [{ listen: { host: '127.0.0.1', port: 0 } }, 'CONFIG_INVALID'],
      [{ runtimeDir: 'relative' }, 'CONFIG_INVALID'],
      [{ runtimeDir: '/a/../b' }, 'CONFIG_INVALID'],
      [{ workerUser: 'root;' }, 'CONFIG_INVALID'],
      [{ maxBodySize: '1m; evil' }, 'CONFIG_INVALID'],
      [{ njsModulePath: '/x"y' }, 'CONFIG_INVALID'],
      [{ njsDir: 'nginx/njs' }, 'CONFIG_INVALID'],
      [{ njsDir: '/opt/../etc' }, 'CONFIG_INVALID'],
      [{ njsDir: '/opt/njs;\nevil' }, 'CONFIG_INVALID'],
      [{ njsDir: '/x"y' }, 'CONFIG_INVALID'],
      [{ publicScheme: 'https;\nevil' as 'https' }, 'CONFIG_INVALID'],
      [{ corsOrigins: ['https://a.example.com";\nevil'] }, 'CONFIG_INVALID'],
      [{ corsOrigins: ['*'] }, 'CONFIG_INVALID'],
      [{ corsOrigins: ['https://ok.example.com', 'https://$host'] }, 'CONFIG_INVALID'],
      [{ checkCache: { dir: '/var/cache";\nevil', generationFile: '/run/g', seconds: 5 } }, 'CONFIG_INVALID'],
      [{ checkCache: { dir: '/var/cache', generationFile: 'relative', seconds: 5 } }, 'CONFIG_INVALID'],
      [{ checkCache: { dir: '/var/cache', generationFile: '/run/g', seconds: 61 } }, 'CONFIG_INVALID'],
      [{ checkCache: { dir: '/var/cache', generationFile: '/run/g', seconds: 1.5 } }, 'CONFIG_INVALID'],
    ];
    for (const [patch, code] of hostile) {
      assert.throws(
        () => renderNginxConfig({ ...INPUT, ...patch }),
        (err: unknown) => err instanceof GatewayError && err.code === code,
        JSON.stringify(patch),
      );
    }
    // Upstream names and servers are programmer-checked too: a name is the hash form only, a server is quoted.
    assert.throws(() => renderNginxConfig({ ...INPUT, upstreams: [{ name: 'mcp_backend_x;evil', server: '127.0.0.1:1' as HostPort }] }));
    assert.throws(() => renderNginxConfig({ ...INPUT, upstreams: [{ name: 'mcp_backend_0a1b2c3d4e5f', server: '127.0.0.1:1";' as HostPort }] }));
  });
});

describe('cached decisions (CHECK_CACHE_SECONDS)', () => {
  const auth = (config: string) => locations(config).get('= /_mcp_auth') ?? '';

  it('caches the check only as long as its answer says, under the hashed key, never with a lock', () => {
    const config = renderNginxConfig(INPUT);
    assert.match(config, /proxy_cache_path "\/var\/lib\/mcp-gateway\/nginx\/check-cache" levels=1:2 keys_zone=mcp_check:10m .* use_temp_path=off;/);
    const location = auth(config);
    assert.match(location, /proxy_cache mcp_check;/);
    assert.match(location, /proxy_cache_key \$mcp_check_key;/);
    assert.match(location, /proxy_ignore_headers Cache-Control Expires Vary;/);
    assert.match(location, /proxy_no_cache \$mcp_check_nocache;/);
    assert.match(location, /proxy_cache_lock off;/);
    // Only X-Accel-Expires (set by the registry on answers without a secret) makes an answer cacheable.
    assert.doesNotMatch(config, /proxy_cache_valid/);
    // No other location caches anything.
    assert.equal(config.match(/proxy_cache mcp_check;/g)?.length, 1);
    for (const entry of [
      '~ "^/api/streamable/(?<mcp_name>[a-z0-9][a-z0-9-]{0,62})/?$"',
      '~ "^/api/execute/(?<mcp_name>[a-z0-9][a-z0-9-]{0,62})(?<mcp_rest>/.*)?$"',
    ])
      assert.match(locations(config).get(entry) ?? '', /set \$mcp_check_generation "\/var\/lib\/mcp-gateway\/nginx\/check-generation";/);
  });

  it('caches nothing at 0 seconds or without the setting', () => {
    for (const input of [
      { ...INPUT, checkCache: { ...INPUT.checkCache!, seconds: 0 } },
      { ...INPUT, checkCache: undefined },
    ]) {
      const config = renderNginxConfig(input);
      assert.doesNotMatch(config, /proxy_cache_path|proxy_cache mcp_check/);
      assert.match(config, /set \$mcp_check_generation "";/);
    }
  });

  it('logs the audit line of every request the check never saw', () => {
    const config = renderNginxConfig({ ...INPUT, checkCache: undefined });
    assert.match(config, /access_log "\/var\/lib\/mcp-gateway\/nginx\/mcp-audit.log" mcp_audit if=\$mcp_audit buffer=64k flush=1s;/);
    assert.match(config, /log_format mcp_audit escape=json /);
  });
});

describe('CORS for browser MCP clients (CORS_ALLOWED_ORIGINS)', () => {
  const origins = ['https://inspector.example.com', 'http://localhost:6274'];
  const config = renderNginxConfig({ ...INPUT, upstreams: [INPUT.upstreams[2]!], corsOrigins: [...origins, origins[0]!] });
  const byPath = locations(config);

  it('matches the reviewed snapshot', (t) => {
    t.assert.snapshot(config, { serializers: [(value) => value] });
  });

  it('renders nothing of CORS when the allow-list is empty (preflights stay njs 405s)', () => {
    const plain = renderNginxConfig(INPUT);
    assert.doesNotMatch(plain, /Access-Control-Allow-Origin \$|mcp_cors|OPTIONS|location \/\.well-known\/|location \/oauth2\//);
    assert.equal(renderNginxConfig({ ...INPUT, corsOrigins: [] }), plain);
  });

  it('maps each listed origin to itself, once, case-sensitively (a regex: nginx compares string keys in any case), and every other to ""', () => {
    const map = /map \$http_origin \$mcp_cors_origin \{\n([\s\S]*?)\n {4}\}/.exec(config)?.[1] ?? '';
    assert.deepEqual(
      map.split('\n').map((line) => line.trim()),
      ['default "";', '~^https://inspector\\.example\\.com$ "https://inspector.example.com";', '~^http://localhost:6274$ "http://localhost:6274";'],
    );
  });

  it('answers preflights before njs on every public MCP location and on /.well-known/ and /oauth2/, never with credentials', () => {
    const entries = [STREAMABLE, EXECUTE, '/.well-known/', '/oauth2/'];
    for (const path of entries) {
      const body = byPath.get(path) ?? '';
      const preflight = body.indexOf('if ($request_method = OPTIONS)');
      assert.ok(preflight >= 0, path);
      assert.match(body.slice(preflight), /^if \(\$request_method = OPTIONS\) \{[^}]*return 204;\n {12}\}/, path);
      // Before anything else can answer: the method checks, njs and the proxy.
      for (const later of ['js_content', 'if ($request_method !=', 'proxy_pass']) {
        if (body.includes(later)) assert.ok(body.indexOf(later) > preflight, `${path}: ${later} after the preflight`);
      }
    }
    assert.doesNotMatch(config, /Access-Control-Allow-Credentials [^;]/);
    assert.doesNotMatch(config, /add_header Access-Control-Allow-Credentials/);
  });

  it('adds the allowed origin and the exposed headers to every answer of an MCP location, errors and backend answers included', () => {
    const answering = [...byPath.keys()].filter((path) => /^(= |~ "\^)?\/api\/|^@mcp_/.test(path));
    assert.ok(answering.length >= 7);
    for (const path of answering) {
      const body = byPath.get(path) ?? '';
      assert.match(body, /add_header Access-Control-Allow-Origin \$mcp_cors_origin always;/, path);
      assert.match(body, /add_header Access-Control-Expose-Headers \$mcp_cors_expose always;/, path);
    }
    const ipv6 = renderNginxConfig({ ...INPUT, corsOrigins: ['https://[::1]:8443'] });
    assert.match(ipv6, /^ {8}~\^https:\/\/\\\[::1\\\]:8443\$ "https:\/\/\[::1\]:8443";$/m);
    assert.match(config, /map \$mcp_cors_origin \$mcp_cors_expose \{\n\s+"" "";\n\s+default "Mcp-Session-Id, WWW-Authenticate";/);
  });

  it("hides the backend's and the registry's own Access-Control-* headers", () => {
    for (const path of ['@mcp_streamable', '@mcp_sse_messages', '/.well-known/', '/oauth2/']) {
      assert.match(byPath.get(path) ?? '', /proxy_hide_header Access-Control-Allow-Origin;/, path);
      assert.match(byPath.get(path) ?? '', /proxy_hide_header Access-Control-Allow-Credentials;/, path);
    }
  });
});
