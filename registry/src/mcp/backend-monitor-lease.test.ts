import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildServer as buildCurrentTime, TOOL_NAME as CURRENT_TIME_TOOL } from '../../../servers/currenttime/server.ts';
import { serveMcp } from '../../../servers/shared/serve-mcp.ts';
import { freezeDefinition, serverDefinitionSchema, type ServerDefinition } from '../catalog/server-definition.ts';
import { createLogger } from '../log.ts';
import { FileRecordStore } from '../store/file-store.ts';
import { BackendMonitor, type BackendMonitorOptions, type Lease, type SharedBackendSnapshot } from './backend-monitor.ts';

const log = createLogger('silent');
const cleanups: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

/** A catalog as the monitor uses it: a map that announces changes. */
class FakeCatalog extends EventEmitter<{ changed: [definitions: readonly ServerDefinition[]] }> {
  readonly #defs = new Map<string, ServerDefinition>();
  constructor(defs: readonly ServerDefinition[]) {
    super();
    for (const d of defs) this.#defs.set(d.name, d);
  }
  list(): readonly ServerDefinition[] {
    return [...this.#defs.values()];
  }
  get(name: string): ServerDefinition | undefined {
    return this.#defs.get(name);
  }
  put(d: ServerDefinition): void {
    this.#defs.set(d.name, d);
    this.emit('changed', this.list());
  }
}

/** A lease the test hands from one replica to another. */
class FakeLease implements Lease {
  #held: boolean;
  readonly #listeners = new Set<(held: boolean) => void>();
  constructor(held: boolean) {
    this.#held = held;
  }
  held(): boolean {
    return this.#held;
  }
  set(held: boolean): void {
    if (held === this.#held) return;
    this.#held = held;
    for (const listener of this.#listeners) listener(held);
  }
  onChange(listener: (held: boolean) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
  async close(): Promise<void> {}
}

async function waitFor(predicate: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 20));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('only the lease holder checks; every replica shows its results; the checks move with the lease', async () => {
  let hits = 0;
  const backend = await serveMcp(buildCurrentTime, { onRequest: () => hits++ });
  cleanups.push(() => backend.close());
  const svc = freezeDefinition(serverDefinitionSchema.parse({ name: 'svc', url: backend.url, transports: { 'streamable-http': '/mcp' } }));
  // One shared store, as every replica sees it (Redis's mirror in production).
  const shared = new FileRecordStore<SharedBackendSnapshot>({ dir: mkdtempSync(join(tmpdir(), 'mcpgw-health-')), log });
  cleanups.push(() => shared.close());
  const replica = (lease: FakeLease, catalog = new FakeCatalog([svc])) => {
    const monitor = new BackendMonitor({
      catalog: catalog as unknown as BackendMonitorOptions['catalog'],
      intervalMs: 50,
      timeoutMs: 5000,
      lease,
      shared,
      log,
    });
    cleanups.push(() => monitor.stop());
    return { monitor, catalog, lease };
  };
  const a = replica(new FakeLease(true));
  const b = replica(new FakeLease(false));
  a.monitor.start();
  b.monitor.start();

  // B never checks, yet shows A's results (health and the tools discovered).
  await waitFor(() => b.monitor.snapshot('svc').health.status === 'healthy');
  assert.deepEqual(
    b.monitor.snapshot('svc').tools?.map((t) => t.name),
    [CURRENT_TIME_TOOL],
  );
  await a.monitor.stop();
  await a.monitor.settled();
  // A's last check may still have a request in flight to the backend (its client closing the
  // session); count from when the backend has heard nothing for 150 ms (CI saw one arrive late).
  let afterA = -1;
  while (afterA !== hits) {
    afterA = hits;
    await sleep(150);
  }
  b.catalog.put({ ...svc, description: 'edited' }); // a change elsewhere: the holder checks it, not B
  await sleep(300);
  assert.equal(hits, afterA, 'the replica without the lease sends nothing to the backend');
  const checkedByA = b.monitor.snapshot('svc').health.checkedAt;

  // The lease moves to B: B checks at once and on its schedule, and publishes.
  b.lease.set(true);
  await waitFor(() => hits > afterA && (b.monitor.snapshot('svc').health.checkedAt ?? '') > (checkedByA ?? ''));
  const c = replica(new FakeLease(false));
  c.monitor.start();
  assert.equal(c.monitor.snapshot('svc').health.checkedAt, shared.peek('svc')?.value.health.checkedAt, 'a new replica shows the holder’s newest result');

  // B loses it: its schedule stops.
  b.lease.set(false);
  await b.monitor.settled();
  const afterB = hits;
  await sleep(300);
  assert.equal(hits, afterB, 'no checks once the lease is gone');
  assert.equal(c.monitor.snapshot('svc').health.status, 'healthy', 'the last published result stays visible');
});

test('a published result for another url is not shown, and a monitor without a lease behaves as before', async () => {
  const shared = new FileRecordStore<SharedBackendSnapshot>({ dir: mkdtempSync(join(tmpdir(), 'mcpgw-health-')), log });
  cleanups.push(() => shared.close());
  const backend = await serveMcp(buildCurrentTime);
  cleanups.push(() => backend.close());
  const svc = freezeDefinition(serverDefinitionSchema.parse({ name: 'svc', url: backend.url, transports: { 'streamable-http': '/mcp' } }));
  const holder = new BackendMonitor({
    catalog: new FakeCatalog([svc]) as unknown as BackendMonitorOptions['catalog'],
    intervalMs: 0,
    timeoutMs: 5000,
    shared,
    log,
  });
  cleanups.push(() => holder.stop());
  holder.start();
  await holder.settled();
  assert.equal(holder.snapshot('svc').health.status, 'healthy');
  const moved = { ...svc, url: 'http://127.0.0.1:1' };
  const elsewhere = new BackendMonitor({
    catalog: new FakeCatalog([moved]) as unknown as BackendMonitorOptions['catalog'],
    intervalMs: 0,
    timeoutMs: 5000,
    lease: new FakeLease(false),
    shared,
    log,
  });
  assert.equal(elsewhere.snapshot('svc').health.status, 'unknown', 'a result about another backend is not this one’s');
});
