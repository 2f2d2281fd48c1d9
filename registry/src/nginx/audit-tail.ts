/**
 * Reads nginx's audit log (render.ts MCP_AUDIT_LOG) into the audit: one line per MCP request the
 * check never saw, so that every MCP request is audited once.
 * - `c`: answered from the check cache (authz/check-cache.ts). The line carries the cached
 *   answer's own audit summary; this request's id, trace and transport come from nginx.
 * - `n`: refused by njs before the check was asked (a malformed body, a method MCP has not).
 * Every other request was recorded by the check itself.
 *
 * nginx writes the file in buffers (flushed every second), so lines arrive within about a
 * second; this reads what is new every `pollMs`. It starts at the file's end: lines of an
 * earlier run were read by that run. A rotated file (renamed, nginx told to reopen its logs) is
 * read to its end, then the new one from its start; a truncated one from its start.
 */
import { open, stat, type FileHandle } from 'node:fs/promises';
import { StringDecoder } from 'node:string_decoder';
import type { AccessAuditEntry, AuditLog } from '../audit/audit-log.ts';
import { decodeAuditSummary } from '../authz/check-cache.ts';
import { traceIdOf } from '../authz/trace-context.ts';
import { SERVER_NAME_PATTERN } from '../catalog/server-definition.ts';
import type { Logger } from '../log.ts';

export interface AuditTailOptions {
  readonly file: string;
  readonly audit: Pick<AuditLog, 'record'>;
  /** Told of each request the cache answered (metrics). */
  readonly onCached?: (server: string, status: number) => void;
  readonly log: Logger;
  /** Default 250 ms. */
  readonly pollMs?: number;
}

/** A line longer than this is not one of ours (a summary is at most a few hundred bytes). */
const MAX_LINE = 16_384;

export class AuditTail {
  readonly #options: AuditTailOptions;
  #offset = 0;
  #ino: number | undefined;
  #handle: FileHandle | undefined;
  #pending = '';
  /** Keeps a character split across two reads whole (nginx writes bytes as the client sent them). */
  #decoder = new StringDecoder('utf8');
  #timer: NodeJS.Timeout | undefined;
  #reading: Promise<void> = Promise.resolve();
  #unreadable = 0;

  constructor(options: AuditTailOptions) {
    this.#options = options;
  }

  /** Starts at the file's current end (nothing yet: its start) and reads every `pollMs`. */
  async start(): Promise<void> {
    const current = await stat(this.#options.file).catch(() => undefined);
    this.#offset = current?.size ?? 0;
    this.#ino = current?.ino;
    this.#timer = setInterval(() => void this.drain(), this.#options.pollMs ?? 250);
    this.#timer.unref();
  }

  /** Reads and records every complete line written so far (one read at a time). */
  drain(): Promise<void> {
    this.#reading = this.#reading.then(() => this.#readNew()).catch((err: unknown) => this.#options.log.error({ err }, 'nginx audit log: read failed'));
    return this.#reading;
  }

  /** Reads what is left, then stops. */
  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.drain();
    await this.#handle?.close();
    this.#handle = undefined;
  }

  /**
   * Reads the open file to its end, then looks at the path: a new file there (rotated: renamed,
   * then nginx told to reopen its logs, which it does after flushing into the old one) is opened
   * and read from its start, once the old one has been read to its end.
   */
  async #readNew(): Promise<void> {
    if (this.#handle !== undefined) await this.#readToEnd(this.#handle);
    const atPath = await stat(this.#options.file).catch(() => undefined);
    if (atPath === undefined) return; // not written yet, or between a rename and nginx's reopen
    if (this.#handle !== undefined && atPath.ino === this.#ino && atPath.size >= this.#offset) return;
    if (this.#handle !== undefined) {
      // Rotated or truncated: what is at the path now is all new.
      this.#options.log.info('nginx audit log: a new file; reading it from its start');
      await this.#handle.close();
      this.#handle = undefined;
      this.#offset = 0;
      this.#pending = '';
      this.#decoder = new StringDecoder('utf8');
    } else if (atPath.ino !== this.#ino || atPath.size < this.#offset) {
      this.#offset = 0; // created or truncated after start: all new
    }
    this.#handle = await open(this.#options.file, 'r');
    this.#ino = (await this.#handle.stat()).ino;
    await this.#readToEnd(this.#handle);
  }

  async #readToEnd(handle: FileHandle): Promise<void> {
    const { size } = await handle.stat();
    if (size < this.#offset) return; // truncated: the path check above starts it again
    while (this.#offset < size) {
      const chunk = Buffer.alloc(Math.min(1 << 20, size - this.#offset));
      const { bytesRead } = await handle.read(chunk, 0, chunk.length, this.#offset);
      if (bytesRead === 0) break;
      this.#offset += bytesRead;
      this.#take(this.#decoder.write(chunk.subarray(0, bytesRead)));
    }
  }

  #take(text: string): void {
    const lines = (this.#pending + text).split('\n');
    this.#pending = lines.pop() ?? '';
    if (this.#pending.length > MAX_LINE) this.#pending = '';
    for (const line of lines) {
      if (line === '') continue;
      const entry = auditEntryOf(line);
      if (entry === undefined) {
        // Once, then every thousandth: a broken line is a fault of ours, not a reason to flood the log.
        if (this.#unreadable++ % 1000 === 0)
          this.#options.log.error({ line: line.slice(0, 200) }, 'nginx audit log: a line that is not an audit line; skipped');
        continue;
      }
      this.#options.audit.record(entry);
      if (entry.answeredBy === 'cache') this.#options.onCached?.(entry.server, entry.status);
    }
  }
}

const REQUEST_ID = /^[0-9a-f]{32}$/;

/** The audit entry of one line of nginx's audit log; undefined for anything else. */
export function auditEntryOf(line: string): AccessAuditEntry | undefined {
  if (line.length > MAX_LINE) return undefined;
  let fields: Record<string, unknown>;
  try {
    fields = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  const { requestId, server, transport, status, traceparent, audit } = fields;
  if (typeof requestId !== 'string' || !REQUEST_ID.test(requestId)) return undefined;
  if (typeof server !== 'string' || !SERVER_NAME_PATTERN.test(server)) return undefined;
  if (transport !== 'streamable-http' && transport !== 'sse') return undefined;
  const sent = Number(status);
  if (!Number.isInteger(sent) || sent < 100 || sent > 599) return undefined;
  if (typeof audit !== 'string' || (audit[0] !== 'c' && audit[0] !== 'n')) return undefined;
  const answeredBy = audit[0] === 'c' ? 'cache' : 'nginx';
  const summary = decodeAuditSummary(audit.slice(1));
  return {
    event: 'access',
    requestId,
    traceId: typeof traceparent === 'string' ? traceIdOf(traceparent) : undefined,
    server,
    transport,
    ...(summary ?? {
      // A cached answer without its summary (not one this registry wrote): what nginx sent.
      user: '',
      method: '',
      tool: undefined,
      messages: 0,
      decision: sent < 400 ? 'allow' : 'deny',
      status: sent,
      missingScope: undefined,
      reason: 'audit-summary-unreadable',
    }),
    answeredBy,
  };
}
