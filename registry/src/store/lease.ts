import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { createClient } from 'redis';
import type { Logger } from '../log.ts';

/**
 * The right to run a job that must run on one replica only (the session refresher: two replicas
 * refreshing one session with a rotating refresh token would burn its token family).
 */
export interface Lease {
  /** True while this replica holds the lease (always true for LocalLease). */
  held(): boolean;
  /** Called with the new value whenever held() changes. Returns the unsubscribe. */
  onChange(listener: (held: boolean) => void): () => void;
  close(): Promise<void>;
}

/** One process, no Redis: the only replica always holds the lease. */
export class LocalLease implements Lease {
  held(): boolean {
    return true;
  }

  onChange(_listener: (held: boolean) => void): () => void {
    return () => {};
  }

  async close(): Promise<void> {}
}

export interface RedisLeaseOptions {
  readonly url: string;
  /** Names the job (`session-refresher`); the Redis key is `mcpgw:lease:<name>`. */
  readonly name: string;
  readonly log: Logger;
  /** How long the lease lasts without renewal (default 15 s): another replica takes over within about this after the holder dies. */
  readonly ttlMs?: number;
}

type RedisClient = ReturnType<typeof createClient>;

/** KEYS: lease. ARGV: owner, ttl. Extends the lease only if this owner still holds it. */
const RENEW = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0`;
/** KEYS: lease. ARGV: owner. Gives the lease up only if this owner holds it. */
const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;

/**
 * A lease in Redis: `SET key owner NX PX ttl` to take it, renewed every ttl/3 with a script that
 * extends it only for its owner. The holder counts it lost as soon as a renewal fails or does not
 * answer within ttl/3, and at the latest 2/3 of the ttl after its last successful renewal, so it
 * stops the job before the lease can pass to another replica. A replica that dies (SIGKILL) stops
 * renewing; another takes it within about a ttl. `close()` gives it up at once.
 */
export class RedisLease implements Lease {
  readonly #client: RedisClient;
  readonly #key: string;
  readonly #owner = `${hostname()}:${process.pid}:${randomUUID()}`;
  readonly #ttlMs: number;
  readonly #log: Logger;
  readonly #listeners = new Set<(held: boolean) => void>();
  readonly #timer: NodeJS.Timeout;
  #held = false;
  /** Until when (Date.now()) the lease is ours for sure: the last renewal's start + 2/3 ttl. */
  #safeUntil = 0;
  #closed = false;
  #ticking: Promise<void> | undefined;

  constructor(options: RedisLeaseOptions) {
    this.#key = `mcpgw:lease:${options.name}`;
    this.#ttlMs = options.ttlMs ?? 15_000;
    this.#log = options.log.child({ lease: options.name });
    this.#client = createClient({
      url: options.url,
      disableOfflineQueue: true,
      socket: { connectTimeout: 5000, reconnectStrategy: (retries: number) => Math.min(50 * 2 ** retries, 2000) },
    });
    // Connection trouble shows as failed renewals (logged by the lease); the client reconnects by itself.
    this.#client.on('error', () => {});
    this.#client.connect().catch(() => {});
    this.#timer = setInterval(() => void this.#tick(), Math.max(50, Math.floor(this.#ttlMs / 3))).unref();
    void this.#tick();
  }

  held(): boolean {
    if (this.#held && Date.now() >= this.#safeUntil) this.#set(false, 'not renewed in time');
    return this.#held;
  }

  onChange(listener: (held: boolean) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    await this.#ticking;
    const wasHeld = this.#held;
    this.#set(false, 'closed');
    if (wasHeld && this.#client.isReady) await this.#command(['EVAL', RELEASE, '1', this.#key, this.#owner]).catch(() => {});
    if (this.#client.isReady) await this.#client.close().catch(() => this.#client.destroy());
    else if (this.#client.isOpen) this.#client.destroy();
  }

  /** One renewal or one attempt to take the lease; never two at once. */
  #tick(): Promise<void> {
    this.#ticking ??= this.#attempt().finally(() => (this.#ticking = undefined));
    return this.#ticking;
  }

  async #attempt(): Promise<void> {
    if (this.#closed) return;
    const started = Date.now();
    try {
      if (this.#held) {
        const renewed = await this.#command(['EVAL', RENEW, '1', this.#key, this.#owner, String(this.#ttlMs)]);
        if (renewed === 1) this.#safeUntil = started + Math.floor((this.#ttlMs * 2) / 3);
        else this.#set(false, 'another replica holds it');
      } else {
        const taken = await this.#command(['SET', this.#key, this.#owner, 'NX', 'PX', String(this.#ttlMs)]);
        if (taken === 'OK' && !this.#closed) {
          this.#safeUntil = started + Math.floor((this.#ttlMs * 2) / 3);
          this.#set(true, 'taken');
        }
      }
    } catch (err) {
      if (this.#held) this.#set(false, `renewal failed (${err instanceof Error ? err.message : String(err)})`);
    }
    this.held(); // a renewal that came back too late loses it too
  }

  /** A command that fails when it takes longer than a third of the ttl (a renewal must not hang past the lease). */
  #command(args: string[]): Promise<unknown> {
    if (!this.#client.isReady) return Promise.reject(new Error('Redis is not connected'));
    let timer: NodeJS.Timeout | undefined;
    const limit = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('Redis did not answer in time')), Math.max(50, Math.floor(this.#ttlMs / 3)));
    });
    return Promise.race([this.#client.sendCommand(args), limit]).finally(() => clearTimeout(timer));
  }

  #set(held: boolean, why: string): void {
    if (held === this.#held) return;
    this.#held = held;
    if (held) this.#log.info('lease taken: this replica runs the job');
    else if (this.#closed) this.#log.info('lease released');
    else this.#log.warn({ why }, 'lease lost: this replica stops the job');
    for (const listener of this.#listeners) listener(held);
  }
}
