import { once } from 'node:events';
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { pino } from 'pino';
import type { Logger } from '../log.ts';
import { SharedBatches } from './shared-batches.ts';

/** One access decision of the check. Never holds a token, cookie or request body. */
export interface AccessAuditEntry {
  readonly event: 'access';
  readonly requestId: string | undefined;
  /** The W3C trace id the client sent (`traceparent`), when valid: links the audit line to the client's trace. */
  readonly traceId?: string | undefined;
  readonly user: string;
  readonly server: string;
  readonly transport: string | undefined;
  /** The first method of the request (or of the refused message in a batch); '' without a body. */
  readonly method: string;
  readonly tool: string | undefined;
  /** How many JSON-RPC messages the body held (batches hold several). */
  readonly messages: number;
  readonly decision: 'allow' | 'deny';
  readonly status: number;
  readonly missingScope: string | undefined;
  readonly reason: string | undefined;
  /**
   * Who answered, when it was not the check: `cache`, nginx from a cached answer of the check
   * (the decision and its fields are that answer's); `nginx`, njs refused the request before
   * asking (nginx/audit-tail.ts). Absent: the check decided this request itself.
   */
  readonly answeredBy?: 'cache' | 'nginx' | undefined;
}

/** A change to the registry made by a person on the page or through the API. */
export interface ChangeAuditEntry {
  readonly event: 'change';
  readonly user: string;
  readonly server: string;
  /** `credentials`: a backend secret of the server was set or cleared (never its value). */
  readonly action: 'enable' | 'disable' | 'register' | 'update' | 'delete' | 'credentials' | 'reseal' | 'my-token' | 'connect' | 'disconnect';
}

export type AuditEntry = AccessAuditEntry | ChangeAuditEntry;

/** An entry as written to the file and kept in memory: with the ISO `time` of its line. */
export type TimedAuditEntry = AuditEntry & { readonly time: string };

export interface AuditQuery {
  readonly event?: 'access' | 'change';
  /** Exact match. */
  readonly user?: string;
  /** Exact match. */
  readonly server?: string;
  /** Access entries only; when set, change entries are excluded. */
  readonly decision?: 'allow' | 'deny';
  /** The caller's permission filter, applied first: entries of other servers are never returned. */
  readonly visibleServer?: (server: string) => boolean;
  /** Default 100, clamped to 1..1000. */
  readonly limit?: number;
}

export interface AuditLog {
  /** Never waits and never fails: the file and the shared stream are written in batches, later. */
  record(entry: AuditEntry): void;
  /** Resolves when what was recorded is in the file (and, with a shared sink, sent or kept for a retry). */
  flush(): Promise<void>;
  /**
   * The most recent entries, newest first, filtered by `query` (see queryAudit). With a shared
   * sink, those of every replica; this replica's alone while the sink cannot be read.
   */
  recent(query?: AuditQuery): Promise<TimedAuditEntry[]>;
}

/**
 * Where the entries of every replica meet (Redis: RedisAuditSink). The audit log sends its
 * entries in batches, never one per request, and reads the newest back for `recent`.
 */
export interface SharedAuditSink {
  /** Appends one batch (oldest first) in one write. Rejects when the backend is unavailable. */
  append(batch: readonly TimedAuditEntry[]): Promise<void>;
  /** The newest `max` entries of every replica, oldest first. Rejects when the backend is unavailable. */
  read(max: number): Promise<TimedAuditEntry[]>;
}

export interface AuditLogOptions {
  /** How many recent entries to keep in memory for `recent` (and read back from the shared sink); default 2000. */
  readonly keep?: number;
  /** The entries of every replica (REDIS_URL); without it `recent` shows this process's. */
  readonly shared?: SharedAuditSink;
  /** How often buffered entries go to the shared sink; default 500 ms. */
  readonly flushIntervalMs?: number;
  /** Entries per write to the shared sink; a full batch is sent at once. Default 100. */
  readonly batchSize?: number;
  /** For the one line when the shared sink fails and the one when it works again. */
  readonly log?: Logger;
}

const DEFAULT_KEEP = 2000;
const DEFAULT_LIMIT = 100;
const MAX_LIMIT = 1000;
/** How much of the end of an existing file is read on start to seed the recent entries. */
export const SEED_WINDOW_BYTES = 1024 * 1024;

/**
 * Pure: the entries matching `query`, newest first. `entries` are in recording order (oldest
 * first), as the log keeps them; the result holds at most `limit` (default 100, 1..1000).
 */
export function queryAudit(entries: readonly TimedAuditEntry[], query: AuditQuery): TimedAuditEntry[] {
  const limit = clampLimit(query.limit);
  const { event, user, server, decision, visibleServer } = query;
  const found: TimedAuditEntry[] = [];
  for (let i = entries.length - 1; i >= 0 && found.length < limit; i--) {
    const entry = entries[i];
    if (entry === undefined) continue;
    if (visibleServer !== undefined && !visibleServer(entry.server)) continue;
    if (event !== undefined && entry.event !== event) continue;
    if (user !== undefined && entry.user !== user) continue;
    if (server !== undefined && entry.server !== server) continue;
    if (decision !== undefined && (entry.event !== 'access' || entry.decision !== decision)) continue;
    found.push(entry);
  }
  return found;
}

function clampLimit(limit: number | undefined): number {
  if (limit === undefined || Number.isNaN(limit)) return DEFAULT_LIMIT;
  return Math.min(MAX_LIMIT, Math.max(1, Math.trunc(limit)));
}

/**
 * Appends one JSON line per entry (with `time`) to `file`. Writes are asynchronous and
 * batched by pino's sonic-boom, so the check never waits on the disk. `undefined` fields are
 * left out of the line. The last `keep` entries also stay in memory for `recent`, seeded on
 * creation from the end of an existing file so a restart still shows history.
 */
export function createAuditLog(file: string, options: AuditLogOptions = {}): AuditLog & { close(): Promise<void> } {
  const keep = options.keep ?? DEFAULT_KEEP;
  if (!Number.isInteger(keep) || keep < 1) throw new RangeError(`createAuditLog: keep must be a positive integer, got ${keep}`);
  const shared = options.shared === undefined ? undefined : new SharedBatches(options.shared, keep, options);
  // Ring of the most recent entries: `head` is the next slot to write, `count` how many are held.
  const ring = new Array<TimedAuditEntry | undefined>(keep).fill(undefined);
  let head = 0;
  let count = 0;
  const remember = (entry: TimedAuditEntry): void => {
    ring[head] = entry;
    head = head + 1 === keep ? 0 : head + 1;
    if (count < keep) count++;
  };
  // Read before the destination opens the file, so nothing written by this instance is seen twice.
  for (const entry of readTail(file, keep)) remember(entry);

  // Batched: lines collect until 4 KiB or the next second, so a busy check makes few writes.
  const destination = pino.destination({ dest: file, sync: false, mkdir: true, minLength: 4096 });
  let open = false;
  let closed = false;
  const timer = setInterval(() => {
    if (open && !closed) destination.flush(() => undefined);
  }, 1000).unref();
  // The file opens asynchronously; flush and close wait for it.
  const ready = once(destination, 'ready').then(() => {
    open = true;
  });
  return {
    record(entry) {
      const timed: TimedAuditEntry = { time: new Date().toISOString(), ...entry };
      destination.write(`${JSON.stringify(timed)}\n`);
      remember(timed);
      shared?.add(timed);
    },
    async recent(query = {}) {
      const entries: TimedAuditEntry[] = new Array<TimedAuditEntry>(count);
      const start = count < keep ? 0 : head; // the oldest held entry
      for (let i = 0; i < count; i++) entries[i] = ring[(start + i) % keep] as TimedAuditEntry;
      return queryAudit((await shared?.read()) ?? entries, query);
    },
    async flush() {
      await ready;
      await new Promise<void>((resolve) => destination.flush(() => resolve()));
      await shared?.flush();
    },
    async close() {
      clearInterval(timer);
      await shared?.close();
      closed = true;
      await ready;
      const ended = once(destination, 'close');
      destination.end();
      await ended;
    },
  };
}

/**
 * The valid entries among the last SEED_WINDOW_BYTES of `file` (the newest `keep`, oldest
 * first); none when the file does not exist. Lines that do not parse or are not entries (a
 * crash-cut last line, a hand edit) are skipped; the first line of the window is dropped when
 * the window does not start at the beginning of the file, since it is likely cut.
 */
function readTail(file: string, keep: number): TimedAuditEntry[] {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  let text: string;
  let start: number;
  try {
    const size = fstatSync(fd).size;
    start = Math.max(0, size - SEED_WINDOW_BYTES);
    const buffer = Buffer.alloc(size - start);
    let read = 0;
    while (read < buffer.length) {
      const n = readSync(fd, buffer, read, buffer.length - read, start + read);
      if (n === 0) break;
      read += n;
    }
    text = buffer.toString('utf8', 0, read);
  } finally {
    closeSync(fd);
  }
  const lines = text.split('\n');
  if (start > 0) lines.shift();
  const entries: TimedAuditEntry[] = [];
  for (const line of lines) {
    if (line.length === 0) continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      continue;
    }
    if (isTimedEntry(value)) entries.push(value);
  }
  return entries.length > keep ? entries.slice(entries.length - keep) : entries;
}

export function isTimedEntry(value: unknown): value is TimedAuditEntry {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const v = value as Record<string, unknown>;
  return (
    (v['event'] === 'access' || v['event'] === 'change') && typeof v['time'] === 'string' && typeof v['user'] === 'string' && typeof v['server'] === 'string'
  );
}
