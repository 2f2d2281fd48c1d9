import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { createLogger } from '../log.ts';
import { FileRecordStore } from '../store/file-store.ts';
import { Catalog, definitionVersion, type CatalogRecord } from './catalog.ts';
import type { ServerDefinition } from './server-definition.ts';

const log = createLogger('silent');
const good = (name: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ name, url: 'http://127.0.0.1:9000', transports: { 'streamable-http': '/mcp' }, enabled: true, ...extra });

function folder(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'mcpgw-seed-'));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

/** One shared store, as every replica sees it (Redis's mirror in production). */
function sharedStore(dir = mkdtempSync(join(tmpdir(), 'mcpgw-shared-catalog-'))): FileRecordStore<CatalogRecord> {
  return new FileRecordStore<CatalogRecord>({ dir, log });
}

const edited = (def: ServerDefinition | undefined, description: string): ServerDefinition => ({ ...(def as ServerDefinition), description });

test('replicas on one store see one catalog, and a change on one is announced on the other', async () => {
  const store = sharedStore();
  const dir = folder({ 'svc.json': good('svc') });
  const a = await Catalog.openShared({ dir, store, log });
  const b = await Catalog.openShared({ dir, store, log });
  assert.equal(a.shared, true);
  assert.deepEqual(
    b.list().map((d) => d.name),
    ['svc'],
  );
  const heard = once(b, 'changed');
  await a.setEnabled('svc', false);
  const [defs] = (await heard) as [ServerDefinition[]];
  assert.equal(defs[0]?.enabled, false);
  assert.equal(b.get('svc')?.enabled, false);

  const registered = once(a, 'changed');
  await b.create({ ...(a.get('svc') as ServerDefinition), name: 'other' });
  await registered;
  assert.deepEqual(
    a.list().map((d) => d.name),
    ['other', 'svc'],
  );
  assert.equal(readFileSync(join(dir, 'svc.json'), 'utf8'), good('svc'), 'edits are not written back to the seed files');
  await assert.rejects(a.create({ ...(a.get('svc') as ServerDefinition), name: 'other' }), { code: 'SERVER_EXISTS' });
  await a.close();
  await b.close();
  await store.close();
});

test('two replicas editing one version at once: exactly one wins, the other gets SERVER_CHANGED', async () => {
  const store = sharedStore();
  const dir = folder({ 'svc.json': good('svc') });
  const a = await Catalog.openShared({ dir, store, log });
  const b = await Catalog.openShared({ dir, store, log });
  for (let round = 0; round < 20; round++) {
    const version = definitionVersion(a.get('svc') as ServerDefinition);
    const results = await Promise.allSettled([
      a.replace('svc', edited(a.get('svc'), `a${round}`), version),
      b.replace('svc', edited(b.get('svc'), `b${round}`), version),
    ]);
    const won = results.filter((r) => r.status === 'fulfilled');
    const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    assert.equal(won.length, 1, `round ${round}: one edit wins`);
    assert.equal((lost[0]?.reason as { code?: string }).code, 'SERVER_CHANGED');
    assert.equal(a.get('svc')?.description, b.get('svc')?.description);
  }
  // Concurrent creates of one name: one registers it, the other is told it exists.
  const twin = { ...(a.get('svc') as ServerDefinition), name: 'twin' };
  const created = await Promise.allSettled([a.create(twin), b.create(twin)]);
  assert.deepEqual(created.map((r) => r.status).sort(), ['fulfilled', 'rejected']);
  assert.equal(((created.find((r) => r.status === 'rejected') as PromiseRejectedResult).reason as { code?: string }).code, 'SERVER_EXISTS');
  // Toggles without a version are retried on a lost compare-and-set: both land, last one in force.
  await Promise.all([a.setEnabled('svc', false), b.setEnabled('svc', false)]);
  assert.equal(a.get('svc')?.enabled, false);
  await a.close();
  await b.close();
  await store.close();
});

test('files are a seed: page edits survive restarts until the file itself changes', async () => {
  const storeDir = mkdtempSync(join(tmpdir(), 'mcpgw-shared-catalog-'));
  const dir = folder({ 'svc.json': good('svc') });
  let store = sharedStore(storeDir);
  let catalog = await Catalog.openShared({ dir, store, log });
  await catalog.replace('svc', edited(catalog.get('svc'), 'from the page'));
  await catalog.close();
  await store.close();

  // A restart with the same file: the page's edit stays.
  store = sharedStore(storeDir);
  catalog = await Catalog.openShared({ dir, store, log });
  assert.equal(catalog.get('svc')?.description, 'from the page');
  await catalog.close();
  await store.close();

  // The file changed while we were down: the file wins.
  writeFileSync(join(dir, 'svc.json'), good('svc', { description: 'from the file' }));
  store = sharedStore(storeDir);
  catalog = await Catalog.openShared({ dir, store, log });
  assert.equal(catalog.get('svc')?.description, 'from the file');

  // Deleted through the API: the unchanged file does not bring it back at the next start...
  await catalog.delete('svc');
  assert.equal(catalog.get('svc'), undefined);
  await catalog.close();
  await store.close();
  store = sharedStore(storeDir);
  catalog = await Catalog.openShared({ dir, store, log });
  assert.equal(catalog.get('svc'), undefined);
  // ...it can be registered again by name...
  await catalog.create(JSON.parse(good('svc', { description: 'again' })) as ServerDefinition);
  assert.equal(catalog.get('svc')?.description, 'again');
  await catalog.delete('svc');
  await catalog.close();
  await store.close();
  // ...and a change of the file brings it back.
  writeFileSync(join(dir, 'svc.json'), good('svc', { description: 'file edited again' }));
  store = sharedStore(storeDir);
  catalog = await Catalog.openShared({ dir, store, log });
  assert.equal(catalog.get('svc')?.description, 'file edited again');
  await catalog.close();
  await store.close();
});

test('replicas seeding the same files at once write each file once and agree', async () => {
  const store = sharedStore();
  const dir = folder({ 'a.json': good('a'), 'b.json': good('b'), 'bad.json': '{' });
  const writes: string[] = [];
  store.onChange((key) => writes.push(key));
  const replicas = await Promise.all([1, 2, 3, 4].map(() => Catalog.openShared({ dir, store, log })));
  assert.deepEqual(writes.sort(), ['a', 'b'], 'one write per file, whoever seeded first');
  for (const replica of replicas) {
    assert.deepEqual(
      replica.list().map((d) => d.name),
      ['a', 'b'],
    );
    assert.deepEqual(
      replica.problems().map((p) => p.file),
      ['bad.json'],
    );
  }
  await Promise.all(replicas.map((r) => r.close()));
  await store.close();
});

test('the watcher applies a changed file at once, and a removed file deletes nothing', async () => {
  const store = sharedStore();
  const dir = folder({ 'svc.json': good('svc') });
  const catalog = await Catalog.openShared({ dir, store, log });
  const other = await Catalog.openShared({ dir: folder({}), store, log });
  catalog.watch();
  try {
    await new Promise((r) => setTimeout(r, 200));
    await catalog.replace('svc', edited(catalog.get('svc'), 'from the page'));
    const heard = once(other, 'changed');
    writeFileSync(join(dir, 'svc.json'), good('svc', { description: 'edited on disk' }));
    await heard;
    assert.equal(other.get('svc')?.description, 'edited on disk', 'the file wins when it changes, on every replica');

    writeFileSync(join(dir, 'svc.json'), '{ "name": "svc", broken');
    await waitFor(() => catalog.problems().length === 1);
    assert.equal(catalog.get('svc')?.description, 'edited on disk', 'last good definition stays');

    rmSync(join(dir, 'svc.json'));
    await waitFor(() => catalog.problems().length === 0);
    assert.equal(catalog.get('svc')?.description, 'edited on disk', 'removing the file deletes nothing');
  } finally {
    await catalog.close();
    await other.close();
    await store.close();
  }
});

test('a file that cannot be applied while the store is unreachable is reported, and applied when it is back', async () => {
  const store = sharedStore();
  let down = true;
  const flaky = new Proxy(store, {
    get(target, property) {
      if (property === 'get' && down)
        return async () => Promise.reject(Object.assign(new Error('redis record store: unreachable'), { code: 'STORE_UNAVAILABLE' }));
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
  const catalog = await Catalog.openShared({ dir: folder({ 'svc.json': good('svc') }), store: flaky, log, seedRetryMs: 50 });
  try {
    assert.equal(catalog.get('svc'), undefined);
    assert.match(catalog.problems()[0]?.message ?? '', /could not be applied to the shared catalog: redis record store: unreachable/);
    down = false;
    await waitFor(() => catalog.get('svc') !== undefined);
    assert.deepEqual(catalog.problems(), []);
  } finally {
    await catalog.close();
    await store.close();
  }
});

test('a definition in the store that this replica cannot validate is ignored; the last good one stays', async () => {
  const store = sharedStore();
  const catalog = await Catalog.openShared({ dir: folder({ 'svc.json': good('svc') }), store, log });
  try {
    const current = store.peek('svc');
    assert.ok(current);
    await store.compareAndSet(
      'svc',
      current.version,
      { ...current.value, definition: { ...(current.value.definition as ServerDefinition), url: 'http://h;evil' } },
      { expiresAt: Date.now() + 60_000 },
    );
    assert.equal(catalog.get('svc')?.url, 'http://127.0.0.1:9000');
  } finally {
    await catalog.close();
    await store.close();
  }
});

async function waitFor(predicate: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 20));
  }
}
