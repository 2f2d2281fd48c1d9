import type { SessionData } from 'express-session';
import { sessionIdFromCookieHeader } from '../sessions/cookie.ts';
import type { SessionIdentity } from '../sessions/session-data.ts';

/** Who a request is, as far as the check cares. */
export interface Principal {
  readonly identity: SessionIdentity;
  readonly scopes: readonly string[];
}

export type CredentialResult =
  | { ok: true; principal: Principal }
  | { ok: false; reason: 'no-credentials' | 'session-invalid' };

/** Reads sessions synchronously from memory; the file and Redis stores both offer this. */
export interface SessionLookup {
  peek(sid: string): SessionData | undefined;
}

/**
 * Finds the principal behind a request's session cookie. A cookie that is forged, tampered
 * with, expired or names no signed-in session is `session-invalid`; the reason stays in the
 * log, the client only learns 401. Bearer tokens join here with the identity-provider work.
 */
export function principalFromCookie(cookieHeader: string | undefined, secret: string, sessions: SessionLookup): CredentialResult {
  if (!cookieHeader) return { ok: false, reason: 'no-credentials' };
  const sid = sessionIdFromCookieHeader(cookieHeader, secret);
  if (sid === undefined) {
    return { ok: false, reason: cookieHeader.includes('mcp_gateway_session=') ? 'session-invalid' : 'no-credentials' };
  }
  const data = sessions.peek(sid);
  if (!data?.identity || !Array.isArray(data.scopes)) return { ok: false, reason: 'session-invalid' };
  return { ok: true, principal: { identity: data.identity, scopes: data.scopes } };
}
