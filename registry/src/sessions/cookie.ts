import { parse } from 'cookie';
import { unsign } from 'cookie-signature';
import type { CookieOptions } from 'express-session';

/** The one cookie the gateway sets: a signed session id, nothing else. */
export const SESSION_COOKIE = 'mcp_gateway_session';

/** HttpOnly, SameSite=Lax (the login callback is a top-level GET from the IdP), Secure behind https. */
export function sessionCookieOptions(secure: boolean, ttlSeconds: number): CookieOptions {
  return { httpOnly: true, sameSite: 'lax', secure, path: '/', maxAge: ttlSeconds * 1000 };
}

/**
 * Reads the session id from a Cookie header the way express-session signed it (`s:<id>.<mac>`).
 * Returns undefined for a missing, malformed, unsigned or forged cookie.
 */
export function sessionIdFromCookieHeader(header: string | undefined, secret: string): string | undefined {
  if (!header) return undefined;
  let raw: string | undefined;
  try {
    raw = parse(header)[SESSION_COOKIE];
  } catch {
    return undefined;
  }
  if (!raw?.startsWith('s:')) return undefined;
  const sid = unsign(raw.slice(2), secret);
  return sid === false ? undefined : sid;
}
