import { GatewayError } from '../errors.ts';
import type { IdentityProvider, LoginResult } from '../identity/provider.ts';
import type { Logger } from '../log.ts';
import type { Lease, StoredRecord } from '../store/index.ts';
import type { LoginSessions } from './login-sessions.ts';
import type { SessionValue } from './session-record.ts';

const TICK_MS = 2_000;
/** Refresh this long before expiry at most, or at two thirds of a short lifetime. */
const MAX_LEAD_MS = 60_000;
/** Rounds of re-read before a refresh result is dropped (the next pass refreshes again). */
const MAX_WRITE_ROUNDS = 5;

export interface RefresherOptions {
  readonly store: Pick<LoginSessions, 'list' | 'replace' | 'end'>;
  readonly provider: Pick<IdentityProvider, 'refresh' | 'name'>;
  readonly scopesFor: (groups: readonly string[]) => string[];
  readonly sealer: { seal(plain: string): string; open(sealed: string): string | undefined };
  readonly log: Logger;
  /**
   * With replicas sharing sessions (Redis), only the lease holder runs the background passes: two
   * replicas refreshing one session would spend its rotating refresh token twice and burn the
   * token family. Without one, every pass runs (one process).
   */
  readonly lease?: Pick<Lease, 'held'>;
  /** Keeps the person's current IdP tokens for token exchange (credentials/idp-tokens.ts); never throws. */
  readonly idpTokens?: { remember(person: { provider: string; sub: string }, result: LoginResult): Promise<void> };
}

/**
 * Keeps sessions in step with the IdP without an IdP call on the request path: shortly before
 * a session's access token expires, it is refreshed, and the groups and scopes are recomputed,
 * so a user removed from a group loses the scope within one access-token lifetime. A refresh
 * the IdP refuses ends the session; so does an expired token that cannot be refreshed (an
 * unreachable IdP is retried until then).
 *
 * A refresh never brings back a session that ended while it was in flight: it writes with
 * compare-and-set on the version it read, and a session that is gone stays gone (the result is
 * logged and dropped). When the session is still the same sign-in but changed meanwhile (a
 * request renewed it or set a CSRF token), the refresh's fields are written over the current
 * record instead: dropping them would lose a rotated refresh token and end the session at the
 * next pass.
 *
 * Sessions without a refresh token are not refreshed: they end when the access token they were
 * issued with expires (`sessionDeadline`), which bounds how long removed groups still count.
 */
export class SessionRefresher {
  readonly #options: RefresherOptions;
  readonly #inFlight = new Set<string>();
  readonly #passes = new Set<Promise<void>>();
  #timer: NodeJS.Timeout | undefined;

  constructor(options: RefresherOptions) {
    this.#options = options;
  }

  start(): void {
    this.#timer ??= setInterval(() => {
      if (this.#options.lease?.held() === false) return;
      this.runOnce().catch((err: unknown) => {
        // A store outage is logged by the store (and the lease goes meanwhile); no line every 2 s.
        if (err instanceof GatewayError && err.code === 'STORE_UNAVAILABLE') return void this.#options.log.debug({ err }, 'session refresh pass skipped');
        this.#options.log.error({ err }, 'session refresh pass failed');
      });
    }, TICK_MS).unref();
  }

  /** Stops the timer; resolves when the passes in flight have finished (so the store can close after). */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await Promise.allSettled(this.#passes);
  }

  /** One pass over the sessions; resolves when every refresh it started has finished. */
  runOnce(now = Date.now()): Promise<void> {
    const pass = this.#pass(now);
    this.#passes.add(pass);
    void pass.finally(() => this.#passes.delete(pass)).catch(() => {});
    return pass;
  }

  async #pass(now: number): Promise<void> {
    const due = (await this.#options.store.list()).filter((record) => !this.#inFlight.has(record.key) && isDue(record.value, now));
    await Promise.all(due.map((record) => this.#refresh(record, now)));
  }

  async #refresh(read: StoredRecord<SessionValue>, now: number): Promise<void> {
    const { provider, scopesFor, sealer, log } = this.#options;
    const tokens = read.value.tokens!;
    const user = read.value.identity?.username;
    const refreshToken = sealer.open(tokens.sealedRefreshToken!);
    if (refreshToken === undefined) return this.#end(read, user, 'the refresh token cannot be opened (SECRET_KEY changed?)');
    this.#inFlight.add(read.key);
    try {
      const result = await provider.refresh(refreshToken);
      const groups = [...result.identity.groups];
      const identity = read.value.identity!;
      await this.#options.idpTokens?.remember({ provider: identity.provider, sub: identity.sub }, result);
      await this.#write(read, user, {
        identity: { ...read.value.identity!, groups },
        scopes: scopesFor(groups),
        tokens: {
          sealedRefreshToken: result.refreshToken === undefined ? tokens.sealedRefreshToken : sealer.seal(result.refreshToken),
          expiresAt: result.accessTokenExpiresAt,
          issuedAt: Date.now(),
        },
      });
    } catch (err) {
      if (err instanceof GatewayError && err.code === 'LOGIN_STATE_INVALID') return this.#end(read, user, 'the identity provider refused the refresh token');
      if ((tokens.expiresAt ?? 0) <= now) return this.#end(read, user, 'the access token expired and the identity provider could not be reached to refresh it');
      log.warn({ user, err }, 'session refresh failed; retrying');
    } finally {
      this.#inFlight.delete(read.key);
    }
  }

  async #write(read: StoredRecord<SessionValue>, user: string | undefined, update: Pick<SessionValue, 'identity' | 'scopes' | 'tokens'>): Promise<void> {
    const { store, log } = this.#options;
    let current = read;
    for (let round = 0; round < MAX_WRITE_ROUNDS; round++) {
      const result = await store.replace(read.key, current.version, { ...current.value, ...update });
      if (result.ok) return void log.debug({ user, groups: update.identity?.groups }, 'session refreshed');
      if (result.current === undefined) return void log.info({ user }, 'session ended while its refresh was in flight; the refresh is dropped');
      if (!sameTokens(result.current.value, read.value)) return void log.info({ user }, 'session was refreshed elsewhere meanwhile; this refresh is dropped');
      current = result.current;
    }
    log.warn({ user }, 'session kept changing during its refresh; the refresh is dropped and retried');
  }

  async #end(read: StoredRecord<SessionValue>, user: string | undefined, why: string): Promise<void> {
    const { store, log, provider } = this.#options;
    // Only the version the decision was made on: a session refreshed meanwhile is judged again next pass.
    if (await store.end(read.key, read.version)) log.info({ user, provider: provider.name }, `session ended: ${why}`);
  }
}

function isDue(value: SessionValue | StoredRecord<SessionValue>['value'], now: number): boolean {
  const tokens = value.tokens;
  if (!value.identity || tokens?.sealedRefreshToken === undefined || tokens.expiresAt === undefined) return false;
  const lifetime = Math.max(0, tokens.expiresAt - tokens.issuedAt);
  const lead = Math.min(MAX_LEAD_MS, lifetime / 3);
  return tokens.expiresAt - now <= lead;
}

/** The same refresh token and issue time: nobody else refreshed the session since it was read. */
function sameTokens(a: StoredRecord<SessionValue>['value'], b: StoredRecord<SessionValue>['value']): boolean {
  return a.tokens?.sealedRefreshToken === b.tokens?.sealedRefreshToken && a.tokens?.issuedAt === b.tokens?.issuedAt;
}
