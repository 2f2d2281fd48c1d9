import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AccessAuditEntry, AuditLog } from '../audit/audit-log.ts';
import type { Catalog } from '../catalog/catalog.ts';
import { SERVER_NAME_PATTERN } from '../catalog/server-definition.ts';
import { GatewayError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { decideAccess, type McpMessage } from '../scopes/decide.ts';
import type { GatewayTokenVerifier } from '../authserver/verify.ts';
import { PAT_PREFIX, type PersonalTokens } from '../authserver/personal-tokens.ts';
import {
  bearerToken,
  principalFromBearer,
  principalFromCookie,
  principalFromGatewayToken,
  principalFromPersonalToken,
  type BearerContext,
  type CredentialResult,
  type Principal,
  type SessionLookup,
} from './credentials.ts';
import { connectUrlOn } from './connect-url.ts';
import { headerValue } from './header-value.ts';
import { parseMessagesHeader } from './messages-header.ts';
import { traceIdOf } from './trace-context.ts';
import { BACKEND_CREDENTIAL_HEADER, ERROR_DETAIL_HEADER } from '../credentials/answer.ts';
import type { BackendCredentials } from '../credentials/backend-credentials.ts';
import { AUDIT_HEADER, CACHE_SECONDS_HEADER, cacheSeconds, encodeAuditSummary } from './check-cache.ts';
import { bearerChallenge, metadataUrl, resourceUrl, type ChallengeError } from './protected-resource.ts';
import { PATH_HEADER, ROUTE_ALLOW_HEADER, ROUTE_HEADER, ROUTE_REFUSED_HEADER, type RouteDecision, type RouteLookup } from './route.ts';
import { createSessionBinding, principalBindingId, type SessionKind } from './session-binding.ts';
import {
  BACKEND_SESSION_HEADER,
  BACKEND_TARGET_HEADER,
  CONNECT_URL_HEADER,
  SESSION_ELICITATION_HEADER,
  SESSION_HEADER,
  SESSION_KEY_HEADER,
  SESSION_UNKNOWN_HEADER,
  MESSAGES_HEADER,
  MISSING_SCOPE_HEADER,
  TOOL_FILTER_HEADER,
  TRANSPORT_HEADER,
  VALIDATE_PATH,
  ERROR_HEADER,
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
  /** GATEWAY_PUBLIC_URL: challenges name the metadata URL of the resource built from it, never from Host. */
  readonly publicUrl: string;
  /** Bearer tokens; omit to accept session cookies only. */
  readonly bearer?: BearerContext;
  /** Access tokens the gateway issued to MCP clients (authserver/); omit when it issues none. */
  readonly gatewayTokens?: GatewayTokenVerifier;
  /** Personal access tokens (`mgp_...`), checked from memory; omit to accept none. */
  readonly personalTokens?: Pick<PersonalTokens, 'check'>;
  /**
   * Routing in the check (nginx/route.ts): nginx matches any well-formed server name and this
   * decides the endpoint (404 / 405 before credentials, as nginx's per-server locations did)
   * and, on a 200, answers the backend in X-MCP-Route. Omitted: no routing answer (unit tests).
   */
  readonly route?: RouteLookup;
  /**
   * The gateway's own credential for a backend (credentials/backend-credentials.ts), added to a
   * 200 for a server with `backendAuth`; omitted: none is ever added.
   */
  readonly backendCredentials?: Pick<BackendCredentials, 'forCheck'>;
  /**
   * CHECK_CACHE_SECONDS: how long nginx may keep an answer that holds no secret (check-cache.ts).
   * 0 or omitted: no answer says it may be kept, and nginx keeps none.
   */
  readonly cacheSeconds?: number;
  /** The clock, for cached answers' lifetimes (tests). */
  readonly now?: () => number;
  readonly audit: AuditLog;
  readonly log: Logger;
}

/** RFC 6750 section 3.1: what the challenge says, and never why a token was refused. */
const CHALLENGE_ERRORS: Record<'no-credentials' | 'session-invalid' | 'token-invalid' | 'token-malformed', ChallengeError> = {
  'no-credentials': undefined,
  'session-invalid': 'invalid_token',
  'token-invalid': 'invalid_token',
  'token-malformed': 'invalid_request',
};

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
 * - 401 + WWW-Authenticate: no credentials, or a cookie or token that is forged, expired or
 *   unknown. The challenge names the resource's RFC 9728 metadata URL (`resource_metadata`,
 *   for the server and transport nginx named) and the scope the request needs (`scope`: what
 *   decideAccess would name for a principal with no scopes), so an MCP client can discover
 *   the authorization server and ask for that scope;
 * - 403 + X-Missing-Scope + WWW-Authenticate `error="insufficient_scope"` with the same scope
 *   and metadata URL (the MCP spec's scope challenge, for step-up): signed in without the scope;
 * - 404: the server is unknown (nginx normally answers this itself, for names not in its config);
 * - 503: the server is disabled (only the check knows: toggles never reload nginx);
 * - 404 + X-MCP-Session-Unknown: X-MCP-Session names no session of this principal (forged,
 *   garbled, or another principal's), or a legacy messages POST carries none. On every 200
 *   X-MCP-Session-Key carries the principal's sealing key for njs, and X-MCP-Backend-Session /
 *   X-MCP-Backend-Target the unsealed id or messages target (session-binding.ts);
 * - 502 + X-MCP-Error: BACKEND_CREDENTIAL_FAILED (+ X-MCP-Error-Detail, no secret): the server
 *   has a backendAuth and its credential cannot be had now (a secret unset, no valid token yet);
 * - 403 + X-MCP-Error: BACKEND_CONNECT_REQUIRED + X-MCP-Connect-Url (+ X-MCP-Error-Detail):
 *   the credential is the person's own and they can fix it at that page of the gateway (upload
 *   a token, connect an account); X-MCP-Session-Elicitation: url when their MCP session
 *   declared URL-mode elicitation at initialize, so njs may answer with one (nginx/njs/mcp.js);
 *   on a 200 for such a server, X-MCP-Backend-Credential names the slots and X-MCP-Backend-<slot>
 *   holds each value, which njs sets on the upstream request only;
 * - 500: nginx sent no valid server name or body summary (a config fault; denied, fail closed).
 * No disk or network I/O: sessions come from memory, the catalog is in memory.
 */
export function createValidateRoute(options: ValidateRouteOptions): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  const { catalog, sessions, secret, authEnabled, audit, log } = options;
  if (!catalog || !sessions || !secret || !audit || !log) throw new TypeError('createValidateRoute: catalog, sessions, secret, audit and log are required');
  const { realm, publicUrl } = options;
  if (typeof publicUrl !== 'string' || !/^https?:\/\//.test(publicUrl)) throw new TypeError('createValidateRoute: publicUrl must be an http(s) URL');
  const binding = createSessionBinding(secret);
  const maxCacheSeconds = options.cacheSeconds ?? 0;
  const now = options.now ?? Date.now;
  /** A store outage is logged once when the check first meets it, and once when a check passes again. */
  let storeDown = false;

  // Plain node:http, no Express: this runs on every MCP request, and routing it through a
  // framework costs more than the decision itself (measured; docs/performance.md).
  return async (req, res) => {
    try {
      await check(req, res);
      if (storeDown) {
        storeDown = false;
        log.info('auth check: the state store answers again');
      }
    } catch (err) {
      // The state store cannot be read (Redis away, or its copy not in sync): refuse, and say why.
      if (err instanceof GatewayError && err.code === 'STORE_UNAVAILABLE') {
        if (!storeDown) log.error({ err }, 'auth check: the state store cannot be read; MCP requests answer 503 STORE_UNAVAILABLE until it is back');
        storeDown = true;
        if (!res.headersSent) res.writeHead(503, { [ERROR_HEADER]: 'STORE_UNAVAILABLE' }).end();
        return;
      }
      // Not reaching the IdP's keys, or a fault of ours: deny, as a server error, never a 401.
      log.error({ err, requestId: header(req, REQUEST_ID_HEADER) }, 'auth check failed');
      if (!res.headersSent) res.writeHead(500).end();
    }
  };

  /** The gateway's own tokens (`iss` is the gateway) are verified here; any other goes to the IdP's rules. */
  async function fromAuthorization(authorization: string, serverName: string): Promise<CredentialResult> {
    const token = bearerToken(authorization);
    if (token !== undefined && token.startsWith(PAT_PREFIX) && options.personalTokens)
      return principalFromPersonalToken(token, serverName, options.personalTokens);
    if (token !== undefined && options.gatewayTokens?.issuedHere(token)) return principalFromGatewayToken(token, serverName, options.gatewayTokens);
    if (!options.bearer) return { ok: false, reason: token === undefined ? 'token-malformed' : 'token-invalid', detail: 'not a token of this gateway' };
    return principalFromBearer(authorization, options.bearer);
  }

  async function check(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // The check answers on its exact path only (nginx blocks every spelling from outside too).
    if ((req.url ?? '').split('?')[0] !== VALIDATE_PATH) return void res.writeHead(404).end();
    const serverName = header(req, SERVER_HEADER) ?? '';
    const requestId = header(req, REQUEST_ID_HEADER);
    if (!SERVER_NAME_PATTERN.test(serverName)) {
      log.error({ requestId }, 'auth check without a valid X-MCP-Server header: nginx config fault');
      return void res.writeHead(500).end();
    }
    let routed: RouteDecision | undefined;
    if (options.route) {
      const path = header(req, PATH_HEADER);
      routed = options.route({
        server: serverName,
        transport: header(req, TRANSPORT_HEADER) === 'sse' ? 'sse' : 'streamable-http',
        method: header(req, ORIGINAL_METHOD_HEADER) ?? '',
        path: path === undefined || path === '-' ? '' : path,
      });
      if (!routed.ok) {
        const { refusal } = routed;
        // As nginx answered these before it had a location per server: no credential is looked at.
        const refusedHeaders: Record<string, string> = refusal.refused === 'SERVER_UNKNOWN' ? {} : { [ROUTE_REFUSED_HEADER]: refusal.refused };
        if (refusal.status === 405) refusedHeaders[ROUTE_ALLOW_HEADER] = refusal.allow;
        return void res.writeHead(refusal.status, refusedHeaders).end();
      }
    }
    const messages = parseMessagesHeader(header(req, MESSAGES_HEADER));
    let principal: Principal = ANONYMOUS;
    if (authEnabled) {
      const authorization = header(req, 'authorization');
      // An Authorization header is the client's explicit choice; a cookie is only consulted without one.
      const found =
        authorization !== undefined && (options.bearer || options.gatewayTokens || options.personalTokens)
          ? await fromAuthorization(authorization, serverName)
          : principalFromCookie(header(req, 'cookie'), secret, sessions);
      if (!found.ok) {
        log.info({ requestId, server: serverName, reason: found.reason, detail: found.detail }, 'auth check: 401');
        audit.record(accessEntry(req, serverName, '', messages ?? [], 401, found.reason));
        const server = catalog.get(serverName);
        // The scope this request needs, as the 403 would name it for a principal with no scopes.
        const needed = decideAccess({ scopes: [], server: server && { name: server.name, enabled: server.enabled }, messages: messages ?? [] });
        const challenge = bearerChallenge({
          realm,
          error: CHALLENGE_ERRORS[found.reason],
          scope: needed.allow ? undefined : needed.missingScope,
          resourceMetadata: metadataFor(serverName, header(req, TRANSPORT_HEADER)),
        });
        return void res.writeHead(401, { 'www-authenticate': challenge }).end();
      }
      principal = found.principal;
    }
    // A POST always has a body summary; without one we cannot know what we would allow.
    if (messages === undefined || (messages.length === 0 && header(req, ORIGINAL_METHOD_HEADER) === 'POST')) {
      log.error({ requestId, server: serverName }, 'auth check without a valid X-MCP-Messages header: nginx config fault');
      return void res.writeHead(500).end();
    }
    const server = catalog.get(serverName);
    const decision = decideAccess({ scopes: principal.scopes, server: server && { name: server.name, enabled: server.enabled }, messages });
    const user = principal.identity;
    if (log.isLevelEnabled('debug'))
      log.debug({ requestId, server: serverName, user: user.username, messages: header(req, MESSAGES_HEADER), decision }, 'auth check');
    let status: number = decision.allow ? 200 : decision.status;
    let reason: string | undefined = decision.allow ? undefined : decision.reason;
    let headers: Record<string, string> = {};
    /** The client's MCP session declared URL-mode elicitation at initialize (its sealed id says so). */
    let sessionUrlElicitation = false;
    if (decision.allow) {
      // Sessions are the principal's own: the id the client sent must open with its key.
      const key = binding.keyFor(principalBindingId(principal, authEnabled));
      const transport = header(req, TRANSPORT_HEADER);
      const kind: SessionKind = transport === 'sse' ? 'sse' : 'streamable';
      const sealed = header(req, SESSION_HEADER);
      if (sealed !== undefined && sealed !== '') {
        const opened = binding.open(kind, serverName, sealed, key);
        if (opened.ok) {
          headers[kind === 'sse' ? BACKEND_TARGET_HEADER : BACKEND_SESSION_HEADER] = opened.value;
          sessionUrlElicitation = opened.urlElicitation === true;
        } else [status, reason] = [404, opened.reason];
      } else if (kind === 'sse' && header(req, ORIGINAL_METHOD_HEADER) === 'POST') {
        // A legacy POST goes to the endpoint its sealed id names, or nowhere.
        [status, reason] = [404, 'session-missing'];
      }
      if (status === 200) {
        headers[USER_HEADER] = headerValue(user.sub);
        headers[USERNAME_HEADER] = headerValue(user.username);
        headers[SCOPES_HEADER] = scopesHeader(principal.scopes);
        // The sealing key goes to njs only for a response that may hand out a session: the
        // initialize of a Streamable HTTP session (MCP 2025-06-18 basic/transports "Session
        // Management": the server assigns the id on the response to initialize) and the legacy
        // stream's endpoint event. Every other answer leaves it out, and so may be cached.
        if (kind === 'sse' ? header(req, ORIGINAL_METHOD_HEADER) === 'GET' : sealed === undefined || sealed === '' ? opensSession(messages) : false)
          headers[SESSION_KEY_HEADER] = key.header;
        if (decision.toolFilter) headers[TOOL_FILTER_HEADER] = JSON.stringify(decision.toolFilter);
      } else {
        headers[SESSION_UNKNOWN_HEADER] = '1';
        log.info({ requestId, server: serverName, user: user.username, reason }, "auth check: MCP session is not this principal's");
      }
    } else if (decision.missingScope) {
      headers[MISSING_SCOPE_HEADER] = headerValue(decision.missingScope);
      headers['www-authenticate'] = bearerChallenge({
        error: 'insufficient_scope',
        scope: decision.missingScope,
        resourceMetadata: metadataFor(serverName, header(req, TRANSPORT_HEADER)),
      });
    }
    if (status === 200 && routed?.ok) {
      const backend = await routed.backend();
      if (backend.ok) headers[ROUTE_HEADER] = backend.header;
      else {
        [status, reason, headers] = [502, 'backend-unavailable', { [ROUTE_REFUSED_HEADER]: 'BACKEND_UNAVAILABLE' }];
        // The route table logged why once; this is per request.
        log.debug({ requestId, server: serverName, detail: backend.reason }, 'auth check: the backend cannot be reached');
      }
    }
    // The gateway's own credential for the backend: njs sets it on the upstream request only.
    // Nothing for a server without backendAuth (no lookup, no header).
    if (status === 200 && server?.backendAuth !== undefined && options.backendCredentials) {
      // A person's own token for an `uploaded` server (a PAT's owner included); a machine client has none.
      const found = options.backendCredentials.forCheck(server, principal.machineClient === undefined ? user : undefined);
      // A promise only while a per-person token is fetched (none cached yet, or expired).
      const credential = found instanceof Promise ? await found : found;
      if (credential?.ok) Object.assign(headers, credential.headers);
      else if (credential?.connect !== undefined && connectUrlOn(publicUrl, credential.connect) !== undefined) {
        // The person can fix it themselves: njs names the page (or elicits it) instead of a 502.
        [status, reason, headers] = [
          403,
          'backend-connect-required',
          {
            [ERROR_HEADER]: 'BACKEND_CONNECT_REQUIRED',
            [ERROR_DETAIL_HEADER]: headerValue(credential.reason),
            [CONNECT_URL_HEADER]: credential.connect,
            ...(sessionUrlElicitation ? { [SESSION_ELICITATION_HEADER]: 'url' } : {}),
          },
        ];
      } else if (credential) {
        // A connect page not on GATEWAY_PUBLIC_URL is a fault of ours: never shown to a client.
        if (credential.connect !== undefined)
          log.error({ requestId, server: serverName }, 'auth check: a connect page outside GATEWAY_PUBLIC_URL; answering 502');
        // The registry logs the reason once per server (backend-credentials.ts); it names no secret.
        [status, reason, headers] = [
          502,
          'backend-credential-failed',
          { [ERROR_HEADER]: 'BACKEND_CREDENTIAL_FAILED', [ERROR_DETAIL_HEADER]: headerValue(credential.reason) },
        ];
      }
    }
    const entry: AccessAuditEntry = {
      ...accessEntry(req, serverName, user.username, messages, status, reason, decision.allow ? undefined : decision.method),
      missingScope: decision.allow ? undefined : decision.missingScope,
    };
    audit.record(entry);
    if (maxCacheSeconds > 0 && cacheable(status, headers, server?.backendAuth !== undefined)) {
      const seconds = cacheSeconds(maxCacheSeconds, principal.expiresAt, now());
      if (seconds > 0) {
        headers[CACHE_SECONDS_HEADER] = String(seconds);
        headers[AUDIT_HEADER] = encodeAuditSummary(entry);
      }
    }
    res.writeHead(status, headers).end();
  }

  /**
   * The RFC 9728 metadata URL of the MCP URL this request was for (X-MCP-Transport names it);
   * the gateway's root metadata when the catalog no longer has the server or that transport.
   */
  function metadataFor(serverName: string, transport: string | undefined): string {
    const server = catalog.get(serverName);
    const resource = server?.transports && resourceUrl(publicUrl, server, transport === 'sse' ? 'sse' : 'streamable-http');
    return metadataUrl(resource ?? publicUrl);
  }
}

/**
 * An answer nginx may keep (docs/performance.md, "Cached decisions"): an allow that carries no
 * secret (no backend credential, no session sealing key) for a server without `backendAuth`
 * (whose credentials change without a catalog change), or a missing-scope refusal. Never a 401
 * (a stranger's garbage must not fill the cache), a session the principal does not own, a
 * disabled or unknown server, a store outage, or anything a person must go and fix.
 */
function cacheable(status: number, headers: Record<string, string>, backendAuth: boolean): boolean {
  if (status === 200) return !backendAuth && headers[SESSION_KEY_HEADER] === undefined && headers[BACKEND_CREDENTIAL_HEADER] === undefined;
  return status === 403 && headers[MISSING_SCOPE_HEADER] !== undefined && headers[ERROR_HEADER] === undefined;
}

/** Whether a body holds an initialize request: the one request whose response may assign an MCP session. */
function opensSession(messages: readonly McpMessage[]): boolean {
  return messages.some((m) => m.kind === 'request' && m.method === 'initialize');
}

/** The X-Scopes value, computed once per scope list (a session's list is one object for its life). */
const scopesHeaders = new WeakMap<readonly string[], string>();
function scopesHeader(scopes: readonly string[]): string {
  let value = scopesHeaders.get(scopes);
  if (value === undefined) {
    value = headerValue(scopes.join(' '));
    scopesHeaders.set(scopes, value);
  }
  return value;
}

function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** The audit line for one decision: the first message, or the one that was refused. */
function accessEntry(
  req: IncomingMessage,
  server: string,
  user: string,
  messages: readonly McpMessage[],
  status: number,
  reason: string | undefined,
  refusedMethod?: string,
): AccessAuditEntry {
  const first = messages.find((m) => m.kind === 'request' && (refusedMethod === undefined || m.method === refusedMethod)) ?? messages[0];
  const request = first?.kind === 'request' ? first : undefined;
  return {
    event: 'access',
    requestId: header(req, REQUEST_ID_HEADER),
    traceId: traceIdOf(header(req, 'traceparent')),
    user,
    server,
    transport: header(req, TRANSPORT_HEADER),
    method: request?.method ?? (first ? '!response' : ''),
    tool: request?.tool,
    messages: messages.length,
    decision: status === 200 ? 'allow' : 'deny',
    status,
    missingScope: undefined,
    reason,
  };
}
