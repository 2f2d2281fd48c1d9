import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { RedisServer } from '../../test/redis-server.ts';
import { GatewayError } from '../errors.ts';
import { createLogger } from '../log.ts';
import { FileRecordStore } from './file-store.ts';
import { LocalLease, RedisLease } from './lease.ts';
import { Stores } from './open.ts';
import { MirroredRedisStore } from './redis-mirror.ts';
import { RedisRecordStore } from './redis-store.ts';

const log = createLogger('silent');
const stateDir = () => mkdtempSync(join(tmpdir(), 'mcpgw-stores-'));
const redis = new RedisServer();
after(() => redis.stop());

test('without REDIS_URL: file stores under STATE_DIR and a LocalLease, always up', async () => {
  const stores = new Stores({ stateDir: stateDir(), redis: undefined, log });
  assert.ok((await stores.watched('sessions')) instanceof FileRecordStore);
  assert.ok((await stores.plain('idp')) instanceof FileRecordStore);
  assert.ok(stores.lease('job') instanceof LocalLease);
  assert.equal(stores.isUp(), true);
  await stores.close();
});

test('with REDIS_URL: mirrored and plain Redis stores and a RedisLease; isUp follows Redis, onUpChange tells', async () => {
  await redis.start();
  const stores = new Stores({ stateDir: stateDir(), redis: { url: redis.url, startTimeoutMs: 5000 }, log });
  try {
    assert.ok((await stores.watched('sessions')) instanceof MirroredRedisStore);
    assert.ok((await stores.plain('idp')) instanceof RedisRecordStore);
    assert.ok(stores.lease('job') instanceof RedisLease);
    assert.equal(stores.isUp(), true);
    const changes: boolean[] = [];
    stores.onUpChange((up) => changes.push(up));
    await redis.stop();
    await waitFor(() => changes.includes(false));
    assert.equal(stores.isUp(), false);
    await redis.start();
    await waitFor(() => changes.at(-1) === true, 10_000);
    assert.equal(stores.isUp(), true);
  } finally {
    await stores.close();
  }
});

test('Redis unreachable at start: retried with a log line, then STORE_UNAVAILABLE naming the setting, never the password', async () => {
  const lines: string[] = [];
  const capture = pino({ level: 'info' }, new Writable({ write: (chunk, _enc, done) => void (lines.push(String(chunk)), done()) }));
  const nobody = new RedisServer();
  await nobody.start();
  const url = `redis://:s3cret@127.0.0.1:${nobody.port}`;
  await nobody.stop();
  const stores = new Stores({ stateDir: stateDir(), redis: { url, startTimeoutMs: 2500 }, log: capture });
  const started = Date.now();
  await assert.rejects(stores.watched('sessions'), (err: unknown) => {
    assert.ok(err instanceof GatewayError && err.code === 'STORE_UNAVAILABLE');
    assert.match(err.message, /REDIS_START_TIMEOUT_SECONDS/);
    assert.doesNotMatch(err.message, /s3cret/);
    return true;
  });
  assert.ok(Date.now() - started >= 1000, 'it retried');
  assert.ok(lines.some((l) => l.includes('Redis cannot be reached yet; retrying')));
  assert.ok(!lines.join('').includes('s3cret'), 'the password is never logged');
  await stores.close();
});

test('Redis comes up while the start waits: the store opens', async () => {
  const late = new RedisServer();
  await late.start();
  const url = late.url;
  await late.stop();
  const stores = new Stores({ stateDir: stateDir(), redis: { url, startTimeoutMs: 10_000 }, log });
  const opening = stores.watched('sessions');
  await new Promise((resolve) => setTimeout(resolve, 1200));
  await late.start();
  try {
    assert.ok((await opening) instanceof MirroredRedisStore);
  } finally {
    await stores.close();
    await late.stop();
  }
});

async function waitFor(check: () => boolean, ms = 5000): Promise<void> {
  const start = Date.now();
  while (!check()) {
    if (Date.now() - start > ms) throw new Error(`not within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
