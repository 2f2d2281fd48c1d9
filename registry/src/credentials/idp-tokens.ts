/**
 * Each person's current identity-provider tokens, sealed in the vault: the subject tokens of
 * token exchange (RFC 8693, issue 13). Written at sign-in and at every refresh (the session
 * refresher and the authorization server's group re-check), read from memory by the check.
 * Only while the catalog has a token_exchange server (least exposure): after the first such
 * server is added, a person's tokens are stored at their next sign-in or refresh. Never logged.
 */
import type { LoginResult } from '../identity/provider.ts';
import type { Logger } from '../log.ts';
import type { SecretVault } from './types.ts';
import { cachedPersonHash, personHash, type Person } from './uploaded-tokens.ts';

/** What the vault seals for one person: their IdP's access token and ID token of one sign-in or refresh. */
export interface IdpTokenRecord {
  readonly accessToken?: string;
  readonly idToken?: string;
  /** When the access token expires (ms since epoch); absent when the IdP did not say. */
  readonly expiresAt?: number;
  /** When the ID token expires (its `exp`, ms since epoch). */
  readonly idTokenExpiresAt?: number;
  /** ms since epoch */
  readonly storedAt: number;
}

/**
 * The vault id of a person's IdP tokens: `user:<hash>:idp-token`. Not `user:<hash>:server:<name>`
 * (an uploaded token, isUploadedTokenOf), so deleting a server never touches it.
 */
export function idpTokenId(person: Person, hash: (person: Person) => string = personHash): string {
  return `user:${hash(person)}:idp-token`;
}

const IDP_TOKEN_ID = /^user:[A-Za-z0-9_-]+:idp-token$/;

export function decodeIdpTokens(plaintext: string): IdpTokenRecord | undefined {
  try {
    const v = JSON.parse(plaintext) as Partial<IdpTokenRecord> | null;
    if (v === null || typeof v !== 'object' || typeof v.storedAt !== 'number') return undefined;
    const str = (x: unknown) => (typeof x === 'string' && x.length > 0 ? x : undefined);
    const num = (x: unknown) => (typeof x === 'number' && Number.isFinite(x) ? x : undefined);
    const accessToken = str(v.accessToken);
    const idToken = str(v.idToken);
    const expiresAt = num(v.expiresAt);
    const idTokenExpiresAt = num(v.idTokenExpiresAt);
    return {
      storedAt: v.storedAt,
      ...(accessToken === undefined ? {} : { accessToken }),
      ...(idToken === undefined ? {} : { idToken }),
      ...(expiresAt === undefined ? {} : { expiresAt }),
      ...(idTokenExpiresAt === undefined ? {} : { idTokenExpiresAt }),
    };
  } catch {
    return undefined;
  }
}

export interface IdpTokensOptions {
  /** Absent: nothing is stored (and token exchange has no subject token). */
  readonly vault: SecretVault | undefined;
  /** Whether to store at all now: true while some server uses token_exchange. */
  readonly wanted: () => boolean;
  readonly log: Logger;
  readonly now?: () => number;
}

/** Bound of the opened-record cache: people are few, and a miss costs one JSON parse. */
const MAX_OPENED = 10_000;

export class IdpTokens {
  readonly #o: IdpTokensOptions;
  /** vault id → the last plaintext and its record, so the check parses a record once per version. */
  readonly #opened = new Map<string, { raw: string; record: IdpTokenRecord | undefined }>();
  readonly #personHash = cachedPersonHash();

  constructor(options: IdpTokensOptions) {
    this.#o = options;
  }

  /**
   * Stores the tokens of a sign-in or refresh, replacing the person's. Never throws: a vault that
   * cannot write is logged (without the tokens), and token exchange then refuses with "sign in again".
   */
  async remember(person: Person, result: Pick<LoginResult, 'accessToken' | 'idToken' | 'accessTokenExpiresAt' | 'idTokenExpiresAt'>): Promise<void> {
    const vault = this.#o.vault;
    if (vault === undefined || !this.#o.wanted() || (result.accessToken === undefined && result.idToken === undefined)) return;
    try {
      // A refresh answer may carry no new ID token (OIDC Core §12.2): the one of the sign-in stays.
      const previous = result.idToken === undefined ? this.peek(person) : undefined;
      const idToken = result.idToken ?? previous?.idToken;
      const idTokenExpiresAt = result.idToken === undefined ? previous?.idTokenExpiresAt : result.idTokenExpiresAt;
      const record: IdpTokenRecord = {
        storedAt: (this.#o.now ?? Date.now)(),
        ...(result.accessToken === undefined ? {} : { accessToken: result.accessToken }),
        ...(idToken === undefined ? {} : { idToken }),
        ...(result.accessTokenExpiresAt === undefined ? {} : { expiresAt: result.accessTokenExpiresAt }),
        ...(idTokenExpiresAt === undefined ? {} : { idTokenExpiresAt }),
      };
      await vault.put(this.#id(person), JSON.stringify(record));
    } catch (err) {
      this.#o.log.warn(
        { provider: person.provider, err: { code: (err as { code?: unknown }).code } },
        'the identity-provider token could not be stored for token exchange',
      );
    }
  }

  /** The person's stored tokens, from memory (the vault's peek). @throws GatewayError STORE_UNAVAILABLE (fail closed). */
  peek(person: Person): IdpTokenRecord | undefined {
    const id = this.#id(person);
    const raw = this.#o.vault?.peek(id);
    if (raw === undefined) {
      this.#opened.delete(id);
      return undefined;
    }
    const found = this.#opened.get(id);
    if (found !== undefined && found.raw === raw) return found.record;
    if (this.#opened.size >= MAX_OPENED) this.#opened.delete(this.#opened.keys().next().value as string);
    const record = decodeIdpTokens(raw);
    this.#opened.set(id, { raw, record });
    return record;
  }

  /** Removes the person's tokens (signed out everywhere); true when there were some. */
  async forget(person: Person): Promise<boolean> {
    const id = this.#id(person);
    this.#opened.delete(id);
    return (await this.#o.vault?.delete(id)) ?? false;
  }

  /**
   * Removes every person's tokens: the last token_exchange server left the catalog, so nothing
   * may use them any more (least exposure). Returns how many were removed.
   */
  async purge(): Promise<number> {
    const vault = this.#o.vault;
    if (vault === undefined) return 0;
    let removed = 0;
    for (const info of vault.list()) if (IDP_TOKEN_ID.test(info.id) && (await vault.delete(info.id))) removed++;
    this.#opened.clear();
    if (removed > 0) this.#o.log.info({ removed }, 'no server uses token exchange any more: the stored identity-provider tokens are deleted');
    return removed;
  }

  #id(person: Person): string {
    return idpTokenId(person, this.#personHash);
  }
}
