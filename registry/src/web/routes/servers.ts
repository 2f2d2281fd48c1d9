import express, { type Request, type Response, type NextFunction } from 'express';
import type { AuditLog } from '../../audit/audit-log.ts';
import type { Catalog } from '../../catalog/catalog.ts';
import { SERVER_NAME_PATTERN, type ServerDefinition } from '../../catalog/server-definition.ts';
import { GatewayError } from '../../errors.ts';
import type { Logger } from '../../log.ts';
import { canReadServer, canToggleServer, hasScope } from '../../scopes/decide.ts';
import { REGISTRY_READ } from '../../scopes/scope.ts';
import { EXECUTE_PREFIX, STREAMABLE_PREFIX } from '../../authz/paths.ts';
import { csrfToken, requireCsrf } from '../csrf.ts';

export interface NginxStatusView {
  readonly lastAppliedAt?: string;
  readonly lastError?: string;
}

interface ServerRow {
  readonly def: ServerDefinition;
  readonly canToggle: boolean;
  readonly endpoints: readonly { transport: string; url: string }[];
}

/** The operators' page: who am I, my scopes, the servers I may read, toggles where allowed. */
export function serverRoutes(options: { catalog: Catalog; publicUrl: string; nginxStatus: () => NginxStatusView; audit: AuditLog; log: Logger }): express.Router {
  const { catalog, publicUrl, nginxStatus, audit, log } = options;
  const router = express.Router();

  router.get('/', (req: Request, res: Response) => {
    const identity = req.session.identity;
    if (!identity) {
      res.render('index', { signedIn: false });
      return;
    }
    const scopes = req.session.scopes ?? [];
    const rows: ServerRow[] = catalog
      .list()
      .filter((def) => canReadServer(scopes, def.name))
      .map((def) => ({ def, canToggle: canToggleServer(scopes, def.name), endpoints: endpoints(def, publicUrl) }));
    const notice = req.session.notice;
    delete req.session.notice;
    const seesProblems = hasScope(scopes, REGISTRY_READ);
    res.render('index', {
      signedIn: true,
      identity,
      scopes,
      rows,
      notice,
      problems: seesProblems ? catalog.problems() : [],
      nginx: seesProblems ? nginxStatus() : undefined,
      csrf: csrfToken(req),
    });
  });

  router.post('/servers/:name/toggle', express.urlencoded({ extended: false, limit: '4kb' }), requireSignedIn, requireCsrf, async (req: Request, res: Response) => {
    const name = String(req.params['name']);
    if (!SERVER_NAME_PATTERN.test(name)) throw new GatewayError('SERVER_NAME_INVALID', 'That is not a valid server name.');
    const scopes = req.session.scopes ?? [];
    if (!catalog.get(name) || !canReadServer(scopes, name)) throw new GatewayError('SERVER_UNKNOWN', `There is no server named ${name}.`);
    if (!canToggleServer(scopes, name)) {
      throw new GatewayError('AUTH_SCOPE_MISSING', `You need the scope mcp:server:${name}:toggle to enable or disable ${name}.`);
    }
    const enabled = req.body?.enabled === 'true';
    await catalog.setEnabled(name, enabled);
    log.info({ user: req.session.identity?.username, server: name, enabled }, 'server toggled from the page');
    audit.record({ event: 'change', user: req.session.identity?.username ?? '', server: name, action: enabled ? 'enable' : 'disable' });
    req.session.notice = `${name} is now ${enabled ? 'enabled' : 'disabled'}.`;
    res.redirect(303, '/');
  });

  return router;
}

function requireSignedIn(req: Request, _res: Response, next: NextFunction): void {
  next(req.session.identity ? undefined : new GatewayError('AUTH_NO_CREDENTIALS', 'Sign in first.'));
}

function endpoints(def: ServerDefinition, publicUrl: string): { transport: string; url: string }[] {
  const list: { transport: string; url: string }[] = [];
  if (def.transports['streamable-http']) list.push({ transport: 'Streamable HTTP', url: `${publicUrl}${STREAMABLE_PREFIX}${def.name}` });
  if (def.transports.sse) list.push({ transport: 'HTTP+SSE', url: `${publicUrl}${EXECUTE_PREFIX}${def.name}${def.transports.sse}` });
  return list;
}
