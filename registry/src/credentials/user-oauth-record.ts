/**
 * What the vault seals for one person's connection to a `user_oauth` server (issue 13), its vault
 * id, and when its token is refreshed: pure functions, beside credentials/user-oauth.ts.
 */
import { schedule } from './token-endpoint.ts';
import { jwtExpiry } from './uploaded-tokens.ts';

/** What the vault seals for one person and server. */
export interface ConnectionRecord {
  readonly v: 1;
  readonly issuer: string;
  readonly clientId: string;
  readonly resource?: string;
  /** absent when broken */
  readonly accessToken?: string;
  readonly refreshToken?: string;
  /** ms since epoch; absent when the server did not say (then the token is used until refused). */
  readonly expiresAt?: number;
  /** When the access token was issued (connect or last refresh), ms since epoch. */
  readonly issuedAt: number;
  readonly scope?: string;
  /** Who the person is at the backend's server (ID token, else a JWT access token's claims). */
  readonly account?: string;
  readonly connectedAt: number;
  readonly refreshedAt?: number;
  readonly state: 'connected' | 'broken';
  /** Why it is broken: no secret, no token. */
  readonly problem?: string;
}

const CONNECTION_ID = /^user:([A-Za-z0-9_-]+):oauth:(.+)$/;

/** The vault id of one person's connection to one server. */
export function connectionId(hash: string, server: string): string {
  return `user:${hash}:oauth:${server}`;
}

/** The person-hash and server of a connection id, or undefined for any other vault id. */
export function parseConnectionId(id: string): { hash: string; server: string } | undefined {
  const m = CONNECTION_ID.exec(id);
  return m ? { hash: m[1]!, server: m[2]! } : undefined;
}

export function encodeConnection(record: ConnectionRecord): string {
  return JSON.stringify(record);
}

/** The record of a sealed value, or undefined when it is not one (then treated as absent). */
export function decodeConnection(plaintext: string): ConnectionRecord | undefined {
  try {
    const v = JSON.parse(plaintext) as Partial<ConnectionRecord> | null;
    if (v === null || typeof v !== 'object' || v.v !== 1) return undefined;
    if (typeof v.issuer !== 'string' || typeof v.clientId !== 'string' || typeof v.connectedAt !== 'number' || typeof v.issuedAt !== 'number') return undefined;
    if (v.state !== 'connected' && v.state !== 'broken') return undefined;
    if (v.state === 'connected' && typeof v.accessToken !== 'string') return undefined;
    return v as ConnectionRecord;
  } catch {
    return undefined;
  }
}

/**
 * When a connection's token stops being handed out and when it is refreshed (client-credentials'
 * schedule: a margin of 10 % of its life, 1-60 s). Infinity when the server gave no lifetime.
 */
export function connectionSchedule(record: Pick<ConnectionRecord, 'expiresAt' | 'issuedAt'>): { staleAt: number; refreshAt: number } {
  if (record.expiresAt === undefined) return { staleAt: Infinity, refreshAt: Infinity };
  return schedule(record.issuedAt, Math.max(0, record.expiresAt - record.issuedAt));
}

/** Who connected, for the page: an ID token's name claims, else a JWT access token's; never the token. */
export function accountOf(claims: Readonly<Record<string, unknown>> | undefined): string | undefined {
  if (!claims) return undefined;
  for (const key of ['preferred_username', 'login', 'username', 'email', 'name', 'sub']) {
    const value = claims[key];
    if (typeof value === 'string' && value.length > 0 && value.length <= 200 && !/[\x00-\x1f\x7f]/.test(value)) return value;
  }
  return undefined;
}

/** The claims of a JWT without checking it (display only: the token is the backend's, not ours to trust). */
export function unverifiedClaims(token: string): Record<string, unknown> | undefined {
  if (jwtExpiry(token) === undefined) return undefined;
  try {
    return JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8')) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}
