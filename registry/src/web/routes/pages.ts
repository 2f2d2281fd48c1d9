/**
 * The operators' pages (GET): servers, one server with its tools, the register (/register) and edit forms,
 * tool search, who can do what, and the audit log. Every page shows only what the caller's
 * scopes allow; registry-actions.ts decides that, these only render.
 */
import express, { type Request, type Response } from 'express';
import type { Catalog } from '../../catalog/catalog.ts';
import { GatewayError } from '../../errors.ts';
import { auditQuerySchema, toolSearchQuerySchema, whoCanBodySchema, type NginxState, type WhoCanAnswer } from '../api/schemas.ts';
import type { RegistryActions } from '../registry-actions.ts';
import { AUTH_SETTINGS_EXAMPLES, EMPTY_FORM, formFromDefinition } from '../server-form.ts';
import { hasScope } from '../../scopes/decide.ts';
import { REGISTRY_ADMIN, REGISTRY_READ } from '../../scopes/scope.ts';
import { layout, principalOf, requireSignedIn } from './page-context.ts';

export interface PageRoutesOptions {
  readonly actions: RegistryActions;
  readonly catalog: Catalog;
  readonly nginxStatus: () => NginxState;
}

export function pageRoutes({ actions, catalog, nginxStatus }: PageRoutesOptions): express.Router {
  const router = express.Router();

  router.get('/', (req: Request, res: Response) => {
    if (!req.session.identity) return void res.render('index', { signedIn: false });
    const p = principalOf(req);
    const operator = hasScope(p.scopes, REGISTRY_READ);
    res.render('index', {
      ...layout(req, catalog, 'servers'),
      servers: actions.list(p),
      problems: operator ? catalog.problems() : [],
      nginx: operator ? nginxStatus() : undefined,
    });
  });

  // Not /servers/new: a server may well be named `new`, and its page is /servers/new.
  router.get('/register', requireSignedIn, (req: Request, res: Response) => {
    if (!hasScope(principalOf(req).scopes, REGISTRY_ADMIN))
      throw new GatewayError('AUTH_SCOPE_MISSING', `You need the scope ${REGISTRY_ADMIN} to register servers.`);
    res.render('server-form', {
      ...layout(req, catalog, 'register'),
      mode: 'register',
      form: EMPTY_FORM,
      errors: {},
      version: '',
      authExamples: AUTH_SETTINGS_EXAMPLES,
    });
  });

  router.get('/servers/:name', requireSignedIn, (req: Request, res: Response) => {
    const p = principalOf(req);
    const server = actions.get(p, String(req.params['name']));
    // Editors see the backend credential's status (never a value) and may set its secrets.
    const credentials = server.permissions.edit ? actions.credentialStatusOrNone(p, server.name) : undefined;
    // A server whose backend takes a token each person uploads: the caller's own (status only).
    const myToken = actions.myTokenOrNone(p, server.name);
    // A server each person connects their own account to: the caller's connection (status only).
    const myConnection = actions.myConnectionOrNone(p, server.name);
    res.render('server', { ...layout(req, catalog, 'server'), server, credentials, myToken, myConnection });
  });

  // The stable URL a refused MCP request names (BACKEND_CREDENTIAL_FAILED): sign in first, then the card.
  router.get('/servers/:name/token', requireSignedIn, (req: Request, res: Response) => {
    const server = actions.get(principalOf(req), String(req.params['name']));
    res.redirect(303, `/servers/${server.name}#my-token`);
  });

  router.get('/servers/:name/edit', requireSignedIn, (req: Request, res: Response) => {
    const server = actions.get(principalOf(req), String(req.params['name']));
    if (!server.permissions.edit || !server.definition)
      throw new GatewayError('AUTH_SCOPE_MISSING', `You need the scope mcp:server:${server.name}:edit to change ${server.name}.`);
    res.render('server-form', {
      ...layout(req, catalog, 'server'),
      mode: 'edit',
      form: formFromDefinition(server.definition),
      errors: {},
      version: server.version,
    });
  });

  router.get('/tools', requireSignedIn, (req: Request, res: Response) => {
    const { q } = toolSearchQuerySchema.parse({ q: typeof req.query['q'] === 'string' ? req.query['q'] : '' });
    res.render('tools', { ...layout(req, catalog, 'tools'), q, matches: actions.searchTools(principalOf(req), q) });
  });

  router.get('/access', requireSignedIn, (req: Request, res: Response) => {
    const p = principalOf(req);
    const users = actions.signedInUsers(p);
    const form = {
      subject: req.query['subject'] === 'user' ? 'user' : 'groups',
      groups: typeof req.query['groups'] === 'string' ? req.query['groups'] : '',
      user: typeof req.query['user'] === 'string' ? req.query['user'] : '',
      server: typeof req.query['server'] === 'string' ? req.query['server'] : '',
      tool: typeof req.query['tool'] === 'string' ? req.query['tool'] : '',
      method: typeof req.query['method'] === 'string' ? req.query['method'] : '',
    };
    let answer: WhoCanAnswer | undefined;
    let problem: string | undefined;
    if (form.server) {
      const question = whoCanBodySchema.safeParse({
        server: form.server,
        ...(form.subject === 'user' ? { user: form.user } : { groups: form.groups.split(/[\s,]+/).filter(Boolean) }),
        ...(form.tool ? { tool: form.tool } : {}),
        ...(form.method ? { method: form.method } : {}),
      });
      if (question.success) {
        try {
          answer = actions.whoCan(p, question.data);
        } catch (err) {
          if (!(err instanceof GatewayError) || err.code !== 'REQUEST_INVALID') throw err;
          problem = err.message;
        }
      } else {
        problem = question.error.issues.map((i) => `${i.path.join('.') || 'question'}: ${i.message}`).join('; ');
      }
    }
    // Every server and the tools the caller may see of each, for the pickers.
    const visibleTools = actions.searchTools(p, '');
    const servers = actions.list(p).map((s) => ({ name: s.name, tools: visibleTools.filter((m) => m.server === s.name).map((m) => m.tool.name) }));
    res.render('access', { ...layout(req, catalog, 'access'), form, users, servers, answer, problem });
  });

  router.get('/audit', requireSignedIn, async (req: Request, res: Response) => {
    const raw = Object.fromEntries(Object.entries(req.query).filter(([, v]) => typeof v === 'string' && v !== ''));
    const parsed = auditQuerySchema.safeParse(raw);
    const query = parsed.success ? parsed.data : auditQuerySchema.parse({});
    const entries = await actions.audit(principalOf(req), query);
    res.render('audit', {
      ...layout(req, catalog, 'audit'),
      filters: raw,
      entries,
      problem: parsed.success ? undefined : 'Some filters were not valid and were ignored.',
    });
  });

  return router;
}
