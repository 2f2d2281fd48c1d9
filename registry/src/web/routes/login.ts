import express, { type Request, type Response } from 'express';
import { GatewayError } from '../../errors.ts';
import type { Logger } from '../../log.ts';
import type { LoginSessions } from '../../sessions/login-sessions.ts';
import { csrfToken, requireCsrf } from '../csrf.ts';
import type { IdentityProvider, LoginResult } from '../../identity/provider.ts';

export const LOGIN_PATH = '/login';
export const LOGOUT_PATH = '/logout';
export const CALLBACK_PREFIX = '/oauth/callback/';
const PENDING_LOGIN_TTL_MS = 10 * 60 * 1000;

/**
 * Only same-origin paths are allowed after login: `/x` yes; `//evil`, `/\evil`, `http://…`,
 * control characters no (open redirects are listed in test/fixtures/open-redirects.txt).
 */
export function safeReturnTo(value: unknown): string {
  if (typeof value !== 'string' || value.length > 512) return '/';
  if (!/^\/(?![/\\])[\x21-\x7e]*$/.test(value)) return '/';
  return value;
}

/**
 * /login → IdP → /oauth/callback/<provider> → session regenerated with identity and scopes.
 * The one-time login state is deleted before the callback is checked, so a code or state can
 * never be used twice; any failure ends on a page that says what to do, never a stack trace.
 */
export interface LoginRouteOptions {
  readonly provider: IdentityProvider;
  readonly publicUrl: string;
  readonly sessionTtlSeconds: number;
  /** Caps the new session's cookie at its absolute lifetime. */
  readonly sessions: Pick<LoginSessions, 'limitCookie'>;
  /** Groups -> scopes, with the current mapping file. */
  readonly scopesFor: (groups: readonly string[]) => string[];
  readonly sealer: { seal(plain: string): string };
  /** More cookies sign-out clears: the authorization server's sign-in session, so the next MCP client authorization asks who you are. */
  readonly signOutCookies?: readonly string[];
  /**
   * The person's IdP tokens for token exchange (credentials/idp-tokens.ts): kept at sign-in;
   * `signedOut` drops them when the person has no other page session left. Neither throws.
   */
  readonly idpTokens?: {
    remember(person: { provider: string; sub: string }, result: LoginResult): Promise<void>;
    signedOut(person: { provider: string; sub: string }): Promise<void>;
  };
  readonly log: Logger;
}

export function loginRoutes(options: LoginRouteOptions): express.Router {
  const { provider, publicUrl, sessionTtlSeconds, sessions, scopesFor, sealer, log } = options;
  const redirectUri = provider.redirectUri;
  const publicHost = new URL(publicUrl).host;
  const router = express.Router();

  router.get(LOGIN_PATH, async (req: Request, res: Response) => {
    // The login state lives in a cookie for the public host; a login started on another host
    // name (127.0.0.1 vs localhost) would come back without it.
    if (req.get('host') !== publicHost) {
      // Keep ?next= (validated below, on the second pass); the path is ours, so is the origin.
      const query = req.originalUrl.indexOf('?');
      res.redirect(`${publicUrl}${LOGIN_PATH}${query < 0 ? '' : req.originalUrl.slice(query)}`);
      return;
    }
    const challenge = await provider.startLogin(redirectUri);
    // A login in flight needs minutes, not the session's hours: abandoned ones expire soon.
    req.session.cookie.maxAge = PENDING_LOGIN_TTL_MS;
    req.session.login = {
      state: challenge.state,
      nonce: challenge.nonce,
      codeVerifier: challenge.codeVerifier,
      returnTo: safeReturnTo(req.query['next'] ?? req.query['returnTo']),
      provider: provider.name,
    };
    await save(req);
    res.redirect(challenge.url);
  });

  router.get(`${CALLBACK_PREFIX}:provider`, async (req: Request, res: Response) => {
    const pending = req.session.login;
    delete req.session.login;
    if (!pending || pending.provider !== req.params['provider'] || req.params['provider'] !== provider.name) {
      throw new GatewayError('LOGIN_STATE_INVALID', 'This sign-in link has expired or was already used. Sign in again.');
    }
    const callbackUrl = new URL(req.originalUrl, publicUrl);
    const result = await provider.finishLogin(callbackUrl, pending, redirectUri);
    const identity = result.identity;
    await regenerate(req);
    req.session.cookie.maxAge = sessionTtlSeconds * 1000;
    req.session.identity = { ...identity, groups: [...identity.groups], provider: provider.name };
    req.session.signedInAt = Date.now();
    req.session.scopes = scopesFor(identity.groups);
    req.session.tokens = {
      sealedRefreshToken: result.refreshToken === undefined ? undefined : sealer.seal(result.refreshToken),
      expiresAt: result.accessTokenExpiresAt,
      issuedAt: Date.now(),
    };
    csrfToken(req);
    sessions.limitCookie(req);
    await save(req);
    await options.idpTokens?.remember({ provider: provider.name, sub: identity.sub }, result);
    log.info({ user: identity.username, provider: provider.name, groups: identity.groups }, 'signed in');
    res.redirect(pending.returnTo);
  });

  router.post(LOGOUT_PATH, express.urlencoded({ extended: false, limit: '4kb' }), requireCsrf, async (req: Request, res: Response) => {
    const user = req.session.identity?.username;
    const person = req.session.identity && { provider: req.session.identity.provider, sub: req.session.identity.sub };
    await new Promise<void>((resolve, reject) => req.session.destroy((err) => (err ? reject(err) : resolve())));
    if (person) await options.idpTokens?.signedOut(person);
    res.clearCookie('mcp_gateway_session', { path: '/' });
    for (const name of options.signOutCookies ?? []) res.clearCookie(name, { path: '/' });
    log.info({ user }, 'signed out');
    res.redirect('/');
  });

  return router;
}

function save(req: Request): Promise<void> {
  return new Promise((resolve, reject) => req.session.save((err) => (err ? reject(err) : resolve())));
}

/** A new session id at login, so a session id fixed before login is worth nothing after it. */
function regenerate(req: Request): Promise<void> {
  return new Promise((resolve, reject) => req.session.regenerate((err) => (err ? reject(err) : resolve())));
}
