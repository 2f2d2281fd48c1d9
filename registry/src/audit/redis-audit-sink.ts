/**
 * The audit entries of every replica in one Redis stream (docs/store.md, "The audit log across
 * replicas"). One stream entry per batch: its field `entries` is the JSON array of the batch, so
 * a busy check costs one XADD per flush, not one per request. The stream is capped with
 * `MAXLEN ~` (batches, trimmed by whole nodes, so cheap).
 */
import { createClient } from 'redis';
import { GatewayError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { connectOnce } from '../store/redis-connect.ts';
import { isTimedEntry, type SharedAuditSink, type TimedAuditEntry } from './audit-log.ts';

export interface RedisAuditSinkOptions {
  /** `redis://host:port` (or `rediss://`). */
  readonly url: string;
  readonly log: Logger;
  /** The stream's key; default `mcpgw:audit`. */
  readonly key?: string;
  /** About how many batches the stream keeps (`MAXLEN ~`); default 2000, so at least that many entries. */
  readonly maxBatches?: number;
}

type RedisClient = ReturnType<typeof createClient>;

/** Batches read per XREVRANGE while collecting the newest entries. */
const READ_PAGE = 500;

export class RedisAuditSink implements SharedAuditSink {
  readonly #client: RedisClient;
  readonly #key: string;
  readonly #maxBatches: number;

  /** Connects; rejects with STORE_UNAVAILABLE when the first attempt fails. Reconnects by itself after. */
  static async open(options: RedisAuditSinkOptions): Promise<RedisAuditSink> {
    const sink = new RedisAuditSink(options);
    const client = sink.#client;
    try {
      await connectOnce(client);
    } catch (err) {
      throw new GatewayError('STORE_UNAVAILABLE', `redis audit stream: cannot connect: ${(err as Error).message}`, { cause: err });
    }
    return sink;
  }

  private constructor(options: RedisAuditSinkOptions) {
    this.#key = options.key ?? 'mcpgw:audit';
    this.#maxBatches = options.maxBatches ?? 2000;
    if (!Number.isInteger(this.#maxBatches) || this.#maxBatches < 1) throw new RangeError('maxBatches must be a positive integer');
    this.#client = createClient({
      url: options.url,
      // Never queue while disconnected: the audit log keeps the batch and retries; nothing waits.
      disableOfflineQueue: true,
      socket: { connectTimeout: 5000, reconnectStrategy: (retries: number) => Math.min(50 * 2 ** retries, 2000) },
    });
    // The audit log logs an outage once; an unhandled 'error' would crash the process.
    this.#client.on('error', (err: unknown) => options.log.debug({ err }, 'redis audit stream: connection error'));
  }

  async append(batch: readonly TimedAuditEntry[]): Promise<void> {
    if (batch.length === 0) return;
    await this.#client.xAdd(
      this.#key,
      '*',
      { entries: JSON.stringify(batch) },
      { TRIM: { strategy: 'MAXLEN', strategyModifier: '~', threshold: this.#maxBatches } },
    );
  }

  async read(max: number): Promise<TimedAuditEntry[]> {
    const batches: TimedAuditEntry[][] = [];
    let total = 0;
    let end = '+';
    while (total < max) {
      const page = await this.#client.xRevRange(this.#key, end, '-', { COUNT: READ_PAGE });
      if (page === null || page.length === 0) break;
      for (const message of page) {
        const entries = parseBatch(message.message['entries']);
        batches.push(entries);
        total += entries.length;
        if (total >= max) break;
      }
      if (page.length < READ_PAGE) break;
      end = `(${page[page.length - 1]?.id}`;
    }
    // Oldest first, the newest `max`.
    const entries = batches.reverse().flat();
    return entries.length > max ? entries.slice(entries.length - max) : entries;
  }

  async close(): Promise<void> {
    if (this.#client.isReady) await this.#client.close();
    else if (this.#client.isOpen) this.#client.destroy();
  }
}

/** A batch as another replica wrote it; anything that is not an entry is skipped. */
function parseBatch(text: unknown): TimedAuditEntry[] {
  if (typeof text !== 'string') return [];
  try {
    const value: unknown = JSON.parse(text);
    return Array.isArray(value) ? value.filter(isTimedEntry) : [];
  } catch {
    return [];
  }
}
