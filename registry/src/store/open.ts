import { join } from 'node:path';
import { GatewayError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { FileRecordStore } from './file-store.ts';
import { LocalLease, RedisLease, type Lease } from './lease.ts';
import type { RecordStore, StoreHealth, WatchedRecordStore } from './record-store.ts';
import { MirroredRedisStore, redactUrl } from './redis-mirror.ts';
import { RedisRecordStore } from './redis-store.ts';

export interface StoresOptions {
  /** Where file stores live: `<stateDir>/<kind>`. */
  readonly stateDir: string;
  /** REDIS_URL and how long the start waits for it; undefined: files. */
  readonly redis: { readonly url: string; readonly startTimeoutMs: number } | undefined;
  readonly log: Logger;
}

/** Between attempts to reach Redis at start. */
const START_RETRY_MS = 1000;

/**
 * The one place that chooses where state lives (docs/store.md): with REDIS_URL, every kind of
 * record is a Redis store in its own namespace (mirrored in memory where something peeks or
 * snapshots it), and jobs that must run once take a RedisLease; without it, a folder per kind
 * under STATE_DIR and a LocalLease, as before. It remembers what it opened, so the gateway closes
 * everything with one call, and reports the health of all of it (`isUp`, `onUpChange`: the
 * `storeUp` signal for /readyz and /metrics).
 */
export class Stores implements StoreHealth {
  readonly #options: StoresOptions;
  readonly #opened: Array<{ close(): Promise<void> } & Partial<StoreHealth>> = [];
  readonly #upListeners = new Set<(up: boolean) => void>();
  /** Until when (Date.now()) opening a Redis store retries (REDIS_START_TIMEOUT_SECONDS from the first). */
  #deadline: number | undefined;
  #lastUp = true;

  constructor(options: StoresOptions) {
    this.#options = options;
  }

  /** Whether state is in Redis (shared by replicas). */
  get shared(): boolean {
    return this.#options.redis !== undefined;
  }

  /** A store that is read from memory and tells about changes: sessions, the authorization server's records, tokens, backend secrets (`credentials`). */
  async watched<T>(kind: string): Promise<WatchedRecordStore<T> & StoreHealth> {
    const redis = this.#options.redis;
    const log = this.#options.log.child({ module: 'store', store: kind });
    const store =
      redis === undefined
        ? new FileRecordStore<T>({ dir: join(this.#options.stateDir, kind), log })
        : await this.#retrying(kind, () => MirroredRedisStore.open<T>({ url: redis.url, namespace: kind, log }));
    return this.#track(store);
  }

  /** A store that is only read and written through (the dev IdP's oidc-provider storage). */
  async plain<T>(kind: string): Promise<RecordStore<T> & StoreHealth> {
    const redis = this.#options.redis;
    const log = this.#options.log.child({ module: 'store', store: kind });
    const store =
      redis === undefined
        ? new FileRecordStore<T>({ dir: join(this.#options.stateDir, kind), log })
        : await this.#retrying(kind, () => RedisRecordStore.open<T>({ url: redis.url, namespace: kind, log }));
    return this.#track(store);
  }

  /** The lease of a job that must run on one replica (`session-refresher`). */
  lease(name: string, ttlMs?: number): Lease {
    const redis = this.#options.redis;
    const lease =
      redis === undefined
        ? new LocalLease()
        : new RedisLease({ url: redis.url, name, log: this.#options.log.child({ module: 'lease' }), ...(ttlMs === undefined ? {} : { ttlMs }) });
    this.#opened.push(lease);
    return lease;
  }

  /** Every store opened here can answer (files: always). */
  isUp(): boolean {
    return this.#opened.every((store) => store.isUp?.() ?? true);
  }

  onUpChange(listener: (up: boolean) => void): () => void {
    this.#upListeners.add(listener);
    return () => this.#upListeners.delete(listener);
  }

  /** Closes everything opened, the last first. */
  async close(): Promise<void> {
    for (const store of this.#opened.splice(0).reverse()) await store.close();
  }

  #track<S extends { close(): Promise<void> } & StoreHealth>(store: S): S {
    this.#opened.push(store);
    store.onUpChange(() => {
      const up = this.isUp();
      if (up === this.#lastUp) return;
      this.#lastUp = up;
      for (const listener of this.#upListeners) listener(up);
    });
    return store;
  }

  /** Opens a Redis store, retrying with a log line until REDIS_START_TIMEOUT_SECONDS have passed since the first attempt. */
  async #retrying<S>(kind: string, open: () => Promise<S>): Promise<S> {
    const redis = this.#options.redis!;
    this.#deadline ??= Date.now() + redis.startTimeoutMs;
    for (let attempt = 1; ; attempt++) {
      try {
        return await open();
      } catch (err) {
        const reason = err instanceof Error ? err.message : String(err);
        if (Date.now() + START_RETRY_MS >= this.#deadline) {
          throw new GatewayError(
            'STORE_UNAVAILABLE',
            `STORE_UNAVAILABLE: Redis at ${redactUrl(redis.url)} could not be reached within ${Math.round(redis.startTimeoutMs / 1000)} s (REDIS_START_TIMEOUT_SECONDS); the gateway keeps its state there (REDIS_URL). Last error: ${reason}`,
            { cause: err },
          );
        }
        this.#options.log.warn({ store: kind, redis: redactUrl(redis.url), attempt, reason }, 'Redis cannot be reached yet; retrying');
        await new Promise((resolve) => setTimeout(resolve, START_RETRY_MS));
      }
    }
  }
}
