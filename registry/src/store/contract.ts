import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { GatewayError } from '../errors.ts';
import type { RecordStore, StoreHealth, StoredRecord, WatchedRecordStore } from './record-store.ts';

/** The value the contract stores: nested, so copying and freezing are tested below the top level. */
export interface ContractValue {
  name: string;
  tags: string[];
  nested: { n: number };
}

/** What one implementation gives the contract. */
export interface ContractBacking {
  /**
   * Opens a store over the backing storage (the folder, the Redis database) with the
   * contract's clock. A second call is a restart: a new store over what the first one wrote,
   * opened without closing the first, so only what was committed can be seen.
   */
  open(now: () => number): Promise<RecordStore<ContractValue>>;
  /** Removes the backing storage. */
  dispose(): Promise<void>;
}

/** Far enough apart that no test reaches an expiry by accident; the clock only moves when a test moves it. */
const HOUR = 3_600_000;
const ROUNDS = 60;

/**
 * The contract every RecordStore implementation passes (oauth2-proxy's `RunSessionStoreTests`
 * pattern): create/get/compareAndSet/destroy/list, expiry, copies, and the races that matter —
 * two writers on one version, destroy against a write, refresh against logout — each checked
 * again after a restart. Not a *.test.ts file, so the Redis store's test can import it.
 */
export function runRecordStoreContract(name: string, makeBacking: () => Promise<ContractBacking>): void {
  describe(`record store contract: ${name}`, () => {
    let clock = Date.UTC(2026, 0, 1);
    const now = () => clock;
    const pool = backingPool<RecordStore<ContractValue>, ContractBacking>(makeBacking, now);
    const fresh = async () => {
      const { store, open } = await pool();
      return { store, reopen: open };
    };
    const value = (n: number, name = `v${n}`): ContractValue => ({ name, tags: ['a', 'b'], nested: { n } });
    const life = () => ({ expiresAt: clock + HOUR });

    test('create then get returns a copy with a version, createdAt and expiresAt; a second create of the key fails and returns the record', async () => {
      const { store } = await fresh();
      const created = await store.create('k', value(1), life());
      assert.ok(created.ok);
      assert.ok(Number.isSafeInteger(created.record.version) && created.record.version > 0);
      assert.equal(created.record.createdAt, clock);
      assert.equal(created.record.expiresAt, clock + HOUR);
      assert.deepEqual((await store.get('k'))?.value, value(1));
      const again = await store.create('k', value(2), life());
      assert.equal(again.ok, false);
      assert.equal(!again.ok && again.current?.version, created.record.version);
      assert.deepEqual((await store.get('k'))?.value, value(1), 'the failed create changed nothing');
      assert.equal(await store.get('absent'), undefined);
    });

    test('compareAndSet with the current version replaces the value with a higher version and keeps createdAt', async () => {
      const { store } = await fresh();
      const created = await store.create('k', value(1), life());
      assert.ok(created.ok);
      clock += 1000;
      const updated = await store.compareAndSet('k', created.record.version, value(2), { expiresAt: clock + 2 * HOUR });
      assert.ok(updated.ok);
      assert.ok(updated.record.version > created.record.version);
      assert.equal(updated.record.createdAt, created.record.createdAt);
      assert.equal(updated.record.expiresAt, clock + 2 * HOUR);
      assert.deepEqual((await store.get('k'))?.value, value(2));
    });

    test('compareAndSet with a stale version fails and returns the current record; on a missing key it creates nothing', async () => {
      const { store } = await fresh();
      const created = await store.create('k', value(1), life());
      assert.ok(created.ok);
      const updated = await store.compareAndSet('k', created.record.version, value(2), life());
      assert.ok(updated.ok);
      const stale = await store.compareAndSet('k', created.record.version, value(3), life());
      assert.equal(stale.ok, false);
      assert.ok(!stale.ok);
      assert.equal(stale.current?.version, updated.record.version);
      assert.deepEqual(stale.current?.value, value(2));
      const missing = await store.compareAndSet('nobody', created.record.version, value(4), life());
      assert.deepEqual(missing, { ok: false, current: undefined });
      assert.equal(await store.get('nobody'), undefined);
    });

    test('destroy removes the record once; with a stale expected version it removes nothing', async () => {
      const { store, reopen } = await fresh();
      const a = await store.create('a', value(1), life());
      const b = await store.create('b', value(2), life());
      assert.ok(a.ok && b.ok);
      const bumped = await store.compareAndSet('b', b.record.version, value(3), life());
      assert.ok(bumped.ok);
      assert.equal(await store.destroy('b', b.record.version), false, 'stale version: refused');
      assert.deepEqual((await store.get('b'))?.value, value(3));
      assert.equal(await store.destroy('a'), true);
      assert.equal(await store.destroy('a'), false);
      assert.equal(await store.get('a'), undefined);
      assert.equal(await store.destroy('b', bumped.record.version), true);
      assert.deepEqual(await (await reopen()).list(), []);
    });

    test('list returns exactly the live records', async () => {
      const { store } = await fresh();
      for (let i = 0; i < 5; i++) assert.ok((await store.create(`k${i}`, value(i), { expiresAt: clock + (i + 1) * HOUR })).ok);
      await store.destroy('k0');
      clock += 2 * HOUR; // k1 expires
      const keys = (await store.list()).map((r) => r.key).sort();
      assert.deepEqual(keys, ['k2', 'k3', 'k4']);
      clock -= 2 * HOUR;
    });

    test('values are copies: changing a passed or returned value changes nothing stored, and returned values are deep-frozen', async () => {
      const { store, reopen } = await fresh();
      const mine = value(1);
      const created = await store.create('k', mine, life());
      assert.ok(created.ok);
      mine.tags.push('mine');
      mine.nested.n = 99;
      const read = await store.get('k');
      assert.ok(read);
      assert.deepEqual(read.value, value(1));
      assert.ok(Object.isFrozen(read) && Object.isFrozen(read.value) && Object.isFrozen(read.value.tags) && Object.isFrozen(read.value.nested));
      assert.throws(() => (read.value.tags as string[]).push('x'), TypeError);
      assert.throws(() => ((read.value.nested as { n: number }).n = 5), TypeError);
      const next = value(2);
      const updated = await store.compareAndSet('k', read.version, next, life());
      assert.ok(updated.ok);
      next.nested.n = 42;
      assert.deepEqual((await store.get('k'))?.value, value(2));
      assert.deepEqual((await (await reopen()).get('k'))?.value, value(2), 'and what was written is what was passed at the time');
    });

    test('expired records are invisible to get, list, compareAndSet and destroy; the key can be created again with a higher version', async () => {
      const { store, reopen } = await fresh();
      const created = await store.create('k', value(1), { expiresAt: clock + 1000 });
      assert.ok(created.ok);
      clock += 999;
      assert.ok(await store.get('k'), 'alive 1 ms before its expiry');
      clock += 1;
      assert.equal(await store.get('k'), undefined, 'gone at expiresAt');
      assert.deepEqual(await store.list(), []);
      assert.deepEqual(await store.compareAndSet('k', created.record.version, value(2), life()), { ok: false, current: undefined });
      assert.equal(await store.destroy('k'), false);
      assert.equal(await (await reopen()).get('k'), undefined, 'and after a restart');
      const again = await store.create('k', value(3), life());
      assert.ok(again.ok);
      assert.ok(again.record.version > created.record.version);
    });

    test('a write that is already expired is refused', async () => {
      const { store } = await fresh();
      await assert.rejects(store.create('k', value(1), { expiresAt: clock }), RangeError);
      assert.equal(await store.get('k'), undefined);
    });

    test("two writers with the same version: exactly one wins, and the stored value is the winner's", async () => {
      const { store, reopen } = await fresh();
      for (let round = 0; round < ROUNDS; round++) {
        const key = `k${round}`;
        const created = await store.create(key, value(0), life());
        assert.ok(created.ok);
        const [x, y] = await Promise.all([
          store.compareAndSet(key, created.record.version, value(1, 'x'), life()),
          store.compareAndSet(key, created.record.version, value(2, 'y'), life()),
        ]);
        assert.equal(Number(x.ok) + Number(y.ok), 1, `round ${round}: exactly one writer wins`);
        const winner = x.ok ? x.record : y.ok ? y.record : undefined;
        const loser = x.ok ? y : x;
        assert.ok(winner && !loser.ok);
        assert.equal(loser.current?.version, winner.version, 'the loser is shown the winner');
        assert.deepEqual((await store.get(key))?.value, winner.value);
      }
      const restarted = await reopen();
      assert.equal((await restarted.list()).length, ROUNDS);
    });

    test('destroy racing a write: once both settle the record is gone, and stays gone after a restart (every interleaving)', async () => {
      const { store, reopen } = await fresh();
      const interleavings: Array<(write: () => Promise<unknown>, destroy: () => Promise<unknown>) => Promise<unknown>> = [
        (w, d) => Promise.all([w(), d()]),
        (w, d) => Promise.all([d(), w()]),
        (w, d) => {
          const p = w();
          return Promise.all([p, Promise.resolve().then(d)]);
        },
        (w, d) => {
          const p = w();
          return Promise.all([p, new Promise((r) => setImmediate(r)).then(d)]);
        },
        (w, d) => {
          const p = d();
          return Promise.all([p, new Promise((r) => setImmediate(r)).then(w)]);
        },
        (w, d) => Promise.all([w(), w(), d(), w()]),
      ];
      for (let round = 0; round < ROUNDS; round++) {
        const key = `k${round}`;
        const created = await store.create(key, value(0), life());
        assert.ok(created.ok);
        let n = 0;
        const write = async () => {
          const current = await store.get(key);
          return current ? store.compareAndSet(key, current.version, value(++n), life()) : undefined;
        };
        const destroy = () => store.destroy(key);
        await interleavings[round % interleavings.length]!(write, destroy);
        assert.equal(await store.get(key), undefined, `round ${round}: gone`);
      }
      const restarted = await reopen();
      assert.deepEqual(await restarted.list(), [], 'nothing came back after the restart');
    });

    test('refresh against logout: a write based on a version read before the destroy fails, and nothing comes back, even after a restart', async () => {
      const { store, reopen } = await fresh();
      const created = await store.create('session', value(1), life());
      assert.ok(created.ok);
      const read = await store.get('session');
      assert.ok(read);
      let finishIdpCall!: () => void;
      const slowIdpCall = new Promise<void>((resolve) => (finishIdpCall = resolve));
      const refresh = (async () => {
        await slowIdpCall;
        return store.compareAndSet('session', read.version, { ...read.value, tags: ['refreshed'], nested: { n: 2 } }, life());
      })();
      assert.equal(await store.destroy('session'), true, 'signed out while the refresh is in flight');
      finishIdpCall();
      assert.deepEqual(await refresh, { ok: false, current: undefined });
      assert.equal(await store.get('session'), undefined);
      assert.equal(await (await reopen()).get('session'), undefined);
    });

    test('a restarted store sees exactly what was committed, and its versions keep growing', async () => {
      const { store, reopen } = await fresh();
      const a = await store.create('a', value(1), life());
      const b = await store.create('b', value(2), { expiresAt: clock + 2 * HOUR });
      const c = await store.create('c', value(3), life());
      assert.ok(a.ok && b.ok && c.ok);
      const a2 = await store.compareAndSet('a', a.record.version, value(11), life());
      assert.ok(a2.ok);
      await store.destroy('c');
      const restarted = await reopen();
      const seen = (await restarted.list()).sort((x, y) => x.key.localeCompare(y.key));
      assert.deepEqual(seen, [a2.record, b.record]);
      const c2 = await restarted.create('c', value(4), life());
      assert.ok(c2.ok);
      assert.ok(c2.record.version > Math.max(a2.record.version, b.record.version, c.record.version), 'a re-created key never gets an old version back');
      assert.deepEqual(
        await restarted.compareAndSet('a', a.record.version, value(5), life()),
        { ok: false, current: a2.record },
        'versions read before the restart still compare',
      );
    });
  });
}

/** What an implementation of WatchedRecordStore gives the watched contract. */
export interface WatchedContractBacking {
  /** Opens a store on the backing (a second call: another replica when `shared`, else a restart). */
  open(now: () => number): Promise<WatchedRecordStore<ContractValue>>;
  dispose(): Promise<void>;
  /** Whether two opened stores are replicas of one store (Redis) rather than one process's (files). */
  readonly shared: boolean;
  /** A shared backing's server, for the outage tests. */
  readonly server?: {
    /** Removes a record without announcing it (as a change lost while a subscriber was away). */
    removeUnannounced(key: string): Promise<void>;
    /** Cuts every subscriber connection (they reconnect by themselves). */
    cutSubscribers(): Promise<void>;
    stop(): Promise<void>;
    start(): Promise<void>;
  };
}

/**
 * Resolves when `store.onChange` has been told of `key`: written (at `version` or later, when
 * given), or removed (`'removed'`).
 */
export function heard<T>(store: WatchedRecordStore<T>, key: string, version?: number | 'removed', timeoutMs = 5000): Promise<StoredRecord<T> | undefined> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => (stop(), reject(new Error(`no change of ${key} heard within ${timeoutMs} ms`))), timeoutMs);
    const stop = store.onChange((k, record) => {
      if (k !== key) return;
      if (version === 'removed' ? record !== undefined : record === undefined || record.version < (version ?? 0)) return;
      clearTimeout(timer);
      stop();
      resolve(record);
    });
  });
}

/** Resolves when `store.isUp()` is `up` (at once when it is). */
export function whenUp(store: StoreHealth, up: boolean, timeoutMs = 10_000): Promise<void> {
  if (store.isUp() === up) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => (stop(), reject(new Error(`store not ${up ? 'up' : 'down'} within ${timeoutMs} ms`))), timeoutMs);
    const stop = store.onUpChange((now) => {
      if (now !== up) return;
      clearTimeout(timer);
      stop();
      resolve();
    });
  });
}

/**
 * The contract of WatchedRecordStore on top of the record store's: `peek`/`snapshot` agree with
 * the writes of this instance at once (read-your-writes), `onChange` tells every change once and
 * in order; with a shared backing, a write on one replica reaches the other's `peek` by the time
 * its `onChange` fires, racing destroys leave no copy holding the key, a subscriber that was away
 * is resynced, and reads fail closed (STORE_UNAVAILABLE) while the server is down.
 */
/**
 * `kind` says what the backing is, so the suite defines the tests that apply to it and no other
 * (never a skipped test): `single` (one process, files), `shared` (replicas of one store), or
 * `server` (shared, on a server the suite can cut and stop).
 */
export function runWatchedStoreContract(name: string, kind: 'single' | 'shared' | 'server', makeBacking: () => Promise<WatchedContractBacking>): void {
  const shared = kind !== 'single';
  const server = kind === 'server';
  describe(`watched store contract: ${name}`, () => {
    let clock = Date.UTC(2026, 0, 1);
    const now = () => clock;
    const value = (n: number): ContractValue => ({ name: `v${n}`, tags: ['a'], nested: { n } });
    const life = () => ({ expiresAt: clock + HOUR });
    const fresh = backingPool<WatchedRecordStore<ContractValue>, WatchedContractBacking>(makeBacking, now);

    test('its own writes: peek and snapshot see them once the write resolves, and onChange tells each once, in order', async () => {
      const { store } = await fresh();
      const told: Array<[string, number | undefined]> = [];
      const unsubscribe = store.onChange((key, record) => told.push([key, record?.version]));
      const a = await store.create('a', value(1), life());
      assert.ok(a.ok);
      assert.equal(store.peek('a'), a.record, 'read-your-writes');
      const a2 = await store.compareAndSet('a', a.record.version, value(2), life());
      assert.ok(a2.ok);
      assert.deepEqual(store.peek('a')?.value, value(2));
      const b = await store.create('b', value(3), life());
      assert.ok(b.ok);
      assert.deepEqual(
        store
          .snapshot()
          .map((r) => r.key)
          .sort(),
        ['a', 'b'],
      );
      assert.equal(await store.destroy('a'), true);
      assert.equal(store.peek('a'), undefined);
      await new Promise((resolve) => setTimeout(resolve, 50)); // the announcements of its own writes, heard back, change nothing
      assert.deepEqual(told, [
        ['a', a.record.version],
        ['a', a2.record.version],
        ['b', b.record.version],
        ['a', undefined],
      ]);
      unsubscribe();
      await store.destroy('b');
      assert.equal(told.length, 4, 'unsubscribed');
    });

    test('peek and snapshot never return an expired record', async () => {
      const { store } = await fresh();
      const short = await store.create('short', value(1), { expiresAt: clock + 1000 });
      const long = await store.create('long', value(2), life());
      assert.ok(short.ok && long.ok);
      assert.ok(store.peek('short'));
      clock += 1000;
      try {
        assert.equal(store.peek('short'), undefined, 'gone at expiresAt');
        assert.deepEqual(
          store.snapshot().map((r) => r.key),
          ['long'],
        );
      } finally {
        clock -= 1000;
      }
    });

    if (shared)
      test('a write on one replica reaches the other replica: its onChange fires and its peek returns the record', async () => {
        const { backing, store: a, open } = await fresh();
        assert.ok(backing.shared, 'a shared backing');
        const b = await open();
        const seen = heard(b, 'k');
        const created = await a.create('k', value(1), life());
        assert.ok(created.ok);
        assert.equal((await seen)?.version, created.record.version);
        assert.deepEqual(b.peek('k'), created.record);
        const gone = heard(b, 'k', 'removed');
        assert.equal(await a.destroy('k'), true);
        await gone;
        assert.equal(b.peek('k'), undefined);
      });

    if (shared)
      test('destroy racing writes from two replicas: once all settle, neither copy holds the key', async () => {
        const { backing, store: a, open } = await fresh();
        assert.ok(backing.shared, 'a shared backing');
        const b = await open();
        for (let round = 0; round < ROUNDS; round++) {
          const key = `k${round}`;
          const created = await a.create(key, value(0), life());
          assert.ok(created.ok);
          const write = async (store: WatchedRecordStore<ContractValue>, n: number) => {
            const current = await store.get(key);
            return current ? store.compareAndSet(key, current.version, value(n), life()) : undefined;
          };
          await Promise.all([write(a, 1), write(b, 2), round % 2 ? a.destroy(key) : b.destroy(key), write(b, 3), write(a, 4)]);
          // Messages arrive in order: once each has heard a marker written after, each heard everything before it.
          await Promise.all([heardMarker(a, b, round), heardMarker(b, a, round)]);
          assert.equal(a.peek(key), undefined, `round ${round}: gone from a`);
          assert.equal(b.peek(key), undefined, `round ${round}: gone from b`);
        }
      });

    if (server)
      test('a subscriber that was away is resynced: changes it could not hear show, removed keys disappear', async () => {
        const { backing, store: a, open } = await fresh();
        assert.ok(backing.server, 'a backing with a server');
        const b = await open();
        const kept = await a.create('kept', value(1), life());
        const doomed = await a.create('doomed', value(2), life());
        assert.ok(kept.ok && doomed.ok);
        await heardMarker(a, b, -1);
        assert.ok(b.peek('doomed'));
        await backing.server.removeUnannounced('doomed');
        assert.ok(b.peek('doomed'), 'not announced: still in the copy');
        const removed = heard(b, 'doomed', 'removed');
        const down = whenUp(health(b), false);
        await backing.server.cutSubscribers();
        await down;
        await whenUp(health(b), true);
        await removed;
        assert.equal(b.peek('doomed'), undefined, 'the resync removed it');
        assert.deepEqual(b.peek('kept'), kept.record);
      });

    if (server)
      test('while the server is down peek and snapshot throw STORE_UNAVAILABLE; when it is back they answer again', async () => {
        const { backing, store } = await fresh();
        assert.ok(backing.server, 'a backing with a server');
        assert.ok((await store.create('k', value(1), life())).ok);
        const down = whenUp(health(store), false);
        await backing.server.stop();
        await down;
        const unavailable = (err: unknown) => err instanceof GatewayError && err.code === 'STORE_UNAVAILABLE';
        assert.throws(() => store.peek('k'), unavailable);
        assert.throws(() => store.snapshot(), unavailable);
        await backing.server.start();
        await whenUp(health(store), true);
        const again = await store.create('after', value(2), life());
        assert.ok(again.ok);
        assert.deepEqual(store.peek('after'), again.record);
      });
  });
}

/** A shared backing's stores report their health (the file store too: always up). */
function health(store: WatchedRecordStore<ContractValue>): StoreHealth {
  const candidate = store as Partial<StoreHealth>;
  assert.ok(typeof candidate.isUp === 'function' && typeof candidate.onUpChange === 'function', 'the store reports isUp() and onUpChange()');
  return candidate as StoreHealth;
}

async function heardMarker(writer: WatchedRecordStore<ContractValue>, listener: WatchedRecordStore<ContractValue>, round: number): Promise<void> {
  const key = `marker-${round}-${Math.random()}`;
  const seen = heard(listener, key);
  assert.ok((await writer.create(key, { name: 'm', tags: [], nested: { n: 0 } }, { expiresAt: Date.UTC(2026, 0, 1) + HOUR })).ok);
  await seen;
}

/**
 * A suite's backings and the stores opened on them: each call makes a fresh backing and opens a
 * store on it (`open` opens another: a restart, or a replica); after the suite every store is
 * closed, then every backing disposed.
 */
function backingPool<S extends { close(): Promise<void> }, B extends { open(now: () => number): Promise<S>; dispose(): Promise<void> }>(
  makeBacking: () => Promise<B>,
  now: () => number,
): () => Promise<{ backing: B; store: S; open: () => Promise<S> }> {
  const opened: S[] = [];
  const backings: B[] = [];
  after(async () => {
    for (const store of opened) await store.close();
    for (const backing of backings) await backing.dispose();
  });
  return async () => {
    const backing = await makeBacking();
    backings.push(backing);
    const open = async () => {
      const store = await backing.open(now);
      opened.push(store);
      return store;
    };
    return { backing, store: await open(), open };
  };
}
