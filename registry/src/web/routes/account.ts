/**
 * The pages about the clients that act for the signed-in person: /connections (the OAuth clients
 * connected with their account, and their own accounts at per-user OAuth backends) and /tokens (personal access tokens), with their forms (POST,
 * CSRF-checked). A new token is shown once, on the page the creating POST answers with
 * (never stored in the session, never cached); account-actions.ts decides who sees what.
 */
import express, { type Request, type Response } from 'express';
import type { Catalog } from '../../catalog/catalog.ts';
import { GatewayError } from '../../errors.ts';
import type { Logger } from '../../log.ts';
import type { Principal } from '../../authz/credentials.ts';
import type { ConnectionStatus } from '../../credentials/user-oauth.ts';
import type { AccountActions } from '../account-actions.ts';
import { requireCsrf } from '../csrf.ts';
import { clientConfigs } from '../client-configs.ts';
import { layout, principalOf, requireSignedIn } from './page-context.ts';

const form = express.urlencoded({ extended: false, limit: '16kb' });

export interface AccountRoutesOptions {
  readonly account: AccountActions;
  readonly catalog: Catalog;
  /** The person's own accounts at `user_oauth` backends (RegistryActions.myConnections), listed on /connections. */
  readonly backendAccounts: (p: Principal) => readonly ConnectionStatus[];
  readonly log: Logger;
}

export function accountRoutes({ account, catalog, backendAccounts, log }: AccountRoutesOptions): express.Router {
  const router = express.Router();
  const id = (req: Request) => String(req.params['id']);

  router.get('/connections', requireSignedIn, async (req: Request, res: Response) => {
    const p = principalOf(req);
    res.render('connections', {
      ...layout(req, catalog, 'connections'),
      connections: await account.listConnections(p),
      admin: account.isAdmin(p),
      backendAccounts: backendAccounts(p),
    });
  });

  router.post('/connections/:id/revoke', form, requireSignedIn, requireCsrf, async (req: Request, res: Response) => {
    const revoked = await account.revokeConnection(principalOf(req), id(req));
    log.info(
      { user: req.session.identity!.username, grant: revoked.id, client: revoked.clientId, owner: revoked.username },
      'connected client revoked from the page',
    );
    done(req, res, '/connections', `${revoked.clientName ?? revoked.clientId} is disconnected: its tokens no longer work.`);
  });

  router.get('/tokens', requireSignedIn, (req: Request, res: Response) => {
    const p = principalOf(req);
    res.render('tokens', {
      ...layout(req, catalog, 'tokens'),
      tokens: account.listTokens(p),
      admin: account.isAdmin(p),
      servers: account.tokenServers(p),
      maxDays: account.maxLifetimeDays,
      form: { name: '', servers: [], lifetimeDays: Math.min(30, account.maxLifetimeDays) },
      problem: undefined,
    });
  });

  router.post('/tokens', form, requireSignedIn, requireCsrf, async (req: Request, res: Response) => {
    const p = principalOf(req);
    const raw = req.body as Record<string, unknown>;
    const servers = (Array.isArray(raw['servers']) ? raw['servers'] : [raw['servers']]).filter((s): s is string => typeof s === 'string');
    const input = { name: typeof raw['name'] === 'string' ? raw['name'] : '', servers, lifetimeDays: Number(raw['lifetimeDays']) };
    try {
      const { token, view } = await account.createToken(p, input);
      log.info({ user: p.identity.username, token: view.id, servers: view.servers }, 'personal access token created from the page');
      res.set('Cache-Control', 'no-store');
      res.status(201).render('token-created', {
        ...layout(req, catalog, 'tokens'),
        token,
        view,
        configs: clientConfigs(
          view.name,
          view.servers.map((s) => ({ server: s, url: account.mcpUrl(s) })),
          token,
        ),
      });
    } catch (err) {
      if (!(err instanceof GatewayError) || err.code !== 'REQUEST_INVALID') throw err;
      res.status(400).render('tokens', {
        ...layout(req, catalog, 'tokens'),
        tokens: account.listTokens(p),
        admin: account.isAdmin(p),
        servers: account.tokenServers(p),
        maxDays: account.maxLifetimeDays,
        form: input,
        problem: err.message,
      });
    }
  });

  router.post('/tokens/:id/revoke', form, requireSignedIn, requireCsrf, async (req: Request, res: Response) => {
    const revoked = await account.revokeToken(principalOf(req), id(req));
    log.info({ user: req.session.identity!.username, token: revoked.id, owner: revoked.owner }, 'personal access token revoked from the page');
    done(req, res, '/tokens', `The token ${revoked.name} is revoked: it no longer works.`);
  });

  return router;
}

function done(req: Request, res: Response, to: string, notice: string): void {
  req.session.notice = notice;
  res.redirect(303, to);
}
