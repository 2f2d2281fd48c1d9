/**
 * A person connects their own account at a `user_oauth` backend's authorization server (issue
 * 13): the stable connect URL a refused MCP request names, the connect start (a link), the
 * disconnect form (POST, CSRF-checked) and the callback the authorization server redirects to. The flow itself
 * is credentials/user-oauth.ts; app.ts serves the gateway's Client ID Metadata Document.
 */
import express, { type Request, type Response } from 'express';
import { CONNECT_CALLBACK_PATH } from '../../credentials/user-oauth.ts';
import { GatewayError } from '../../errors.ts';
import type { Logger } from '../../log.ts';
import type { BackendConnectPending } from '../../sessions/session-data.ts';
import { requireCsrf } from '../csrf.ts';
import type { RegistryActions } from '../registry-actions.ts';
import { principalOf, requireSignedIn } from './page-context.ts';

/** Connects in progress one browser session keeps at most (the oldest go first). */
const MAX_PENDING = 5;

const form = express.urlencoded({ extended: false, limit: '8kb' });

export interface BackendConnectOptions {
  readonly actions: RegistryActions;
  readonly log: Logger;
}

export function backendConnectRoutes({ actions, log }: BackendConnectOptions): express.Router {
  const router = express.Router();
  const name = (req: Request) => String(req.params['name']);
  const card = (server: string) => `/servers/${server}#my-connection`;

  // The stable URL a refused MCP request names (BACKEND_CONNECT_REQUIRED): sign in first, then the card.
  router.get('/servers/:name/connect', requireSignedIn, (req: Request, res: Response) => {
    const server = actions.get(principalOf(req), name(req));
    res.redirect(303, card(server.name));
  });

  // A link, not a form: the page's CSP (`form-action 'self'`) would stop a form's redirect to
  // another origin. It is a sign-in start like /login; a page on another site cannot start one
  // (Sec-Fetch-Site), and the callback is bound to this browser session's state and person.
  router.get('/servers/:name/connect/start', requireSignedIn, async (req: Request, res: Response) => {
    const site = req.get('sec-fetch-site');
    if (site !== undefined && site !== 'same-origin' && site !== 'none')
      throw new GatewayError('CSRF_TOKEN_INVALID', 'A connect starts from the server page: open it and use its button.');
    let started;
    try {
      started = await actions.beginConnect(principalOf(req), name(req));
    } catch (err) {
      if (!(err instanceof GatewayError) || err.code !== 'BACKEND_CREDENTIAL_FAILED') throw err;
      log.warn({ server: name(req), problem: err.message }, 'a connect could not start');
      return done(req, res, card(name(req)), `Could not connect: ${err.message}`);
    }
    const pending = { ...(req.session.backendConnects ?? {}) };
    const states = Object.keys(pending);
    for (const old of states.slice(0, Math.max(0, states.length - MAX_PENDING + 1))) delete pending[old];
    pending[started.pending.state] = started.pending;
    req.session.backendConnects = pending;
    // Saved before the browser leaves: the callback may reach another replica.
    await new Promise<void>((resolve, reject) => req.session.save((err) => (err ? reject(err as Error) : resolve())));
    res.redirect(303, started.url);
  });

  router.get(CONNECT_CALLBACK_PATH, requireSignedIn, async (req: Request, res: Response) => {
    const query = new URLSearchParams(req.originalUrl.includes('?') ? req.originalUrl.slice(req.originalUrl.indexOf('?') + 1) : '');
    const state = query.get('state') ?? '';
    const pending: BackendConnectPending | undefined = req.session.backendConnects?.[state];
    if (!pending) throw new GatewayError('LOGIN_STATE_INVALID', 'This connect attempt is unknown or was already used: start again from the server page.');
    // One use: gone before anything else happens.
    const rest = { ...req.session.backendConnects };
    delete rest[state];
    req.session.backendConnects = rest;
    try {
      const status = await actions.finishConnect(principalOf(req), req.session.identity!.username, query, pending);
      done(
        req,
        res,
        card(pending.server),
        `Connected to ${status.provider}${status.account ? ` as ${status.account}` : ''}. Your requests to ${pending.server} use this account from now on.`,
      );
    } catch (err) {
      if (!(err instanceof GatewayError) || err.code !== 'BACKEND_CREDENTIAL_FAILED') throw err;
      log.warn({ server: pending.server, problem: err.message }, 'a connect failed');
      done(req, res, card(pending.server), `Not connected: ${err.message}`);
    }
  });

  router.post('/servers/:name/disconnect', form, requireSignedIn, requireCsrf, async (req: Request, res: Response) => {
    const outcome = await actions.disconnect(principalOf(req), req.session.identity!.username, name(req));
    const revoked =
      outcome.revoked === 'revoked'
        ? ` Its tokens are revoked at ${outcome.provider}.`
        : outcome.revoked === 'unsupported'
          ? ` ${outcome.provider} does not support revoking tokens; the gateway deleted its copy.`
          : outcome.revoked === 'failed'
            ? ` ${outcome.provider} could not be reached to revoke the tokens; the gateway deleted its copy.`
            : '';
    done(req, res, card(name(req)), `Disconnected from ${outcome.provider}.${revoked}`);
  });

  return router;
}

function done(req: Request, res: Response, to: string, notice: string): void {
  req.session.notice = notice;
  res.redirect(303, to);
}
