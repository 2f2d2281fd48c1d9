import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { RedisServer } from '../../test/redis-server.ts';
import { createLogger } from '../log.ts';
import { heard, runRecordStoreContract, runWatchedStoreContract, type ContractValue } from './contract.ts';
import { MirroredRedisStore, redactUrl } from './redis-mirror.ts';

const log = createLogger('silent');
const redis = new RedisServer();
before(() => redis.start());
after(() => redis.stop());

const open = (namespace: string, now?: () => number) =>
  MirroredRedisStore.open<ContractValue>({ url: redis.url, namespace, log, ...(now ? { now } : {}), heartbeatMs: 200 });

runRecordStoreContract('redis, mirrored', async () => {
  const namespace = `contract-${randomUUID()}`;
  return { open: (now) => open(namespace, now), dispose: async () => {} };
});

runWatchedStoreContract('redis, mirrored', 'server', async () => {
  const namespace = `watched-${randomUUID()}`;
  return {
    shared: true,
    open: (now) => open(namespace, now),
    dispose: async () => {},
    server: {
      removeUnannounced: async (key) => void (await redis.command('DEL', `mcpgw:{${namespace}}:r:${key}`)),
      cutSubscribers: async () => void (await redis.command('CLIENT', 'KILL', 'TYPE', 'pubsub')),
      stop: () => redis.stop(),
      start: () => redis.start(),
    },
  };
});

test('the Redis URL is redacted for logs', () => {
  assert.equal(redactUrl('redis://user:s3cret@cache:6379/0'), 'redis://user:***@cache:6379/0');
  assert.equal(redactUrl('rediss://:s3cret@cache:6380'), 'rediss://:***@cache:6380');
  assert.equal(redactUrl('redis://cache:6379'), 'redis://cache:6379');
});

test("staleness: a write on one replica reaches the other replica's peek (p50/p99 over 1000 writes, printed, not asserted)", async (t) => {
  const namespace = `staleness-${randomUUID()}`;
  const [a, b] = await Promise.all([open(namespace), open(namespace)]);
  try {
    const samples: number[] = [];
    const expiresAt = Date.now() + 600_000;
    for (let i = 0; i < 1000; i++) {
      const key = `k${i}`;
      const seen = heard(b, key);
      const started = process.hrtime.bigint();
      const created = await a.create(key, { name: 'x', tags: [], nested: { n: i } }, { expiresAt });
      assert.ok(created.ok);
      await seen;
      samples.push(Number(process.hrtime.bigint() - started) / 1e6);
      assert.equal(b.peek(key)?.version, created.record.version);
    }
    samples.sort((x, y) => x - y);
    const at = (q: number) => samples[Math.min(samples.length - 1, Math.floor(q * samples.length))]!.toFixed(2);
    t.diagnostic(`write on A -> peek on B: p50 ${at(0.5)} ms, p99 ${at(0.99)} ms, max ${at(1)} ms (loopback, 1000 writes)`);
  } finally {
    await a.close();
    await b.close();
  }
});
