import type { Request, RequestHandler, Response } from 'express';
import type { Catalog } from '../catalog/catalog.ts';
import { SERVER_NAME_PATTERN } from '../catalog/server-definition.ts';
import type { Logger } from '../log.ts';
import { decideAccess } from '../scopes/decide.ts';
import { principalFromCookie, type Principal, type SessionLookup } from './credentials.ts';
import { headerQuotedValue, headerValue } from './header-value.ts';
import {
  MISSING_SCOPE_HEADER,
  VALIDATE_PATH,
  ORIGINAL_METHOD_HEADER,
  REQUEST_ID_HEADER,
  SCOPES_HEADER,
  SERVER_HEADER,
  USER_HEADER,
  USERNAME_HEADER,
} from './paths.ts';

export interface ValidateRouteOptions {
  readonly catalog: Pick<Catalog, 'get'>;
  readonly sessions: SessionLookup;
  readonly secret: string;
  readonly authEnabled: boolean;
  readonly realm: string;
  readonly log: Logger;
}

const ANONYMOUS: Principal = Object.freeze({
  identity: Object.freeze({ sub: 'anonymous', username: 'anonymous', groups: Object.freeze([]), provider: 'none' }),
  scopes: Object.freeze(['mcp:registry:admin']),
});

/**
 * The nginx `auth_request` endpoint (MCP authorization spec; RFC 6750 for the challenge).
 * nginx names the server in X-MCP-Server, a literal from the matched location, never parsed
 * from the URI. Answers, with an empty body (nginx drops it):
 * - 200 + X-User / X-Username / X-Scopes, which nginx forwards to the backend;
 * - 401 + WWW-Authenticate: no credentials, or a cookie that is forged, expired or unknown;
 * - 403 + X-Missing-Scope: signed in without the scope;
 * - 404 / 503: the server is unknown / disabled (nginx normally answers these itself);
 * - 500: nginx sent no valid server name (a config fault; nginx denies on it, fail closed).
 * No disk or network I/O: sessions come from memory, the catalog is in memory.
 */
export function createValidateRoute(options: ValidateRouteOptions): RequestHandler {
  const { catalog, sessions, secret, authEnabled, log } = options;
  if (!catalog || !sessions || !secret || !log) throw new TypeError('createValidateRoute: catalog, sessions, secret and log are required');
  const challenge = `Bearer realm="${headerQuotedValue(options.realm)}"`;

  return (req: Request, res: Response) => {
    // Express matches paths case-insensitively and ignores a trailing slash; the check answers
    // on its exact path only (nginx blocks every spelling from outside as well).
    if (req.path !== VALIDATE_PATH) {
      res.status(404).end();
      return;
    }
    const serverName = req.get(SERVER_HEADER) ?? '';
    const requestId = req.get(REQUEST_ID_HEADER);
    if (!SERVER_NAME_PATTERN.test(serverName)) {
      log.error({ requestId }, 'auth check without a valid X-MCP-Server header: nginx config fault');
      res.status(500).end();
      return;
    }
    let principal: Principal = ANONYMOUS;
    if (authEnabled) {
      const found = principalFromCookie(req.get('cookie'), secret, sessions);
      if (!found.ok) {
        log.debug({ requestId, server: serverName, reason: found.reason }, 'auth check: 401');
        const error = found.reason === 'session-invalid' ? ', error="invalid_token"' : '';
        res.status(401).set('WWW-Authenticate', `${challenge}${error}`).end();
        return;
      }
      principal = found.principal;
    }
    const server = catalog.get(serverName);
    const decision = decideAccess({
      scopes: principal.scopes,
      server: server && { name: server.name, enabled: server.enabled },
      method: req.get('x-mcp-method'),
      tool: req.get('x-mcp-tool'),
    });
    const user = principal.identity;
    log.debug({ requestId, server: serverName, user: user.username, method: req.get(ORIGINAL_METHOD_HEADER), decision }, 'auth check');
    if (decision.allow) {
      res
        .status(200)
        .set(USER_HEADER, headerValue(user.sub))
        .set(USERNAME_HEADER, headerValue(user.username))
        .set(SCOPES_HEADER, headerValue(principal.scopes.join(' ')))
        .end();
      return;
    }
    if (decision.missingScope) res.set(MISSING_SCOPE_HEADER, headerValue(decision.missingScope));
    res.status(decision.status).end();
  };
}
