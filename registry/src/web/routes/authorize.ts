import express, { type NextFunction, type Request, type Response } from 'express';
import { INTERACTION_PREFIX, type AuthorizationServer, type GatewayAccount } from '../../authserver/authorization-server.ts';
import type { AccountFreshness } from '../../authserver/group-recheck.ts';
import type { Logger } from '../../log.ts';
import type { SessionIdentity } from '../../sessions/session-data.ts';
import { csrfToken, requireCsrf } from '../csrf.ts';
import { LOGIN_PATH } from './login.ts';

export interface AuthorizeRouteOptions {
  readonly authServer: AuthorizationServer;
  /** Groups -> scopes with the current mapping. */
  readonly scopesFor: (groups: readonly string[]) => string[];
  readonly log: Logger;
}

/**
 * The authorization server's interaction pages (/oauth2/interaction/<uid>): the person signs in
 * through the gateway's own login (the configured IdP; a signed-in page session means no second
 * password), then allows or denies the client on a consent page naming the client, the host the
 * code goes to, and the servers and scopes. Deny sends the client `access_denied`.
 */
export function authorizeRoutes(options: AuthorizeRouteOptions): express.Router {
  const { authServer, scopesFor, log } = options;
  const router = express.Router();
  const form = express.urlencoded({ extended: false, limit: '4kb' });
  const scopesOf = (account: GatewayAccount) => scopesFor(account.groups);

  router.get(`${INTERACTION_PREFIX}:uid`, async (req: Request, res: Response) => {
    const view = await authServer.interaction(req, res, scopesOf);
    const identity = req.session.identity;
    if (!identity) return void res.redirect(`${LOGIN_PATH}?next=${INTERACTION_PREFIX}${view.uid}`);
    const account = accountOf(identity);
    if (view.prompt === 'login') {
      log.info({ user: identity.username, client: view.clientId }, 'authorization: signed in with the page session');
      // A page, not a redirect: when this request ends a sign-in form's redirect chain, the
      // form's CSP (form-action) would stop the chain at the client's redirect URI.
      res.render('continue', { next: await authServer.finishLogin(req, res, account, freshnessOf(req)) });
      return;
    }
    if (view.accountId !== authServer.accountIdOf(account)) {
      // The authorization server's sign-in is someone else's (an older sign-in in this browser):
      // end it, so the client's next attempt signs in as the person now signed in to the page.
      for (const name of authServer.sessionCookies) res.clearCookie(name, { path: '/' });
      res.status(403).render('error', {
        status: 403,
        message: 'This authorization was started by someone else signed in earlier in this browser. Start again from your client.',
        signedIn: true,
      });
      return;
    }
    // The Allow and Deny forms end at the client's redirect URI: form-action must allow it.
    const csp = res.get('Content-Security-Policy');
    if (csp)
      res.set(
        'Content-Security-Policy',
        csp.replace(/form-action [^;]*/, (directive) => `${directive} ${view.redirectSource}`),
      );
    res.render('consent', {
      uid: view.uid,
      clientName: view.clientName ?? view.clientId,
      clientNamed: view.clientName !== undefined,
      clientId: view.clientId,
      redirectHost: view.redirectHost,
      servers: view.servers,
      canAllow: view.servers.length > 0 && view.servers.every((s) => s.scopes.length > 0),
      username: identity.username,
      csrf: csrfToken(req),
    });
  });

  router.post(`${INTERACTION_PREFIX}:uid/allow`, form, requireCsrf, async (req: Request, res: Response) => {
    const identity = req.session.identity;
    if (!identity) return void res.redirect(`${LOGIN_PATH}?next=${INTERACTION_PREFIX}${String(req.params['uid'])}`);
    log.info({ user: identity.username }, 'authorization: consent given');
    res.redirect(303, await authServer.finishConsent(req, res, accountOf(identity), freshnessOf(req)));
  });

  router.post(`${INTERACTION_PREFIX}:uid/deny`, form, requireCsrf, async (req: Request, res: Response) => {
    log.info({ user: req.session.identity?.username }, 'authorization: consent refused');
    res.redirect(303, await authServer.deny(req, res));
  });

  // An expired or unknown interaction is the person's next step, not a server fault.
  router.use(INTERACTION_PREFIX, (err: Error & { status?: number; error?: string }, _req: Request, res: Response, next: NextFunction) => {
    if (err.error === undefined) return next(err);
    res.status(400).render('error', {
      status: 400,
      message: `This authorization has expired or was already used (${err.error}). Start again from your client.`,
      signedIn: false,
    });
  });
  return router;
}

function accountOf(identity: SessionIdentity): GatewayAccount {
  return { sub: identity.sub, username: identity.username, provider: identity.provider, groups: [...identity.groups] };
}

/** When the page session's groups were read from the IdP (its last refresh or sign-in) and its upstream tokens. */
function freshnessOf(req: Request): AccountFreshness {
  const tokens = req.session.tokens;
  return {
    groupsReadAt: tokens?.issuedAt ?? req.session.signedInAt ?? Date.now(),
    upstream: { sealedRefreshToken: tokens?.sealedRefreshToken, expiresAt: tokens?.expiresAt },
  };
}
