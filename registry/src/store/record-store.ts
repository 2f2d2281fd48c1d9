/**
 * The one store interface behind every stateful module (DESIGN.md "State, persistence and
 * scale"): login sessions today; the authorization server's grants and clients, the
 * backend-credential vault and a Redis implementation in the issues that follow.
 *
 * Records are immutable and versioned. A writer names the version it read
 * (`compareAndSet`), so a write based on a stale read fails instead of overwriting what
 * happened meanwhile — the refresh-versus-logout race that used to bring signed-out sessions
 * back. Nobody gets a live object: values are copied in (structuredClone) and handed out
 * deep-frozen, so a caller that mutates what it read changes nothing stored.
 *
 * Every method is async so a networked implementation (Redis: WATCH/MULTI or a Lua script
 * comparing a version field) can satisfy it unchanged.
 */

/** A deep-readonly view of a stored value (the runtime object is deep-frozen too). */
export type Frozen<T> = T extends (infer U)[] ? readonly Frozen<U>[] : T extends object ? { readonly [K in keyof T]: Frozen<T[K]> } : T;

export interface StoredRecord<T> {
  readonly key: string;
  /**
   * Grows with every write of the key. A key destroyed and created again never gets back a
   * version it had: versions come from one counter per store, started at the clock (ms).
   */
  readonly version: number;
  /** A deep-frozen copy. */
  readonly value: Frozen<T>;
  /** When the key was created (ms since epoch); kept across compareAndSet. */
  readonly createdAt: number;
  /** When the record stops existing (ms since epoch): from then on no method returns it. */
  readonly expiresAt: number;
}

export interface WriteOptions {
  /** ms since epoch; must be in the future (a record that is already expired is refused). */
  readonly expiresAt: number;
}

/** The outcome of a conditional write: the new record, or what is there instead (undefined: nothing). */
export type WriteResult<T> = { readonly ok: true; readonly record: StoredRecord<T> } | { readonly ok: false; readonly current: StoredRecord<T> | undefined };

/** Values are copied in, so a caller may write back a frozen value it read, changed by spreading. */
export interface RecordStore<T> {
  /** The live record, or undefined when there is none or it has expired. */
  get(key: string): Promise<StoredRecord<T> | undefined>;
  /** Writes a new key; fails (ok: false, current) when a live record has that key. */
  create(key: string, value: T | Frozen<T>, options: WriteOptions): Promise<WriteResult<T>>;
  /**
   * Replaces the record only if its version is still `expectedVersion`; otherwise returns the
   * current record (or undefined when it was destroyed or expired). Never creates a record:
   * what was destroyed stays destroyed.
   */
  compareAndSet(key: string, expectedVersion: number, value: T | Frozen<T>, options: WriteOptions): Promise<WriteResult<T>>;
  /**
   * Removes the record (only at `expectedVersion` when given). True when a live record was
   * removed. Once this resolves, no write that was started earlier can bring the record back,
   * in memory or after a restart.
   */
  destroy(key: string, expectedVersion?: number): Promise<boolean>;
  /** Every live record (a snapshot). */
  list(): Promise<StoredRecord<T>[]>;
  /** Stops background work; resolves when every write started before it is on disk (or sent). */
  close(): Promise<void>;
}

/**
 * Synchronous reads from memory, for the check on every MCP request (no I/O per request,
 * DESIGN.md "The check on every MCP request"). The file store offers it; a Redis store would
 * need a local cache kept current by keyspace notifications to offer it too.
 */
export interface SyncRecordReader<T> {
  peek(key: string): StoredRecord<T> | undefined;
  /** Every live record, synchronously (a snapshot). */
  snapshot(): StoredRecord<T>[];
}

/**
 * What a listener hears: a key was written (`record`, the new one) or is gone (`undefined`:
 * destroyed; expiry may be announced late or not at all: readers check `expiresAt`). A shared store (Redis)
 * announces the writes of every replica, in the order the store applied them.
 */
export type RecordChangeListener<T> = (key: string, record: StoredRecord<T> | undefined) => void;

/**
 * A store read from memory on every replica and told about every change: the catalog, and
 * anything the per-request check peeks. With one process (the file store) it hears its own
 * writes; with Redis, the writes of every replica (pub/sub), each at most once and in order.
 */
export interface WatchedRecordStore<T> extends RecordStore<T>, SyncRecordReader<T> {
  /** Calls `listener` after each change that is visible to `peek`; returns the unsubscribe. */
  onChange(listener: RecordChangeListener<T>): () => void;
}

/**
 * Whether a store can answer now (for /readyz and the `storeUp` metric). A file store is
 * always up; a Redis store is up while connected (a mirrored one: both connections, and its
 * copy synced). `onUpChange` is told each change of `isUp()`; it returns the unsubscribe.
 */
export interface StoreHealth {
  isUp(): boolean;
  onUpChange(listener: (up: boolean) => void): () => void;
}

/** A copy that shares nothing with `value` and cannot be changed (openid-client's `Object.freeze(structuredClone(…))`). */
export function frozenCopy<T>(value: T): Frozen<T> {
  return deepFreeze(structuredClone(value)) as Frozen<T>;
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
