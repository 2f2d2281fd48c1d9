import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import type { RouteBackend, RouteDecision } from '../authz/route.ts';
import type { ServerDefinition } from '../catalog/server-definition.ts';
import { TestCatalog } from '../catalog/test-catalog.ts';
import { createLogger } from '../log.ts';
import { definition } from './harness.ts';
import { RouteTable, type AddressLookup } from './route.ts';

const HOSTS: Record<string, string> = { 'backend.internal': '10.0.0.7', 'v6.internal': 'fd00::7', 'later.internal': '10.0.0.9' };
const lookups: string[] = [];
const lookup: AddressLookup = async (host) => {
  lookups.push(host);
  const address = HOSTS[host];
  if (address === undefined) throw new Error(`getaddrinfo ENOTFOUND ${host}`);
  return { address, family: address.includes(':') ? 6 : 4 };
};

const tables: RouteTable[] = [];
async function table(
  defs: readonly ServerDefinition[],
): Promise<{ routes: RouteTable; catalog: TestCatalog; upstreams: Awaited<ReturnType<RouteTable['start']>> }> {
  const catalog = new TestCatalog(defs);
  const routes = new RouteTable({ catalog: catalog as unknown as ConstructorParameters<typeof RouteTable>[0]['catalog'], log: createLogger('fatal'), lookup });
  tables.push(routes);
  return { routes, catalog, upstreams: await routes.start() };
}

async function backendOf(decision: RouteDecision): Promise<RouteBackend> {
  assert.ok(decision.ok, JSON.stringify(decision));
  return decision.backend();
}

async function header(decision: RouteDecision): Promise<string> {
  const backend = await backendOf(decision);
  assert.ok(backend.ok, JSON.stringify(backend));
  return backend.header;
}

after(() => {
  for (const t of tables) t.stop();
});

describe('RouteTable', () => {
  it('declares one upstream per backend origin at start, named by a hash, with the port made explicit', async () => {
    const { upstreams } = await table([
      definition('a', 'http://127.0.0.1:8001', { 'streamable-http': '/mcp' }),
      definition('b', 'http://127.0.0.1:8001/other', { sse: '/sse' }),
      definition('c', 'https://backend.internal/x', { 'streamable-http': '/mcp' }),
      definition('d', 'http://backend.internal', { 'streamable-http': '/mcp' }),
      definition('e', 'http://[::1]:9000', { 'streamable-http': '/mcp' }),
      definition('f', 'http://no-such.invalid:9000', { 'streamable-http': '/mcp' }),
    ]);
    assert.deepEqual(upstreams.map((u) => u.server).sort(), ['127.0.0.1:8001', '[::1]:9000', 'backend.internal:443', 'backend.internal:80'].sort());
    for (const u of upstreams) assert.match(u.name, /^mcp_backend_[0-9a-f]{12}$/);
    assert.equal(new Set(upstreams.map((u) => u.name)).size, upstreams.length);
  });

  it('routes the Streamable HTTP endpoint to the upstream block, with the backend path and Host as the URL spells it', async () => {
    const { routes, upstreams } = await table([
      definition('a', 'http://127.0.0.1:8001/base/', { 'streamable-http': '/mcp' }),
      definition('s', 'https://backend.internal:8443', { 'streamable-http': '/mcp', sse: '/sse' }),
    ]);
    const up = (server: string) => upstreams.find((u) => u.server === server)?.name;
    assert.equal(
      await header(routes.lookup({ server: 'a', transport: 'streamable-http', method: 'POST', path: '' })),
      `streamable http ${up('127.0.0.1:8001')} 127.0.0.1:8001 /base/mcp`,
    );
    assert.equal(
      await header(routes.lookup({ server: 's', transport: 'streamable-http', method: 'GET', path: '' })),
      `streamable https ${up('backend.internal:8443')} backend.internal:8443 /mcp`,
    );
    assert.equal(
      await header(routes.lookup({ server: 's', transport: 'sse', method: 'GET', path: '/sse' })),
      `sse https ${up('backend.internal:8443')} backend.internal:8443 /sse`,
    );
    assert.equal(
      await header(routes.lookup({ server: 's', transport: 'sse', method: 'POST', path: '/messages' })),
      `sse-messages https ${up('backend.internal:8443')} backend.internal:8443 -`,
    );
  });

  it('routes the legacy transport exactly: GET on the SSE path, POST on /messages, 404 or 405 for the rest, SERVER_UNKNOWN for what the catalog lacks', async () => {
    const { routes } = await table([
      definition('l', 'http://127.0.0.1:8001', { sse: '/events/sse' }),
      definition('m', 'http://127.0.0.1:8001', { 'streamable-http': '/mcp' }),
    ]);
    const refusal = (server: string, transport: 'sse' | 'streamable-http', method: string, path: string) => {
      const d = routes.lookup({ server, transport, method, path });
      return d.ok ? 'ok' : `${d.refusal.status} ${d.refusal.refused}${d.refusal.status === 405 ? ` ${d.refusal.allow}` : ''}`;
    };
    assert.equal(refusal('l', 'sse', 'GET', '/events/sse'), 'ok');
    assert.equal(refusal('l', 'sse', 'POST', '/messages'), 'ok');
    assert.equal(refusal('l', 'sse', 'POST', '/events/sse'), '405 METHOD_NOT_ALLOWED GET');
    assert.equal(refusal('l', 'sse', 'DELETE', '/events/sse'), '405 METHOD_NOT_ALLOWED GET');
    assert.equal(refusal('l', 'sse', 'GET', '/messages'), '405 METHOD_NOT_ALLOWED POST');
    for (const path of ['', '/', '/events', '/events/sse/', '/messages/', '/mcp', '/!', '/events/../mcp'])
      assert.equal(refusal('l', 'sse', 'GET', path), '404 NOT_FOUND', path);
    assert.equal(refusal('l', 'streamable-http', 'POST', ''), '404 SERVER_UNKNOWN', 'no Streamable HTTP transport');
    assert.equal(refusal('m', 'sse', 'GET', '/sse'), '404 SERVER_UNKNOWN', 'no legacy transport');
    assert.equal(refusal('nosuch', 'streamable-http', 'POST', ''), '404 SERVER_UNKNOWN');
  });

  it('follows catalog changes at once: a new origin is answered as its resolved IP literal, without keep-alive, and shown', async () => {
    const { routes, catalog } = await table([definition('a', 'http://127.0.0.1:8001', { 'streamable-http': '/mcp' })]);
    assert.deepEqual(routes.status(), {});
    catalog.set([
      ...catalog.list(),
      definition('n', 'http://later.internal:9100', { 'streamable-http': '/mcp' }),
      definition('v6', 'http://v6.internal:9200', { 'streamable-http': '/mcp' }),
      definition('ip', 'http://10.1.2.3:9300', { 'streamable-http': '/mcp' }),
    ]);
    // Not even awaiting settled(): a request during the first lookup waits for it.
    assert.equal(
      await header(routes.lookup({ server: 'n', transport: 'streamable-http', method: 'POST', path: '' })),
      'streamable http 10.0.0.9:9100 later.internal:9100 /mcp',
    );
    assert.equal(
      await header(routes.lookup({ server: 'v6', transport: 'streamable-http', method: 'POST', path: '' })),
      'streamable http [fd00::7]:9200 v6.internal:9200 /mcp',
    );
    assert.equal(
      await header(routes.lookup({ server: 'ip', transport: 'streamable-http', method: 'POST', path: '' })),
      'streamable http 10.1.2.3:9300 10.1.2.3:9300 /mcp',
    );
    assert.deepEqual(routes.status(), { withoutKeepalive: ['http://10.1.2.3:9300', 'http://later.internal:9100', 'http://v6.internal:9200'] });
    // Removed: unknown at once.
    catalog.set(catalog.list().filter((d) => d.name !== 'n'));
    const gone = routes.lookup({ server: 'n', transport: 'streamable-http', method: 'POST', path: '' });
    assert.equal(gone.ok, false);
  });

  it('refuses a server whose host does not resolve (502 through njs) without affecting the others, and says why', async () => {
    const { routes, catalog } = await table([
      definition('good', 'http://127.0.0.1:8001', { 'streamable-http': '/mcp' }),
      definition('bad', 'http://no-such.invalid:9000', { 'streamable-http': '/mcp' }),
    ]);
    const bad = await backendOf(routes.lookup({ server: 'bad', transport: 'streamable-http', method: 'POST', path: '' }));
    assert.equal(bad.ok, false);
    assert.match(routes.status().refused?.['bad'] ?? '', /^host not found: "no-such\.invalid:9000" \(getaddrinfo ENOTFOUND no-such\.invalid\)$/);
    assert.equal((await backendOf(routes.lookup({ server: 'good', transport: 'streamable-http', method: 'POST', path: '' }))).ok, true);
    // Re-pointed to a host that resolves: routed at once.
    catalog.set([catalog.get('good')!, definition('bad', 'http://backend.internal:9000', { 'streamable-http': '/mcp' })]);
    await routes.settled();
    assert.equal(
      await header(routes.lookup({ server: 'bad', transport: 'streamable-http', method: 'POST', path: '' })),
      'streamable http 10.0.0.7:9000 backend.internal:9000 /mcp',
    );
    assert.equal(routes.status().refused, undefined);
  });

  it('refuses a definition that fails names.ts at the check only, never the others', async () => {
    // The catalog validates with the same patterns; this is the defence in depth behind it.
    const hostile = { ...definition('x', 'http://127.0.0.1:8001', { 'streamable-http': '/mcp' }), url: 'http://127.0.0.1:8001/a b' };
    const { routes } = await table([hostile, definition('ok', 'http://127.0.0.1:8001', { 'streamable-http': '/mcp' })]);
    const refused = await backendOf(routes.lookup({ server: 'x', transport: 'streamable-http', method: 'POST', path: '' }));
    assert.equal(refused.ok, false);
    assert.match(routes.status().refused?.['x'] ?? '', /backend url/);
    assert.equal((await backendOf(routes.lookup({ server: 'ok', transport: 'streamable-http', method: 'POST', path: '' }))).ok, true);
  });

  it('sends nginx only visible ASCII of the expected shape: no space inside a field, no CR or LF', async () => {
    const { routes } = await table([
      definition('a', 'https://backend.internal:8443/b-1/_x~.y', { 'streamable-http': '/m/c/p', sse: '/s.s-e' }),
      definition('v', 'http://[::1]:9000', { 'streamable-http': '/mcp' }),
    ]);
    for (const decision of [
      routes.lookup({ server: 'a', transport: 'streamable-http', method: 'POST', path: '' }),
      routes.lookup({ server: 'a', transport: 'sse', method: 'GET', path: '/s.s-e' }),
      routes.lookup({ server: 'v', transport: 'streamable-http', method: 'POST', path: '' }),
    ]) {
      const value = await header(decision);
      assert.match(value, /^[\x21-\x7e]+(?: [\x21-\x7e]+){4}$/, value);
    }
  });
});
