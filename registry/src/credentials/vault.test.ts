import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { createClient } from 'redis';
import { RedisServer } from '../../test/redis-server.ts';
import { GatewayError } from '../errors.ts';
import { createLogger } from '../log.ts';
import { heard } from '../store/contract.ts';
import { FileRecordStore, MirroredRedisStore } from '../store/index.ts';
import { KeyRing } from './key-ring.ts';
import { Vault, type CredentialRecord } from './vault.ts';

const silent = createLogger('silent');
const key = (id: string) => ({ id, secret: randomBytes(32).toString('base64url') });
/** A plaintext no sealed value, key or id could contain by chance. */
const plaintext = () => `PLAINTEXT-${randomUUID()}`;

function capture(): { log: ReturnType<typeof createLogger>; lines: string[] } {
  const lines: string[] = [];
  const log = pino({ level: 'info' }, new Writable({ write: (chunk, _enc, done) => void (lines.push(String(chunk)), done()) }));
  return { log, lines };
}

function fileVault(ring: KeyRing, dir = mkdtempSync(join(tmpdir(), 'mcpgw-vault-')), log = silent) {
  const store = new FileRecordStore<CredentialRecord>({ dir, log });
  return { dir, store, vault: new Vault({ store, keys: ring, log }) };
}

/** Every file under `dir`, as text. */
function folderText(dir: string): string {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => readFileSync(join(entry.parentPath, entry.name), 'utf8'))
    .join('\n');
}

describe('Vault on a file store', () => {
  test('put, peek, list, delete; the folder holds no plaintext', async () => {
    const { dir, store, vault } = fileVault(new KeyRing([key('k1')]));
    const [a, b] = [plaintext(), plaintext()];
    await vault.put('github:token', a);
    await vault.put('fininfo:api-key', b);
    assert.equal(vault.peek('github:token'), a);
    assert.equal(vault.peek('fininfo:api-key'), b);
    assert.equal(vault.peek('nothing'), undefined);
    const listed = vault.list();
    assert.deepEqual(
      listed.map(({ id, keyId }) => ({ id, keyId })),
      [
        { id: 'fininfo:api-key', keyId: 'k1' },
        { id: 'github:token', keyId: 'k1' },
      ],
    );
    assert.ok(listed.every((info) => typeof info.updatedAt === 'number' && Object.keys(info).length === 3));
    const replaced = plaintext();
    await vault.put('github:token', replaced);
    assert.equal(vault.peek('github:token'), replaced);
    await store.close();
    const onDisk = folderText(dir);
    for (const value of [a, b, replaced]) assert.ok(!onDisk.includes(value), 'a plaintext on disk');
    assert.match(onDisk, /v1\.k1\./);

    // What the folder holds is useless without the ring.
    const again = fileVault(new KeyRing([key('k1')]), dir);
    assert.equal(again.vault.peek('github:token'), undefined, 'another key with the same id cannot open them');
    await again.store.close();
  });

  test('a restart with the same ring opens what was stored; delete removes it', async () => {
    const ring = new KeyRing([key('k1')]);
    const first = fileVault(ring);
    const value = plaintext();
    await first.vault.put('s', value);
    await first.store.close();
    const second = fileVault(ring, first.dir);
    assert.equal(second.vault.peek('s'), value);
    assert.equal(await second.vault.delete('s'), true);
    assert.equal(second.vault.peek('s'), undefined);
    assert.equal(await second.vault.delete('s'), false);
    assert.deepEqual(second.vault.list(), []);
    await second.store.close();
  });

  test('peek opens once per version (cached) and follows a change made through the store', async () => {
    class CountingRing extends KeyRing {
      opens = 0;
      override open(id: string, sealed: string): string | undefined {
        this.opens++;
        return super.open(id, sealed);
      }
    }
    const ring = new CountingRing([key('k1')]);
    const { store, vault } = fileVault(ring);
    const value = plaintext();
    await vault.put('s', value);
    for (let i = 0; i < 100; i++) assert.equal(vault.peek('s'), value);
    assert.ok(ring.opens <= 1, `opened ${ring.opens} times`);
    // Another writer (another replica, or a rotation there) replaces the record behind the vault.
    const other = plaintext();
    const current = await store.get('s');
    await store.compareAndSet('s', current!.version, { ...current!.value, sealed: ring.seal('s', other) }, { expiresAt: current!.expiresAt });
    assert.equal(vault.peek('s'), other);
    await store.destroy('s');
    assert.equal(vault.peek('s'), undefined);
    await store.close();
  });

  test('a value that cannot be opened reads as absent and is logged once per id, never with the value', async () => {
    const ring = new KeyRing([key('k1')]);
    const { log, lines } = capture();
    const { store, vault } = fileVault(ring, undefined, log);
    const value = plaintext();
    await vault.put('a', value);
    const record = await store.get('a');
    // Moved to another id: the AAD binds the id, so it does not open there.
    await store.create('b', record!.value, { expiresAt: record!.expiresAt });
    // Tampered in place.
    const sealed = record!.value.sealed;
    const tampered = `${sealed.slice(0, -2)}${sealed.endsWith('AA') ? 'BB' : 'AA'}`;
    await store.compareAndSet('a', record!.version, { ...record!.value, sealed: tampered }, { expiresAt: record!.expiresAt });
    for (let i = 0; i < 5; i++) {
      assert.equal(vault.peek('a'), undefined);
      assert.equal(vault.peek('b'), undefined);
    }
    const errors = lines.filter((line) => line.includes('cannot be opened'));
    assert.equal(errors.length, 2, errors.join(''));
    assert.ok(errors.some((line) => line.includes('"secret":"a"')) && errors.some((line) => line.includes('"secret":"b"')));
    for (const line of lines) assert.ok(!line.includes(value) && !line.includes(sealed.slice(8)), line);
    await store.close();
  });

  test('rotation: reseal moves every secret to the new first key, and the per-key counts show the old key is free', async () => {
    const old = key('k2026-01');
    const { dir, store, vault } = fileVault(new KeyRing([old]));
    const values = new Map(Array.from({ length: 5 }, (_, i) => [`s${i}`, plaintext()]));
    for (const [id, value] of values) await vault.put(id, value);
    await store.close();

    const fresh = key('k2026-11');
    const rotated = fileVault(new KeyRing([fresh, old]), dir);
    assert.deepEqual(rotated.vault.keyUsage(), [
      { keyId: 'k2026-11', secrets: 0, sealing: true, inRing: true },
      { keyId: 'k2026-01', secrets: 5, sealing: false, inRing: true },
    ]);
    for (const [id, value] of values) assert.equal(rotated.vault.peek(id), value, 'the old key still opens');
    await rotated.vault.put('new', plaintext());
    assert.equal(rotated.vault.list().find((info) => info.id === 'new')?.keyId, 'k2026-11', 'the new key seals');
    const updatedBefore = rotated.vault.list().find((info) => info.id === 's0')?.updatedAt;
    assert.equal(await rotated.vault.reseal(), 5);
    assert.equal(await rotated.vault.reseal(), 0, 'nothing left to reseal');
    assert.deepEqual(
      rotated.vault.keyUsage().map(({ keyId, secrets }) => [keyId, secrets]),
      [
        ['k2026-11', 6],
        ['k2026-01', 0],
      ],
    );
    assert.equal(rotated.vault.list().find((info) => info.id === 's0')?.updatedAt, updatedBefore, 'a reseal is not a change of the secret');
    await rotated.store.close();

    // The old key dropped: everything still opens.
    const dropped = fileVault(new KeyRing([fresh]), dir);
    for (const [id, value] of values) assert.equal(dropped.vault.peek(id), value);
    await dropped.store.close();
  });

  test('a key dropped too early shows in the counts as not in the ring', async () => {
    const old = key('old');
    const { dir, store, vault } = fileVault(new KeyRing([old]));
    await vault.put('s', plaintext());
    await store.close();
    const early = fileVault(new KeyRing([key('new')]), dir);
    assert.deepEqual(early.vault.keyUsage(), [
      { keyId: 'new', secrets: 0, sealing: true, inRing: true },
      { keyId: 'old', secrets: 1, sealing: false, inRing: false },
    ]);
    assert.equal(await early.vault.reseal(), 0, 'what cannot be opened is left as it is');
    assert.equal(early.vault.peek('s'), undefined);
    await early.store.close();
  });

  test('ids and sizes are checked', async () => {
    const { store, vault } = fileVault(new KeyRing([key('k1')]));
    await assert.rejects(vault.put('', 'x'), (err) => err instanceof GatewayError && err.code === 'REQUEST_INVALID');
    await assert.rejects(vault.put('a b', 'x'), (err) => err instanceof GatewayError && err.code === 'REQUEST_INVALID');
    await assert.rejects(vault.put('big', 'x'.repeat(64 * 1024 + 1)), (err) => err instanceof GatewayError && err.code === 'REQUEST_INVALID');
    await store.close();
  });
});

describe('Vault on two mirrored Redis stores (two replicas, a real redis-server)', () => {
  const redis = new RedisServer();
  before(() => redis.start());
  after(() => redis.stop());

  const open = (namespace: string) => MirroredRedisStore.open<CredentialRecord>({ url: redis.url, namespace, log: silent, heartbeatMs: 200 });

  test('a put on one replica is peeked on the other; a reseal and a delete there are seen; Redis holds no plaintext', async () => {
    const namespace = `credentials-${randomUUID()}`;
    const old = key('k1');
    const [storeA, storeB] = await Promise.all([open(namespace), open(namespace)]);
    const a = new Vault({ store: storeA, keys: new KeyRing([old]), log: silent });
    const b = new Vault({ store: storeB, keys: new KeyRing([old]), log: silent });
    const client = createClient({ url: redis.url });
    await client.connect();
    try {
      const value = plaintext();
      const seen = heard(storeB, 'github:token');
      await a.put('github:token', value);
      await seen;
      assert.equal(b.peek('github:token'), value);

      const replaced = plaintext();
      const seenAgain = heard(storeB, 'github:token', (storeA.peek('github:token')?.version ?? 0) + 1);
      await a.put('github:token', replaced);
      await seenAgain;
      assert.equal(b.peek('github:token'), replaced, 'the cache on B follows the change');

      // Rotation done on B (its ring has the new key first): A, with both keys, opens the result.
      const fresh = key('k2');
      const rotatedB = new Vault({ store: storeB, keys: new KeyRing([fresh, old]), log: silent });
      const rotatedA = new Vault({ store: storeA, keys: new KeyRing([fresh, old]), log: silent });
      const resealed = heard(storeA, 'github:token', storeB.peek('github:token')!.version + 1);
      assert.equal(await rotatedB.reseal(), 1);
      await resealed;
      assert.equal(rotatedA.peek('github:token'), replaced);
      assert.equal(a.peek('github:token'), undefined, 'a replica whose ring lacks the new key cannot open it');

      // Nothing Redis holds contains a plaintext.
      const dump: string[] = [];
      for (const k of await client.keys('*')) {
        dump.push(k);
        const type = await client.type(k);
        if (type === 'hash') dump.push(JSON.stringify(await client.hGetAll(k)));
        else if (type === 'string') dump.push(String(await client.get(k)));
      }
      await client.quit();
      const text = dump.join('\n');
      assert.match(text, /v1\.k2\./);
      for (const v of [value, replaced]) assert.ok(!text.includes(v), 'a plaintext in Redis');

      const gone = heard(storeB, 'github:token', 'removed');
      assert.equal(await a.delete('github:token'), true);
      await gone;
      assert.equal(b.peek('github:token'), undefined);
      assert.deepEqual(b.list(), []);

      // Fail closed: with Redis down, peek throws STORE_UNAVAILABLE (the store's promise).
      await a.put('x', plaintext());
      await redis.stop();
      await waitFor(() => !storeB.isUp());
      assert.throws(
        () => b.peek('x'),
        (err) => err instanceof GatewayError && err.code === 'STORE_UNAVAILABLE',
      );
      await redis.start();
    } finally {
      for (const v of [a, b]) v.close();
      if (client.isOpen) client.destroy();
      await storeA.close();
      await storeB.close();
    }
  });
});

async function waitFor(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
