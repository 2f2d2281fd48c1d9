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
  if (verifiedSecret !== secret) {
    verified.clear();
    verifiedSecret = secret;
  }
  const known = verified.get(raw);
  if (known !== undefined) return known;
  const sid = unsign(raw.slice(2), secret);
  if (sid === false) return undefined;
  // Only values whose signature verified are remembered, so the map answers exactly what
  // unsign would. Bounded: cleared when full rather than tracking recency.
  if (verified.size >= VERIFIED_MAX) verified.clear();
  verified.set(raw, sid);
  return sid;
}

/** Cookie values already verified (HMAC-SHA256 is the largest cost of the check after I/O). */
const verified = new Map<string, string>();
let verifiedSecret: string | undefined;
const VERIFIED_MAX = 10_000;
