import { isDeepStrictEqual } from 'node:util';
import type { SessionData } from 'express-session';
import type { Frozen } from '../store/index.ts';
import './session-data.ts';

/** The cookie settings express-session keeps with a session (its `Cookie#toJSON()`). */
export interface StoredCookie {
  readonly originalMaxAge: number | null;
  /** ISO date; undefined/null for a browser-session cookie. */
  readonly expires?: string | null;
  readonly [setting: string]: unknown;
}

/** A login session as the record store holds it: the JSON of express-session's data. */
export type SessionValue = Partial<Omit<SessionData, 'cookie'>> & { cookie?: StoredCookie };

/** How long sessions live (config: SESSION_TTL_SECONDS, SESSION_MAX_LIFETIME_SECONDS). */
export interface SessionLimits {
  /** Idle (rolling) lifetime: renewed by visits, as the cookie's maxAge. */
  readonly idleMs: number;
  /** Absolute lifetime from sign-in; nothing renews past it. */
  readonly maxLifetimeMs: number;
}

type Readable = SessionValue | Frozen<SessionValue>;

/** What the deadline depends on (also readable from a live `req.session`). */
export interface DeadlineFields {
  readonly signedInAt?: number | undefined;
  readonly identity?: unknown;
  readonly tokens?: { readonly sealedRefreshToken: string | undefined; readonly expiresAt: number | undefined } | undefined;
}

/**
 * The moment a signed-in session ends whatever happens meanwhile: sign-in + the absolute
 * lifetime, and, for a session that holds no refresh token, the expiry of the IdP access token
 * it was issued with — without a refresh nothing re-reads the user's groups, so that expiry is
 * the bound on how long a user removed from a group at the IdP keeps its scopes.
 * Infinity for a session that has not signed in (a login in flight).
 */
export function sessionDeadline(value: DeadlineFields, limits: SessionLimits): number {
  let deadline = value.signedInAt === undefined ? Number.POSITIVE_INFINITY : value.signedInAt + limits.maxLifetimeMs;
  const tokens = value.tokens;
  if (value.identity && tokens && tokens.sealedRefreshToken === undefined && tokens.expiresAt !== undefined) deadline = Math.min(deadline, tokens.expiresAt);
  return deadline;
}

/** When the store drops the session: its rolling expiry (the cookie's), never past the deadline. */
export function sessionExpiresAt(value: Readable, limits: SessionLimits, now: number): number {
  const expires = value.cookie?.expires;
  const rolling = typeof expires === 'string' ? Date.parse(expires) : now + limits.idleMs;
  return Math.min(Number.isNaN(rolling) ? now + limits.idleMs : rolling, sessionDeadline(value, limits));
}

/**
 * The 3-way merge for a request whose save lost a race (the refresher, or another request of the
 * same browser, wrote the session after this request read it). Rule: a top-level field this
 * request changed (set, replaced or deleted, compared deeply with what it read) takes the
 * request's value; every other field keeps the current record's. The cookie counts as always
 * changed (it carries the rolling expiry this request renewed). So a page that only read the
 * session never puts back the groups, scopes and tokens a refresh has just replaced, and a
 * refresh never loses a CSRF token or notice a request has just set.
 */
export function mergeSessionChanges(read: Readable, mine: SessionValue, current: Readable): SessionValue {
  const merged: Record<string, unknown> = { ...current };
  const before = read as Record<string, unknown>;
  const after = mine as Record<string, unknown>;
  for (const key of new Set([...Object.keys(before), ...Object.keys(after)])) {
    if (key !== 'cookie' && isDeepStrictEqual(before[key], after[key])) continue;
    if (key in after) merged[key] = after[key];
    else delete merged[key];
  }
  return merged as SessionValue;
}
