/**
 * Tokens people upload for a server whose backend issues tokens by hand (issue 13, `uploaded`):
 * the check's answer for the caller's own token (memory only), and each person's page and API
 * (upload, status, remove). The record format and the vault ids are uploaded-tokens.ts.
 */
import { uploadedPrefix, type UploadedAuth } from '../catalog/backend-auth.ts';
import type { ServerDefinition } from '../catalog/server-definition.ts';
import { GatewayError } from '../errors.ts';
import { BACKEND_CREDENTIAL_HEADER, BACKEND_SLOT_HEADER_PREFIX, headerSlotMap, type CredentialAnswer, type PersonalCredentialSource } from './answer.ts';
import { credentialValueProblem } from './header-value.ts';
import type { SecretVault } from './types.ts';
import {
  cachedPersonHash,
  decodeRecord,
  encodeRecord,
  givenExpiry,
  isUploadedTokenOf,
  jwtExpiry,
  MAX_UPLOADED_TOKEN_CHARS,
  uploadedTokenId,
  type Person,
  type UploadedRecord,
} from './uploaded-tokens.ts';

/** One person's uploaded token for a server, as they see it on the page and the API: never the token. */
export interface UploadedTokenStatus {
  readonly server: string;
  readonly set: boolean;
  /** ISO 8601 */
  readonly uploadedAt?: string;
  /** ISO 8601; absent when unknown. */
  readonly expiresAt?: string;
  readonly expirySource?: 'jwt' | 'given';
  readonly expired: boolean;
  /** The definition's instructions: where to get a token. */
  readonly instructions?: string;
  /** The page where the person uploads one (GATEWAY_PUBLIC_URL/servers/<name>/token). */
  readonly uploadUrl: string;
}

/** One person's token for one server, opened: the answer is built once per vault value. */
interface UploadedEntry {
  /** The vault's plaintext this was built from (the vault returns one string per record version). */
  readonly raw: string;
  readonly auth: UploadedAuth;
  readonly expiresAt: number | undefined;
  readonly answer: CredentialAnswer;
}

export interface UploadedTokensOptions {
  /** Sealed tokens; absent until a vault is configured (then nobody has one). */
  readonly vault: SecretVault | undefined;
  /** BACKEND_CREDENTIAL_HEADERS: the header names nginx has slots for. */
  readonly headerSlots: readonly string[];
  /** GATEWAY_PUBLIC_URL: the upload page a refusal names is built from it (never from a request's Host). */
  readonly publicUrl: string | undefined;
  readonly now?: () => number;
}

export class UploadedTokens implements PersonalCredentialSource<UploadedAuth> {
  readonly #o: UploadedTokensOptions;
  readonly #slots: ReadonlyMap<string, string>;
  readonly #now: () => number;
  /** vault id → one person's opened token; dropped when the vault has none. */
  readonly #opened = new Map<string, UploadedEntry>();
  readonly #personHash = cachedPersonHash();

  constructor(options: UploadedTokensOptions) {
    this.#o = options;
    this.#slots = headerSlotMap(options.headerSlots);
    this.#now = options.now ?? Date.now;
  }

  /** How many people have uploaded a token for a server (never whose). */
  count(server: string): number {
    return (this.#o.vault?.list() ?? []).filter((i) => isUploadedTokenOf(i.id, server)).length;
  }

  /** Removes every person's token for a server (it was deleted); returns how many. */
  async forgetServer(server: string): Promise<number> {
    let removed = 0;
    for (const info of this.#o.vault?.list() ?? []) {
      if (!isUploadedTokenOf(info.id, server)) continue;
      this.#opened.delete(info.id);
      if (await this.#o.vault?.delete(info.id)) removed++;
    }
    return removed;
  }

  /** The upload page of a server, from GATEWAY_PUBLIC_URL. */
  uploadUrl(server: string): string {
    return `${this.#o.publicUrl ?? ''}/servers/${server}/token`;
  }

  /** A person's own token for an `uploaded` server: whether it is set, when, until when. Never the token. */
  myToken(def: ServerDefinition, person: Person): UploadedTokenStatus {
    const auth = this.#uploadedAuth(def);
    const raw = this.#o.vault?.peek(this.#uploadedId(person, def.name));
    const record = raw === undefined ? undefined : decodeRecord(raw);
    const base = { server: def.name, ...(auth.instructions !== undefined ? { instructions: auth.instructions } : {}), uploadUrl: this.uploadUrl(def.name) };
    if (!record) return { ...base, set: false, expired: false };
    return {
      ...base,
      set: true,
      uploadedAt: new Date(record.uploadedAt).toISOString(),
      ...(record.expiresAt !== undefined ? { expiresAt: new Date(record.expiresAt).toISOString() } : {}),
      ...(record.expirySource ? { expirySource: record.expirySource } : {}),
      expired: record.expiresAt !== undefined && record.expiresAt <= this.#now(),
    };
  }

  /**
   * Stores a person's token for an `uploaded` server, sealed, replacing theirs. A JWT's `exp` is
   * its expiry; otherwise `expiresAt` (a date, or a date and time) when given. A token that
   * starts with the prefix has it removed. An expired token is refused.
   * @throws GatewayError REQUEST_INVALID naming the field (never the value).
   */
  async setMyToken(def: ServerDefinition, person: Person, input: { token: string; expiresAt?: string | undefined }): Promise<UploadedTokenStatus> {
    const auth = this.#uploadedAuth(def);
    const prefix = uploadedPrefix(auth);
    const given = input.token.trim();
    const token = prefix && given.toLowerCase().startsWith(prefix.toLowerCase()) ? given.slice(prefix.length).trim() : given;
    const problem = credentialValueProblem(prefix + token, MAX_UPLOADED_TOKEN_CHARS) ?? credentialValueProblem(token, MAX_UPLOADED_TOKEN_CHARS);
    if (problem) throw invalid('token', `the token cannot be sent as a header: ${problem}`);
    const now = this.#now();
    const fromJwt = jwtExpiry(token);
    const typed = fromJwt === undefined ? givenExpiry(input.expiresAt) : undefined;
    if (typed !== undefined && Number.isNaN(typed))
      throw invalid('expiresAt', 'give the expiry as a date (2026-12-31) or a date and time with a zone (2026-12-31T18:00:00Z)');
    const expiresAt = fromJwt ?? typed;
    if (expiresAt !== undefined && expiresAt <= now)
      throw invalid(fromJwt !== undefined ? 'token' : 'expiresAt', `this token expired at ${new Date(expiresAt).toISOString()}: upload a new one`);
    const record: UploadedRecord = {
      token,
      uploadedAt: now,
      ...(expiresAt !== undefined ? { expiresAt, expirySource: fromJwt !== undefined ? ('jwt' as const) : ('given' as const) } : {}),
    };
    await this.#vault().put(this.#uploadedId(person, def.name), encodeRecord(record));
    return this.myToken(def, person);
  }

  /** Removes a person's token for a server; true when there was one. */
  async clearMyToken(def: ServerDefinition, person: Person): Promise<boolean> {
    this.#uploadedAuth(def);
    const id = this.#uploadedId(person, def.name);
    this.#opened.delete(id);
    return (await this.#o.vault?.delete(id)) ?? false;
  }

  #uploadedAuth(def: ServerDefinition): UploadedAuth {
    if (def.backendAuth?.type !== 'uploaded') throw invalid('(server)', `${def.name} does not take tokens people upload (its backendAuth is not "uploaded")`);
    return def.backendAuth;
  }

  #uploadedId(person: Person, server: string): string {
    return uploadedTokenId(this.#personHash(person), server);
  }

  /** The check's answer for one person's token: memory only (the vault's peek), built once per stored value. */
  forCheck(def: ServerDefinition, auth: UploadedAuth, person: Person): CredentialAnswer {
    const server = def.name;
    const id = this.#uploadedId(person, server);
    const raw = this.#o.vault?.peek(id);
    if (raw === undefined) {
      this.#opened.delete(id);
      return { ok: false, reason: `no token uploaded for ${server}: upload one at ${this.uploadUrl(server)}`, connect: this.uploadUrl(server) };
    }
    let entry = this.#opened.get(id);
    if (entry === undefined || entry.raw !== raw || entry.auth !== auth) {
      entry = this.#openUploaded(server, auth, raw);
      this.#opened.set(id, entry);
    }
    if (entry.expiresAt !== undefined && entry.expiresAt <= this.#now())
      return {
        ok: false,
        reason: `your token for ${server} expired at ${new Date(entry.expiresAt).toISOString()}: upload a new one at ${this.uploadUrl(server)}`,
        connect: this.uploadUrl(server),
      };
    return entry.answer;
  }

  #openUploaded(server: string, auth: UploadedAuth, raw: string): UploadedEntry {
    const record = decodeRecord(raw);
    if (!record)
      return {
        raw,
        auth,
        expiresAt: undefined,
        answer: {
          ok: false,
          reason: `your token for ${server} cannot be read: upload a new one at ${this.uploadUrl(server)}`,
          connect: this.uploadUrl(server),
        },
      };
    const slot = this.#slots.get(auth.header.toLowerCase());
    const value = uploadedPrefix(auth) + record.token;
    const problem = credentialValueProblem(value, MAX_UPLOADED_TOKEN_CHARS);
    const answer: CredentialAnswer =
      slot === undefined
        ? { ok: false, reason: `${auth.header} has no slot in nginx (BACKEND_CREDENTIAL_HEADERS)` }
        : problem
          ? {
              ok: false,
              reason: `your token for ${server} cannot be sent: ${problem}; upload a new one at ${this.uploadUrl(server)}`,
              connect: this.uploadUrl(server),
            }
          : Object.freeze({ ok: true, headers: Object.freeze({ [BACKEND_CREDENTIAL_HEADER]: slot, [BACKEND_SLOT_HEADER_PREFIX + slot]: value }) });
    return { raw, auth, expiresAt: record.expiresAt, answer };
  }

  #vault(): SecretVault {
    if (!this.#o.vault) throw new GatewayError('STORE_UNAVAILABLE', 'no secret vault is configured in this gateway');
    return this.#o.vault;
  }
}

function invalid(field: string, message: string): GatewayError {
  return new GatewayError('REQUEST_INVALID', message, { fields: [{ field, message }] });
}
