import type { Logger } from '../log.ts';
import type { AuditLogOptions, SharedAuditSink, TimedAuditEntry } from './audit-log.ts';

/** How long closing waits for the last batch to reach the shared sink. */
const CLOSE_WAIT_MS = 2000;

/**
 * The buffer towards the shared sink: entries wait here and go out as one write per batch every
 * flush interval, or at once when a batch is full, one write at a time. A failed write puts its
 * batch back (this replica's newest `keep` are kept for the retry; older ones stay in the file
 * and the ring only). Nothing here ever blocks `record`.
 */
export class SharedBatches {
  readonly #sink: SharedAuditSink;
  readonly #keep: number;
  readonly #batchSize: number;
  readonly #log: Logger | undefined;
  readonly #timer: NodeJS.Timeout;
  /** Recorded, not yet sent. */
  #pending: TimedAuditEntry[] = [];
  /** Being sent now. */
  #sending: readonly TimedAuditEntry[] = [];
  #flushing: Promise<void> | undefined;
  #writeFailing = false;
  #readFailing = false;

  constructor(sink: SharedAuditSink, keep: number, options: AuditLogOptions) {
    this.#sink = sink;
    this.#keep = keep;
    this.#batchSize = options.batchSize ?? 100;
    this.#log = options.log;
    const interval = options.flushIntervalMs ?? 500;
    if (!Number.isInteger(this.#batchSize) || this.#batchSize < 1) throw new RangeError('createAuditLog: batchSize must be a positive integer');
    if (!Number.isFinite(interval) || interval <= 0) throw new RangeError('createAuditLog: flushIntervalMs must be more than 0');
    this.#timer = setInterval(() => void this.flush(), interval).unref();
  }

  add(entry: TimedAuditEntry): void {
    this.#pending.push(entry);
    if (this.#pending.length > this.#keep) this.#pending.splice(0, this.#pending.length - this.#keep);
    if (this.#pending.length >= this.#batchSize && this.#flushing === undefined) void this.flush();
  }

  /** Sends what is pending, one batch per write; never rejects (a failure keeps the batch for the next try). */
  flush(): Promise<void> {
    this.#flushing ??= this.#drain().finally(() => {
      this.#flushing = undefined;
    });
    return this.#flushing;
  }

  async #drain(): Promise<void> {
    while (this.#pending.length > 0) {
      this.#sending = this.#pending.splice(0, this.#batchSize);
      try {
        await this.#sink.append(this.#sending);
        if (this.#writeFailing) this.#log?.info('audit entries reach the shared stream again');
        this.#writeFailing = false;
      } catch (err) {
        this.#pending = [...this.#sending, ...this.#pending].slice(-this.#keep);
        if (!this.#writeFailing) this.#log?.warn({ err }, 'audit entries cannot reach the shared stream; kept in this replica (file and memory) and retried');
        this.#writeFailing = true;
        return;
      } finally {
        this.#sending = [];
      }
    }
  }

  /**
   * Every replica's newest entries, with this replica's not yet sent, oldest first; undefined
   * when the sink cannot be read (the caller shows this replica's own then).
   */
  async read(): Promise<TimedAuditEntry[] | undefined> {
    let entries: TimedAuditEntry[];
    try {
      entries = await this.#sink.read(this.#keep);
      if (this.#readFailing) this.#log?.info('the shared audit stream can be read again');
      this.#readFailing = false;
    } catch (err) {
      if (!this.#readFailing) this.#log?.warn({ err }, "the shared audit stream cannot be read; the audit view shows this replica's entries only");
      this.#readFailing = true;
      return undefined;
    }
    const unsent = [...this.#sending, ...this.#pending];
    if (unsent.length === 0) return entries;
    // A batch may have landed while its write was still in flight: leave out what is there already.
    const seen = new Set(entries.map((e) => JSON.stringify(e)));
    const merged = [...entries, ...unsent.filter((e) => !seen.has(JSON.stringify(e)))];
    // Stable, by time: replicas' batches interleave.
    return merged.sort((a, b) => (a.time < b.time ? -1 : a.time > b.time ? 1 : 0));
  }

  /** Sends what is left; waits at most `CLOSE_WAIT_MS` (a Redis that hangs must not hold up a shutdown). */
  async close(): Promise<void> {
    clearInterval(this.#timer);
    let timeout: NodeJS.Timeout | undefined;
    await Promise.race([this.flush(), new Promise<void>((resolve) => (timeout = setTimeout(resolve, CLOSE_WAIT_MS)))]);
    clearTimeout(timeout);
  }
}
