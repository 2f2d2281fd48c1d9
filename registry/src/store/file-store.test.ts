import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { createLogger } from '../log.ts';
import { runRecordStoreContract, runWatchedStoreContract, type ContractValue } from './contract.ts';
import { FileRecordStore } from './file-store.ts';

const log = createLogger('silent');
const tempDir = () => mkdtempSync(join(tmpdir(), 'mcpgw-store-'));

runRecordStoreContract('file', async () => {
  const dir = tempDir();
  return {
    open: async (now) => new FileRecordStore<ContractValue>({ dir, log, now }),
    dispose: async () => rmSync(dir, { recursive: true, force: true }),
  };
});

// One process owns the folder: the single-instance parts (its own writes, expiry) apply.
runWatchedStoreContract('file', 'single', async () => {
  const dir = tempDir();
  return {
    shared: false,
    open: async (now) => new FileRecordStore<ContractValue>({ dir, log, now }),
    dispose: async () => rmSync(dir, { recursive: true, force: true }),
  };
});

test('each record is a 0600 file in a 0700 folder, named by a hash of the key, never the key', async () => {
  const dir = join(tempDir(), 'records');
  const store = new FileRecordStore<{ secret: string }>({ dir, log });
  await store.create('../../etc/passwd', { secret: 's' }, { expiresAt: Date.now() + 60_000 });
  await store.close();
  assert.equal(statSync(dir).mode & 0o777, 0o700);
  const [file, ...rest] = readdirSync(dir);
  assert.deepEqual(rest, []);
  assert.match(file ?? '', /^[0-9a-f]{64}\.json$/);
  assert.equal(statSync(join(dir, file ?? '')).mode & 0o777, 0o600);
});

test('many concurrent writes leave one file per record and no temp files behind', async () => {
  const dir = tempDir();
  const store = new FileRecordStore<{ n: number }>({ dir, log });
  const expiresAt = Date.now() + 60_000;
  await Promise.all(Array.from({ length: 20 }, (_, i) => store.create(`k${i}`, { n: i }, { expiresAt })));
  for (let round = 0; round < 10; round++) {
    await Promise.all(store.snapshot().map((r) => store.compareAndSet(r.key, r.version, { n: r.value.n + 1 }, { expiresAt })));
  }
  await store.close();
  const files = readdirSync(dir);
  assert.equal(files.length, 20);
  assert.ok(files.every((f) => f.endsWith('.json')));
  const reopened = new FileRecordStore<{ n: number }>({ dir, log });
  assert.deepEqual(
    reopened
      .snapshot()
      .map((r) => r.value.n)
      .sort((a, b) => a - b),
    Array.from({ length: 20 }, (_, i) => i + 10),
  );
  await reopened.close();
});

test('at start, unreadable and foreign files are removed with a log line, leftover temp files silently, expired records with a count', async () => {
  const dir = tempDir();
  const first = new FileRecordStore<{ n: number }>({ dir, log });
  await first.create('old', { n: 1 }, { expiresAt: Date.now() + 50 });
  await first.create('kept', { n: 2 }, { expiresAt: Date.now() + 60_000 });
  await first.close();
  writeFileSync(join(dir, 'garbage.json'), '{ not json');
  const kept = readdirSync(dir).find((f) => readFileSync(join(dir, f), 'utf8').includes('"kept"')) ?? '';
  // A record copied under another record's file name is not trusted.
  writeFileSync(join(dir, `${'0'.repeat(64)}.json`), readFileSync(join(dir, kept)));
  writeFileSync(join(dir, `${kept}.4b1c.tmp`), '{"half');
  const lines: string[] = [];
  const capture = pino({ level: 'info' }, new Writable({ write: (chunk, _enc, done) => void (lines.push(String(chunk)), done()) }));
  const later = () => Date.now() + 100;
  const second = new FileRecordStore<{ n: number }>({ dir, log: capture, now: later });
  assert.deepEqual(
    second.snapshot().map((r) => r.key),
    ['kept'],
  );
  assert.deepEqual(readdirSync(dir), [kept]);
  assert.equal(lines.filter((l) => l.includes('unreadable record file removed')).length, 2);
  assert.ok(lines.some((l) => l.includes('expired records removed at start') && l.includes('"expired":1')));
  await second.close();
});

test('peek is synchronous and agrees with get; an expired record is pruned from disk', async () => {
  const dir = tempDir();
  let clock = 1_000_000;
  const store = new FileRecordStore<{ n: number }>({ dir, log, now: () => clock });
  const created = await store.create('k', { n: 1 }, { expiresAt: clock + 10 });
  assert.ok(created.ok);
  assert.equal(store.peek('k'), created.record);
  assert.equal(await store.get('k'), created.record);
  clock += 10;
  assert.equal(store.peek('k'), undefined);
  await store.close(); // waits for the queued removal
  assert.deepEqual(readdirSync(dir), []);
});

test('a closed store refuses writes', async () => {
  const store = new FileRecordStore<{ n: number }>({ dir: tempDir(), log });
  await store.close();
  await assert.rejects(store.create('k', { n: 1 }, { expiresAt: Date.now() + 1000 }), /closed/);
  await assert.rejects(store.destroy('k'), /closed/);
});
