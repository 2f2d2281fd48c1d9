import type { IncomingMessage, ServerResponse } from 'node:http';
import type { JWTPayload } from 'jose';
import type Provider from 'oidc-provider';
import type { ProfileDefinition, UserRecord } from './idp-profiles.ts';

/**
 * The HTTP surface in front of oidc-provider that makes a test IdP look like the real one:
 * discovery only where the real IdP serves it, the login form, userinfo for JWT access tokens,
 * and the first-party grant (no consent screen).
 */

/** The one resource server every access token is for; its audience is the profile's. */
export const RESOURCE = 'urn:test-idp:api';

export interface Users {
  readonly byUsername: Map<string, UserRecord>;
  readonly byAccountId: Map<string, UserRecord>;
}

/** Every scope of the one resource server: OIDC scopes (they show in `scope`/`scp`) and the m2m ones. */
export function resourceScopeOf(def: ProfileDefinition): string {
  return [...new Set([...def.oidcScopes, ...def.userScope.split(' '), ...def.m2mScope.split(' ')])].join(' ');
}

/** First-party clients: every scope is granted, without a consent screen. */
export async function grantEverything(
  provider: Provider,
  def: ProfileDefinition,
  accountId: string,
  clientId: string,
  grantId: string | undefined,
): Promise<InstanceType<Provider['Grant']>> {
  const existing = grantId ? await provider.Grant.find(grantId) : undefined;
  if (existing) return existing;
  const grant = new provider.Grant({ clientId, accountId });
  grant.addOIDCScope(def.oidcScopes.join(' '));
  grant.addResourceScope(RESOURCE, resourceScopeOf(def));
  await grant.save();
  return grant;
}

export interface DispatchSetup {
  readonly def: ProfileDefinition;
  readonly provider: Provider;
  readonly users: Users;
  readonly verifyUserAccessToken: (token: string) => Promise<{ payload: JWTPayload }>;
}

/** Serves a test IdP: discovery aliases, the login form, userinfo, then oidc-provider. */
export function dispatcher(setup: DispatchSetup): (req: IncomingMessage, res: ServerResponse) => void {
  const callback = setup.provider.callback();
  return (req, res) => {
    Promise.resolve(route(setup, callback, req, res)).catch((err: unknown) => {
      if (!res.headersSent) sendJson(res, 500, { error: 'server_error', error_description: String(err) });
      else res.destroy();
    });
  };
}

function route(setup: DispatchSetup, callback: ReturnType<Provider['callback']>, req: IncomingMessage, res: ServerResponse): Promise<void> | void {
  const { def } = setup;
  const url = new URL(req.url ?? '/', 'http://unused');
  const path = url.pathname;
  if (path === def.routes.jwks) return callback(req, res);
  if (path === def.routes.userinfo) return userinfo(setup, req, res);
  if (path.startsWith(`${def.loginPath}/`)) return loginForm(setup, path.slice(def.loginPath.length + 1), req, res);
  if (path.startsWith('/.well-known/') || path.startsWith(`${def.issuerPath}/.well-known/`)) {
    // Discovery only under the issuer, and only the documents the real IdP publishes.
    const doc = path.slice(def.issuerPath.length);
    if (!path.startsWith(`${def.issuerPath}/`) || !def.discoveryPaths.includes(doc)) return sendJson(res, 404, { error: 'not_found' });
    req.url = `${doc}${url.search}`; // oidc-provider serves discovery at its mount, the origin root
    return callback(req, res);
  }
  if (path === def.routes.authorization) {
    // The real IdPs honour offline_access without prompt=consent; oidc-provider (per OIDC
    // Core 11) drops it unless consent is prompted. Ask for the prompt; loginForm grants it.
    const scope = url.searchParams.get('scope')?.split(' ') ?? [];
    if (scope.includes('offline_access') && !url.searchParams.has('prompt')) {
      url.searchParams.set('prompt', 'consent');
      req.url = `${url.pathname}${url.search}`;
    }
  }
  return callback(req, res);
}

/** The login page: a plain form (username, password) that POSTs back to its own URL. */
async function loginForm({ def, provider, users }: DispatchSetup, uid: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
  let details: Awaited<ReturnType<Provider['interactionDetails']>>;
  try {
    details = await provider.interactionDetails(req, res);
  } catch {
    return sendHtml(res, 400, '<p>This sign-in has expired. Start again.</p>');
  }
  if (details.uid !== uid) return sendHtml(res, 400, '<p>This sign-in belongs to another browser.</p>');
  if (details.prompt.name === 'consent' && details.session) {
    // Only reached when prompt=consent was asked for (offline_access, above): granted, no page.
    const grant = await grantEverything(provider, def, details.session.accountId, String(details.params['client_id']), details.grantId);
    return provider.interactionFinished(req, res, { consent: { grantId: grant.jti } }, { mergeWithLastSubmission: true });
  }
  const action = `${def.loginPath}/${uid}`;
  if (req.method !== 'POST') return sendHtml(res, 200, formHtml(action, '', undefined));
  const form = new URLSearchParams(await readBody(req));
  const username = form.get('username') ?? '';
  const user = users.byUsername.get(username);
  if (!user || user.password !== form.get('password')) {
    return sendHtml(res, 401, formHtml(action, username, 'Incorrect username or password.'));
  }
  user.authTime = Math.floor(Date.now() / 1000);
  await provider.interactionFinished(req, res, { login: { accountId: user.accountId, amr: ['pwd'] } }, { mergeWithLastSubmission: false });
}

/** userinfo for this IdP's user access tokens (oidc-provider's own accepts only opaque ones). */
async function userinfo({ def, users, verifyUserAccessToken }: DispatchSetup, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const token = /^Bearer +(\S+)$/i.exec(req.headers.authorization ?? '')?.[1];
  const refuse = (error: string) => {
    res.setHeader('www-authenticate', `Bearer error="${error}"`);
    return sendJson(res, 401, { error });
  };
  if (!token) return refuse('invalid_request');
  let payload: JWTPayload;
  try {
    ({ payload } = await verifyUserAccessToken(token));
  } catch {
    return refuse('invalid_token');
  }
  const accountId = def.accountIdOf(payload);
  const user = accountId === undefined ? undefined : users.byAccountId.get(accountId);
  if (!user) return refuse('invalid_token');
  return sendJson(res, 200, def.userinfo(user));
}

function formHtml(action: string, username: string, error: string | undefined): string {
  return `<!doctype html><html><head><title>Sign in</title></head><body><h1>Sign in</h1>${error ? `<p role="alert">${escapeHtml(error)}</p>` : ''}
<form method="post" action="${escapeHtml(action)}">
<label>Username <input name="username" autocomplete="username" value="${escapeHtml(username)}"></label>
<label>Password <input name="password" type="password" autocomplete="current-password"></label>
<button type="submit">Sign in</button>
</form></body></html>`;
}

function sendHtml(res: ServerResponse, status: number, html: string): void {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' }).end(html);
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify(body));
}

async function readBody(req: IncomingMessage): Promise<string> {
  let body = '';
  for await (const chunk of req) {
    body += String(chunk);
    if (body.length > 8192) throw new Error('test IdP: form too large');
  }
  return body;
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
