/**
 * Serves the route table (routes.ts) under /api/registry: finds the caller (bearer token, else
 * session cookie), checks CSRF on cookie writes, validates params, query and body with the
 * route's schemas, runs the handler and checks the answer against the documented response
 * schema. Errors are JSON with a stable code (errors.ts).
 */
import express, { type NextFunction, type Request, type Response } from 'express';
import type { z } from 'zod';
import { principalFromBearer, type BearerContext, type Principal } from '../../authz/credentials.ts';
import { bearerChallenge, metadataUrl } from '../../authz/protected-resource.ts';
import { REGISTRY_READ } from '../../scopes/scope.ts';
import { GatewayError, toHttp } from '../../errors.ts';
import type { Logger } from '../../log.ts';
import { csrfToken, csrfTokenMatches } from '../csrf.ts';
import type { RegistryActions } from '../registry-actions.ts';
import { openApiDocument } from './openapi.ts';
import { API_ROUTES, type ApiRoute } from './routes.ts';
import { fieldProblemsOf } from './schemas.ts';

export const CSRF_HEADER = 'x-csrf-token';

export interface ApiRouterOptions {
  readonly actions: RegistryActions;
  /** Bearer tokens; undefined when the identity provider accepts none. */
  readonly bearer: BearerContext | undefined;
  readonly publicUrl: string;
  readonly realm: string;
  readonly log: Logger;
}

type Caller = { principal: Principal; viaCookie: boolean };

/** The RFC 6750 error of a refused Authorization header, for the 401's challenge. */
const challengeErrors = new WeakMap<Request, 'invalid_token' | 'invalid_request'>();

export function apiRouter(options: ApiRouterOptions): express.Router {
  const { actions, log } = options;
  const router = express.Router();
  const openApi = JSON.stringify(openApiDocument(API_ROUTES, options.publicUrl));
  // The REST API is the gateway's root resource (RFC 9728); reading the registry is the least it takes.
  const resourceMetadata = metadataUrl(options.publicUrl);

  router.get('/openapi.json', (_req, res) => void res.type('application/json').send(openApi));
  router.use(express.json({ limit: '256kb', strict: true }));

  for (const route of API_ROUTES) {
    router[route.method](route.path, async (req: Request, res: Response) => {
      const caller = await callerOf(req, options);
      if (caller.viaCookie && route.method !== 'get') requireCsrfHeader(req);
      if (route.body && !req.is('application/json')) throw new GatewayError('REQUEST_INVALID', 'Send the body as JSON, with Content-Type: application/json.');
      const reply = await route.handle(actions, {
        principal: caller.principal,
        params: validate(route.params, req.params, 'path'),
        query: validate(route.query, req.query, 'query'),
        body: route.body ? validate(route.body, req.body, 'body') : undefined,
        ifMatch: ifMatchOf(req),
        csrfToken: caller.viaCookie ? csrfToken(req) : undefined,
      });
      send(res, route, reply, log);
    });
  }

  router.use((_req, _res, next) => next(new GatewayError('NOT_FOUND', 'There is no such API endpoint; see /api/registry/openapi.json.')));
  router.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    const known = jsonBodyError(err) ?? err;
    const { status, body } = toHttp(known);
    if (status >= 500) log.error({ err, path: req.path }, 'API request failed');
    else log.info({ code: body.error, path: req.path, method: req.method }, body.message);
    if (res.headersSent) return;
    if (status === 401) {
      const error = challengeErrors.get(req) ?? (req.headers.authorization ? 'invalid_token' : undefined);
      res.set('WWW-Authenticate', bearerChallenge({ realm: options.realm, error, scope: REGISTRY_READ, resourceMetadata }));
    }
    res.status(status).json(body);
  });
  return router;
}

/** A bearer token when the request has an Authorization header (cookies are then ignored), else the session. */
async function callerOf(req: Request, options: ApiRouterOptions): Promise<Caller> {
  const authorization = req.headers.authorization;
  if (authorization !== undefined) {
    if (!options.bearer) throw new GatewayError('AUTH_NO_CREDENTIALS', "This gateway accepts no bearer tokens; use the web page's session.");
    const found = await principalFromBearer(authorization, options.bearer);
    if (!found.ok) {
      options.log.info({ reason: found.reason, detail: found.detail }, 'API bearer token refused');
      // RFC 6750 section 3.1: a header that is not `Bearer <token>` is a malformed request.
      challengeErrors.set(req, found.reason === 'token-malformed' ? 'invalid_request' : 'invalid_token');
      throw new GatewayError(
        'AUTH_NO_CREDENTIALS',
        found.reason === 'token-malformed' ? 'The Authorization header must be Bearer <token>.' : 'The bearer token is not valid.',
      );
    }
    return { principal: found.principal, viaCookie: false };
  }
  const identity = req.session?.identity;
  if (!identity) throw new GatewayError('AUTH_NO_CREDENTIALS', 'Sign in, or send a bearer token.');
  return { principal: { identity, scopes: req.session.scopes ?? [] }, viaCookie: true };
}

/** Cookie callers prove the request comes from our page (or a client that read /me): X-CSRF-Token. */
function requireCsrfHeader(req: Request): void {
  if (!csrfTokenMatches(req, req.get(CSRF_HEADER) ?? '')) {
    throw new GatewayError('CSRF_TOKEN_INVALID', 'Cookie-authenticated writes need the X-CSRF-Token header; get the token from GET /api/registry/me.');
  }
}

function validate(schema: z.ZodType | undefined, value: unknown, where: string): any {
  if (!schema) return {};
  const parsed = schema.safeParse(value ?? {});
  if (parsed.success) return parsed.data;
  const fields = fieldProblemsOf(parsed.error, `(${where})`);
  const code = where === 'path' && fields.some((f) => f.field === 'name') ? 'SERVER_NAME_INVALID' : 'REQUEST_INVALID';
  throw new GatewayError(code, `The ${where} is not valid: ${fields.map((f) => `${f.field}: ${f.message}`).join('; ')}`, { fields });
}

/** `If-Match: "v"` or `W/"v"`; `*` means any version. */
function ifMatchOf(req: Request): string | undefined {
  const value = req.get('if-match')?.trim();
  if (!value || value === '*') return undefined;
  return value.replace(/^W\//, '').replace(/^"(.*)"$/, '$1');
}

function send(res: Response, route: ApiRoute, reply: { status?: number; body: unknown; etag?: string }, log: Logger): void {
  // The documented response schema is the contract: an answer that breaks it is our bug.
  const checked = route.response.safeParse(reply.body);
  if (!checked.success) {
    log.error({ operation: route.operationId, issues: checked.error.issues.slice(0, 5) }, 'API response does not match its schema');
    throw new GatewayError('INTERNAL', 'response does not match its schema');
  }
  if (reply.etag) res.set('ETag', `"${reply.etag}"`);
  res.status(reply.status ?? route.status).json(reply.body);
}

/** body-parser's errors (bad JSON, too large) as our codes. */
function jsonBodyError(err: unknown): GatewayError | undefined {
  const e = err as { type?: string; status?: number };
  if (e?.type === 'entity.parse.failed') return new GatewayError('REQUEST_INVALID', 'The body is not valid JSON.');
  if (e?.type === 'entity.too.large') return new GatewayError('BODY_TOO_LARGE', 'The body is larger than 256 KiB.');
  if (typeof e?.type === 'string' && e.status !== undefined && e.status < 500) return new GatewayError('REQUEST_INVALID', 'The body cannot be read.');
  return undefined;
}
