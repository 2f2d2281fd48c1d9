import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RedisAuditSink } from '../../src/audit/redis-audit-sink.ts';
import type { CatalogRecord } from '../../src/catalog/catalog.ts';
import { DEV_MACHINE_CLIENT_ID } from '../../src/identity/dev.ts';
import { createLogger } from '../../src/log.ts';
import type { Lease, SharedBackendSnapshot } from '../../src/mcp/backend-monitor.ts';
import { FileRecordStore } from '../../src/store/file-store.ts';
import { startTestRedis, type TestRedis } from '../../src/store/redis-test-server.ts';
import { ApiClient, assertError, machineToken, type Caller } from './api-client.ts';
import { eventually, startTestGateway, TEST_SECRET_KEY, type TestGateway } from './harness.ts';

/*
 * Two replicas of one gateway in one process (issue 12), each with its own registry and nginx,
 * sharing what Redis shares in production: the catalog and the health results in one store each
 * (a FileRecordStore instance stands in for Redis's mirror), the audit stream in a real
 * redis-server, and a lease that replica A holds.
 */

const log = createLogger('silent');
const always = (held: boolean): Lease => ({ held: () => held, onChange: () => () => undefined, close: async () => undefined });

let redis: TestRedis;
let a: TestGateway;
let b: TestGateway;
const replicas: { api: ApiClient; as: Caller; gw: () => TestGateway }[] = [];
const closers: (() => Promise<void>)[] = [];

before(async () => {
  redis = await startTestRedis();
  const catalog = new FileRecordStore<CatalogRecord>({ dir: mkdtempSync(join(tmpdir(), 'mcpgw-replicas-catalog-')), log });
  const health = new FileRecordStore<SharedBackendSnapshot>({ dir: mkdtempSync(join(tmpdir(), 'mcpgw-replicas-health-')), log });
  const sinkA = await RedisAuditSink.open({ url: redis.url, log });
  const sinkB = await RedisAuditSink.open({ url: redis.url, log });
  const mapping = `clients:\n  ${JSON.stringify(DEV_MACHINE_CLIENT_ID)}: ["mcp:registry:admin"]\n`;
  a = await startTestGateway({ mapping, shared: { catalog, audit: sinkA, health: { store: health, lease: always(true) } } });
  b = await startTestGateway({ mapping, catalogDir: a.catalogDir, shared: { catalog, audit: sinkB, health: { store: health, lease: always(false) } } });
  for (const gw of [a, b]) replicas.push({ api: new ApiClient(gw.url), as: { bearer: await machineToken(gw.url, TEST_SECRET_KEY) }, gw: () => gw });
  closers.push(
    () => sinkA.close(),
    () => sinkB.close(),
    () => catalog.close(),
    () => health.close(),
  );
});

after(async () => {
  await b?.[Symbol.asyncDispose]();
  await a?.[Symbol.asyncDispose]();
  for (const close of closers) await close();
  await redis?.stop();
});

const [A, B] = [0, 1] as const;
const api = (i: number) => replicas[i] as (typeof replicas)[number];

async function mcpInitialize(gw: TestGateway, server: string, caller: Caller): Promise<number> {
  const res = await fetch(`${gw.url}/api/streamable/${server}`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      authorization: `Bearer ${(caller as { bearer: string }).bearer}`,
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
    }),
  });
  await res.arrayBuffer();
  return res.status;
}

test('one catalog: a server registered on A is listed and routed by B within a second, without a reload, and nothing is written to the files', async (t) => {
  const listed = async (i: number) => ((await api(i).api.call('listServers', { as: api(i).as })).body.servers as { name: string }[]).map((s) => s.name);
  assert.deepEqual(await listed(B), await listed(A));
  const backendUrl = (await api(A).api.call('getServer', { params: { name: 'currenttime' }, as: api(A).as })).body.definition.url as string;
  const reloads = (gw: TestGateway) => gw.errorLog().split('signal 1 (SIGHUP) received').length - 1;
  const reloadsBefore = [reloads(a), reloads(b)];
  const asked = Date.now();
  const registered = await api(A).api.call('registerServer', {
    as: api(A).as,
    body: { name: 'clock', url: backendUrl, transports: { 'streamable-http': '/mcp' }, enabled: true },
  });
  assert.equal(registered.status, 201, registered.text);
  const answered = Date.now() - asked;
  // B routes it as soon as its copy of the catalog has it: no config to render, nothing to reload.
  await eventually(async () => (await mcpInitialize(b, 'clock', api(B).as)) === 200, 1000);
  t.diagnostic(`A answered the registration after ${answered} ms; B served clock ${Date.now() - asked} ms after A was asked`);
  assert.ok((await listed(B)).includes('clock'));
  assert.deepEqual([reloads(a), reloads(b)], reloadsBefore, 'neither nginx was reloaded');
  assert.ok(!readdirSync(a.catalogDir).includes('clock.json'), 'the edit went to the shared store only');
});

test('If-Match across replicas: of two edits of one version, on A and on B, exactly one wins', async () => {
  const read = await api(A).api.call('getServer', { params: { name: 'currenttime' }, as: api(A).as });
  const etag = read.headers.get('etag') ?? '';
  assert.equal((await api(B).api.call('getServer', { params: { name: 'currenttime' }, as: api(B).as })).headers.get('etag'), etag, 'one version everywhere');
  const edit = (i: number, description: string) =>
    api(i).api.call('updateServer', {
      params: { name: 'currenttime' },
      headers: { 'if-match': etag },
      body: { ...read.body.definition, description },
      as: api(i).as,
    });
  const [onA, onB] = await Promise.all([edit(A, 'edited on A'), edit(B, 'edited on B')]);
  await Promise.all([a.gateway.nginx.settled(), b.gateway.nginx.settled()]);
  const statuses = [onA.status, onB.status].sort();
  assert.deepEqual(statuses, [200, 412], `${onA.text} | ${onB.text}`);
  assertError(onA.status === 412 ? onA : onB, 412, 'SERVER_CHANGED');
  const winner = onA.status === 200 ? 'edited on A' : 'edited on B';
  for (const i of [A, B]) assert.equal((await api(i).api.call('getServer', { params: { name: 'currenttime' }, as: api(i).as })).body.description, winner);
});

test('a toggle on B takes effect on the next MCP request through A', async () => {
  assert.equal(await mcpInitialize(a, 'currenttime', api(A).as), 200);
  const off = await api(B).api.call('toggleServer', { params: { name: 'currenttime' }, body: { enabled: false }, as: api(B).as });
  assert.equal(off.status, 200, off.text);
  assert.equal(await mcpInitialize(a, 'currenttime', api(A).as), 503);
  await api(A).api.call('toggleServer', { params: { name: 'currenttime' }, body: { enabled: true }, as: api(A).as });
  assert.equal(await mcpInitialize(b, 'currenttime', api(B).as), 200);
});

test('health checks run on the lease holder only; B shows its results', async () => {
  await a.gateway.monitor.settled();
  await eventually(async () => {
    const health = (await api(B).api.call('listHealth', { as: api(B).as })).body.servers as { name: string; health: { status: string } }[];
    return health.find((s) => s.name === 'currenttime')?.health.status === 'healthy';
  }, 5000);
  const tools = await api(B).api.call('listTools', { params: { name: 'currenttime' }, as: api(B).as });
  assert.equal(tools.body.source, 'backend', 'the tools the holder discovered');
});

test('the audit view of either replica shows the decisions of both', async () => {
  // Only A is asked about `offline`; only B was asked about `clock` (the first test).
  assert.equal(await mcpInitialize(a, 'offline', api(A).as), 503);
  for (const i of [A, B]) {
    await eventually(async () => {
      const res = await api(i).api.call('listAudit', { query: { event: 'access', limit: '1000' }, as: api(i).as });
      const entries = res.body.entries as { server: string; status: number }[];
      return entries.some((e) => e.server === 'offline' && e.status === 503) && entries.some((e) => e.server === 'clock' && e.status === 200);
    }, 5000);
  }
});
