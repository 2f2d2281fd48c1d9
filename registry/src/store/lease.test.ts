import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { randomUUID } from 'node:crypto';
import { RedisServer } from '../../test/redis-server.ts';
import { createLogger } from '../log.ts';
import { LocalLease, RedisLease, type Lease } from './lease.ts';

const log = createLogger('silent');
const redis = new RedisServer();
before(() => redis.start());
after(() => redis.stop());

const TTL = 600;

/** Resolves when `lease.held()` is `held` (at once when it is). */
function whenHeld(lease: Lease, held: boolean, timeoutMs = 5000): Promise<number> {
  const started = Date.now();
  if (lease.held() === held) return Promise.resolve(0);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => (stop(), reject(new Error(`lease not ${held ? 'held' : 'lost'} within ${timeoutMs} ms`))), timeoutMs);
    const stop = lease.onChange((now) => {
      if (now !== held) return;
      clearTimeout(timer);
      stop();
      resolve(Date.now() - started);
    });
  });
}

test('a LocalLease is always held', async () => {
  const lease = new LocalLease();
  assert.equal(lease.held(), true);
  lease.onChange(() => assert.fail('never changes'))();
  await lease.close();
});

test('exactly one holder among three contenders, at every moment; when it closes another takes over', async () => {
  const name = `job-${randomUUID()}`;
  const leases = [0, 1, 2].map(() => new RedisLease({ url: redis.url, name, log, ttlMs: TTL }));
  try {
    await Promise.race(leases.map((l) => whenHeld(l, true)));
    for (let i = 0; i < 20; i++) {
      assert.equal(leases.filter((l) => l.held()).length, 1, `sample ${i}: one holder`);
      await new Promise((resolve) => setTimeout(resolve, TTL / 6));
    }
    const holder = leases.find((l) => l.held())!;
    const others = leases.filter((l) => l !== holder);
    await holder.close();
    await Promise.race(others.map((l) => whenHeld(l, true)));
    assert.equal(others.filter((l) => l.held()).length, 1);
  } finally {
    await Promise.all(leases.map((l) => l.close()));
  }
});

test('the holder is SIGKILLed: another replica takes the lease within about a ttl', async (t) => {
  const name = `job-${randomUUID()}`;
  const script = `
    import { RedisLease } from ${JSON.stringify(new URL('./lease.ts', import.meta.url).href)};
    import { createLogger } from ${JSON.stringify(new URL('../log.ts', import.meta.url).href)};
    const lease = new RedisLease({ url: ${JSON.stringify(redis.url)}, name: ${JSON.stringify(name)}, log: createLogger('silent'), ttlMs: ${TTL} });
    const timer = setInterval(() => { if (lease.held()) { console.log('held'); clearInterval(timer); } }, 10);
    setInterval(() => {}, 1000);
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (chunk: Buffer) => String(chunk).includes('held') && resolve());
      child.once('exit', (code) => reject(new Error(`the holder exited (${code}) before it held the lease`)));
    });
    const successor = new RedisLease({ url: redis.url, name, log, ttlMs: TTL });
    try {
      await new Promise((resolve) => setTimeout(resolve, TTL * 2));
      assert.equal(successor.held(), false, 'the live holder keeps it');
      const exited = once(child, 'exit');
      child.kill('SIGKILL');
      await exited;
      const tookMs = await whenHeld(successor, true, TTL * 4);
      t.diagnostic(`takeover ${tookMs} ms after SIGKILL (ttl ${TTL} ms)`);
      assert.ok(tookMs <= TTL * 2, `took ${tookMs} ms`);
    } finally {
      await successor.close();
    }
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
});

test('Redis stops: the holder counts the lease lost before its ttl ends; Redis back: it is taken again', async () => {
  const lease = new RedisLease({ url: redis.url, name: `job-${randomUUID()}`, log, ttlMs: TTL });
  try {
    await whenHeld(lease, true);
    await redis.stop();
    const lostMs = await whenHeld(lease, false, TTL * 2);
    assert.ok(lostMs < TTL, `lost after ${lostMs} ms`);
    await redis.start();
    await whenHeld(lease, true, 10_000);
  } finally {
    await lease.close();
  }
});
