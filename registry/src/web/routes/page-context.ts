import type { NextFunction, Request, Response } from 'express';
import type { Principal } from '../../authz/credentials.ts';
import type { Catalog } from '../../catalog/catalog.ts';
import { GatewayError } from '../../errors.ts';
import { canEditServer, canToggleServer, hasScope } from '../../scopes/decide.ts';
import { REGISTRY_ADMIN, REGISTRY_READ } from '../../scopes/scope.ts';
import { csrfToken } from '../csrf.ts';

export type NavItem = 'servers' | 'tools' | 'access' | 'audit' | 'register' | 'server' | 'connections' | 'tokens';

/** The signed-in caller of a page; requireSignedIn runs first. */
export function principalOf(req: Request): Principal {
  return { identity: req.session.identity!, scopes: req.session.scopes ?? [] };
}

/** Pages other than the front page send signed-out visitors to sign in, and back here after. */
export function requireSignedIn(req: Request, res: Response, next: NextFunction): void {
  if (req.session.identity) return next();
  if (req.method === 'GET') return res.redirect(303, `/login?next=${encodeURIComponent(req.originalUrl)}`);
  next(new GatewayError('AUTH_NO_CREDENTIALS', 'Sign in first.'));
}

/** What every signed-in page's layout needs: who, the CSRF token, the menu, a one-time notice. */
export function layout(req: Request, catalog: Catalog, current: NavItem): Record<string, unknown> {
  const p = principalOf(req);
  const notice = req.session.notice;
  delete req.session.notice;
  return {
    signedIn: true,
    identity: p.identity,
    scopes: p.scopes,
    csrf: csrfToken(req),
    notice,
    // With a shared catalog (several replicas), edits go to the store, never to definition files.
    catalogShared: catalog.shared,
    nav: {
      current,
      registryRead: hasScope(p.scopes, REGISTRY_READ),
      admin: hasScope(p.scopes, REGISTRY_ADMIN),
      audit: hasScope(p.scopes, REGISTRY_READ) || catalog.list().some((d) => canToggleServer(p.scopes, d.name) || canEditServer(p.scopes, d.name)),
    },
  };
}
