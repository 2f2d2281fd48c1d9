import { createHash, randomBytes } from 'node:crypto';
import { constantTimeEqual } from '../crypto/constant-time.ts';
import type { RecordStore, SyncRecordReader } from '../store/index.ts';
import { serverScopes } from './resources.ts';

/** Every personal access token starts with this, so the check knows it without a lookup (and secret scanners can find it). */
export const PAT_PREFIX = 'mgp_';
const TOKEN = /^mgp_([A-Za-z0-9_-]{16})_([A-Za-z0-9_-]{43})$/;
const DAY_MS = 24 * 3600 * 1000;

/** Whose token it is: the person as their login session knows them (groups as at creation). */
export interface TokenOwner {
  readonly provider: string;
  readonly sub: string;
  readonly username: string;
  readonly groups: readonly string[];
}

/** What the store keeps of a token: never the token, only the SHA-256 of its secret part. */
export interface PersonalTokenRecord {
  readonly name: string;
  readonly owner: TokenOwner;
  readonly servers: readonly string[];
  readonly secretHash: string;
}

/** A token as the page and the API list it. */
export interface PersonalTokenView {
  readonly id: string;
  readonly name: string;
  readonly owner: string;
  readonly servers: readonly string[];
  readonly createdAt: string;
  readonly expiresAt: string;
}

export interface PersonalTokensOptions {
  /** STATE_DIR/tokens: the file store keeps every record in memory too, so the check reads it with no I/O. */
  readonly records: RecordStore<PersonalTokenRecord> & SyncRecordReader<PersonalTokenRecord>;
  /** PAT_MAX_LIFETIME_DAYS. */
  readonly maxLifetimeDays: number;
  /** Groups -> scopes with the current mapping. */
  readonly scopesFor: (groups: readonly string[]) => string[];
  /** The person's groups as a live login session holds them now (kept current from the IdP), if they have one. */
  readonly liveGroups?: (owner: Pick<TokenOwner, 'provider' | 'sub'>) => readonly string[] | undefined;
}

export type PersonalTokenCheck =
  { ok: true; owner: TokenOwner; scopes: readonly string[]; tokenId: string; /** ms since epoch */ expiresAt: number } | { ok: false; reason: string };

/**
 * Personal access tokens, for MCP clients that only take a static `Authorization` header.
 * A token is `mgp_<id>_<secret>`: `<id>` names its record, the record holds the SHA-256 of
 * `<secret>` (shown once, never stored). It is valid on the servers chosen at creation only,
 * with the scopes the person's groups grant there under the current mapping (their live
 * session's groups when they have one, else those at creation): never more than the person.
 * Revoking destroys the record, and the check reads records from memory, so the next request fails.
 */
export class PersonalTokens {
  readonly #options: PersonalTokensOptions;

  constructor(options: PersonalTokensOptions) {
    this.#options = options;
  }

  get maxLifetimeDays(): number {
    return this.#options.maxLifetimeDays;
  }

  /** Creates a token; returns it (the only time it exists outside the client) and how it is listed. */
  async create(
    owner: TokenOwner,
    input: { name: string; servers: readonly string[]; lifetimeDays: number },
    now = Date.now(),
  ): Promise<{ token: string; view: PersonalTokenView }> {
    if (!Number.isInteger(input.lifetimeDays) || input.lifetimeDays < 1 || input.lifetimeDays > this.#options.maxLifetimeDays)
      throw new RangeError(`the lifetime must be between 1 and ${this.#options.maxLifetimeDays} days`);
    const id = randomBytes(12).toString('base64url');
    const secret = randomBytes(32).toString('base64url');
    const record: PersonalTokenRecord = {
      name: input.name,
      owner: { provider: owner.provider, sub: owner.sub, username: owner.username, groups: [...owner.groups] },
      servers: [...new Set(input.servers)].sort(),
      secretHash: hash(secret),
    };
    const created = await this.#options.records.create(key(id), record, { expiresAt: now + input.lifetimeDays * DAY_MS });
    if (!created.ok) throw new Error('token id collision');
    return { token: `${PAT_PREFIX}${id}_${secret}`, view: viewOf(id, created.record) };
  }

  /** The tokens of `owner`, or everyone's when `owner` is undefined; newest first. */
  list(owner: Pick<TokenOwner, 'provider' | 'sub'> | undefined): PersonalTokenView[] {
    return this.#options.records
      .snapshot()
      .filter((r) => r.key.startsWith('pat:') && (owner === undefined || sameOwner(r.value.owner, owner)))
      .sort((a, b) => b.createdAt - a.createdAt)
      .map((r) => viewOf(r.key.slice(4), r));
  }

  /** Revokes token `id` when `owner` owns it (any token when `owner` is undefined: an admin). False when there is no such token for them. */
  async revoke(id: string, owner: Pick<TokenOwner, 'provider' | 'sub'> | undefined): Promise<PersonalTokenView | undefined> {
    const record = this.#options.records.peek(key(id));
    if (record === undefined || (owner !== undefined && !sameOwner(record.value.owner, owner))) return undefined;
    await this.#options.records.destroy(key(id));
    return viewOf(id, record);
  }

  /** The check: synchronous, from memory. Valid only on a chosen server, with the person's scopes there. */
  check(token: string, server: string): PersonalTokenCheck {
    const parts = TOKEN.exec(token);
    if (!parts) return { ok: false, reason: 'not a well-formed personal access token' };
    const record = this.#options.records.peek(key(parts[1]!));
    if (record === undefined || !constantTimeEqual(hash(parts[2]!), record.value.secretHash))
      return { ok: false, reason: 'unknown, revoked or expired personal access token' };
    if (!record.value.servers.includes(server)) return { ok: false, reason: `the personal access token is not for server ${server}` };
    const owner = record.value.owner;
    const groups = this.#options.liveGroups?.(owner) ?? owner.groups;
    return { ok: true, owner, scopes: serverScopes(this.#options.scopesFor(groups), server), tokenId: parts[1]!, expiresAt: record.expiresAt };
  }
}

function key(id: string): string {
  return `pat:${id}`;
}

function hash(secret: string): string {
  return createHash('sha256').update(secret).digest('base64url');
}

function sameOwner(a: Pick<TokenOwner, 'provider' | 'sub'>, b: Pick<TokenOwner, 'provider' | 'sub'>): boolean {
  return a.provider === b.provider && a.sub === b.sub;
}

function viewOf(
  id: string,
  r: {
    value: PersonalTokenRecord | { readonly name: string; readonly owner: { readonly username: string }; readonly servers: readonly string[] };
    createdAt: number;
    expiresAt: number;
  },
): PersonalTokenView {
  return {
    id,
    name: r.value.name,
    owner: r.value.owner.username,
    servers: [...r.value.servers],
    createdAt: new Date(r.createdAt).toISOString(),
    expiresAt: new Date(r.expiresAt).toISOString(),
  };
}
