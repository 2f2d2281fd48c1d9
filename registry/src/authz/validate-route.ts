import type { Request, RequestHandler, Response } from 'express';
import type { AccessAuditEntry, AuditLog } from '../audit/audit-log.ts';
import type { Catalog } from '../catalog/catalog.ts';
import { SERVER_NAME_PATTERN } from '../catalog/server-definition.ts';
import type { Logger } from '../log.ts';
import { decideAccess, type McpMessage } from '../scopes/decide.ts';
import { principalFromBearer, principalFromCookie, type BearerContext, type Principal, type SessionLookup } from './credentials.ts';
import { headerQuotedValue, headerValue } from './header-value.ts';
import { parseMessagesHeader } from './messages-header.ts';
import {
  MESSAGES_HEADER,
  MISSING_SCOPE_HEADER,
  TOOL_FILTER_HEADER,
  TRANSPORT_HEADER,
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
  /** Bearer tokens; omit to accept session cookies only. */
  readonly bearer?: BearerContext;
  readonly audit: AuditLog;
  readonly log: Logger;
}

/** RFC 6750 section 3.1: what the challenge says, and never why a token was refused. */
const CHALLENGE_ERRORS = {
  'no-credentials': '',
  'session-invalid': ', error="invalid_token"',
  'token-invalid': ', error="invalid_token"',
  'token-malformed': ', error="invalid_request"',
} as const;

const ANONYMOUS: Principal = Object.freeze({
  identity: Object.freeze({ sub: 'anonymous', username: 'anonymous', groups: Object.freeze([]), provider: 'none' }),
  scopes: Object.freeze(['mcp:registry:admin']),
});

/**
 * The nginx `auth_request` endpoint (MCP authorization spec; RFC 6750 for the challenge).
 * nginx names the server in X-MCP-Server, a literal from the matched location, never parsed
 * from the URI, and what the body holds in X-MCP-Messages (read by njs). Answers, with an
 * empty body (njs builds the client's response):
 * - 200 + X-User / X-Username / X-Scopes, which nginx forwards to the backend, and
 *   X-MCP-Tool-Filter (JSON array) when the principal may use only some tools;
 * - 401 + WWW-Authenticate: no credentials, or a cookie that is forged, expired or unknown;
 * - 403 + X-Missing-Scope: signed in without the scope;
 * - 404 / 503: the server is unknown / disabled (nginx normally answers these itself);
 * - 500: nginx sent no valid server name or body summary (a config fault; denied, fail closed).
 * No disk or network I/O: sessions come from memory, the catalog is in memory.
 */
export function createValidateRoute(options: ValidateRouteOptions): RequestHandler {
  const { catalog, sessions, secret, authEnabled, audit, log } = options;
  if (!catalog || !sessions || !secret || !audit || !log) throw new TypeError('createValidateRoute: catalog, sessions, secret, audit and log are required');
  const challenge = `Bearer realm="${headerQuotedValue(options.realm)}"`;

  return async (req: Request, res: Response) => {
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
      const authorization = req.get('authorization');
      // An Authorization header is the client's explicit choice; a cookie is only consulted without one.
      const found =
        authorization !== undefined && options.bearer
          ? await principalFromBearer(authorization, options.bearer)
          : principalFromCookie(req.get('cookie'), secret, sessions);
      if (!found.ok) {
        log.info({ requestId, server: serverName, reason: found.reason, detail: found.detail }, 'auth check: 401');
        audit.record(accessEntry(req, serverName, '', parseMessagesHeader(req.get(MESSAGES_HEADER)) ?? [], 401, found.reason));
        res.status(401).set('WWW-Authenticate', `${challenge}${CHALLENGE_ERRORS[found.reason]}`).end();
        return;
      }
      principal = found.principal;
    }
    const messages = parseMessagesHeader(req.get(MESSAGES_HEADER));
    // A POST always has a body summary; without one we cannot know what we would allow.
    if (messages === undefined || (messages.length === 0 && req.get(ORIGINAL_METHOD_HEADER) === 'POST')) {
      log.error({ requestId, server: serverName }, 'auth check without a valid X-MCP-Messages header: nginx config fault');
      res.status(500).end();
      return;
    }
    const server = catalog.get(serverName);
    const decision = decideAccess({ scopes: principal.scopes, server: server && { name: server.name, enabled: server.enabled }, messages });
    const user = principal.identity;
    log.debug({ requestId, server: serverName, user: user.username, messages: req.get(MESSAGES_HEADER), decision }, 'auth check');
    const refused = decision.allow ? undefined : decision.method;
    audit.record({
      ...accessEntry(req, serverName, user.username, messages, decision.allow ? 200 : decision.status, decision.allow ? undefined : decision.reason, refused),
      missingScope: decision.allow ? undefined : decision.missingScope,
    });
    if (decision.allow) {
      res
        .status(200)
        .set(USER_HEADER, headerValue(user.sub))
        .set(USERNAME_HEADER, headerValue(user.username))
        .set(SCOPES_HEADER, headerValue(principal.scopes.join(' ')));
      if (decision.toolFilter) res.set(TOOL_FILTER_HEADER, JSON.stringify(decision.toolFilter));
      res.end();
      return;
    }
    if (decision.missingScope) res.set(MISSING_SCOPE_HEADER, headerValue(decision.missingScope));
    res.status(decision.status).end();
  };
}

/** The audit line for one decision: the first message, or the one that was refused. */
function accessEntry(req: Request, server: string, user: string, messages: readonly McpMessage[], status: number, reason: string | undefined, refusedMethod?: string): AccessAuditEntry {
  const first = messages.find((m) => m.kind === 'request' && (refusedMethod === undefined || m.method === refusedMethod)) ?? messages[0];
  const request = first?.kind === 'request' ? first : undefined;
  return {
    event: 'access',
    requestId: req.get(REQUEST_ID_HEADER),
    user,
    server,
    transport: req.get(TRANSPORT_HEADER),
    method: request?.method ?? (first ? '!response' : ''),
    tool: request?.tool,
    messages: messages.length,
    decision: status === 200 ? 'allow' : 'deny',
    status,
    missingScope: undefined,
    reason,
  };
}
