import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { freePort } from '../../../servers/shared/free-port.ts';
import { RedisServer } from '../../test/redis-server.ts';
import { GatewayError } from '../errors.ts';
import { createLogger } from '../log.ts';
import { runRecordStoreContract, type ContractValue } from './contract.ts';
import { RedisRecordStore } from './redis-store.ts';

const log = createLogger('silent');

/** One throwaway redis-server for this file: loopback, an ephemeral port, nothing written to disk. */
const redis = new RedisServer();
const startRedis = () => redis.start();
const stopRedis = () => redis.stop();
before(startRedis);
after(stopRedis);

const url = () => redis.url;

runRecordStoreContract('redis', async () => {
  // A namespace per backing: a restart is a new client on the same server and namespace.
  const namespace = `contract-${randomUUID()}`;
  return {
    open: (now) => RedisRecordStore.open<ContractValue>({ url: url(), namespace, log, now }),
    dispose: async () => {},
  };
});

test('keys are namespaced: two stores on one server do not see each other, and a key never leaves its namespace', async () => {
  const a = await RedisRecordStore.open<{ n: number }>({ url: url(), namespace: `a-${randomUUID()}`, log });
  const b = await RedisRecordStore.open<{ n: number }>({ url: url(), namespace: `b*[${randomUUID()}`, log });
  try {
    const expiresAt = Date.now() + 60_000;
    assert.ok((await a.create('k', { n: 1 }, { expiresAt })).ok);
    assert.ok((await b.create('k', { n: 2 }, { expiresAt })).ok);
    assert.equal((await a.get('k'))?.value.n, 1);
    assert.equal((await b.get('k'))?.value.n, 2);
    assert.deepEqual(
      (await a.list()).map((r) => r.key),
      ['k'],
    );
    assert.deepEqual(
      (await b.list()).map((r) => r.key),
      ['k'],
    );
  } finally {
    await a.close();
    await b.close();
  }
});

test('Redis down: every operation rejects with STORE_UNAVAILABLE and nothing is reported as stored; Redis back: the store works again', async () => {
  const store = await RedisRecordStore.open<{ n: number }>({ url: url(), namespace: `outage-${randomUUID()}`, log });
  try {
    const expiresAt = Date.now() + 60_000;
    const kept = await store.create('before', { n: 1 }, { expiresAt });
    assert.ok(kept.ok);

    await stopRedis();
    const isUnavailable = (err: unknown) => err instanceof GatewayError && err.code === 'STORE_UNAVAILABLE' && err.status === 503 && /redis/.test(err.message);
    await assert.rejects(store.get('before'), isUnavailable, 'no stale answer');
    await assert.rejects(store.create('during', { n: 2 }, { expiresAt }), isUnavailable);
    await assert.rejects(store.compareAndSet('before', kept.record.version, { n: 3 }, { expiresAt }), isUnavailable);
    await assert.rejects(store.destroy('before'), isUnavailable);
    await assert.rejects(store.list(), isUnavailable);

    // The same port again (an empty server: this one keeps nothing on disk).
    await startRedis();
    await store.ready();
    assert.equal(await store.get('during'), undefined, 'the rejected create stored nothing');
    const again = await store.create('after', { n: 4 }, { expiresAt });
    assert.ok(again.ok);
    assert.ok(again.record.version > kept.record.version, 'versions keep growing (the counter is raised to the clock)');
    assert.deepEqual(
      (await store.list()).map((r) => r.key),
      ['after'],
    );
  } finally {
    await store.close();
  }
});

test('open rejects with STORE_UNAVAILABLE when nothing listens', async () => {
  const nobody = await freePort();
  await assert.rejects(
    RedisRecordStore.open({ url: `redis://127.0.0.1:${nobody}`, namespace: 'x', log }),
    (err: unknown) => err instanceof GatewayError && err.code === 'STORE_UNAVAILABLE',
  );
});

test('close waits for the operations in flight', async () => {
  const store = await RedisRecordStore.open<{ n: number }>({ url: url(), namespace: `close-${randomUUID()}`, log });
  const expiresAt = Date.now() + 60_000;
  const writes = Array.from({ length: 20 }, (_, i) => store.create(`k${i}`, { n: i }, { expiresAt }));
  await store.close();
  assert.ok((await Promise.all(writes)).every((w) => w.ok));
  await assert.rejects(store.get('k0'), /closed/);
});
