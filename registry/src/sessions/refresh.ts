import type { SessionData } from 'express-session';
import { GatewayError } from '../errors.ts';
import type { IdentityProvider } from '../identity/provider.ts';
import type { Logger } from '../log.ts';
import type { FileSessionStore } from './file-store.ts';

const TICK_MS = 2_000;
/** Refresh this long before expiry at most, or at two thirds of a short lifetime. */
const MAX_LEAD_MS = 60_000;

export interface RefresherOptions {
  readonly store: Pick<FileSessionStore, 'entries' | 'set' | 'destroy'>;
  readonly provider: Pick<IdentityProvider, 'refresh' | 'name'>;
  readonly scopesFor: (groups: readonly string[]) => string[];
  readonly sealer: { seal(plain: string): string; open(sealed: string): string | undefined };
  readonly log: Logger;
}

/**
 * Keeps sessions in step with the IdP without an IdP call on the request path: shortly before
 * a session's access token expires, it is refreshed, and the groups and scopes are recomputed,
 * so a user removed from a group loses the scope within one access-token lifetime. A refresh
 * the IdP refuses ends the session; so does an expired token that cannot be refreshed (an
 * unreachable IdP is retried until then). Sessions without a refresh token live out their TTL.
 */
export class SessionRefresher {
  readonly #options: RefresherOptions;
  readonly #inFlight = new Set<string>();
  #timer: NodeJS.Timeout | undefined;

  constructor(options: RefresherOptions) {
    this.#options = options;
  }

  start(): void {
    this.#timer ??= setInterval(() => void this.runOnce(), TICK_MS).unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** One pass over the sessions; resolves when every refresh it started has finished. */
  async runOnce(now = Date.now()): Promise<void> {
    const due = this.#options.store.entries().filter(([sid, data]) => !this.#inFlight.has(sid) && isDue(data, now));
    await Promise.all(due.map(([sid, data]) => this.#refresh(sid, data, now)));
  }

  async #refresh(sid: string, data: SessionData, now: number): Promise<void> {
    const { store, provider, scopesFor, sealer, log } = this.#options;
    const tokens = data.tokens!;
    const refreshToken = tokens.sealedRefreshToken === undefined ? undefined : sealer.open(tokens.sealedRefreshToken);
    const user = data.identity?.username;
    if (refreshToken === undefined) {
      if (tokens.sealedRefreshToken !== undefined) return this.#end(sid, user, 'the refresh token cannot be opened (SECRET_KEY changed?)');
      return; // nothing to refresh with: the session lives out its TTL
    }
    this.#inFlight.add(sid);
    try {
      const result = await provider.refresh(refreshToken);
      const groups = [...result.identity.groups];
      const next: SessionData = {
        ...data,
        identity: { ...data.identity!, groups },
        scopes: scopesFor(groups),
        tokens: {
          sealedRefreshToken: result.refreshToken === undefined ? tokens.sealedRefreshToken : sealer.seal(result.refreshToken),
          expiresAt: result.accessTokenExpiresAt,
          issuedAt: Date.now(),
        },
      };
      await new Promise<void>((resolve, reject) => store.set(sid, next, (err) => (err ? reject(err) : resolve())));
      log.debug({ user, groups }, 'session refreshed');
    } catch (err) {
      if (err instanceof GatewayError && err.code === 'LOGIN_STATE_INVALID') return this.#end(sid, user, 'the identity provider refused the refresh token');
      if ((tokens.expiresAt ?? 0) <= now) return this.#end(sid, user, 'the access token expired and the identity provider could not be reached to refresh it');
      log.warn({ user, err }, 'session refresh failed; retrying');
    } finally {
      this.#inFlight.delete(sid);
    }
  }

  #end(sid: string, user: string | undefined, why: string): Promise<void> {
    this.#options.log.info({ user, provider: this.#options.provider.name }, `session ended: ${why}`);
    return new Promise((resolve) => this.#options.store.destroy(sid, () => resolve()));
  }
}

function isDue(data: SessionData, now: number): boolean {
  const tokens = data.tokens;
  if (!data.identity || tokens?.expiresAt === undefined) return false;
  const lifetime = Math.max(0, tokens.expiresAt - tokens.issuedAt);
  const lead = Math.min(MAX_LEAD_MS, lifetime / 3);
  return tokens.expiresAt - now <= lead;
}
