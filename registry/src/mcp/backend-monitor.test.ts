import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { buildServer as buildCurrentTime, TOOL_NAME as CURRENT_TIME_TOOL } from '../../../servers/currenttime/server.ts';
import {
  buildServer as buildFininfo,
  COMPANY_OVERVIEW_TOOL,
  MARKET_STATUS_TOOL,
  PRINT_STUFF_TOOL,
  STOCK_AGGREGATES_TOOL,
} from '../../../servers/fininfo/server.ts';
import { freePort } from '../../../servers/shared/free-port.ts';
import { serveMcp, type RunningMcpServer } from '../../../servers/shared/serve-mcp.ts';
import { buildPagedServer, PAGED_TOOLS } from '../../test/integration/paged-server.ts';
import { freezeDefinition, serverDefinitionSchema, type ServerDefinition, type ServerDefinitionInput } from '../catalog/server-definition.ts';
import { GatewayError } from '../errors.ts';
import { createLogger } from '../log.ts';
import { BackendMonitor, MAX_CONCURRENT_CHECKS, MAX_RESPONSE_BYTES, SCHEMA_TOO_LARGE, type BackendMonitorOptions } from './backend-monitor.ts';

const log = createLogger('silent');
const cleanups: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

function def(
  name: string,
  url: string,
  transports: ServerDefinitionInput['transports'] = { 'streamable-http': '/mcp' },
  extra: Partial<ServerDefinitionInput> = {},
): ServerDefinition {
  return freezeDefinition(serverDefinitionSchema.parse({ name, url, transports, ...extra }));
}

/** The catalog is only a data source here: a map that announces changes the way Catalog does. */
class FakeCatalog extends EventEmitter<{ changed: [definitions: readonly ServerDefinition[]] }> {
  readonly #defs = new Map<string, ServerDefinition>();
  constructor(defs: readonly ServerDefinition[] = []) {
    super();
    for (const d of defs) this.#defs.set(d.name, d);
  }
  list(): readonly ServerDefinition[] {
    return [...this.#defs.values()].sort((a, b) => a.name.localeCompare(b.name));
  }
  get(name: string): ServerDefinition | undefined {
    return this.#defs.get(name);
  }
  put(d: ServerDefinition): void {
    this.#defs.set(d.name, d);
    this.emit('changed', this.list());
  }
  remove(name: string): void {
    this.#defs.delete(name);
    this.emit('changed', this.list());
  }
}

function monitorFor(catalog: FakeCatalog, options: Partial<BackendMonitorOptions> = {}): BackendMonitor {
  const monitor = new BackendMonitor({
    // Catalog's on()/off() return `this` (a Catalog), which no fake can be: the cast is only about that.
    catalog: catalog as unknown as BackendMonitorOptions['catalog'],
    intervalMs: 0,
    timeoutMs: 5000,
    log,
    ...options,
  });
  cleanups.push(() => monitor.stop());
  return monitor;
}

async function serve(build: Parameters<typeof serveMcp>[0], options: Parameters<typeof serveMcp>[1] = {}): Promise<RunningMcpServer> {
  const running = await serveMcp(build, options);
  cleanups.push(() => running.close());
  return running;
}

/** A plain node:http server, closed (with its open sockets) after the tests. */
async function rawServer(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ server: Server; url: string }> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  );
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

async function readBody(req: IncomingMessage): Promise<string> {
  let text = '';
  for await (const chunk of req) text += String(chunk);
  return text;
}

describe('BackendMonitor against real MCP servers', () => {
  test("a backend that takes each person's own token (uploaded) is skipped with the reason, and never called", async () => {
    const calls: string[] = [];
    const { url } = await rawServer((req, res) => {
      calls.push(req.url ?? '');
      res.writeHead(401).end();
    });
    const monitor = monitorFor(new FakeCatalog([def('personal', url, undefined, { backendAuth: { type: 'uploaded' } })]), {
      credentials: async () => {
        throw new Error('no credential is asked for a skipped backend');
      },
    });
    const snap = await monitor.refresh('personal');
    assert.equal(snap.health.status, 'skipped');
    assert.match(snap.health.error ?? '', /takes each person's own credential, and its definition names no service credential/);
    assert.deepEqual(calls, [], 'the backend was not called');
  });

  test('currenttime over Streamable HTTP: healthy, with latency, server info and the tool schema', async () => {
    const backend = await serve(buildCurrentTime);
    const monitor = monitorFor(new FakeCatalog([def('currenttime', backend.url)]));
    assert.deepEqual(monitor.snapshot('currenttime'), { health: { status: 'unknown' } });

    const snap = await monitor.refresh('currenttime');
    assert.equal(snap.health.status, 'healthy', snap.health.error);
    assert.equal(snap.health.transport, 'streamable-http');
    assert.equal(typeof snap.health.latencyMs, 'number');
    assert.ok(Number.isInteger(snap.health.latencyMs) && (snap.health.latencyMs ?? -1) >= 0);
    assert.ok(!Number.isNaN(Date.parse(snap.health.checkedAt ?? '')));
    assert.equal(snap.health.error, undefined);
    assert.deepEqual(snap.health.serverInfo, { name: 'currenttime', version: '0.1.0' });
    const tool = snap.tools?.find((t) => t.name === CURRENT_TIME_TOOL);
    assert.ok(tool, 'current_time_by_timezone is listed');
    assert.equal(tool.inputSchema.type, 'object');
    assert.ok('tz_name' in ((tool.inputSchema.properties ?? {}) as object));
    assert.equal(tool.title, 'Current time by time zone');
    assert.match(tool.description, /IANA time zone/);
    assert.equal(snap.toolsFetchedAt, snap.health.checkedAt);
    assert.ok(Object.isFrozen(snap) && Object.isFrozen(snap.tools) && Object.isFrozen(tool.inputSchema));
    assert.equal(monitor.snapshot('currenttime'), snap);
  });

  test('fininfo: exactly its four tools', async () => {
    const backend = await serve(buildFininfo);
    const monitor = monitorFor(new FakeCatalog([def('fininfo', backend.url, { 'streamable-http': '/mcp', sse: '/sse' })]));
    const snap = await monitor.refresh('fininfo');
    assert.equal(snap.health.status, 'healthy', snap.health.error);
    assert.equal(snap.health.transport, 'streamable-http', 'Streamable HTTP is preferred when both are offered');
    assert.deepEqual(
      snap.tools?.map((t) => t.name),
      [STOCK_AGGREGATES_TOOL, PRINT_STUFF_TOOL, COMPANY_OVERVIEW_TOOL, MARKET_STATUS_TOOL],
    );
  });

  test('an SSE-only server is checked over SSE', async () => {
    const backend = await serve(buildCurrentTime);
    const monitor = monitorFor(new FakeCatalog([def('legacy', backend.url, { sse: '/sse' })]));
    const snap = await monitor.refresh('legacy');
    assert.equal(snap.health.status, 'healthy', snap.health.error);
    assert.equal(snap.health.transport, 'sse');
    assert.deepEqual(
      snap.tools?.map((t) => t.name),
      [CURRENT_TIME_TOOL],
    );
  });

  test('follows nextCursor through every page of tools/list', async () => {
    const backend = await serve(buildPagedServer);
    const monitor = monitorFor(new FakeCatalog([def('paged', backend.url)]));
    const snap = await monitor.refresh('paged');
    assert.equal(snap.health.status, 'healthy', snap.health.error);
    assert.deepEqual(
      snap.tools?.map((t) => t.name),
      [...PAGED_TOOLS],
    );
  });

  test('a port with nothing listening: unhealthy, connection refused, no tools', async () => {
    const port = await freePort();
    for (const transports of [{ 'streamable-http': '/mcp' }, { sse: '/sse' }]) {
      const monitor = monitorFor(new FakeCatalog([def('down', `http://127.0.0.1:${port}`, transports)]));
      const snap = await monitor.refresh('down');
      assert.equal(snap.health.status, 'unhealthy');
      assert.match(snap.health.error ?? '', /ECONNREFUSED/);
      assert.ok((snap.health.error ?? '').length <= 300 && !snap.health.error?.includes('\n'));
      assert.equal(snap.tools, undefined);
      assert.equal(snap.health.serverInfo, undefined);
      assert.equal(typeof snap.health.latencyMs, 'number');
    }
  });

  test('a backend that accepts and never answers times out within timeoutMs', async () => {
    const { url } = await rawServer(() => {}); // never answers
    for (const transports of [{ 'streamable-http': '/mcp' }, { sse: '/sse' }]) {
      const monitor = monitorFor(new FakeCatalog([def('silent', url, transports)]), { timeoutMs: 300 });
      const started = performance.now();
      const snap = await monitor.refresh('silent');
      const took = performance.now() - started;
      assert.equal(snap.health.status, 'unhealthy');
      assert.equal(snap.health.error, 'timed out after 300 ms');
      assert.ok(took >= 290 && took < 1500, `took ${took} ms`);
      assert.ok((snap.health.latencyMs ?? 0) >= 290);
    }
  });

  test('an HTTP error is reported by status, without the body', async () => {
    const { url } = await rawServer((req, res) => {
      res.writeHead(500, { 'content-type': 'text/plain', 'x-secret': 'header-secret' });
      res.end('body-secret '.repeat(100));
    });
    const monitor = monitorFor(new FakeCatalog([def('broken', url)]));
    const snap = await monitor.refresh('broken');
    assert.equal(snap.health.status, 'unhealthy');
    assert.equal(snap.health.error, 'HTTP 500 from backend');
  });

  test('a response body over the cap is cut off and reported', async () => {
    const chunk = Buffer.alloc(1024 * 1024, 0x20);
    const { url } = await rawServer((req, res) => {
      res.writeHead(200, { 'content-type': req.method === 'GET' ? 'text/event-stream' : 'application/json' });
      let sent = 0;
      const more = (): void => {
        while (sent < 40 && !res.destroyed) {
          sent++;
          if (!res.write(chunk)) return void res.once('drain', more);
        }
        res.end();
      };
      more();
    });
    // Over SSE the flood is the event stream itself; the check must end at once, not at the timeout.
    for (const transports of [{ 'streamable-http': '/mcp' }, { sse: '/sse' }]) {
      const monitor = monitorFor(new FakeCatalog([def('flood', url, transports)]), { timeoutMs: 20_000 });
      const snap = await monitor.refresh('flood');
      assert.equal(snap.health.status, 'unhealthy');
      assert.equal(snap.health.error, `backend response larger than ${MAX_RESPONSE_BYTES} bytes`);
      assert.ok((snap.health.latencyMs ?? Infinity) < 10_000);
    }
  });

  test('a body that is not JSON is reported without quoting it', async () => {
    const { url } = await rawServer((req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' }).end('body-secret, not JSON');
    });
    const monitor = monitorFor(new FakeCatalog([def('garbled', url)]));
    const snap = await monitor.refresh('garbled');
    assert.equal(snap.health.status, 'unhealthy');
    assert.equal(snap.health.error, 'backend sent invalid JSON (initialize)');
  });

  test('healthy, then the backend goes away: unhealthy, last good tools kept, one warning per change', async () => {
    const lines: { level: number; msg: string; server?: string; error?: string }[] = [];
    const capture = createLogger('info', { write: (s: string) => void lines.push(JSON.parse(s)) });
    const backend = await serveMcp(buildFininfo);
    const monitor = monitorFor(new FakeCatalog([def('fininfo', backend.url)]), { log: capture });

    const good = await monitor.refresh('fininfo');
    assert.equal(good.health.status, 'healthy', good.health.error);
    await backend.close();

    const bad = await monitor.refresh('fininfo');
    assert.equal(bad.health.status, 'unhealthy');
    assert.match(bad.health.error ?? '', /ECONNREFUSED/);
    assert.equal(bad.tools, good.tools, 'the last good list is kept');
    assert.equal(bad.toolsFetchedAt, good.toolsFetchedAt);
    assert.ok((bad.health.checkedAt ?? '') >= (good.toolsFetchedAt ?? ''));

    await monitor.refresh('fininfo'); // still down: no new warning
    const warnings = lines.filter((l) => l.msg === 'backend is unhealthy');
    assert.equal(warnings.length, 1);
    assert.equal(warnings[0]?.server, 'fininfo');
    assert.match(warnings[0]?.error ?? '', /ECONNREFUSED/);
    assert.equal(warnings[0]?.level, 40);
  });

  test('a backend that starts answering 401: unauthorized (not unhealthy) with the finding, tools kept, one warning; then healthy again', async () => {
    const lines: { level: number; msg: string; server?: string }[] = [];
    const capture = createLogger('info', { write: (s: string) => void lines.push(JSON.parse(s)) });
    let refuse = false;
    const backend = await serve(buildCurrentTime, {
      intercept: (req, res) => {
        if (!refuse) return false;
        const path = new URL(req.url ?? '/', 'http://x').pathname;
        if (path.startsWith('/.well-known/')) res.writeHead(404).end();
        else res.writeHead(401, { 'www-authenticate': 'Bearer realm="currenttime", error="invalid_token", scope="time:read"' }).end();
        return true;
      },
    });
    const monitor = monitorFor(new FakeCatalog([def('currenttime', backend.url)]), { log: capture });
    const good = await monitor.refresh('currenttime');
    assert.equal(good.health.status, 'healthy', good.health.error);

    refuse = true;
    const refused = await monitor.refresh('currenttime');
    assert.equal(refused.health.status, 'unauthorized');
    assert.match(refused.health.error ?? '', /^HTTP 401 from backend: it requires a credential \(no protected resource metadata/);
    assert.deepEqual(refused.health.auth?.challenge, { scope: 'time:read', error: 'invalid_token' });
    assert.equal(refused.health.auth?.discovered, undefined);
    assert.equal(refused.tools, good.tools, 'the last good list is kept');
    await monitor.refresh('currenttime');
    assert.equal(lines.filter((l) => l.msg === 'backend asks for a credential (HTTP 401)').length, 1);

    refuse = false;
    const again = await monitor.refresh('currenttime');
    assert.equal(again.health.status, 'healthy');
    assert.equal(again.health.auth, undefined);
    assert.equal(lines.filter((l) => l.msg === 'backend is healthy again').length, 1);
  });

  test('follows the catalog: new servers are checked at once, moved ones again, removed ones forgotten', async () => {
    const backend = await serve(buildCurrentTime);
    const catalog = new FakeCatalog();
    const monitor = monitorFor(catalog, { intervalMs: 60_000 });
    monitor.start();
    await monitor.settled();

    catalog.put(def('added', backend.url, { 'streamable-http': '/mcp' }, { enabled: false }));
    await monitor.settled();
    const added = monitor.snapshot('added');
    assert.equal(added.health.status, 'healthy', 'disabled servers are checked too');
    assert.deepEqual(
      added.tools?.map((t) => t.name),
      [CURRENT_TIME_TOOL],
    );

    catalog.put(def('added', backend.url, { 'streamable-http': '/mcp' }, { enabled: true })); // same place: no new check
    await monitor.settled();
    assert.equal(monitor.snapshot('added'), added);

    const port = await freePort();
    catalog.put(def('added', `http://127.0.0.1:${port}`)); // moved: checked again at once
    await monitor.settled();
    assert.equal(monitor.snapshot('added').health.status, 'unhealthy');

    catalog.remove('added');
    await monitor.settled();
    assert.deepEqual(monitor.snapshot('added'), { health: { status: 'unknown' } });
    await monitor.stop();
    catalog.put(def('late', backend.url));
    await monitor.settled();
    assert.deepEqual(monitor.snapshot('late'), { health: { status: 'unknown' } }, 'stop() unsubscribes');
  });

  test('start() checks every server, then on the schedule; a round skips servers still being checked', async () => {
    let initializes = 0;
    const backend = await serve(buildCurrentTime, {
      onRequest: (r) => {
        if ((r.body as { method?: string } | undefined)?.method === 'initialize') initializes++;
      },
    });
    let slowPosts = 0;
    const { url: slowUrl } = await rawServer((req, res) => {
      slowPosts++;
      setTimeout(() => res.writeHead(503).end(), 150); // each check takes 150 ms
    });
    const catalog = new FakeCatalog([def('a', backend.url), def('b', backend.url, { sse: '/sse' }), def('slow', slowUrl)]);
    const monitor = monitorFor(catalog, { intervalMs: 20 });
    monitor.start();
    await new Promise((resolve) => setTimeout(resolve, 400));
    await monitor.stop();
    assert.equal(monitor.snapshot('a').health.status, 'healthy');
    assert.equal(monitor.snapshot('b').health.status, 'healthy');
    assert.ok(initializes >= 4, `checked on the schedule (${initializes} initializes)`);
    // 400 ms / 150 ms per check: about three checks, not one per 20 ms round.
    assert.ok(slowPosts >= 2 && slowPosts <= 4, `${slowPosts} checks of the slow server`);
  });

  test('concurrent refresh() calls for one server share one check', async () => {
    let initializes = 0;
    let deletes = 0;
    const backend = await serve(buildCurrentTime, {
      onRequest: (r) => {
        if ((r.body as { method?: string } | undefined)?.method === 'initialize') initializes++;
        if (r.method === 'DELETE') deletes++;
      },
    });
    const monitor = monitorFor(new FakeCatalog([def('shared', backend.url)]));
    const results = await Promise.all([monitor.refresh('shared'), monitor.refresh('shared'), monitor.refresh('shared')]);
    assert.equal(initializes, 1);
    assert.equal(results[0], results[1]);
    assert.equal(results[1], results[2]);
    await monitor.refresh('shared');
    assert.equal(initializes, 2, 'a later refresh checks again');
    assert.equal(deletes, 2, 'each check ends its backend session');
  });

  test('at most four checks run at once', async () => {
    let open = 0;
    let most = 0;
    const { url } = await rawServer((req, res) => {
      open++;
      most = Math.max(most, open);
      setTimeout(() => {
        open--;
        res.writeHead(503).end();
      }, 80);
    });
    const names = ['s1', 's2', 's3', 's4', 's5', 's6', 's7'];
    const monitor = monitorFor(new FakeCatalog(names.map((n) => def(n, url))));
    monitor.start();
    await monitor.settled();
    assert.equal(most, MAX_CONCURRENT_CHECKS);
    for (const n of names) assert.equal(monitor.snapshot(n).health.error, 'HTTP 503 from backend');
  });

  test('refresh() of an unknown server rejects with SERVER_UNKNOWN', async () => {
    const monitor = monitorFor(new FakeCatalog());
    await assert.rejects(monitor.refresh('nope'), (err: unknown) => err instanceof GatewayError && err.code === 'SERVER_UNKNOWN');
    assert.deepEqual(monitor.snapshot('nope'), { health: { status: 'unknown' } });
  });

  test('stop() aborts checks in flight and records nothing for them', async () => {
    const { url } = await rawServer(() => {});
    const monitor = monitorFor(new FakeCatalog([def('hang', url)]), { timeoutMs: 60_000 });
    monitor.start();
    const started = performance.now();
    await monitor.stop();
    assert.ok(performance.now() - started < 1000);
    assert.deepEqual(monitor.snapshot('hang'), { health: { status: 'unknown' } });
  });

  test('a hostile backend: bad tools dropped, sizes capped, at most 1000 tools', async () => {
    const huge = { type: 'object', properties: { x: { type: 'string', description: 'y'.repeat(70 * 1024) } } };
    const tools: unknown[] = [
      { name: 42, inputSchema: { type: 'object' } },
      null,
      'just a string',
      { name: '', inputSchema: {} },
      { name: 'long', description: 'd'.repeat(5000), title: 7, inputSchema: huge },
      { name: 'no-schema', description: ['not', 'a', 'string'] },
      { name: 'long', description: 'duplicate' },
    ];
    for (let i = 0; i < 1500; i++) tools.push({ name: `t${i}`, inputSchema: { type: 'object' } });
    const { url } = await rawServer(async (req, res) => {
      if (req.method !== 'POST') return void res.writeHead(405).end();
      const message = JSON.parse(await readBody(req)) as { id?: number; method: string };
      if (message.id === undefined) return void res.writeHead(202).end();
      const result =
        message.method === 'initialize'
          ? { protocolVersion: '2025-06-18', capabilities: { tools: {} }, serverInfo: { name: 'evil\nserver', version: '6.6.6' } }
          : { tools, nextCursor: 'again' }; // the same cursor forever
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ jsonrpc: '2.0', id: message.id, result }));
    });
    const monitor = monitorFor(new FakeCatalog([def('evil', url)]));
    const snap = await monitor.refresh('evil');
    assert.equal(snap.health.status, 'healthy', snap.health.error);
    assert.deepEqual(snap.health.serverInfo, { name: 'evil server', version: '6.6.6' });
    assert.equal(snap.tools?.length, 1000);
    assert.deepEqual(
      snap.tools?.slice(0, 3).map((t) => t.name),
      ['long', 'no-schema', 't0'],
    );
    const [long, noSchema] = snap.tools ?? [];
    assert.equal(long?.description.length, 4000);
    assert.equal(long?.title, undefined);
    assert.deepEqual(long?.inputSchema, SCHEMA_TOO_LARGE);
    assert.equal(noSchema?.description, '');
    assert.deepEqual(noSchema?.inputSchema, { type: 'object' });
  });
});
