/**
 * The generated config under the real nginx (no mocks): real backends, a stand-in registry,
 * one nginx master for the whole file. On failure the nginx error.log tail is printed.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { GatewayError } from '../errors.ts';
import { createLogger } from '../log.ts';
import { findNginx, NginxController } from './apply.ts';
import { definition, freePort, readStreamUntil, send, startBackend, startRegistryDouble, type Peer } from './harness.ts';
import { renderNginxConfig, type NginxRenderInput } from './render.ts';

const found = findNginx();
const skip = 'missing' in found ? found.missing : false;
const nginxBin = 'missing' in found ? '' : found.bin;

describe('nginx with the generated config', { skip, timeout: 60_000 }, () => {
  let backend: Peer;
  let registry: Peer;
  let nginx: NginxController;
  let port: number;
  let runtimeDir: string;
  let base: NginxRenderInput;

  const render = (patch: Partial<NginxRenderInput> = {}): string => renderNginxConfig({ ...base, ...patch });
  const mcp = (path: string, headers: Record<string, string> = {}, body?: string) =>
    send(port, { method: body === undefined ? 'GET' : 'POST', path, headers, ...(body === undefined ? {} : { body }) });
  const checksOf = (server: string) => registry.seen.filter((s) => s.headers['x-mcp-server'] === server);

  /** Runs a test body and prints the end of nginx's error.log when it fails. */
  const withLog = (fn: () => Promise<void>) => async () => {
    try {
      await fn();
    } catch (err) {
      process.stderr.write(`--- nginx error.log (tail) ---\n${await nginx.errorLogTail(30)}\n`);
      throw err;
    }
  };

  before(async () => {
    if ('missing' in found) return;
    [backend, registry, port] = await Promise.all([startBackend(), startRegistryDouble(), freePort()]);
    runtimeDir = await mkdtemp(join(tmpdir(), 'mcp-nginx-'));
    base = {
      listen: { host: '127.0.0.1', port },
      runtimeDir,
      registry: { port: registry.port },
      njsModulePath: found.njsModule,
      ...(process.getuid?.() === 0 ? { workerUser: 'nobody nogroup' } : {}),
      servers: [
        definition('alpha', backend.url, { 'streamable-http': '/mcp', sse: '/sse' }),
        definition('gamma', backend.url, { sse: '/sse' }),
        definition('delta', backend.url, { 'streamable-http': '/mcp', sse: '/sse' }, false),
        definition('omega', `http://127.0.0.1:${await freePort()}`, { 'streamable-http': '/mcp' }),
      ],
    };
    nginx = new NginxController({ nginxBin, runtimeDir, log: createLogger(process.env['NGINX_TEST_LOG'] ?? 'error') });
    try {
      await nginx.start(render());
    } catch (err) {
      process.stderr.write(`--- nginx error.log (tail) ---\n${await nginx.errorLogTail(30)}\n`);
      throw err;
    }
  });

  after(async () => {
    await nginx?.stop();
    await Promise.all([backend?.close(), registry?.close()]);
    if (runtimeDir !== undefined) await rm(runtimeDir, { recursive: true, force: true });
  });

  it('fails start() with NGINX_UNAVAILABLE and the error.log tail when nginx cannot listen', withLog(async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mcp-nginx-taken-'));
    const other = new NginxController({ nginxBin, runtimeDir: dir, log: createLogger('silent') });
    try {
      await assert.rejects(other.start(render({ runtimeDir: dir, listen: { host: '127.0.0.1', port: backend.port } })), (err: unknown) => {
        assert.ok(err instanceof GatewayError);
        assert.equal(err.code, 'NGINX_UNAVAILABLE');
        assert.match(err.message, /Address already in use/);
        return true;
      });
      assert.equal(other.status().running, false);
    } finally {
      await other.stop();
      await rm(dir, { recursive: true, force: true });
    }
  }));

  it('proxies an allowed streamable request with X-User from the check and no client credentials', withLog(async () => {
    backend.seen.length = 0;
    const reply = await mcp('/api/streamable/alpha?x=1', {
      cookie: 'ok=1',
      authorization: 'Bearer client-token',
      'x-user': 'root',
      'x-scopes': 'mcp:registry:admin',
      'mcp-session-id': 's-1',
      'mcp-protocol-version': '2025-06-18',
      'content-type': 'application/json',
    }, '{"jsonrpc":"2.0","id":1,"method":"ping"}');
    assert.equal(reply.status, 200);
    const upstream = backend.seen.at(-1);
    assert.equal(upstream?.url, '/mcp?x=1');
    assert.equal(upstream?.body, '{"jsonrpc":"2.0","id":1,"method":"ping"}');
    assert.equal(upstream?.headers['x-user'], 'user-1');
    assert.equal(upstream?.headers['x-username'], 'alice');
    assert.equal(upstream?.headers['x-scopes'], 'mcp:server:alpha:execute');
    assert.equal(upstream?.headers.cookie, undefined, 'no Cookie to the backend');
    assert.equal(upstream?.headers.authorization, undefined, 'no Authorization to the backend');
    assert.equal(upstream?.headers['mcp-session-id'], 's-1');
    assert.equal(upstream?.headers['mcp-protocol-version'], '2025-06-18');
    assert.equal(upstream?.headers.host, `127.0.0.1:${backend.port}`);

    const check = checksOf('alpha').at(-1);
    assert.equal(check?.url, '/auth/validate');
    assert.equal(check?.method, 'GET', 'the check is a body-less subrequest');
    assert.equal(check?.body, '');
    assert.equal(check?.headers['content-length'], undefined);
    assert.equal(check?.headers.cookie, 'ok=1', 'the check sees the client cookie');
    assert.equal(check?.headers.authorization, 'Bearer client-token', 'the check sees the client token');
    assert.equal(check?.headers['x-mcp-transport'], 'streamable-http');
    assert.equal(check?.headers['x-original-uri'], '/api/streamable/alpha?x=1');
    assert.equal(check?.headers['x-original-method'], 'POST');
    assert.equal(check?.headers['x-user'], undefined, 'a forged X-User never reaches the check');
    assert.match(String(check?.headers['x-request-id']), /^[0-9a-f]{32}$/);
    assert.equal(upstream?.headers['x-request-id'], check?.headers['x-request-id']);
  }));

  it('serves the slash form of the streamable path too', withLog(async () => {
    assert.equal((await mcp('/api/streamable/alpha/', { cookie: 'ok=1' }, '{}')).status, 200);
  }));

  it('answers 401 JSON with the check\'s WWW-Authenticate, once', withLog(async () => {
    const reply = await mcp('/api/streamable/alpha', {}, '{}');
    assert.equal(reply.status, 401);
    assert.equal(reply.headers['content-type'], 'application/json');
    assert.deepEqual(JSON.parse(reply.body), { error: 'AUTH_NO_CREDENTIALS', message: 'sign in or send a valid token' });
    const challenges = reply.rawHeaders.filter((_, i) => i % 2 === 0 && reply.rawHeaders[i]?.toLowerCase() === 'www-authenticate');
    assert.equal(challenges.length, 1);
    assert.equal(reply.headers['www-authenticate'], 'Bearer realm="x"');
  }));

  it('answers 403 JSON naming the missing scope', withLog(async () => {
    const reply = await mcp('/api/streamable/alpha', { cookie: 'ok=forbidden' }, '{}');
    assert.equal(reply.status, 403);
    assert.equal(reply.headers['content-type'], 'application/json');
    assert.deepEqual(JSON.parse(reply.body), { error: 'AUTH_SCOPE_MISSING', message: 'missing scope', missing_scope: 'mcp:server:alpha:execute' });
  }));

  it('answers 404 JSON for unknown servers and paths, never the web page', withLog(async () => {
    for (const path of ['/api/streamable/nosuch', '/api/execute/nosuch/sse', '/api/streamable/alpha/x', '/api/execute/delta-x/']) {
      const reply = await mcp(path, { cookie: 'ok=1' });
      assert.equal(reply.status, 404, path);
      assert.deepEqual(JSON.parse(reply.body), { error: 'SERVER_UNKNOWN', message: 'no such MCP server' }, path);
    }
    const bare = await mcp('/api/execute/alpha', { cookie: 'ok=1' });
    assert.equal(bare.status, 404);
    assert.equal(JSON.parse(bare.body).error, 'NOT_FOUND');
  }));

  it('answers 503 JSON for a disabled server without consulting the check', withLog(async () => {
    for (const path of ['/api/streamable/delta', '/api/streamable/delta/', '/api/execute/delta/sse', '/api/execute/delta']) {
      const reply = await mcp(path, { cookie: 'ok=1' });
      assert.equal(reply.status, 503, path);
      assert.equal(reply.headers['content-type'], 'application/json');
      assert.deepEqual(JSON.parse(reply.body), { error: 'SERVER_DISABLED', message: 'server delta is disabled' });
    }
    assert.equal(checksOf('delta').length, 0);
  }));

  it('keeps /auth/validate unreachable from outside, whatever its spelling', withLog(async () => {
    const before = registry.seen.length;
    for (const path of ['/auth/validate', '/auth/validate/', '/AUTH/Validate', '/auth//validate', '/auth/%76alidate', '/auth/validate?x=1']) {
      const reply = await mcp(path, { cookie: 'ok=1', 'x-mcp-server': 'alpha' });
      assert.equal(reply.status, 404, path);
    }
    assert.equal(registry.seen.length, before, 'none of them reached the registry');
  }));

  it('authorizes the server nginx matched, not one named by ../ in the raw URI', withLog(async () => {
    backend.seen.length = 0;
    for (const path of ['/api/execute/alpha/../gamma/x', '/api/execute/alpha/%2e%2e/gamma/x']) {
      // only-alpha: the check allows alpha and refuses everything else.
      const reply = await mcp(path, { cookie: 'ok=only-alpha' });
      assert.equal(reply.status, 403, path);
      const check = registry.seen.at(-1);
      assert.equal(check?.headers['x-mcp-server'], 'gamma');
      assert.equal(check?.headers['x-original-uri'], path);
    }
    assert.equal((await mcp('/api/execute/alpha/../nosuch/x', { cookie: 'ok=1' })).status, 404);
    assert.equal(backend.seen.length, 0);
  }));

  it('proxies the web page to the registry with forwarding headers and no client identity headers', withLog(async () => {
    const reply = await mcp('/servers', { 'x-user': 'root', 'x-scopes': 'mcp:registry:admin', host: 'gw.example' });
    assert.equal(reply.status, 200);
    const seen = JSON.parse(reply.body) as { page: boolean; headers: Record<string, string> };
    assert.equal(seen.page, true);
    assert.equal(seen.headers['x-user'], undefined);
    assert.equal(seen.headers['x-scopes'], undefined);
    assert.equal(seen.headers['x-forwarded-host'], 'gw.example');
    assert.equal(seen.headers['x-forwarded-proto'], 'http');
    assert.equal(seen.headers['x-forwarded-for'], '127.0.0.1');
  }));

  it('streams the SSE endpoint event rewritten to the gateway path before the stream ends', withLog(async () => {
    const headers = { cookie: 'ok=1', accept: 'text/event-stream' };
    const first = await readStreamUntil(port, '/api/execute/alpha/sse', headers, 'sessionId=abc\n\n');
    assert.equal(first.status, 200);
    assert.equal(first.text, 'event: endpoint\ndata: /api/execute/alpha/messages?sessionId=abc\n\n');
    assert.equal(first.ended, false, 'the event arrived while the stream was still open');
    // Later events stream through as well, and only the first `data: /` is rewritten.
    const later = await readStreamUntil(port, '/api/execute/alpha/sse', headers, '"}\n\n');
    assert.match(later.text, /messages\?sessionId=abc\n\nevent: message\ndata: \{"later":"data: \/x"\}\n\n$/);
    assert.equal(later.ended, false);
    assert.equal(checksOf('alpha').at(-1)?.headers['x-mcp-transport'], 'sse');

    backend.seen.length = 0;
    const post = await mcp('/api/execute/alpha/messages?sessionId=abc', { cookie: 'ok=1' }, '{"jsonrpc":"2.0","id":2,"method":"tools/list"}');
    assert.equal(post.status, 200);
    assert.equal(backend.seen[0]?.url, '/messages?sessionId=abc');
    assert.equal(backend.seen[0]?.headers.cookie, undefined);
  }));

  it('answers 502 JSON when the backend is down', withLog(async () => {
    const reply = await mcp('/api/streamable/omega', { cookie: 'ok=1' }, '{}');
    assert.equal(reply.status, 502);
    assert.equal(JSON.parse(reply.body).error, 'BACKEND_UNAVAILABLE');
  }));

  it('answers 413 JSON above the body limit, so nothing is authorized on part of a body', withLog(async () => {
    const reply = await mcp('/api/streamable/alpha', { cookie: 'ok=1' }, 'x'.repeat(1024 * 1024 + 1));
    assert.equal(reply.status, 413);
    assert.equal(JSON.parse(reply.body).error, 'BODY_TOO_LARGE');
  }));

  it('skips a reload when the config is unchanged', withLog(async () => {
    assert.deepEqual(await nginx.apply(render()), { changed: false });
  }));

  it('refuses a config nginx rejects and keeps serving the old one', withLog(async () => {
    await assert.rejects(nginx.apply(`${render()}\nthis_is_not_a_directive on;\n`), (err: unknown) => {
      assert.ok(err instanceof GatewayError);
      assert.equal(err.code, 'NGINX_CONFIG_REJECTED');
      assert.match(err.message, /unknown directive "this_is_not_a_directive"/);
      return true;
    });
    assert.match(nginx.lastError ?? '', /this_is_not_a_directive/);
    assert.equal((await mcp('/api/streamable/alpha', { cookie: 'ok=1' }, '{}')).status, 200);
    assert.deepEqual(await nginx.apply(render()), { changed: false }, 'the live config is still the old one');
  }));

  it('rolls back when the master cannot load a config that passed nginx -t (port taken)', withLog(async () => {
    // nginx -t does not bind, so a taken port only fails at reload time, in the master.
    const live = await readFile(nginx.configPath, 'utf8');
    await assert.rejects(nginx.apply(render({ listen: { host: '127.0.0.1', port: backend.port } })), (err: unknown) => {
      assert.ok(err instanceof GatewayError);
      assert.equal(err.code, 'NGINX_CONFIG_REJECTED');
      assert.match(err.message, /Address already in use/);
      return true;
    });
    assert.equal(await readFile(nginx.configPath, 'utf8'), live, 'nginx.conf is the live config again');
    assert.equal((await mcp('/api/streamable/alpha', { cookie: 'ok=1' }, '{}')).status, 200);
  }));

  it('applies a new config (alpha disabled) within 2 s, one apply at a time', withLog(async () => {
    const disabled = base.servers.map((s) => (s.name === 'alpha' ? { ...s, enabled: false } : s));
    const started = Date.now();
    // Two applies at once: they run in call order, so the second one wins.
    const [first, second] = await Promise.all([nginx.apply(render({ maxBodySize: '2m' })), nginx.apply(render({ servers: disabled }))]);
    assert.deepEqual([first, second], [{ changed: true }, { changed: true }]);
    let status = 0;
    while (Date.now() - started < 2000 && status !== 503) {
      status = (await mcp('/api/streamable/alpha', { cookie: 'ok=1' }, '{}')).status;
    }
    assert.equal(status, 503);
    assert.equal(nginx.status().running, true);
    assert.equal(nginx.lastError, undefined);
  }));

  it('answers 500 JSON when the registry is unreachable (fails closed)', withLog(async () => {
    await registry.close();
    const reply = await mcp('/api/streamable/beta-never', {});
    assert.equal(reply.status, 404);
    const denied = await mcp('/api/execute/gamma/sse', { cookie: 'ok=1' });
    assert.equal(denied.status, 500);
    assert.deepEqual(JSON.parse(denied.body), { error: 'INTERNAL', message: 'internal error' });
  }));

  it('applies a config with no servers at all: every MCP path is a JSON 404', withLog(async () => {
    assert.deepEqual(await nginx.apply(render({ servers: [] })), { changed: true });
    const reply = await mcp('/api/execute/gamma/sse', { cookie: 'ok=1' });
    assert.equal(reply.status, 404);
    assert.equal(JSON.parse(reply.body).error, 'SERVER_UNKNOWN');
  }));
});
