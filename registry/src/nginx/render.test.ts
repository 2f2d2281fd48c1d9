import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { GatewayError } from '../errors.ts';
import { definition } from './harness.ts';
import { renderNginxConfig, type NginxRenderInput } from './render.ts';

const INPUT: NginxRenderInput = {
  listen: { host: '127.0.0.1', port: 8080 },
  runtimeDir: '/var/lib/mcp-gateway/nginx',
  registry: { port: 7860 },
  njsModulePath: '/usr/lib/nginx/modules/ngx_http_js_module.so',
  njsDir: '/opt/mcp-gateway/nginx/njs',
  workerUser: 'nobody nogroup',
  // Out of order on purpose: the output is sorted by name.
  servers: [
    definition('weather', 'http://127.0.0.1:8003/', { 'streamable-http': '/mcp' }),
    definition('github', 'http://127.0.0.1:8001', { 'streamable-http': '/mcp', sse: '/sse' }),
    definition('archive', 'https://archive.example.com/base', { 'streamable-http': '/mcp', sse: '/sse' }, false),
  ],
};

/** The body of each `location` in the config, by its argument (`= /api/streamable/github`). */
function locations(config: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const match of config.matchAll(/^ {8}location ([^{\n]+) \{\n([\s\S]*?)^ {8}\}$/gm)) {
    out.set(match[1] ?? '', match[2] ?? '');
  }
  return out;
}

/** The body of each `upstream` at http level, by its name (`mcp_backend_github`). */
function upstreams(config: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const match of config.matchAll(/^ {4}upstream ([^ {\n]+) \{\n([\s\S]*?)^ {4}\}$/gm)) {
    out.set(match[1] ?? '', match[2] ?? '');
  }
  return out;
}

describe('renderNginxConfig', () => {
  const config = renderNginxConfig(INPUT);
  const byPath = locations(config);

  it('matches the reviewed snapshot', (t) => {
    t.assert.snapshot(config, { serializers: [(value) => value] });
  });

  it('is deterministic whatever order the servers come in', () => {
    assert.equal(renderNginxConfig({ ...INPUT, servers: [...INPUT.servers].reverse() }), config);
  });

  it('generates exact or slash-terminated locations for each server, and JSON catch-alls', () => {
    assert.deepEqual(
      [...byPath.keys()],
      [
        '= /_mcp_auth/archive/streamable-http',
        '= /_mcp_auth/archive/sse',
        '= /api/streamable/archive',
        '= /api/streamable/archive/',
        '@mcp_archive_streamable-http',
        '@mcp_archive_streamable-http_filtered',
        '= /api/execute/archive',
        '= /api/execute/archive/sse',
        '= /api/execute/archive/messages',
        '/api/execute/archive/',
        '@mcp_archive_sse',
        '@mcp_archive_sse_filtered',
        '@mcp_archive_sse_messages',
        '= /_mcp_auth/github/streamable-http',
        '= /_mcp_auth/github/sse',
        '= /api/streamable/github',
        '= /api/streamable/github/',
        '@mcp_github_streamable-http',
        '@mcp_github_streamable-http_filtered',
        '= /api/execute/github',
        '= /api/execute/github/sse',
        '= /api/execute/github/messages',
        '/api/execute/github/',
        '@mcp_github_sse',
        '@mcp_github_sse_filtered',
        '@mcp_github_sse_messages',
        '= /_mcp_auth/weather/streamable-http',
        '= /api/streamable/weather',
        '= /api/streamable/weather/',
        '@mcp_weather_streamable-http',
        '@mcp_weather_streamable-http_filtered',
        '/api/streamable/',
        '/api/execute/',
        '~* ^/auth/validate/*$',
        '@mcp_500',
        '@mcp_502',
        '@mcp_413',
        '/',
      ],
    );
  });

  it('makes every auth location internal, with the server and transport as literals', () => {
    const auth = [...byPath].filter(([path]) => path.startsWith('= /_mcp_auth/'));
    assert.equal(auth.length, 5);
    for (const [path, body] of auth) {
      const match = /^= \/_mcp_auth\/([a-z0-9-]+)\/(streamable-http|sse)$/.exec(path);
      assert.ok(match, path);
      assert.match(body, /^ +internal;$/m, path);
      assert.match(body, /proxy_pass http:\/\/mcp_registry\/auth\/validate;/, path);
      assert.match(body, /proxy_pass_request_body off;/, path);
      assert.match(body, /proxy_set_header Content-Length "";/, path);
      assert.ok(body.includes(`proxy_set_header x-mcp-server "${match[1]}";`), path);
      assert.ok(body.includes(`proxy_set_header x-mcp-transport "${match[2]}";`), path);
      assert.match(body, /proxy_set_header Cookie \$http_cookie;/, path);
      assert.match(body, /proxy_set_header Authorization \$http_authorization;/, path);
      assert.match(body, /proxy_set_header x-user "";/, path);
      assert.match(body, /proxy_set_header x-missing-scope "";/, path);
      // What njs read from the body, replacing any client-sent copy.
      assert.match(body, /proxy_set_header x-mcp-messages \$mcp_messages;/, path);
    }
  });

  it('hands every public location to njs, with no proxy_pass of its own', () => {
    const entries: Array<[string, string, string]> = [
      ['= /api/streamable/archive', 'archive', 'streamable-http'],
      ['= /api/streamable/archive/', 'archive', 'streamable-http'],
      ['= /api/execute/archive/sse', 'archive', 'sse'],
      ['= /api/execute/archive/messages', 'archive', 'sse'],
      ['= /api/streamable/github', 'github', 'streamable-http'],
      ['= /api/streamable/github/', 'github', 'streamable-http'],
      ['= /api/execute/github/sse', 'github', 'sse'],
      ['= /api/execute/github/messages', 'github', 'sse'],
      ['= /api/streamable/weather', 'weather', 'streamable-http'],
      ['= /api/streamable/weather/', 'weather', 'streamable-http'],
    ];
    for (const [path, name, transport] of entries) {
      const body = byPath.get(path) ?? '';
      // Literals from the catalog: nothing parses the server out of the URI.
      assert.ok(body.includes(`set $mcp_server "${name}";`), path);
      assert.ok(body.includes(`set $mcp_transport "${transport}";`), path);
      assert.match(body, /^ +js_content mcp\.handle;$/m, path);
      assert.match(body, /error_page 413 = @mcp_413;/, path);
      // Where the client's sealed session id is read from (session-binding.ts): never from a stream GET.
      const session = transport === 'streamable-http' ? '$http_mcp_session_id' : path.endsWith('/messages') ? '$arg_session' : '""';
      assert.ok(body.includes(`set $mcp_session ${session};`), path);
      // The legacy transport's locations take one method each; the guard is the only `return`.
      const unguarded = body.replace(/ +if \(\$request_method != (GET|POST)\) \{\n +add_header Allow "\1" always;\n +return 405 '[^'\n]*';\n +\}\n/, '');
      assert.equal(unguarded !== body, transport === 'sse', `${path} method guard`);
      assert.doesNotMatch(unguarded, /proxy_pass|proxy_set_header|auth_request|return /, path);
      // Everything njs needs exists: the check it calls and both places it may redirect to.
      assert.ok(byPath.has(`= /_mcp_auth/${name}/${transport}`), path);
      assert.ok(byPath.has(`@mcp_${name}_${transport}`), path);
      assert.ok(byPath.has(`@mcp_${name}_${transport}_filtered`), path);
    }
    const handed = [...byPath].filter(([, body]) => body.includes('js_content'));
    assert.deepEqual(
      handed.map(([path]) => path),
      entries.map(([path]) => path),
    );
    assert.doesNotMatch(config, /^ *auth_request(_set)? /m, 'no auth_request: its subrequests carry no body');
  });

  it('renders a disabled server exactly like an enabled one, so a toggle never changes the config', () => {
    // archive is disabled in INPUT: the check refuses it (503 through njs), not the config.
    const flip = (name: string) => INPUT.servers.map((s) => (s.name === name ? { ...s, enabled: !s.enabled } : s));
    for (const name of ['archive', 'github', 'weather']) {
      assert.equal(renderNginxConfig({ ...INPUT, servers: flip(name) }), config, `${name} toggled`);
    }
    const allOff = INPUT.servers.map((s) => ({ ...s, enabled: false }));
    const allOn = INPUT.servers.map((s) => ({ ...s, enabled: true }));
    assert.equal(renderNginxConfig({ ...INPUT, servers: allOff }), config, 'all disabled');
    assert.equal(renderNginxConfig({ ...INPUT, servers: allOn }), config, 'all enabled');
    // Not even a comment says which: nothing in the config depends on the flag.
    assert.doesNotMatch(config, /enabled|disabled|SERVER_DISABLED|return 503/);
    // The disabled server has the whole chain: its check, its njs entries, its backends.
    for (const path of ['= /_mcp_auth/archive/streamable-http', '= /_mcp_auth/archive/sse', '@mcp_archive_streamable-http', '@mcp_archive_sse_filtered']) {
      assert.ok(byPath.has(path), path);
    }
    assert.match(byPath.get('= /api/streamable/archive') ?? '', /js_content mcp\.handle;/);
  });

  /** One server line, keepalive, and an idle timeout shorter than Node backends' 5 s. */
  function assertUpstream(body: string | undefined, server: string, label: string): void {
    const directives = (body ?? '')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('//') && !l.startsWith('#'));
    assert.deepEqual(directives, [`server "${server}";`, 'keepalive 16;', 'keepalive_timeout 4s;'], label);
  }

  it('declares one upstream per server, with keepalive and an explicit port', () => {
    const ups = upstreams(config);
    assert.deepEqual([...ups.keys()], ['mcp_registry', 'mcp_backend_archive', 'mcp_backend_github', 'mcp_backend_weather']);
    const expected: Array<[string, string]> = [
      ['mcp_backend_archive', 'archive.example.com:443'],
      ['mcp_backend_github', '127.0.0.1:8001'],
      ['mcp_backend_weather', '127.0.0.1:8003'],
    ];
    for (const [name, server] of expected) {
      assertUpstream(ups.get(name), server, name);
    }
    // The default port comes from the scheme; a port in the URL is kept as written.
    const cases: Array<[string, string]> = [
      ['http://backend.internal/x', 'backend.internal:80'],
      ['https://backend.internal/x', 'backend.internal:443'],
      ['http://backend.internal:8080', 'backend.internal:8080'],
      ['https://backend.internal:8443/', 'backend.internal:8443'],
      ['http://10.0.0.7', '10.0.0.7:80'],
      ['https://[::1]', '[::1]:443'],
      ['http://[::1]:9000', '[::1]:9000'],
    ];
    for (const [url, server] of cases) {
      const one = upstreams(renderNginxConfig({ ...INPUT, servers: [definition('a-b', url, { 'streamable-http': '/mcp' })] }));
      assertUpstream(one.get('mcp_backend_a-b'), server, url);
    }
    // Every upstream a location names exists, and every backend upstream is used.
    const named = new Set([...config.matchAll(/proxy_pass https?:\/\/(mcp_[a-z0-9_-]+)[;/]/g)].map((m) => m[1]));
    assert.deepEqual([...named].sort(), [...ups.keys()].sort());
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

  it('blanks Cookie and Authorization on every location that proxies to a backend', () => {
    const toBackends = [...byPath].filter(([, body]) => /proxy_pass "?http/.test(body) && !body.includes('mcp_registry'));
    assert.deepEqual(
      toBackends.map(([path]) => path),
      [...byPath.keys()].filter((path) => /^@mcp_[a-z0-9-]+_(streamable-http|sse)(_filtered|_messages)?$/.test(path)),
      'only the named locations njs redirects to reach a backend',
    );
    assert.equal(toBackends.length, 12);
    for (const [path, body] of toBackends) {
      assert.match(body, /proxy_set_header Cookie "";/, path);
      assert.match(body, /proxy_set_header Authorization "";/, path);
      assert.match(body, /proxy_set_header x-user \$mcp_user;/, path);
      assert.match(body, /proxy_set_header x-username \$mcp_username;/, path);
      assert.match(body, /proxy_set_header x-scopes \$mcp_scopes;/, path);
      // The backend's own session id, unsealed by the check; never the client's value.
      assert.match(body, /proxy_set_header Mcp-Session-Id \$mcp_unsealed_session;/, path);
      for (const header of [
        'x-missing-scope',
        'x-mcp-server',
        'x-mcp-transport',
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
      assert.doesNotMatch(body, /js_content|auth_request/, path);
    }
  });

  it('filters tools/list only in the _filtered variants', () => {
    for (const [path, body] of byPath) {
      const filters = /js_header_filter mcp\.filterHeaders;[\s\S]*js_body_filter mcp\.filterBody;/.test(body);
      assert.equal(filters, path.endsWith('_filtered'), path);
      // The filter reads plain text: the backend must not compress.
      if (filters) assert.match(body, /proxy_set_header Accept-Encoding "";/, path);
    }
    // Apart from the filters, a variant proxies exactly like its plain twin.
    const strip = (body: string) => body.replace(/^ +(js_header_filter|js_body_filter|proxy_set_header Accept-Encoding).*\n/gm, '');
    for (const plain of ['@mcp_github_streamable-http', '@mcp_github_sse', '@mcp_weather_streamable-http']) {
      assert.equal(strip(byPath.get(`${plain}_filtered`) ?? 'x'), strip(byPath.get(plain) ?? ''), plain);
    }
  });

  it('proxies to the validated origin, rewriting to the transport path, and rewrites the SSE endpoint event', () => {
    for (const variant of ['', '_filtered']) {
      const github = byPath.get(`@mcp_github_streamable-http${variant}`) ?? '';
      assert.match(github, /^ +rewrite \^ "\/mcp" break;$/m);
      assert.match(github, /^ +proxy_pass http:\/\/mcp_backend_github;$/m);
      assert.match(github, /proxy_set_header Host "127\.0\.0\.1:8001";/);
      assert.match(github, /proxy_set_header Connection "";/, 'keepalive to the upstream needs Connection ""');
      assert.doesNotMatch(github, /sub_filter/);
      const weather = byPath.get(`@mcp_weather_streamable-http${variant}`) ?? '';
      assert.match(weather, /rewrite \^ "\/mcp" break;/);
      assert.match(weather, /^ +proxy_pass http:\/\/mcp_backend_weather;$/m);
      assert.match(weather, /proxy_set_header Host "127\.0\.0\.1:8003";/);
      // Streamable responses: njs seals the backend's Mcp-Session-Id to the principal.
      assert.match(github, variant ? /js_header_filter mcp\.filterHeaders;/ : /js_header_filter mcp\.sessionHeaders;/);
      const sse = byPath.get(`@mcp_github_sse${variant}`) ?? '';
      // Exactly the SSE path, without the client's query (`?`).
      assert.match(sse, /^ +rewrite \^ "\/sse\?" break;$/m);
      assert.match(sse, /^ +proxy_pass http:\/\/mcp_backend_github;$/m);
      assert.match(sse, /proxy_set_header Host "127\.0\.0\.1:8001";/);
      // njs seals the endpoint event (no sub_filter), resolving it against the backend's SSE URL.
      assert.doesNotMatch(sse, /sub_filter/);
      assert.match(sse, /set \$mcp_backend_sse "http:\/\/127\.0\.0\.1:8001\/sse";/);
      assert.match(sse, /set \$mcp_messages_url "\/api\/execute\/github\/messages";/);
      assert.match(sse, variant ? /js_header_filter mcp\.filterHeaders;/ : /js_header_filter mcp\.sseHeaders;/);
      assert.match(sse, /js_body_filter mcp\.filterBody;/);
      assert.match(sse, /proxy_set_header Accept-Encoding "";/);
    }
    // A legacy POST goes to exactly the endpoint the check unsealed, with the URI as it is.
    const messages = byPath.get('@mcp_github_sse_messages') ?? '';
    assert.match(messages, /^ +proxy_pass http:\/\/mcp_backend_github\$mcp_unsealed_target;$/m);
    assert.doesNotMatch(messages, /rewrite|js_header_filter|js_body_filter/);
    // Every other path under the prefix is a JSON 404, never the backend.
    assert.match(byPath.get('/api/execute/github/') ?? '', /return 404 '\{"error":"NOT_FOUND"/);
  });

  it("keeps the backend URL's own path and speaks TLS with SNI naming the backend host to an https backend", () => {
    for (const [url, host] of [
      ['https://archive.example.com/base/', 'archive.example.com'],
      ['https://archive.example.com:8443/base', 'archive.example.com:8443'],
    ] as const) {
      const https = locations(renderNginxConfig({ ...INPUT, servers: [definition('archive', url, { 'streamable-http': '/mcp', sse: '/sse' })] }));
      for (const variant of ['', '_filtered']) {
        for (const transport of ['streamable-http', 'sse']) {
          const body = https.get(`@mcp_archive_${transport}${variant}`) ?? '';
          const what = `${url} ${transport}${variant}`;
          assert.match(body, /^ +proxy_pass https:\/\/mcp_backend_archive;$/m, what);
          assert.match(body, /^ +proxy_ssl_server_name on;$/m, what);
          // SNI (and the name a verified certificate must carry) is the backend's host, without
          // the port; never the upstream block's name, which is what nginx would send by default.
          assert.match(body, /^ +proxy_ssl_name "archive\.example\.com";$/m, what);
          // Host is the URL's host[:port], as the backend's own URL spells it.
          assert.ok(body.includes(`proxy_set_header Host "${host}";`), what);
        }
      }
      assert.match(https.get('@mcp_archive_streamable-http') ?? '', /rewrite \^ "\/base\/mcp" break;/);
      assert.match(https.get('@mcp_archive_sse') ?? '', /rewrite \^ "\/base\/sse\?" break;/);
      const messages = https.get('@mcp_archive_sse_messages') ?? '';
      assert.match(messages, /^ +proxy_pass https:\/\/mcp_backend_archive\$mcp_unsealed_target;$/m);
      assert.match(messages, /^ +proxy_ssl_name "archive\.example\.com";$/m);
    }
    // In INPUT, only archive is https.
    const ssl = [...byPath].filter(([, body]) => body.includes('proxy_ssl_'));
    assert.deepEqual(
      ssl.map(([path]) => path),
      [...byPath.keys()].filter((path) => path.startsWith('@mcp_archive_')),
    );
    for (const [path, body] of byPath) {
      if (path.startsWith('@mcp_github_') || path.startsWith('@mcp_weather_')) assert.match(body, /proxy_pass http:\/\/mcp_backend_/, path);
    }
  });

  it('never lets the registry location carry client identity headers', () => {
    const body = byPath.get('/') ?? '';
    for (const header of ['x-user', 'x-username', 'x-scopes', 'x-mcp-server']) assert.ok(body.includes(`proxy_set_header ${header} "";`), header);
  });

  it('answers 401 and 403 from njs, and keeps the JSON pages nginx itself needs', () => {
    assert.ok(!byPath.has('@mcp_401') && !byPath.has('@mcp_403'));
    assert.match(byPath.get('@mcp_413') ?? '', /return 413 '\{"error":"BODY_TOO_LARGE","message":"request body too large"\}';/);
    assert.match(byPath.get('@mcp_502') ?? '', /return 502 '\{"error":"BACKEND_UNAVAILABLE",/);
    assert.match(byPath.get('@mcp_500') ?? '', /return 500 '\{"error":"INTERNAL",/);
  });

  it('renders a config with no servers', () => {
    const empty = renderNginxConfig({ ...INPUT, servers: [] });
    assert.match(empty, /location \/api\/streamable\/ \{/);
    assert.match(empty, /js_import mcp from mcp\.js;/);
    assert.doesNotMatch(empty, /^ *(auth_request|js_content)|location @mcp_[a-z0-9-]+_|_mcp_auth|mcp_backend_/m);
    assert.deepEqual([...upstreams(empty).keys()], ['mcp_registry']);
  });

  it('is what docs/nginx.md shows for one server', () => {
    const lines = config.split('\n');
    const start = lines.findIndex((line) => line.startsWith('        # github:'));
    const end = lines.indexOf('', start);
    const github = lines
      .slice(start, end)
      .map((line) => line.slice(8))
      .join('\n');
    const docs = readFileSync(new URL('../../../docs/nginx.md', import.meta.url), 'utf8');
    assert.ok(start > 0 && docs.includes(`\`\`\`nginx\n${github}\n\`\`\``), 'docs/nginx.md is out of date: copy the github block from the snapshot');
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
      [{ servers: [definition('a;b', 'http://127.0.0.1:1', { sse: '/sse' })] }, 'SERVER_NAME_INVALID'],
      [{ servers: [definition('a', 'http://127.0.0.1:1/;evil', { sse: '/sse' })] }, 'CATALOG_FILE_INVALID'],
      [{ servers: [definition('a', 'http://127.0.0.1:1', { sse: '/sse;x' })] }, 'CATALOG_FILE_INVALID'],
      [{ servers: [definition('a', 'http://h', { sse: '/sse' }), definition('a', 'http://h', { sse: '/sse' })] }, 'CATALOG_FILE_INVALID'],
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
    ];
    for (const [patch, code] of hostile) {
      assert.throws(
        () => renderNginxConfig({ ...INPUT, ...patch }),
        (err: unknown) => err instanceof GatewayError && err.code === code,
        JSON.stringify(patch),
      );
    }
  });
});

describe('the legacy messages endpoint', () => {
  it("refuses an sse path that would be the gateway's own /messages location", () => {
    assert.throws(
      () => renderNginxConfig({ ...INPUT, servers: [definition('clash', 'http://127.0.0.1:8001', { sse: '/messages' })] }),
      (err: unknown) => err instanceof GatewayError && err.code === 'CATALOG_FILE_INVALID' && /sse path cannot be \/messages/.test(err.message),
    );
    // Any other path is fine, /messages/ and /sse/messages included.
    for (const sse of ['/messages/', '/sse/messages', '/']) renderNginxConfig({ ...INPUT, servers: [definition('ok', 'http://127.0.0.1:8001', { sse })] });
  });
});

describe('CORS for browser MCP clients (CORS_ALLOWED_ORIGINS)', () => {
  const origins = ['https://inspector.example.com', 'http://localhost:6274'];
  const config = renderNginxConfig({ ...INPUT, servers: [INPUT.servers[1]!], corsOrigins: [...origins, origins[0]!] });
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
    const entries = [
      '= /api/streamable/github',
      '= /api/streamable/github/',
      '= /api/execute/github/sse',
      '= /api/execute/github/messages',
      '/.well-known/',
      '/oauth2/',
    ];
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
    const answering = [...byPath.keys()].filter((path) => /^(= )?\/api\/|^@mcp_/.test(path));
    assert.ok(answering.length >= 12);
    for (const path of answering) {
      const body = byPath.get(path) ?? '';
      assert.match(body, /add_header Access-Control-Allow-Origin \$mcp_cors_origin always;/, path);
      assert.match(body, /add_header Access-Control-Expose-Headers \$mcp_cors_expose always;/, path);
    }
    // An `if` with add_header replaces the location's: the 405 of the legacy endpoints repeats them.
    assert.match(byPath.get('= /api/execute/github/sse') ?? '', /if \(\$request_method != GET\) \{\n\s+add_header Access-Control-Allow-Origin/);
    const ipv6 = renderNginxConfig({ ...INPUT, corsOrigins: ['https://[::1]:8443'] });
    assert.match(ipv6, /^ {8}~\^https:\/\/\\\[::1\\\]:8443\$ "https:\/\/\[::1\]:8443";$/m);
    assert.match(config, /map \$mcp_cors_origin \$mcp_cors_expose \{\n\s+"" "";\n\s+default "Mcp-Session-Id, WWW-Authenticate";/);
  });

  it("hides the backend's and the registry's own Access-Control-* headers", () => {
    for (const path of ['@mcp_github_streamable-http', '@mcp_github_sse_messages', '/.well-known/', '/oauth2/']) {
      assert.match(byPath.get(path) ?? '', /proxy_hide_header Access-Control-Allow-Origin;/, path);
      assert.match(byPath.get(path) ?? '', /proxy_hide_header Access-Control-Allow-Credentials;/, path);
    }
  });
});
