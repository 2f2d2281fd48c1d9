/**
 * Tokens people upload for a server whose backend issues tokens by hand (issue 13, `uploaded`):
 * where each person's token lives in the vault, what is stored with it, and how its expiry is
 * read. The token is the backend's: the gateway reads a JWT's `exp` to show it and to refuse an
 * expired token, never to trust the token for anything else (its signature is not checked).
 */
import { createHash } from 'node:crypto';

/** Whose token: the person's identity provider and subject (a personal access token's owner). */
export interface Person {
  readonly provider: string;
  readonly sub: string;
}

/** The longest uploaded token (with its prefix), as a header value the check hands to nginx. */
export const MAX_UPLOADED_TOKEN_CHARS = 8192;

/**
 * The person part of a vault id: a hash, so the id (which `list()`, logs and the store's keys
 * show) does not reveal who. JSON keeps provider and subject apart.
 */
export function personHash(person: Person): string {
  return createHash('sha256')
    .update(JSON.stringify(['uploaded-token', person.provider, person.sub]))
    .digest('base64url');
}

/** Person-hash cache bound: the hash costs more than a map lookup, and people are few. */
const MAX_PERSON_HASHES = 10_000;

/** personHash, remembered per person (bounded): for the per-request check. */
export function cachedPersonHash(): (person: Person) => string {
  const hashes = new Map<string, string>();
  return (person) => {
    const key = `${person.provider}\n${person.sub}`;
    let hash = hashes.get(key);
    if (hash === undefined) {
      if (hashes.size >= MAX_PERSON_HASHES) hashes.clear();
      hash = personHash(person);
      hashes.set(key, hash);
    }
    return hash;
  };
}

/** The vault id of one person's token for one server: `user:<hash>:server:<name>`. */
export function uploadedTokenId(hash: string, server: string): string {
  return `user:${hash}:server:${server}`;
}

/** True when a vault id is some person's uploaded token for `server`. */
export function isUploadedTokenOf(id: string, server: string): boolean {
  return id.startsWith('user:') && id.endsWith(`:server:${server}`) && id.indexOf(':', 5) === id.length - server.length - 8;
}

/** What the vault seals for one person and server: the token and what the page shows of it. */
export interface UploadedRecord {
  readonly token: string;
  /** ms since epoch */
  readonly uploadedAt: number;
  /** ms since epoch; absent when unknown. */
  readonly expiresAt?: number;
  /** Where the expiry comes from: the token's own `exp` (a JWT), or the date the person gave. */
  readonly expirySource?: 'jwt' | 'given';
}

export function encodeRecord(record: UploadedRecord): string {
  return JSON.stringify(record);
}

/** The record of a sealed value, or undefined when it is not one (then treated as absent). */
export function decodeRecord(plaintext: string): UploadedRecord | undefined {
  try {
    const value = JSON.parse(plaintext) as Partial<UploadedRecord> | null;
    if (value === null || typeof value !== 'object' || typeof value.token !== 'string' || typeof value.uploadedAt !== 'number') return undefined;
    return {
      token: value.token,
      uploadedAt: value.uploadedAt,
      ...(typeof value.expiresAt === 'number' ? { expiresAt: value.expiresAt } : {}),
      ...(value.expirySource === 'jwt' || value.expirySource === 'given' ? { expirySource: value.expirySource } : {}),
    };
  } catch {
    return undefined;
  }
}

const B64URL = /^[A-Za-z0-9_-]+$/;
/** Latest instant a JS Date holds, in seconds. */
const MAX_EXP_SECONDS = 8.64e12;

/**
 * A JWT's `exp` in ms since epoch: the token is three base64url parts (the signature may be
 * empty, as in an unsecured JWT) whose middle part is a JSON object with a numeric `exp`.
 * undefined for anything else: not a JWT, malformed, or no usable `exp`. The signature is not
 * checked: the token is the backend's, and this is for display and refusal only.
 */
export function jwtExpiry(token: string): number | undefined {
  const parts = token.split('.');
  if (parts.length !== 3) return undefined;
  const [header, payload, signature] = parts as [string, string, string];
  if (!B64URL.test(header) || !B64URL.test(payload) || (signature !== '' && !B64URL.test(signature))) return undefined;
  try {
    const head = JSON.parse(Buffer.from(header, 'base64url').toString('utf8')) as unknown;
    if (head === null || typeof head !== 'object' || Array.isArray(head)) return undefined;
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as unknown;
    if (claims === null || typeof claims !== 'object' || Array.isArray(claims)) return undefined;
    const exp = (claims as { exp?: unknown }).exp;
    if (typeof exp !== 'number' || !Number.isFinite(exp) || exp <= 0 || exp > MAX_EXP_SECONDS) return undefined;
    return Math.floor(exp * 1000);
  } catch {
    return undefined;
  }
}

/**
 * An expiry the person typed: a date (`2026-12-31`: the token works through that day, UTC) or
 * a date and time with a zone. undefined for an empty value; NaN when it cannot be read.
 */
export function givenExpiry(value: string | undefined): number | undefined {
  const text = value?.trim();
  if (!text) return undefined;
  if (/^\d{4}-\d{2}-\d{2}$/.test(text)) {
    const start = Date.parse(`${text}T00:00:00Z`);
    return Number.isNaN(start) ? Number.NaN : start + 24 * 3600 * 1000;
  }
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?(Z|[+-]\d{2}:\d{2})$/.test(text)) return Number.NaN;
  return Date.parse(text);
}
