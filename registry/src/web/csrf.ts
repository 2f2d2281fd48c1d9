import { randomBytes } from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';
import { GatewayError } from '../errors.ts';
import { constantTimeEqual } from '../crypto/constant-time.ts';

/** The session's CSRF token, created on first use (synchronizer-token pattern). */
export function csrfToken(req: Request): string {
  if (!req.session.csrfToken) req.session.csrfToken = randomBytes(32).toString('base64url');
  return req.session.csrfToken;
}

/** True when `sent` is the session's CSRF token (compared in constant time); false without one. */
export function csrfTokenMatches(req: Request, sent: string): boolean {
  const expected = req.session.csrfToken;
  return Boolean(expected) && constantTimeEqual(sent, expected!);
}

/**
 * Refuses a state-changing form whose `_csrf` field does not match the session's token.
 * SameSite=Lax already stops most cross-site posts; this covers the rest (same-site
 * subdomains, older browsers). The REST API checks its X-CSRF-Token header the same way.
 */
export function requireCsrf(req: Request, _res: Response, next: NextFunction): void {
  const sent = typeof req.body?._csrf === 'string' ? req.body._csrf : '';
  next(csrfTokenMatches(req, sent) ? undefined : new GatewayError('CSRF_TOKEN_INVALID', 'This form has expired. Reload the page and try again.'));
}
