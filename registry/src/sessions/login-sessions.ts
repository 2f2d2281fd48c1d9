import type { Request } from 'express';
import session, { type Cookie, type Session, type SessionData } from 'express-session';
import type { Logger } from '../log.ts';
import type { Frozen, RecordStore, StoredRecord, SyncRecordReader, WriteResult } from '../store/index.ts';
import type { SessionIdentity, SessionTokens } from './session-data.ts';
import { mergeSessionChanges, sessionDeadline, sessionExpiresAt, type SessionLimits, type SessionValue } from './session-record.ts';

type Callback<T = void> = (err?: unknown, value?: T) => void;

/** A renewal that moves the expiry by less than this is not written (a polling page would write every few seconds). */
const TOUCH_GRANULARITY_MS = 60_000;
/** Rounds of re-read and merge before a save gives up (each round means someone else wrote meanwhile). */
const MAX_MERGE_ROUNDS = 5;

export interface LoginSessionsOptions {
  readonly records: RecordStore<SessionValue> & SyncRecordReader<SessionValue>;
  readonly limits: SessionLimits;
  readonly log: Logger;
  readonly now?: () => number;
}

/** What a request read: the version to compare against, and the value to diff its changes with. */
interface ReadMark {
  readonly version: number;
  readonly read: Frozen<SessionValue> | SessionValue;
}

/**
 * Login sessions on the record store. express-session (maintained) keeps the cookie and
 * `req.session` mechanics; this adapter maps its get/set/touch/destroy onto versioned records:
 * - get hands the request a mutable copy and remembers (by object, never in the data) the
 *   version it read;
 * - set compares-and-sets on that version. A session that is gone (signed out, ended by the
 *   refresher, expired) is never written again: a signed-out session does not come back. On a
 *   version conflict the request's own changes are merged onto the current record
 *   (`mergeSessionChanges`, the rule is documented there);
 * - touch renews the rolling expiry, never past the absolute lifetime (`sessionExpiresAt`), and
 *   caps the cookie's maxAge at the same deadline so the browser does not keep a dead cookie;
 * - destroy removes the record for good.
 * `peek` is the synchronous read from memory for the check on every MCP request.
 */
export class LoginSessions extends session.Store {
  readonly #records: RecordStore<SessionValue> & SyncRecordReader<SessionValue>;
  readonly #limits: SessionLimits;
  readonly #log: Logger;
  readonly #now: () => number;
  /** Keyed by the data object handed to express-session, then by the `req.session` built from it. */
  readonly #marks = new WeakMap<object, ReadMark>();

  constructor(options: LoginSessionsOptions) {
    super();
    this.#records = options.records;
    this.#limits = options.limits;
    this.#log = options.log;
    this.#now = options.now ?? Date.now;
  }

  /** The live session, synchronously from memory (authz/credentials.ts `SessionLookup`). */
  peek(sid: string): Frozen<SessionValue> | undefined {
    return this.#records.peek(sid)?.value;
  }

  /** When the live session ends (ms since epoch), from memory; undefined when there is none. */
  expiresAt(sid: string): number | undefined {
    return this.#records.peek(sid)?.expiresAt;
  }

  /** The identity and scopes of every signed-in session (and its IdP tokens and sign-in time, when it has them). */
  *signedIn(): Iterable<{
    identity: Frozen<SessionIdentity>;
    scopes: readonly string[];
    tokens?: Frozen<SessionTokens> | undefined;
    signedInAt?: number | undefined;
  }> {
    for (const { value } of this.#records.snapshot())
      if (value.identity && Array.isArray(value.scopes))
        yield { identity: value.identity, scopes: value.scopes, tokens: value.tokens, signedInAt: value.signedInAt };
  }

  /**
   * Every live session record, for the refresher: from memory (`snapshot`), so a pass every 2 s
   * costs no Redis command; its writes compare-and-set, so a copy a moment old is safe.
   */
  async list(): Promise<StoredRecord<SessionValue>[]> {
    return this.#records.snapshot();
  }

  /**
   * Writes `value` over the session only if it is still at `version`, with the expiry the limits
   * give it (never past the absolute lifetime). Never recreates a session that is gone.
   */
  async replace(sid: string, version: number, value: SessionValue | Frozen<SessionValue>): Promise<WriteResult<SessionValue>> {
    const expiresAt = sessionExpiresAt(value, this.#limits, this.#now());
    if (expiresAt <= this.#now()) {
      await this.#records.destroy(sid, version);
      return { ok: false, current: undefined };
    }
    return this.#records.compareAndSet(sid, version, value, { expiresAt });
  }

  /** Ends a session (only at `version` when given); true when it was there to end. */
  end(sid: string, version?: number): Promise<boolean> {
    return this.#records.destroy(sid, version);
  }

  /**
   * Caps the cookie's maxAge, now and at every later renewal by express-session (`touch()`
   * resets it to originalMaxAge), at the session's deadline. Called for every session loaded
   * and by the login callback once the session is signed in.
   */
  limitCookie(req: { session: Session & Partial<SessionData> }): void {
    const deadline = sessionDeadline(req.session, this.#limits);
    if (deadline === Number.POSITIVE_INFINITY) return;
    capMaxAge(req.session.cookie, deadline, this.#now);
  }

  override get(sid: string, callback: Callback<SessionData | null>): void {
    this.#records.get(sid).then((record) => {
      if (!record) return void callback(undefined, null);
      const data = structuredClone(record.value) as SessionValue;
      this.#marks.set(data, { version: record.version, read: record.value });
      callback(undefined, data as SessionData);
    }, callback);
  }

  override createSession(req: Request, data: SessionData): Session & SessionData {
    const mark = this.#marks.get(data);
    const created = super.createSession(req, data);
    if (mark) this.#marks.set(created, mark);
    this.limitCookie({ session: created });
    return created;
  }

  override set(sid: string, data: SessionData, callback?: Callback): void {
    this.#save(sid, data).then(
      () => callback?.(),
      (err: unknown) => callback?.(err),
    );
  }

  override touch(sid: string, data: SessionData, callback?: Callback): void {
    this.#touch(sid, data).then(
      () => callback?.(),
      (err: unknown) => callback?.(err),
    );
  }

  override destroy(sid: string, callback?: Callback): void {
    this.#records.destroy(sid).then(
      () => callback?.(),
      (err: unknown) => callback?.(err),
    );
  }

  close(): Promise<void> {
    return this.#records.close();
  }

  async #save(sid: string, data: SessionData): Promise<void> {
    const mine = plain(data);
    const mark = this.#marks.get(data);
    if (mark === undefined) {
      // A new session (first save, or after regenerate): its id is fresh, so it must not exist.
      const expiresAt = sessionExpiresAt(mine, this.#limits, this.#now());
      if (expiresAt <= this.#now()) return;
      const created = await this.#records.create(sid, mine, { expiresAt });
      if (!created.ok) throw new Error('a new session id is already in use; refusing to overwrite that session');
      this.#marks.set(data, { version: created.record.version, read: mine });
      return;
    }
    let version = mark.version;
    let next = mine;
    for (let round = 0; round < MAX_MERGE_ROUNDS; round++) {
      const result = await this.replace(sid, version, next);
      if (result.ok) {
        this.#marks.set(data, { version: result.record.version, read: mine });
        return;
      }
      if (result.current === undefined) {
        this.#log.debug({ user: mine.identity?.username }, 'session ended while a request used it; not saved');
        return;
      }
      version = result.current.version;
      next = mergeSessionChanges(mark.read, mine, result.current.value);
    }
    throw new Error('the session kept changing while this request saved it');
  }

  async #touch(sid: string, data: SessionData): Promise<void> {
    const current = await this.#records.get(sid);
    if (current === undefined) return; // ended meanwhile: a renewal never brings it back
    const next = { ...current.value, cookie: plain(data).cookie };
    const expiresAt = sessionExpiresAt(next, this.#limits, this.#now());
    if (expiresAt - current.expiresAt < TOUCH_GRANULARITY_MS) return;
    // A conflict means another write changed the session meanwhile; the next request renews it.
    await this.#records.compareAndSet(sid, current.version, next, { expiresAt });
  }
}

/** The JSON of express-session's data (the Cookie becomes its settings), as the store keeps it. */
function plain(data: SessionData): SessionValue {
  return JSON.parse(JSON.stringify(data)) as SessionValue;
}

/**
 * Makes `cookie.maxAge = ms` (express-session's renewal, `Session#touch()`) stop at `deadline`.
 * express-session has no hook between renewing the cookie and writing Set-Cookie, so an own
 * accessor on this one Cookie object is the narrowest place to cap it; `toJSON()` reads the
 * resulting `expires`, so what is stored and what is sent agree.
 */
function capMaxAge(cookie: Cookie, deadline: number, now: () => number): void {
  const accessor = Object.getOwnPropertyDescriptor(Object.getPrototypeOf(cookie), 'maxAge');
  if (!accessor?.get || !accessor.set) throw new TypeError('express-session Cookie has no maxAge accessor');
  const { get, set } = accessor;
  Object.defineProperty(cookie, 'maxAge', {
    configurable: true,
    enumerable: false,
    get() {
      return get.call(this) as number | null;
    },
    set(ms: unknown) {
      set.call(this, typeof ms === 'number' ? Math.min(ms, deadline - now()) : ms === null ? deadline - now() : ms);
    },
  });
  cookie.maxAge = cookie.maxAge ?? deadline - now();
}
