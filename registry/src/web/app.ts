import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import express, { type NextFunction, type Request, type Response } from 'express';
import session from 'express-session';
import { join } from 'node:path';
import type { AuditLog } from '../audit/audit-log.ts';
import type { AuthorizationServer } from '../authserver/authorization-server.ts';
import type { AccountActions } from './account-actions.ts';
import { accountRoutes } from './routes/account.ts';
import type { BearerContext } from '../authz/credentials.ts';
import { BEARER_REALM, VALIDATE_PATH } from '../authz/paths.ts';
import type { ScopeMappingSource } from '../identity/scope-mapping-source.ts';
import type { Catalog } from '../catalog/catalog.ts';
import { toHttp } from '../errors.ts';
import type { IdentityProvider } from '../identity/provider.ts';
import { authorizeRoutes } from './routes/authorize.ts';
import { loginRoutes, type LoginRouteOptions } from './routes/login.ts';
import type { Logger } from '../log.ts';
import { SESSION_COOKIE, sessionCookieOptions } from '../sessions/cookie.ts';
import type { LoginSessions } from '../sessions/login-sessions.ts';
import type { BackendMonitor } from '../mcp/backend-monitor.ts';
import { HEALTHZ_PATH, METRICS_PATH, READYZ_PATH } from '../metrics/paths.ts';
import type { Readiness } from '../metrics/readiness.ts';
import { API_PREFIX } from './api/routes.ts';
import { apiRouter } from './api/router.ts';
import type { NginxState } from './api/schemas.ts';
import { RegistryActions } from './registry-actions.ts';
import type { BackendCredentials } from '../credentials/backend-credentials.ts';
import type { Vault } from '../credentials/vault.ts';
import { CLIENT_METADATA_PATH, type UserOAuth } from '../credentials/user-oauth.ts';
import { backendConnectRoutes } from './routes/backend-connect.ts';
import { formRoutes } from './routes/forms.ts';
import { pageRoutes } from './routes/pages.ts';
import { protectedResourceRoutes } from './routes/protected-resource.ts';
import { securityHeaders } from './security-headers.ts';

/** What the page shows of nginx: when it last took a config, and why it refused the newest. */
export type NginxStatusView = NginxState;

export interface AppOptions {
  readonly publicUrl: string;
  readonly secretKey: string;
  readonly cookieSecure: boolean;
  readonly sessionTtlSeconds: number;
  readonly catalog: Catalog;
  readonly sessions: LoginSessions;
  readonly provider: IdentityProvider;
  /** The nginx check (authz/validate-route.ts), built by the composition root. */
  readonly validate: (req: IncomingMessage, res: ServerResponse) => Promise<void>;
  /** How bearer tokens are verified for the REST API; undefined when the provider accepts none. */
  readonly bearer: BearerContext | undefined;
  readonly nginxStatus: () => NginxStatusView;
  /** Resolves when nginx has taken (or refused) the newest catalog. */
  readonly nginxSettled: () => Promise<void>;
  readonly monitor: Pick<BackendMonitor, 'snapshot' | 'refresh'>;
  readonly mapping: ScopeMappingSource;
  readonly sealer: { seal(plain: string): string };
  /** Each person's IdP tokens for token exchange, kept at sign-in and dropped at the last sign-out. */
  readonly idpTokens?: LoginRouteOptions['idpTokens'];
  readonly audit: AuditLog;
  /** The gateway as the MCP clients' authorization server; its interaction pages live here. */
  readonly authServer?: AuthorizationServer;
  /** Connected clients and personal access tokens (/connections, /tokens and their API). */
  readonly account?: AccountActions;
  /** The gateway's own credentials for backends: status and write-only secrets (page and API). */
  readonly credentials?: BackendCredentials;
  /** People's own OAuth connections to `user_oauth` backends: the connect flow and its client metadata document. */
  readonly userOAuth?: UserOAuth;
  /** The vault's key ring (admin: usage per key, reseal after a rotation). */
  readonly vaultKeys?: Pick<Vault, 'keyUsage' | 'reseal'>;
  readonly log: Logger;
  /** /readyz: nginx configured and every store reachable (metrics/readiness.ts), built by the composition root. */
  readonly readiness: () => Readiness;
  /** /metrics (metrics/access.ts decides who may read it); omit to serve none. */
  readonly metrics?: (req: IncomingMessage, res: ServerResponse) => Promise<void>;
}

/**
 * The registry's HTTP surface, in the order requests meet it:
 * 1. /auth/validate: the nginx check, plain node:http before Express (it reads sessions, never writes them);
 * 2. security headers (strict CSP) on everything else; /healthz, /readyz, /metrics; the RFC 9728
 *    protected-resource metadata (/.well-known/oauth-protected-resource/...);
 * 3. the built-in IdP (dev provider only); the authorization server's discovery and /oauth2 endpoints;
 * 4. sessions, then /static, login/logout/callback, the authorization interaction pages, the REST API (/api/registry, JSON errors),
 *    the operators' pages and their forms; the page and the API share RegistryActions;
 * 5. one error handler: a page for people, never a stack trace.
 */
export function createApp(options: AppOptions): RequestListener {
  const { log } = options;
  const app = express();
  app.disable('x-powered-by');
  // Only nginx on loopback may say which protocol and host the client used.
  app.set('trust proxy', 'loopback');
  app.set('view engine', 'ejs');
  app.set('views', join(import.meta.dirname, 'views'));

  const { validate } = options;
  const actions = new RegistryActions({
    catalog: options.catalog,
    monitor: options.monitor,
    audit: options.audit,
    publicUrl: options.publicUrl,
    scopesFor: (groups) => options.mapping.scopesFor(groups),
    signedIn: () => options.sessions.signedIn(),
    nginxStatus: options.nginxStatus,
    nginxSettled: options.nginxSettled,
    ...(options.account ? { account: options.account } : {}),
    ...(options.credentials ? { credentials: options.credentials } : {}),
    ...(options.vaultKeys ? { vaultKeys: options.vaultKeys } : {}),
    ...(options.userOAuth ? { userOAuth: options.userOAuth } : {}),
  });

  app.use(securityHeaders(options.publicUrl));
  // Probes: no session, no auth, nothing secret in the body (docs/operations.md).
  app.get(HEALTHZ_PATH, (_req, res) => void res.set('Cache-Control', 'no-store').json({ status: 'ok' }));
  app.get(READYZ_PATH, (_req, res) => {
    const { ready, body } = options.readiness();
    res
      .set('Cache-Control', 'no-store')
      .status(ready ? 200 : 503)
      .json(body);
  });
  const { metrics } = options;
  if (metrics) app.get(METRICS_PATH, (req, res) => metrics(req, res));
  // RFC 9728 metadata for MCP clients: public, no session.
  app.use(protectedResourceRoutes({ publicUrl: options.publicUrl, catalog: options.catalog }));
  // The gateway's Client ID Metadata Document: authorization servers fetch it (no session, no cookie).
  const userOAuth = options.userOAuth;
  if (userOAuth)
    app.get(CLIENT_METADATA_PATH, (_req: Request, res: Response) => {
      res.set('cache-control', 'public, max-age=3600').json(userOAuth.clientMetadata());
    });
  if (options.provider.router) app.use('/idp', options.provider.router);
  // Discovery and /oauth2/* (not the interaction pages): no session, oidc-provider parses its own bodies.
  if (options.authServer) app.use(options.authServer.router);

  app.use(
    session({
      name: SESSION_COOKIE,
      secret: options.secretKey,
      store: options.sessions,
      resave: false,
      saveUninitialized: false,
      rolling: true,
      proxy: true,
      cookie: sessionCookieOptions(options.cookieSecure, options.sessionTtlSeconds),
    }),
  );
  app.use(
    '/static',
    express.static(join(import.meta.dirname, 'static'), { index: false, maxAge: '5m', setHeaders: (res) => res.set('Cache-Control', 'public, max-age=300') }),
  );
  app.use(
    loginRoutes({
      provider: options.provider,
      publicUrl: options.publicUrl,
      sessionTtlSeconds: options.sessionTtlSeconds,
      sessions: options.sessions,
      scopesFor: (groups) => options.mapping.scopesFor(groups),
      sealer: options.sealer,
      signOutCookies: options.authServer?.sessionCookies ?? [],
      ...(options.idpTokens === undefined ? {} : { idpTokens: options.idpTokens }),
      log: log.child({ module: 'login' }),
    }),
  );
  if (options.authServer)
    app.use(
      authorizeRoutes({ authServer: options.authServer, scopesFor: (groups) => options.mapping.scopesFor(groups), log: log.child({ module: 'authorize' }) }),
    );
  app.use(API_PREFIX, apiRouter({ actions, bearer: options.bearer, publicUrl: options.publicUrl, realm: BEARER_REALM, log: log.child({ module: 'api' }) }));
  if (options.account)
    app.use(
      accountRoutes({
        account: options.account,
        catalog: options.catalog,
        backendAccounts: (p) => actions.myConnections(p),
        log: log.child({ module: 'account' }),
      }),
    );
  app.use(pageRoutes({ actions, catalog: options.catalog, nginxStatus: options.nginxStatus }));
  app.use(formRoutes({ actions, catalog: options.catalog, log: log.child({ module: 'web' }) }));
  if (options.userOAuth) app.use(backendConnectRoutes({ actions, log: log.child({ module: 'backend-connect' }) }));

  app.use((_req: Request, res: Response) => {
    res.status(404).render('error', { status: 404, message: 'There is no page here.', signedIn: false });
  });
  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    const { status, body } = toHttp(err);
    // A store outage is logged once by the store, not once per request.
    if (body.error === 'STORE_UNAVAILABLE') log.debug({ path: req.path }, body.message);
    else if (status >= 500) log.error({ err, req }, 'request failed');
    else log.info({ code: body.error, path: req.path }, body.message);
    if (res.headersSent) return;
    res.status(status).render('error', { status, message: body.message, signedIn: Boolean(req.session?.identity) });
  });
  // The check goes straight to its handler; everything else through Express.
  return (req, res) => {
    if (req.url === VALIDATE_PATH || req.url?.startsWith(`${VALIDATE_PATH}?`)) void validate(req, res);
    else app(req, res);
  };
}
