import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import session, { type SessionData } from 'express-session';
import type { Logger } from '../log.ts';
import './session-data.ts';

type Callback<T = void> = (err?: unknown, value?: T) => void;

/**
 * Sessions as one JSON file each under `dir`, so logins survive a restart. Every session is
 * also held in memory: the check on every MCP request reads `peek()` and never touches the
 * disk. Writes go to a temp file and are renamed into place, so a crash never leaves half a
 * session. One registry process owns the folder; several processes share sessions through
 * the Redis store instead.
 */
export class FileSessionStore extends session.Store {
  readonly #dir: string;
  readonly #log: Logger;
  readonly #sessions = new Map<string, SessionData>();
  readonly #pruneTimer: NodeJS.Timeout;

  constructor(dir: string, log: Logger) {
    super();
    this.#dir = dir;
    this.#log = log;
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.#loadAll();
    this.#pruneTimer = setInterval(() => this.prune(), 60_000).unref();
  }

  /** Synchronous lookup for the hot path; undefined when unknown or expired. */
  peek(sid: string): SessionData | undefined {
    const data = this.#sessions.get(sid);
    if (data === undefined) return undefined;
    if (isExpired(data)) {
      this.#forget(sid);
      return undefined;
    }
    return data;
  }

  override get(sid: string, callback: Callback<SessionData | null>): void {
    callback(undefined, this.peek(sid) ?? null);
  }

  override set(sid: string, data: SessionData, callback?: Callback): void {
    // A JSON copy: what the file holds, and free of the Cookie object's methods.
    const copy = JSON.parse(JSON.stringify(data)) as SessionData;
    this.#sessions.set(sid, copy);
    this.#write(sid, copy).then(() => callback?.(), (err: unknown) => callback?.(err));
  }

  /** Renews the expiry in memory; writes the file only when it moved by a minute or more. */
  override touch(sid: string, data: SessionData, callback?: Callback): void {
    const existing = this.#sessions.get(sid);
    if (!existing) return void callback?.();
    const before = expiresAt(existing);
    existing.cookie = JSON.parse(JSON.stringify(data.cookie)) as SessionData['cookie'];
    if (Math.abs(expiresAt(existing) - before) < 60_000) return void callback?.();
    this.#write(sid, existing).then(() => callback?.(), (err: unknown) => callback?.(err));
  }

  override destroy(sid: string, callback?: Callback): void {
    this.#sessions.delete(sid);
    rm(this.#file(sid), { force: true }).then(() => callback?.(), (err: unknown) => callback?.(err));
  }

  /** Every live session, for the refresher (a snapshot; changes go through set/destroy). */
  entries(): Array<[string, SessionData]> {
    this.prune();
    return [...this.#sessions];
  }

  /** Drops expired sessions from memory and disk. */
  prune(): void {
    for (const [sid, data] of this.#sessions) if (isExpired(data)) this.#forget(sid);
  }

  close(): void {
    clearInterval(this.#pruneTimer);
  }

  #forget(sid: string): void {
    this.#sessions.delete(sid);
    rmSync(this.#file(sid), { force: true });
  }

  #loadAll(): void {
    for (const name of readdirSync(this.#dir)) {
      if (!name.endsWith('.json')) continue;
      const file = join(this.#dir, name);
      try {
        const { sid, data } = JSON.parse(readFileSync(file, 'utf8')) as { sid: string; data: SessionData };
        if (typeof sid !== 'string' || this.#file(sid) !== file || isExpired(data)) {
          rmSync(file, { force: true });
          continue;
        }
        this.#sessions.set(sid, data);
      } catch (err) {
        this.#log.warn({ file, err }, 'unreadable session file removed');
        rmSync(file, { force: true });
      }
    }
  }

  async #write(sid: string, data: SessionData): Promise<void> {
    const file = this.#file(sid);
    const tmp = `${file}.${process.pid}.${Date.now()}.tmp`;
    await writeFile(tmp, JSON.stringify({ sid, data }), { mode: 0o600 });
    await rename(tmp, file);
  }

  /** File names are a hash of the id, so an id never becomes a path. */
  #file(sid: string): string {
    return join(this.#dir, `${createHash('sha256').update(sid).digest('hex').slice(0, 40)}.json`);
  }
}

function expiresAt(data: SessionData): number {
  const expires = data.cookie?.expires;
  return expires === undefined || expires === null ? Number.POSITIVE_INFINITY : new Date(expires).getTime();
}

function isExpired(data: SessionData): boolean {
  return expiresAt(data) <= Date.now();
}
