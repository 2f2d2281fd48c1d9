import { createHash, randomUUID } from 'node:crypto';
import { chmodSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../log.ts';
import {
  frozenCopy,
  type Frozen,
  type RecordChangeListener,
  type StoreHealth,
  type StoredRecord,
  type WatchedRecordStore,
  type WriteOptions,
  type WriteResult,
} from './record-store.ts';

export interface FileRecordStoreOptions {
  /** The folder that holds the records (created 0700). One process owns it. */
  readonly dir: string;
  readonly log: Logger;
  /** The clock (ms since epoch), injectable so expiry can be tested without sleeping. */
  readonly now?: () => number;
  /** How often expired records are removed from memory and disk; they are invisible at once anyway. */
  readonly pruneIntervalMs?: number;
}

/**
 * Records as one 0600 JSON file each under a 0700 folder, every record also held in memory, so
 * reads (`peek` on the per-request path included) never touch the disk and everything survives
 * a restart. The file name is a hash of the key, so a key never becomes a path.
 *
 * Every decision (does the version match? is there a record?) is taken synchronously against
 * memory, and the disk work it implies is queued per key, in call order: a destroy that races a
 * write therefore ends on disk exactly as in memory, and cannot come back after a restart.
 * Files are written to a temp name (random UUID, so two writes never share one) and renamed
 * into place, so a crash leaves either the old record or the new one, never half of one.
 *
 * Hand-written on purpose: the maintained file stores (session-file-store for express-session,
 * keyv's file adapters, lowdb) offer neither compare-and-set on a version nor synchronous reads
 * from memory, and both are what this interface is for.
 */
export class FileRecordStore<T> implements WatchedRecordStore<T>, StoreHealth {
  readonly #dir: string;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #records = new Map<string, StoredRecord<T>>();
  /** The tail of each key's queue of disk operations. */
  readonly #queues = new Map<string, Promise<void>>();
  readonly #pruneTimer: NodeJS.Timeout;
  readonly #listeners = new Set<RecordChangeListener<T>>();
  #version: number;
  #closed = false;

  constructor(options: FileRecordStoreOptions) {
    this.#dir = options.dir;
    this.#log = options.log;
    this.#now = options.now ?? Date.now;
    mkdirSync(this.#dir, { recursive: true, mode: 0o700 });
    chmodSync(this.#dir, 0o700);
    this.#version = Math.max(this.#now(), this.#loadAll());
    this.#pruneTimer = setInterval(() => this.snapshot(), options.pruneIntervalMs ?? 60_000).unref();
  }

  peek(key: string): StoredRecord<T> | undefined {
    const record = this.#records.get(key);
    if (record === undefined || record.expiresAt > this.#now()) return record;
    this.#remove(key);
    return undefined;
  }

  /** Always: the folder is local (a failed disk write rejects that write, see below). */
  isUp(): boolean {
    return true;
  }

  onUpChange(): () => void {
    return () => {};
  }

  onChange(listener: RecordChangeListener<T>): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  snapshot(): StoredRecord<T>[] {
    const live: StoredRecord<T>[] = [];
    for (const key of [...this.#records.keys()]) {
      const record = this.peek(key);
      if (record) live.push(record);
    }
    return live;
  }

  async get(key: string): Promise<StoredRecord<T> | undefined> {
    return this.peek(key);
  }

  async list(): Promise<StoredRecord<T>[]> {
    return this.snapshot();
  }

  // async functions run synchronously up to their first await: the decision and the change in
  // memory happen at the call, in call order; only the disk work waits in the key's queue.
  async create(key: string, value: T | Frozen<T>, options: WriteOptions): Promise<WriteResult<T>> {
    this.#check(options);
    const current = this.peek(key);
    if (current) return { ok: false, current };
    return this.#put(key, value, this.#now(), options.expiresAt);
  }

  async compareAndSet(key: string, expectedVersion: number, value: T | Frozen<T>, options: WriteOptions): Promise<WriteResult<T>> {
    this.#check(options);
    const current = this.peek(key);
    if (current?.version !== expectedVersion) return { ok: false, current };
    return this.#put(key, value, current.createdAt, options.expiresAt);
  }

  async destroy(key: string, expectedVersion?: number): Promise<boolean> {
    if (this.#closed) throw new Error('the store is closed');
    const current = this.peek(key);
    if (current === undefined || (expectedVersion !== undefined && current.version !== expectedVersion)) {
      // Nothing to remove; still wait for earlier disk work on the key, so "resolved" means settled.
      await this.#queues.get(key);
      return false;
    }
    await this.#remove(key);
    return true;
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#pruneTimer);
    await Promise.all(this.#queues.values());
  }

  #check(options: WriteOptions): void {
    if (this.#closed) throw new Error('the store is closed');
    if (!Number.isFinite(options.expiresAt) || options.expiresAt <= this.#now()) throw new RangeError('expiresAt must be a time in the future');
  }

  #put(key: string, value: T | Frozen<T>, createdAt: number, expiresAt: number): Promise<WriteResult<T>> {
    const record: StoredRecord<T> = Object.freeze({ key, version: ++this.#version, value: frozenCopy(value as T), createdAt, expiresAt });
    this.#records.set(key, record);
    this.#announce(key, record);
    return this.#enqueue(key, () => this.#write(record)).then(() => ({ ok: true, record }));
  }

  #remove(key: string): Promise<void> {
    const had = this.#records.delete(key);
    if (had) this.#announce(key, undefined);
    return this.#enqueue(key, () => rm(this.#file(key), { force: true }));
  }

  /** Tells the listeners at once (memory already changed); a listener that throws is logged, not fatal. */
  #announce(key: string, record: StoredRecord<T> | undefined): void {
    for (const listener of this.#listeners) {
      try {
        listener(key, record);
      } catch (err) {
        this.#log.error({ err }, 'a record change listener failed');
      }
    }
  }

  /** Runs `op` after every disk operation queued before it on the same key, failed ones included. */
  #enqueue(key: string, op: () => Promise<void>): Promise<void> {
    const previous = this.#queues.get(key) ?? Promise.resolve();
    const done = previous.then(op);
    const tail = done.catch((err: unknown) => this.#log.error({ err }, 'a record could not be written to disk; memory and disk differ until its next write'));
    this.#queues.set(key, tail);
    void tail.then(() => {
      if (this.#queues.get(key) === tail) this.#queues.delete(key);
    });
    return done;
  }

  async #write(record: StoredRecord<T>): Promise<void> {
    const file = this.#file(record.key);
    const tmp = `${file}.${randomUUID()}.tmp`;
    try {
      // flush: the data reaches the disk before the rename makes it the record.
      await writeFile(tmp, JSON.stringify(record), { mode: 0o600, flush: true });
      await rename(tmp, file);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
  }

  /** Loads every record; removes temp files, expired and unreadable records. Returns the highest version seen. */
  #loadAll(): number {
    let highest = 0;
    let expired = 0;
    for (const name of readdirSync(this.#dir)) {
      const file = join(this.#dir, name);
      if (name.endsWith('.tmp')) {
        rmSync(file, { force: true }); // a write that a crash cut short; the record it replaced is intact
        continue;
      }
      if (!name.endsWith('.json')) continue;
      const record = parseRecord(readOrUndefined(file));
      if (record === undefined || this.#file(record.key) !== file) {
        this.#log.warn({ file }, 'unreadable record file removed');
        rmSync(file, { force: true });
        continue;
      }
      highest = Math.max(highest, record.version);
      if (record.expiresAt <= this.#now()) {
        expired++;
        rmSync(file, { force: true });
        continue;
      }
      this.#records.set(record.key, Object.freeze({ ...record, value: frozenCopy(record.value as T) }));
    }
    if (expired > 0) this.#log.info({ dir: this.#dir, expired }, 'expired records removed at start');
    return highest;
  }

  #file(key: string): string {
    return join(this.#dir, `${createHash('sha256').update(key).digest('hex')}.json`);
  }
}

function readOrUndefined(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

function parseRecord(text: string | undefined): StoredRecord<unknown> | undefined {
  if (text === undefined) return undefined;
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof data !== 'object' || data === null) return undefined;
  const { key, version, value, createdAt, expiresAt } = data as Record<string, unknown>;
  if (typeof key !== 'string' || !Number.isSafeInteger(version) || typeof createdAt !== 'number' || typeof expiresAt !== 'number' || !('value' in data))
    return undefined;
  return { key, version: version as number, value, createdAt, expiresAt };
}
