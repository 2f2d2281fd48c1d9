import { GatewayError } from '../errors.ts';
import type { OidcStoreEntry } from '../identity/oidc-adapter.ts';
import type { IdentityProvider, LoginResult } from '../identity/provider.ts';
import type { Logger } from '../log.ts';
import type { Frozen, RecordStore, StoredRecord } from '../store/index.ts';

/** The person's upstream (IdP) tokens the authorization server keeps to read their groups again. */
export interface UpstreamTokens {
  /** The IdP refresh token from the person's sign-in, sealed (sessions/seal.ts); absent when the IdP gave none. */
  readonly sealedRefreshToken?: string | undefined;
  /** When the IdP access token of that sign-in or of the last refresh expires (ms since epoch). */
  readonly expiresAt?: number | undefined;
}

/** What a `GatewayAccount:<id>` record's payload holds besides the account. */
export interface AccountFreshness {
  /** When the account's groups were last read from the IdP (ms since epoch). */
  readonly groupsReadAt?: number;
  readonly upstream?: UpstreamTokens;
}

/** The outcome of a re-check: fresh enough, or why not and whether the grant ends. */
export type RecheckResult =
  | { readonly ok: true }
  /** `ended`: the IdP refused the person's refresh token (their sign-in there is over): the grant ends. */
  | { readonly ok: false; readonly ended: boolean; readonly unavailable: boolean; readonly reason: string };

export interface GroupRecheckOptions {
  /** The authorization server's records (its accounts are `GatewayAccount:<accountId>`). */
  readonly records: RecordStore<OidcStoreEntry>;
  readonly provider: Pick<IdentityProvider, 'refresh' | 'name'>;
  readonly sealer: { seal(plain: string): string; open(sealed: string): string | undefined };
  /** OAUTH_GROUPS_MAX_AGE_SECONDS, in ms: how old groups may be when a token is issued. */
  readonly maxAgeMs: number;
  readonly log: Logger;
  readonly now?: () => number;
  /** Keeps the person's current IdP tokens for token exchange (credentials/idp-tokens.ts); never throws. */
  readonly idpTokens?: { remember(person: { provider: string; sub: string }, result: LoginResult): Promise<void> };
}

/**
 * How long a replica may hold an account's re-check lock (`RecheckLock:<accountId>` in the
 * records): longer than an IdP refresh takes; a replica that died holding it frees it by expiry.
 */
const LOCK_MS = 15_000;
const LOCK_POLL_MS = 100;

/** Writes of a re-check result before it gives up on a record that keeps changing. */
const MAX_WRITE_ROUNDS = 5;

/**
 * Keeps the groups behind the authorization server's tokens no older than a bound when the
 * person has no live page session (whose groups the session refresher keeps current): before a
 * token is issued, groups older than `maxAgeMs` are read again at the IdP with the refresh token
 * kept from the person's sign-in (the rotated one is kept, compare-and-set on the record). One
 * re-check per account at a time, in this process and across replicas sharing the records (a
 * lock record, `RecheckLock:<accountId>`), so two clients refreshing together do not spend the
 * same upstream refresh token twice (a rotating IdP would end the whole token family).
 */
export class GroupRecheck {
  readonly #options: GroupRecheckOptions;
  readonly #inFlight = new Map<string, Promise<RecheckResult>>();

  constructor(options: GroupRecheckOptions) {
    this.#options = options;
  }

  /** Makes `accountId`'s groups fresh enough for a token issued now, or says why they cannot be. */
  ensureFresh(accountId: string): Promise<RecheckResult> {
    let pending = this.#inFlight.get(accountId);
    if (pending === undefined) {
      pending = this.#recheck(accountId).finally(() => this.#inFlight.delete(accountId));
      this.#inFlight.set(accountId, pending);
    }
    return pending;
  }

  /** Records that a live page session's groups (read at `readAt`) were used, with its current upstream tokens. */
  async noteLive(accountId: string, groups: readonly string[], readAt: number, upstream: UpstreamTokens | undefined): Promise<void> {
    const key = accountKey(accountId);
    for (let round = 0; round < MAX_WRITE_ROUNDS; round++) {
      const read = await this.#options.records.get(key);
      const payload = payloadOf(read);
      if (read === undefined || payload === undefined) return;
      const same = (payload.groupsReadAt ?? 0) >= readAt && (upstream === undefined || payload.upstream?.sealedRefreshToken === upstream.sealedRefreshToken);
      if (same) return;
      const next = {
        ...payload,
        account: { ...payload.account, groups: [...groups] },
        groupsReadAt: Math.max(readAt, payload.groupsReadAt ?? 0),
        ...(upstream?.sealedRefreshToken === undefined ? {} : { upstream }),
      };
      if ((await this.#options.records.compareAndSet(key, read.version, { payload: next }, { expiresAt: read.expiresAt })).ok) return;
    }
  }

  async #recheck(accountId: string, waited = false): Promise<RecheckResult> {
    const { records, provider, sealer, maxAgeMs, log } = this.#options;
    const now = (this.#options.now ?? Date.now)();
    const key = accountKey(accountId);
    const read = await records.get(key);
    const payload = payloadOf(read);
    if (read === undefined || payload === undefined) return { ok: true }; // no account: oidc-provider refuses the grant itself
    const age = now - (payload.groupsReadAt ?? 0);
    if (age <= maxAgeMs) return { ok: true };
    const user = payload.account.username;
    const sealed = payload.upstream?.sealedRefreshToken;
    const refreshToken = sealed === undefined ? undefined : sealer.open(sealed);
    if (refreshToken === undefined) {
      log.info({ user, provider: provider.name }, 'authorization server: groups too old and no upstream refresh token; the person must sign in again');
      return {
        ok: false,
        ended: false,
        unavailable: false,
        reason: `the groups of ${user} are older than ${Math.round(maxAgeMs / 1000)} s and the identity provider gave no refresh token to read them again: authorize again`,
      };
    }
    // Another replica may be reading this account's groups with the same refresh token: wait for it, then judge again.
    const lockKey = `RecheckLock:${accountId}`;
    const lock = await records.create(lockKey, { ref: 'group-recheck' }, { expiresAt: Date.now() + LOCK_MS });
    if (!lock.ok) {
      if (!waited && (await this.#lockFreed(lockKey))) return this.#recheck(accountId, true);
      return { ok: false, ended: false, unavailable: true, reason: 'the groups are being read again at the identity provider; try again shortly' };
    }
    try {
      const result = await provider.refresh(refreshToken);
      const readAt = (this.#options.now ?? Date.now)();
      const { provider: idp, sub } = payload.account;
      if (typeof idp === 'string' && typeof sub === 'string') await this.#options.idpTokens?.remember({ provider: idp, sub }, result);
      await this.#write(read, {
        groups: [...result.identity.groups],
        groupsReadAt: readAt,
        upstream: {
          sealedRefreshToken: result.refreshToken === undefined ? sealed : sealer.seal(result.refreshToken),
          expiresAt: result.accessTokenExpiresAt,
        },
      });
      log.info({ user, groups: result.identity.groups }, 'authorization server: groups read again at the identity provider');
      return { ok: true };
    } catch (err) {
      if (err instanceof GatewayError && err.code === 'LOGIN_STATE_INVALID') {
        log.info({ user, provider: provider.name }, 'authorization server: the identity provider refused the refresh token; the grant ends');
        return { ok: false, ended: true, unavailable: false, reason: `the identity provider no longer accepts the sign-in of ${user}: authorize again` };
      }
      log.warn({ user, err }, 'authorization server: the identity provider could not be reached to read groups again; refusing the refresh');
      return { ok: false, ended: false, unavailable: true, reason: 'the identity provider could not be reached to read the groups again; try again later' };
    } finally {
      await records.destroy(lockKey, lock.record.version).catch(() => {});
    }
  }

  /** Waits until the lock record is gone (released or expired); false when it outlives LOCK_MS. */
  async #lockFreed(lockKey: string): Promise<boolean> {
    const until = Date.now() + LOCK_MS;
    while (Date.now() < until) {
      if ((await this.#options.records.get(lockKey)) === undefined) return true;
      await new Promise((resolve) => setTimeout(resolve, LOCK_POLL_MS));
    }
    return false;
  }

  async #write(read: StoredRecord<OidcStoreEntry>, update: { groups: string[]; groupsReadAt: number; upstream: UpstreamTokens }): Promise<void> {
    const { records, log } = this.#options;
    let current: StoredRecord<OidcStoreEntry> | undefined = read;
    for (let round = 0; round < MAX_WRITE_ROUNDS && current !== undefined; round++) {
      const payload = payloadOf(current);
      if (payload === undefined) return;
      // A sign-in meanwhile wrote newer groups and tokens: those stand.
      if ((payload.groupsReadAt ?? 0) > update.groupsReadAt) return;
      const next = { ...payload, account: { ...payload.account, groups: update.groups }, groupsReadAt: update.groupsReadAt, upstream: update.upstream };
      const result = await records.compareAndSet(current.key, current.version, { payload: next }, { expiresAt: current.expiresAt });
      if (result.ok) return;
      current = result.current;
    }
    log.warn({ key: read.key }, 'authorization server: the account kept changing; its re-read groups were not kept');
  }
}

interface AccountPayload extends AccountFreshness {
  readonly account: { readonly username: string; readonly groups: readonly string[] } & Record<string, unknown>;
  readonly [key: string]: unknown;
}

function accountKey(accountId: string): string {
  return `GatewayAccount:${accountId}`;
}

function payloadOf(record: StoredRecord<OidcStoreEntry> | undefined): Frozen<AccountPayload> | undefined {
  const value = record?.value;
  if (value === undefined || !('payload' in value)) return undefined;
  const payload = value.payload as unknown as Frozen<AccountPayload>;
  return typeof payload.account === 'object' ? payload : undefined;
}
