/**
 * The check cache's generation (authz/check-cache.ts): a small file in nginx's runtime folder
 * that njs reads on every MCP request and hashes into the cache key. Writing a new value makes
 * every cached answer unreachable at once, so what must bite on the next request (a server
 * toggled, a person signed out, a token or grant revoked, a session ended, a definition or the
 * scope mapping changed) is never answered from the cache again.
 *
 * Ordering: `bump()` runs after the change is visible to the check (the stores' onChange, the
 * catalog's `changed`), so a request that reads the new generation is decided on the new state.
 * An answer computed on the old state can only be stored under an old generation's key.
 *
 * The value starts with a random id per start: the cache folder outlives the process, and a
 * restarted registry must not find its predecessor's answers under its own keys.
 */
import { randomBytes } from 'node:crypto';
import { renameSync, writeFileSync } from 'node:fs';
import type { Logger } from '../log.ts';
import type { StoredRecord } from '../store/record-store.ts';

/** What the generation file says while caching is suspended: njs then neither reads nor fills the cache. */
export const SUSPENDED_GENERATION = '-';

export class CheckGeneration {
  readonly #file: string;
  readonly #boot = randomBytes(9).toString('base64url');
  #count = 0;
  #bumps = 0;
  #suspended = false;

  /** Writes the first generation now: nginx must find the file from its first request. */
  constructor(file: string) {
    this.#file = file;
    this.#write();
  }

  /** Invalidates every cached answer (synchronous: done when it returns). */
  bump(): void {
    this.#count++;
    this.#bumps++;
    this.#write();
  }

  /**
   * Stops nginx from reading or keeping answers (the cache folder became unusable): every
   * request asks the registry until `resume`. What was cached is never served again.
   */
  suspend(): void {
    this.#suspended = true;
    this.#count++;
    this.#write();
  }

  /** Caching again, under a generation no cached answer has. */
  resume(): void {
    this.#suspended = false;
    this.#count++;
    this.#write();
  }

  get suspended(): boolean {
    return this.#suspended;
  }

  /** How many times the cache was invalidated since start (metrics, tests). */
  get bumps(): number {
    return this.#bumps;
  }

  /** Atomic for readers: a new file renamed over the old one, so njs reads one value or the other. */
  #write(): void {
    const temp = `${this.#file}.${process.pid}.tmp`;
    // Readable by nginx's workers (nobody, when the registry runs as root); it holds no secret.
    writeFileSync(temp, this.#suspended ? SUSPENDED_GENERATION : `${this.#boot}.${this.#count}`, { mode: 0o644 });
    renameSync(temp, this.#file);
  }
}

/**
 * Checks the cache folder while the gateway runs (every `everyMs`, default 2 s): a folder made
 * unusable under a running nginx (chmod, chown, replaced) would turn cached answers into 500s.
 * Then caching is suspended, with an error saying why, until the folder is right again.
 */
export class CacheDirWatch {
  readonly #timer: NodeJS.Timeout;

  constructor(options: {
    generation: Pick<CheckGeneration, 'suspend' | 'resume' | 'suspended'>;
    problem: () => string | undefined;
    log: Logger;
    everyMs?: number;
  }) {
    const { generation, problem, log } = options;
    this.#timer = setInterval(() => {
      const found = problem();
      if (found !== undefined && !generation.suspended) {
        generation.suspend();
        log.error({ problem: found }, 'check cache folder: no longer usable; every MCP request asks the check until it is fixed');
      } else if (found === undefined && generation.suspended) {
        generation.resume();
        log.info('check cache folder: usable again; caching decisions again');
      }
    }, options.everyMs ?? 2000);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}

/** A store the check reads from memory, as far as invalidation cares: who changed. */
interface ChangeSource<T> {
  onChange(listener: (key: string, record: StoredRecord<T> | undefined) => void): () => void;
  snapshot(): StoredRecord<T>[];
}

/** A login session as far as the check's answers go. */
type SessionLike = {
  readonly identity?: { readonly sub: string; readonly username?: string; readonly groups?: readonly string[] } | undefined;
  readonly scopes?: readonly string[] | undefined;
};

/** What the check reads that may change under a cached answer. */
export interface CheckInputs {
  /** Toggles, edits, registrations, deletions (the route table listened first). */
  readonly catalog: { on(event: 'changed', listener: () => void): unknown; off(event: 'changed', listener: () => void): unknown };
  /** Login sessions: a sign-out or a session's end, or scopes recomputed at a refresh. */
  readonly sessions: ChangeSource<SessionLike>;
  /** The authorization server's records: revocations, grants, refresh tokens. */
  readonly authserver: ChangeSource<unknown>;
  /** Personal access tokens: created, revoked. */
  readonly tokens: ChangeSource<unknown>;
  /** The scope mapping file, reloaded. */
  readonly mapping: { onReload(listener: () => void): () => void };
}

/**
 * The authorization server's records no check reads: the steps of a sign-in or consent. Every
 * other change of that store (a revocation, a grant, a token) invalidates, which is more than
 * needed and never less.
 */
const FLOW_RECORDS = /^(?:Interaction|Session|AuthorizationCode|ReplayDetection|PushedAuthorizationRequest|DeviceCode|BackchannelAuthenticationRequest):/;

/**
 * Bumps `generation` after each change the check would decide differently on. A session's
 * own writes (its rolling expiry, a refreshed IdP token) do not, unless its identity or scopes
 * changed; its deletion (sign-out, end) does. Returns the unsubscribe.
 */
export function invalidateOnChanges(generation: Pick<CheckGeneration, 'bump'>, inputs: CheckInputs): () => void {
  const bump = () => generation.bump();
  const seen = new Map<string, string>();
  // Who the session is and what it may do: the scopes the check uses, and the groups a personal
  // token of the same person is scoped by (personal-tokens.ts liveGroups).
  const fingerprint = (value: SessionLike) =>
    value.identity === undefined ? '' : JSON.stringify([value.identity.sub, value.identity.username ?? '', value.identity.groups ?? [], value.scopes ?? []]);
  const reseed = () => {
    seen.clear();
    for (const record of inputs.sessions.snapshot()) seen.set(record.key, fingerprint(record.value));
  };
  reseed();
  let changes = 0;
  const stops = [
    inputs.sessions.onChange((key, record) => {
      const before = seen.get(key);
      if (record === undefined) {
        seen.delete(key);
        // One that never signed in (a login in progress, replaced at sign-in) had no cached answer.
        if (before !== '') bump();
      } else {
        const now = fingerprint(record.value);
        seen.set(key, now);
        // A new session, or one signing in, had no cached answer (a 401 is never cached): only a
        // change of one already signed in matters.
        if (before !== undefined && before !== '' && before !== now) bump();
      }
      // Sessions that expire unannounced would stay here forever: start again from the store now and then.
      if (++changes % 1000 === 0) reseed();
    }),
    inputs.authserver.onChange((key) => {
      if (!FLOW_RECORDS.test(key)) bump();
    }),
    inputs.tokens.onChange(bump),
    inputs.mapping.onReload(bump),
  ];
  inputs.catalog.on('changed', bump);
  return () => {
    for (const stop of stops) stop();
    inputs.catalog.off('changed', bump);
  };
}
