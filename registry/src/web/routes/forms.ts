/**
 * The page's state-changing forms (POST, CSRF-checked): register, edit, enable/disable, delete
 * and refresh a server. Each calls the same action the REST API calls, then redirects (303)
 * with a notice; an invalid definition re-renders the form with the errors next to the fields.
 */
import express, { type Request, type Response } from 'express';
import type { Catalog } from '../../catalog/catalog.ts';
import { GatewayError } from '../../errors.ts';
import type { Logger } from '../../log.ts';
import { requireCsrf } from '../csrf.ts';
import type { RegistryActions } from '../registry-actions.ts';
import { authSettingsErrors, definitionInputFromForm, formErrors, formFromBody } from '../server-form.ts';
import { layout, principalOf, requireSignedIn } from './page-context.ts';

const form = express.urlencoded({ extended: false, limit: '64kb' });

export function formRoutes({ actions, catalog, log }: { actions: RegistryActions; catalog: Catalog; log: Logger }): express.Router {
  const router = express.Router();
  const user = (req: Request) => req.session.identity!.username;
  const name = (req: Request) => String(req.params['name']);

  router.post('/servers', form, requireSignedIn, requireCsrf, async (req: Request, res: Response) => {
    const values = formFromBody(req.body);
    const unreadable = authSettingsErrors(values);
    if (Object.keys(unreadable).length)
      return void res
        .status(400)
        .render('server-form', { ...layout(req, catalog, 'register'), mode: 'register', form: values, errors: unreadable, version: '' });
    try {
      const change = await actions.register(principalOf(req), user(req), definitionInputFromForm(values));
      log.info({ user: user(req), server: change.server.name }, 'server registered from the page');
      done(req, res, `/servers/${change.server.name}`, `${change.server.name} is registered${routeNote(change)}.`);
    } catch (err) {
      if (!invalidForm(err)) throw err;
      res
        .status(err.status)
        .render('server-form', { ...layout(req, catalog, 'register'), mode: 'register', form: values, errors: fieldErrors(err), version: '' });
    }
  });

  router.post('/servers/:name', form, requireSignedIn, requireCsrf, async (req: Request, res: Response) => {
    const values = { ...formFromBody(req.body), name: name(req) };
    const version = versionOf(req);
    const unreadable = authSettingsErrors(values);
    if (Object.keys(unreadable).length)
      return void res
        .status(400)
        .render('server-form', { ...layout(req, catalog, 'server'), mode: 'edit', form: values, errors: unreadable, version: version ?? '' });
    try {
      const change = await actions.update(principalOf(req), user(req), name(req), definitionInputFromForm(values), version);
      done(req, res, `/servers/${name(req)}`, `${name(req)} is saved${routeNote(change)}.`);
    } catch (err) {
      if (!invalidForm(err)) throw err;
      res
        .status(err.status)
        .render('server-form', { ...layout(req, catalog, 'server'), mode: 'edit', form: values, errors: fieldErrors(err), version: version ?? '' });
    }
  });

  // The backend credential's secrets: write-only password fields on the server's page.
  router.post('/servers/:name/credentials', form, requireSignedIn, requireCsrf, async (req: Request, res: Response) => {
    const headers: Record<string, string> = {};
    let clientSecret: string | undefined;
    let serviceClientSecret: string | undefined;
    for (const [key, value] of Object.entries((req.body ?? {}) as Record<string, unknown>)) {
      if (typeof value !== 'string' || value === '') continue;
      if (key.startsWith('header:')) headers[key.slice('header:'.length)] = value;
      else if (key === 'clientSecret') clientSecret = value;
      else if (key === 'serviceClientSecret') serviceClientSecret = value;
    }
    try {
      await actions.setCredentials(principalOf(req), user(req), name(req), {
        ...(Object.keys(headers).length ? { headers } : {}),
        ...(clientSecret !== undefined ? { clientSecret } : {}),
        ...(serviceClientSecret !== undefined ? { serviceClientSecret } : {}),
      });
      done(req, res, `/servers/${name(req)}`, `The backend credential of ${name(req)} is saved; it is used from the next request.`);
    } catch (err) {
      if (!(err instanceof GatewayError) || err.code !== 'REQUEST_INVALID') throw err;
      // The message names fields, never values.
      done(req, res, `/servers/${name(req)}`, `Nothing was saved: ${err.message}`);
    }
  });

  router.post('/servers/:name/credentials/clear', form, requireSignedIn, requireCsrf, async (req: Request, res: Response) => {
    await actions.clearCredentials(principalOf(req), user(req), name(req));
    done(req, res, `/servers/${name(req)}`, `The stored secrets of ${name(req)} are removed.`);
  });

  // The caller's own token for an `uploaded` server: a password field, never shown back.
  router.post('/servers/:name/token', form, requireSignedIn, requireCsrf, async (req: Request, res: Response) => {
    const body = (req.body ?? {}) as Record<string, unknown>;
    const token = typeof body['token'] === 'string' ? body['token'] : '';
    const expiresAt = typeof body['expiresAt'] === 'string' && body['expiresAt'].trim() !== '' ? body['expiresAt'] : undefined;
    const to = `/servers/${name(req)}#my-token`;
    try {
      if (token.trim() === '') throw new GatewayError('REQUEST_INVALID', 'paste the token first.');
      const status = await actions.setMyToken(principalOf(req), user(req), name(req), { token, ...(expiresAt ? { expiresAt } : {}) });
      const until = status.expiresAt ? `; it expires ${status.expiresAt.replace('T', ' ').slice(0, 19)} UTC` : '';
      done(req, res, to, `Your token for ${name(req)} is saved${until}. It is used from your next request.`);
    } catch (err) {
      if (!(err instanceof GatewayError) || err.code !== 'REQUEST_INVALID') throw err;
      // The message names what is wrong, never the value.
      done(req, res, to, `Your token was not saved: ${err.message}`);
    }
  });

  router.post('/servers/:name/token/remove', form, requireSignedIn, requireCsrf, async (req: Request, res: Response) => {
    await actions.clearMyToken(principalOf(req), user(req), name(req));
    done(req, res, `/servers/${name(req)}#my-token`, `Your token for ${name(req)} is removed.`);
  });

  router.post('/servers/:name/toggle', form, requireSignedIn, requireCsrf, async (req: Request, res: Response) => {
    const enabled = req.body?.enabled === 'true';
    await actions.toggle(principalOf(req), user(req), name(req), enabled);
    log.info({ user: user(req), server: name(req), enabled }, 'server toggled from the page');
    done(req, res, backTo(req), `${name(req)} is now ${enabled ? 'enabled' : 'disabled'}.`);
  });

  router.post('/servers/:name/delete', form, requireSignedIn, requireCsrf, async (req: Request, res: Response) => {
    const nginx = await actions.delete(principalOf(req), user(req), name(req), versionOf(req));
    log.info({ user: user(req), server: name(req) }, 'server deleted from the page');
    done(req, res, '/', `${name(req)} is deleted${nginxNote(nginx, '')}.`);
  });

  router.post('/servers/:name/refresh', form, requireSignedIn, requireCsrf, async (req: Request, res: Response) => {
    const result = await actions.tools(principalOf(req), name(req), true);
    const health = result.health;
    done(
      req,
      res,
      `/servers/${name(req)}`,
      health.status === 'healthy'
        ? `${name(req)} answered in ${health.latencyMs} ms with ${result.tools.length} tools.`
        : health.status === 'unauthorized'
          ? `${name(req)} asks for a credential: ${health.error ?? 'HTTP 401'}.`
          : health.status === 'skipped'
            ? `${name(req)} was not checked: ${health.error ?? "it takes each person's own credential"}.`
            : `${name(req)} did not answer: ${health.error ?? 'unknown error'}.`,
    );
  });

  return router;
}

function done(req: Request, res: Response, to: string, notice: string): void {
  req.session.notice = notice;
  res.redirect(303, to);
}

/** The edit form's hidden `version` (what the operator loaded), when there is one. */
function versionOf(req: Request): string | undefined {
  return typeof req.body?.version === 'string' && req.body.version ? req.body.version : undefined;
}

/** Back to the page the form was on, when that was a page of ours. */
function backTo(req: Request): string {
  const from = typeof req.body?.back === 'string' ? req.body.back : '';
  return /^\/(?:servers\/[a-z0-9-]+)?$/.test(from) ? from : '/';
}

/** A saved definition nginx refused on its own is not routed: the notice must not say it serves. */
function routeNote(change: { server: { routed: boolean }; nginx: { lastError?: string } }): string {
  return change.server.routed ? nginxNote(change.nginx) : ', but nginx refused its definition, so it is not routed (see the server page)';
}

function nginxNote(nginx: { lastError?: string }, fine = ' and nginx serves it'): string {
  return nginx.lastError ? ', but nginx refused the new configuration (the last good one keeps serving; see the servers page)' : fine;
}

function invalidForm(err: unknown): err is GatewayError {
  return err instanceof GatewayError && (err.code === 'REQUEST_INVALID' || err.code === 'SERVER_EXISTS' || err.code === 'SERVER_CHANGED');
}

function fieldErrors(err: GatewayError): Record<string, string> {
  if (err.fields) return formErrors(err.fields);
  return err.code === 'SERVER_EXISTS' ? { name: err.message } : { form: err.message };
}
