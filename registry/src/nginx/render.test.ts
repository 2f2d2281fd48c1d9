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
    assert.deepEqual([...byPath.keys()], [
      '= /_mcp_auth/archive/streamable-http',
      '= /_mcp_auth/archive/sse',
      '= /api/streamable/archive',
      '= /api/streamable/archive/',
      '= /api/execute/archive',
      '/api/execute/archive/',
      '= /_mcp_auth/github/streamable-http',
      '= /_mcp_auth/github/sse',
      '= /api/streamable/github',
      '= /api/streamable/github/',
      '= /api/execute/github',
      '/api/execute/github/',
      '= /_mcp_auth/weather/streamable-http',
      '= /api/streamable/weather',
      '= /api/streamable/weather/',
      '/api/streamable/',
      '/api/execute/',
      '~* ^/auth/validate/*$',
      '@mcp_401',
      '@mcp_403',
      '@mcp_500',
      '@mcp_502',
      '@mcp_413',
      '/',
    ]);
  });

  it('makes every auth location internal, with the server and transport as literals', () => {
    for (const [path, body] of byPath) {
      const match = /^= \/_mcp_auth\/([a-z0-9-]+)\/(streamable-http|sse)$/.exec(path);
      if (match === null) continue;
      assert.match(body, /^ +internal;$/m, path);
      assert.match(body, /proxy_pass http:\/\/mcp_registry\/auth\/validate;/, path);
      assert.match(body, /proxy_pass_request_body off;/, path);
      assert.match(body, /proxy_set_header Content-Length "";/, path);
      assert.ok(body.includes(`proxy_set_header x-mcp-server "${match[1]}";`), path);
      assert.ok(body.includes(`proxy_set_header x-mcp-transport "${match[2]}";`), path);
      assert.match(body, /proxy_set_header Cookie \$http_cookie;/, path);
      assert.match(body, /proxy_set_header Authorization \$http_authorization;/, path);
      assert.match(body, /proxy_set_header x-user "";/, path);
    }
  });

  it('answers 503 for the disabled server with no auth and no proxy_pass', () => {
    for (const path of ['= /api/streamable/archive', '= /api/streamable/archive/', '= /api/execute/archive', '/api/execute/archive/']) {
      const body = byPath.get(path) ?? '';
      assert.match(body, /return 503 '\{"error":"SERVER_DISABLED","message":"server archive is disabled"\}';/, path);
      assert.doesNotMatch(body, /proxy_pass|auth_request/, path);
    }
    assert.doesNotMatch(config, /archive\.example\.com/);
  });

  it('copies the check\'s answer into variables once, at server level', () => {
    for (const line of [
      'auth_request_set $mcp_user $upstream_http_x_user;',
      'auth_request_set $mcp_scopes $upstream_http_x_scopes;',
      'auth_request_set $mcp_missing_scope $upstream_http_x_missing_scope;',
    ]) {
      assert.ok(config.includes(`\n        ${line}\n`), line);
    }
    assert.equal(config.split('auth_request_set $mcp_user ').length, 2);
  });

  it('blanks Cookie and Authorization on every location that proxies to a backend', () => {
    const toBackends = [...byPath].filter(([, body]) => /proxy_pass "?http/.test(body) && !body.includes('mcp_registry'));
    assert.equal(toBackends.length, 5);
    for (const [path, body] of toBackends) {
      assert.match(body, /auth_request \/_mcp_auth\//, path);
      assert.match(body, /proxy_set_header Cookie "";/, path);
      assert.match(body, /proxy_set_header Authorization "";/, path);
      assert.match(body, /proxy_set_header x-user \$mcp_user;/, path);
      assert.match(body, /proxy_buffering off;/, path);
    }
  });

  it('proxies to the validated URL plus transport path, and rewrites the SSE endpoint event', () => {
    assert.match(byPath.get('= /api/streamable/github') ?? '', /proxy_pass "http:\/\/127\.0\.0\.1:8001\/mcp";/);
    assert.match(byPath.get('= /api/streamable/weather/') ?? '', /proxy_pass "http:\/\/127\.0\.0\.1:8003\/mcp";/);
    const sse = byPath.get('/api/execute/github/') ?? '';
    assert.match(sse, /proxy_pass "http:\/\/127\.0\.0\.1:8001\/";/);
    assert.match(sse, /sub_filter 'data: \/' 'data: \/api\/execute\/github\/';/);
  });

  it('never lets the registry location carry client identity headers', () => {
    const body = byPath.get('/') ?? '';
    for (const header of ['x-user', 'x-username', 'x-scopes', 'x-mcp-server']) assert.ok(body.includes(`proxy_set_header ${header} "";`), header);
  });

  it('renders a config with no servers', () => {
    const empty = renderNginxConfig({ ...INPUT, servers: [] });
    assert.match(empty, /location \/api\/streamable\/ \{/);
    assert.doesNotMatch(empty, /auth_request \//);
  });

  it('is what docs/nginx.md shows for one server', () => {
    const lines = config.split('\n');
    const start = lines.findIndex((line) => line.startsWith('        # github:'));
    const end = lines.indexOf('', start);
    const github = lines.slice(start, end).map((line) => line.slice(8)).join('\n');
    const docs = readFileSync(new URL('../../../docs/nginx.md', import.meta.url), 'utf8');
    assert.ok(start > 0 && docs.includes(`\`\`\`nginx\n${github}\n\`\`\``), 'docs/nginx.md is out of date: copy the github block from the snapshot');
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
