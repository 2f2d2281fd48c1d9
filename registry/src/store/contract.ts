import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { RecordStore } from './record-store.ts';

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
    const opened: RecordStore<ContractValue>[] = [];
    const backings: ContractBacking[] = [];
    const fresh = async () => {
      const backing = await makeBacking();
      backings.push(backing);
      const open = async () => {
        const store = await backing.open(now);
        opened.push(store);
        return store;
      };
      return { store: await open(), reopen: open };
    };
    const value = (n: number, name = `v${n}`): ContractValue => ({ name, tags: ['a', 'b'], nested: { n } });
    const life = () => ({ expiresAt: clock + HOUR });
    after(async () => {
      for (const store of opened) await store.close();
      for (const backing of backings) await backing.dispose();
    });

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
