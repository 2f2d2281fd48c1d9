import { createClient } from 'redis';
import { GatewayError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { connectOnce } from './redis-connect.ts';
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
import { redisChannel, RedisRecordStore, unavailable, type RedisRecordStoreOptions } from './redis-store.ts';

export interface MirroredRedisStoreOptions {
  /** `redis://host:port` (or `rediss://`). */
  readonly url: string;
  /** Names this store's keys; every replica with the same namespace shares the records. */
  readonly namespace: string;
  readonly log: Logger;
  /** The clock (ms since epoch) for expiry, injectable for the contract. */
  readonly now?: () => number;
  /** How often expired records and old tombstones leave the copy (default 60 s). */
  readonly pruneIntervalMs?: number;
  /**
   * Every `heartbeatMs` (default 1000) this replica publishes a heartbeat on the channel; a copy
   * that heard nothing for three periods stops answering (a connection that died silently, with
   * no FIN, must not leave peek answering from a copy that misses changes). 0: no heartbeat.
   */
  readonly heartbeatMs?: number;
  /** How long a removal is remembered, so a late older write cannot bring the key back (default 60 s). */
  readonly tombstoneMs?: number;
}

type RedisClient = ReturnType<typeof createClient>;

/** What the copy knows of a key: its last version, and the record (undefined: a tombstone). */
interface Entry<T> {
  readonly version: number;
  readonly record: StoredRecord<T> | undefined;
  /** When it was set (this store's clock), for pruning tombstones. */
  readonly at: number;
}

/** A published change, as redis-store.ts's scripts encode it (or a heartbeat `{"h":1}`). */
interface Message {
  k?: string;
  v?: string;
  j?: string;
  c?: string;
  e?: string;
  d?: number;
  h?: number;
}

const HEARTBEAT = '{"h":1}';
const RESYNC_RETRY_MS = 250;

/**
 * A Redis record store with a copy of its whole namespace in memory (docs/store.md, "The
 * mirror"), so `peek` and `snapshot` answer synchronously for the check on every MCP request,
 * and `onChange` tells about every change made on any replica.
 *
 * Writes go to Redis (redis-store.ts): each script also PUBLISHes the change on the namespace's
 * channel, so messages arrive in the order Redis applied them; removals carry a version too. The
 * copy keeps per key the highest version it has seen, a removal included (a tombstone, kept
 * `tombstoneMs`), and applies a change only if it is newer: this replica's own writes are applied
 * as soon as their reply is in (read-your-writes), and their message, heard later, is ignored.
 *
 * Fail closed: while either connection is down, or the copy is not synced yet, or no message
 * (heartbeats included) was heard for three heartbeats, `peek` and `snapshot` throw
 * STORE_UNAVAILABLE. When the subscriber connects again (node-redis subscribes again before it
 * reports ready) the copy is resynced from SCAN: a key changed by a message during the resync
 * keeps the newer of the two, any other key takes what Redis holds, and keys Redis no longer
 * holds leave the copy (announced). `get` and `list` read Redis, as the plain store does.
 */
export class MirroredRedisStore<T> implements WatchedRecordStore<T>, StoreHealth {
  readonly #store: RedisRecordStore<T>;
  readonly #sub: RedisClient;
  readonly #namespace: string;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #tombstoneMs: number;
  readonly #heartbeatMs: number;
  readonly #entries = new Map<string, Entry<T>>();
  readonly #listeners = new Set<RecordChangeListener<T>>();
  readonly #upListeners = new Set<(up: boolean) => void>();
  readonly #timers: NodeJS.Timeout[] = [];
  /** Keys changed by a message or a local write since the running resync started. */
  #touched: Set<string> | undefined;
  /** Grows at each connection or loss of the subscriber: a resync of an older epoch is not trusted. */
  #epoch = 0;
  #resyncing: Promise<void> | undefined;
  #synced = false;
  #stale = false;
  /** When the subscriber last heard anything (real time: heartbeats are real time, whatever the clock). */
  #lastHeard = 0;
  #everUp = false;
  #lastUp = false;
  #opened = false;
  #closed = false;

  /** Connects both clients, subscribes, loads the copy; rejects with STORE_UNAVAILABLE when any of it fails. */
  static async open<T>(options: MirroredRedisStoreOptions): Promise<MirroredRedisStore<T>> {
    // The store reports its writes to the mirror, which needs the store: built in two steps.
    const late: { mirror?: MirroredRedisStore<T> } = {};
    const storeOptions: RedisRecordStoreOptions<T> = {
      url: options.url,
      namespace: options.namespace,
      log: options.log,
      ...(options.now ? { now: options.now } : {}),
      onWrite: (key, version, record) => {
        if (late.mirror !== undefined) late.mirror.#apply(key, version, record);
      },
    };
    const store = await RedisRecordStore.open<T>(storeOptions);
    const mirror = new MirroredRedisStore<T>(options, store);
    late.mirror = mirror;
    try {
      await mirror.#start(options.url);
    } catch (err) {
      await mirror.close();
      throw err instanceof GatewayError ? err : unavailable('subscribe', err);
    }
    return mirror;
  }

  private constructor(options: MirroredRedisStoreOptions, store: RedisRecordStore<T>) {
    this.#store = store;
    this.#namespace = options.namespace;
    this.#log = options.log;
    this.#now = options.now ?? Date.now;
    this.#tombstoneMs = options.tombstoneMs ?? 60_000;
    this.#heartbeatMs = options.heartbeatMs ?? 1000;
    this.#sub = createClient({
      url: options.url,
      socket: { connectTimeout: 5000, reconnectStrategy: (retries: number) => Math.min(50 * 2 ** retries, 2000) },
    });
    this.#sub.on('error', () => this.#lost());
    this.#sub.on('end', () => this.#lost());
    // On reconnection node-redis subscribes again before 'ready', so a resync started here misses nothing.
    this.#sub.on('ready', () => {
      if (!this.#opened) return;
      this.#epoch++;
      this.#resync();
    });
    store.onUpChange(() => this.#announceUp());
    this.#timers.push(setInterval(() => this.#prune(), options.pruneIntervalMs ?? 60_000).unref());
  }

  async #start(url: string): Promise<void> {
    const sub = this.#sub;
    try {
      await connectOnce(sub);
      await sub.subscribe(redisChannel(this.#namespace), (message) => this.#heard(message));
    } catch (err) {
      throw unavailable(`subscribe (${redactUrl(url)})`, err);
    }
    this.#opened = true;
    this.#epoch++;
    await this.#resync();
    if (!this.#synced)
      throw new GatewayError('STORE_UNAVAILABLE', `record store (redis) unavailable: the first copy of ${this.#namespace} could not be loaded`);
    if (this.#heartbeatMs > 0) {
      this.#timers.push(
        setInterval(() => {
          if (this.#store.isUp()) this.#store.publish(HEARTBEAT).catch(() => {});
          const silent = this.#synced && !this.#stale && Date.now() - this.#lastHeard > 3 * this.#heartbeatMs;
          if (silent) {
            this.#stale = true;
            this.#announceUp();
          }
        }, this.#heartbeatMs).unref(),
      );
    }
  }

  /** Connected, subscribed, synced and hearing messages: `peek` answers. */
  isUp(): boolean {
    return !this.#closed && this.#store.isUp() && this.#sub.isReady && this.#synced && !this.#stale;
  }

  onUpChange(listener: (up: boolean) => void): () => void {
    this.#upListeners.add(listener);
    return () => this.#upListeners.delete(listener);
  }

  onChange(listener: RecordChangeListener<T>): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  peek(key: string): StoredRecord<T> | undefined {
    this.#assertUp();
    const record = this.#entries.get(key)?.record;
    return record !== undefined && record.expiresAt > this.#now() ? record : undefined;
  }

  snapshot(): StoredRecord<T>[] {
    this.#assertUp();
    const now = this.#now();
    const live: StoredRecord<T>[] = [];
    for (const { record } of this.#entries.values()) if (record !== undefined && record.expiresAt > now) live.push(record);
    return live;
  }

  get(key: string): Promise<StoredRecord<T> | undefined> {
    return this.#store.get(key);
  }

  create(key: string, value: T | Frozen<T>, options: WriteOptions): Promise<WriteResult<T>> {
    return this.#store.create(key, value, options);
  }

  compareAndSet(key: string, expectedVersion: number, value: T | Frozen<T>, options: WriteOptions): Promise<WriteResult<T>> {
    return this.#store.compareAndSet(key, expectedVersion, value, options);
  }

  destroy(key: string, expectedVersion?: number): Promise<boolean> {
    return this.#store.destroy(key, expectedVersion);
  }

  list(): Promise<StoredRecord<T>[]> {
    return this.#store.list();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const timer of this.#timers) clearInterval(timer);
    await this.#store.close();
    if (this.#sub.isReady) await this.#sub.close().catch(() => this.#sub.destroy());
    else if (this.#sub.isOpen) this.#sub.destroy();
    this.#announceUp();
  }

  #assertUp(): void {
    if (this.isUp()) return;
    const why = this.#closed
      ? 'the store is closed'
      : !this.#store.isUp() || !this.#sub.isReady
        ? 'Redis cannot be reached'
        : this.#stale
          ? 'no change or heartbeat was heard for too long'
          : 'the local copy is being loaded';
    throw new GatewayError('STORE_UNAVAILABLE', `record store (redis) unavailable: ${this.#namespace}: ${why}`);
  }

  /** The subscriber lost its connection: the copy may miss changes from now on. */
  #lost(): void {
    if (!this.#opened || this.#closed) return;
    this.#epoch++;
    this.#synced = false;
    this.#announceUp();
  }

  #heard(text: string): void {
    this.#lastHeard = Date.now();
    if (this.#stale) {
      // Messages flow again, but some may have been lost meanwhile: load the copy again.
      this.#stale = false;
      this.#synced = false;
      this.#epoch++;
      this.#resync();
    }
    if (text === HEARTBEAT) return;
    let message: Message;
    try {
      message = JSON.parse(text) as Message;
    } catch {
      return void this.#log.warn({ namespace: this.#namespace }, 'redis mirror: an unreadable change message was ignored');
    }
    const { k: key, v } = message;
    if (typeof key !== 'string' || v === undefined) return;
    const version = Number(v);
    const known = this.#entries.get(key);
    this.#touched?.add(key);
    if (known !== undefined && known.version >= version) return; // this replica's own write, applied already
    if (message.d === 1) return this.#set(key, version, undefined);
    if (typeof message.j !== 'string') return;
    const record: StoredRecord<T> = Object.freeze({
      key,
      version,
      value: frozenCopy(JSON.parse(message.j) as T),
      createdAt: Number(message.c),
      expiresAt: Number(message.e),
    });
    this.#set(key, version, record);
  }

  /** A change this replica learnt (its own write's reply, or a message): applied only if newer than what the copy has. */
  #apply(key: string, version: number, record: StoredRecord<T> | undefined): void {
    this.#touched?.add(key);
    const known = this.#entries.get(key);
    if (known !== undefined && known.version >= version) return;
    this.#set(key, version, record);
  }

  #set(key: string, version: number, record: StoredRecord<T> | undefined): void {
    const before = this.#entries.get(key)?.record;
    this.#entries.set(key, { version, record, at: this.#now() });
    if (before === undefined && record === undefined) return;
    for (const listener of this.#listeners) {
      try {
        listener(key, record);
      } catch (err) {
        this.#log.error({ err }, 'a record change listener failed');
      }
    }
  }

  /** Loads the copy again (retrying while the command connection is down); one at a time. */
  #resync(): Promise<void> {
    this.#resyncing ??= this.#resyncLoop().finally(() => (this.#resyncing = undefined));
    return this.#resyncing;
  }

  async #resyncLoop(): Promise<void> {
    while (!this.#closed && this.#sub.isReady && !this.#synced) {
      const epoch = this.#epoch;
      const touched = new Set<string>();
      this.#touched = touched;
      let fresh: StoredRecord<T>[];
      try {
        fresh = await this.#store.list();
      } catch {
        await new Promise((resolve) => setTimeout(resolve, RESYNC_RETRY_MS).unref());
        continue;
      }
      if (epoch !== this.#epoch || !this.#sub.isReady) continue;
      this.#touched = undefined;
      this.#merge(fresh, touched);
      this.#synced = true;
      this.#stale = false;
      this.#lastHeard = Date.now();
      this.#announceUp();
    }
  }

  /**
   * Redis's records as the copy: a key a message (or a local write) changed during the resync
   * keeps the newer version; any other key takes what Redis holds (it is the truth, even with a
   * lower version after a Redis restart that lost writes); keys Redis no longer has leave.
   */
  #merge(fresh: readonly StoredRecord<T>[], touched: ReadonlySet<string>): void {
    const seen = new Set<string>();
    for (const record of fresh) {
      seen.add(record.key);
      if (touched.has(record.key)) this.#apply(record.key, record.version, record);
      else if (this.#entries.get(record.key)?.version !== record.version) this.#set(record.key, record.version, record);
    }
    for (const [key, entry] of [...this.#entries]) {
      if (seen.has(key) || touched.has(key) || entry.record === undefined) continue;
      this.#set(key, entry.version, undefined);
    }
  }

  /** Expired records become tombstones (not announced: readers check expiresAt); old tombstones go. */
  #prune(): void {
    const now = this.#now();
    for (const [key, entry] of [...this.#entries]) {
      if (entry.record !== undefined && entry.record.expiresAt <= now) this.#entries.set(key, { version: entry.version, record: undefined, at: now });
      else if (entry.record === undefined && now - entry.at > this.#tombstoneMs) this.#entries.delete(key);
    }
  }

  /** Tells the listeners when isUp() changes, with one log line each way. */
  #announceUp(): void {
    const up = this.isUp();
    if (up === this.#lastUp) return;
    this.#lastUp = up;
    if (this.#closed) return;
    if (up && this.#everUp) this.#log.info({ namespace: this.#namespace }, 'redis mirror: in sync again; reads answer');
    else if (!up)
      this.#log.warn(
        { namespace: this.#namespace },
        'redis mirror: may miss changes (Redis unreachable or silent); reads fail closed until it is synced again',
      );
    this.#everUp ||= up;
    for (const listener of this.#upListeners) listener(up);
  }
}

/** A Redis URL without its password, for logs. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    if (parsed.username && parsed.password === '') parsed.username = '***';
    return parsed.toString();
  } catch {
    return 'redis://(unparseable)';
  }
}
