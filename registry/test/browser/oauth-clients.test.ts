/**
 * An unmodified MCP TypeScript SDK client with its own OAuth support connects to the gateway with
 * no cookie and no token: 401 -> authorization server discovery -> dynamic registration ->
 * authorize (the person signs in through the dev IdP and allows the client in the real Debian
 * chromium) -> token -> MCP calls. Then the failure cases each get the spec's error.
 *
 * The SDK finds the authorization server from RFC 9728 protected-resource metadata when the
 * gateway serves it (built separately); until then it falls back to the MCP server's origin as
 * the authorization server, which is the gateway's issuer. `validateResourceURL` makes the SDK
 * send the RFC 8707 resource (the MCP URL) without that metadata.
 */
import assert from 'node:assert/strict';
import { initializeWithBearer } from '../integration/oauth-http.ts';
import { writeFileSync } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import type { Page } from 'playwright-core';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { OAuthClientInformationMixed } from '@modelcontextprotocol/sdk/shared/auth.js';
import { decodeJwt } from 'jose';
import { MARKET_STATUS_TOOL } from '../../../servers/fininfo/server.ts';
import { DEMO_PASSWORD, screenshot, startSuite, type Suite } from './browser.ts';
import { InMemoryOAuthProvider, publicClientMetadata } from './oauth-provider.ts';

let suite: Suite;
const MAPPING = 'groups:\n  "team-x": ["mcp:server:currenttime:execute"]\n';
let redirectServer: Server;
let redirectUrl: string;

before(async () => {
  suite = await startSuite({ gateway: { users: [{ username: 'mapped', password: DEMO_PASSWORD, groups: ['team-x'] }], mapping: MAPPING } });
  // The client's loopback redirect URI: it only has to answer, the browser's URL is what we read.
  redirectServer = createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/plain' }).end('You can close this window.'));
  await new Promise<void>((resolve) => redirectServer.listen(0, '127.0.0.1', resolve));
  redirectUrl = `http://127.0.0.1:${(redirectServer.address() as AddressInfo).port}/callback`;
});

after(async () => {
  redirectServer?.closeAllConnections();
  redirectServer?.close();
  await suite?.close();
});

const serverUrl = (name: string) => `${suite.gw.url}/api/streamable/${name}`;

/** What the browser step should do at each page the authorization shows. */
interface BrowserPlan {
  username?: string;
  consent?: 'allow' | 'deny';
  /** Write a screenshot of the consent page under this name (only with SCREENSHOTS_DIR). */
  screenshot?: string;
}

/** Walks one authorization in `page`: sign in if asked, consent as planned; returns where it ended (the redirect URI). */
async function authorizeInBrowser(page: Page, url: string, plan: BrowserPlan, seen: string[] = []): Promise<URL> {
  const onNav = (frame: { url(): string; parentFrame(): unknown }) => {
    if (frame.parentFrame() === null) seen.push(frame.url());
  };
  page.on('framenavigated', onNav);
  try {
    await page.goto(url);
    if (plan.username !== undefined) {
      await page.waitForSelector('#username');
      await page.fill('#username', plan.username);
      await page.fill('#password', DEMO_PASSWORD);
      await page.click('#submit');
    }
    if (plan.consent !== undefined) {
      await page.waitForSelector('#consent');
      if (plan.screenshot !== undefined) await screenshot(page, plan.screenshot);
      await page.click(plan.consent === 'allow' ? '#allow' : '#deny');
    }
    await page.waitForURL((u) => u.href.startsWith(redirectUrl));
    return new URL(page.url());
  } catch (err) {
    throw new Error(`authorization stopped at ${page.url()} after ${seen.join(' -> ')}: ${(await page.content()).slice(0, 800)}`, { cause: err });
  } finally {
    page.off('framenavigated', onNav);
  }
}

/** An OAuthClientProvider as a client application writes one: in memory, the browser step driven by chromium. */
class TestOAuthProvider extends InMemoryOAuthProvider {
  /** Where the last authorization ended (the loopback redirect URI with code or error). */
  landed: URL | undefined;
  readonly seen: string[] = [];

  readonly page: Page;
  plan: BrowserPlan;
  readonly mcpUrl: string;

  constructor(page: Page, plan: BrowserPlan, client: { info?: OAuthClientInformationMixed | undefined }, mcpUrl: string) {
    super(redirectUrl, publicClientMetadata('SDK test client', redirectUrl), client);
    this.page = page;
    this.plan = plan;
    this.mcpUrl = mcpUrl;
  }

  async redirectToAuthorization(url: URL) {
    this.landed = await authorizeInBrowser(this.page, url.href, this.plan, this.seen);
  }
}

/** Connects like an MCP client application: try, on UnauthorizedError finish the browser step, connect again. */
async function connect(provider: TestOAuthProvider): Promise<Client> {
  const sse = provider.mcpUrl.endsWith('/sse');
  const open = () =>
    sse
      ? new SSEClientTransport(new URL(provider.mcpUrl), { authProvider: provider })
      : new StreamableHTTPClientTransport(new URL(provider.mcpUrl), { authProvider: provider });
  const first = new Client({ name: 'oauth-test', version: '1.0.0' });
  const transport = open();
  try {
    await first.connect(transport);
    return first;
  } catch (err) {
    if (!(err instanceof UnauthorizedError)) throw err;
  }
  const code = provider.landed?.searchParams.get('code');
  assert.ok(code, `the authorization ended without a code: ${provider.landed?.href}`);
  await transport.finishAuth(code);
  const client = new Client({ name: 'oauth-test', version: '1.0.0' });
  await client.connect(open());
  return client;
}

/** A raw MCP initialize with `Authorization: Bearer <token>`: what the check answers. */
function initializeWith(token: string, server: string): Promise<Response> {
  return initializeWithBearer(serverUrl(server), token);
}

async function registerClient(redirectUris: string[]): Promise<Response> {
  return fetch(`${suite.gw.url}/oauth2/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      client_name: 'raw client',
      redirect_uris: redirectUris,
      grant_types: ['authorization_code', 'refresh_token'],
      token_endpoint_auth_method: 'none',
    }),
  });
}

/** A raw authorization request (our own PKCE): the URL and its verifier. */
function authorizationRequest(clientId: string, resource = serverUrl('currenttime')): { url: string; verifier: string } {
  const verifier = randomBytes(32).toString('base64url');
  const url = new URL(`${suite.gw.url}/oauth2/authorize`);
  url.search = new URLSearchParams({
    response_type: 'code',
    client_id: clientId,
    redirect_uri: redirectUrl,
    code_challenge: createHash('sha256').update(verifier).digest('base64url'),
    code_challenge_method: 'S256',
    state: randomBytes(8).toString('hex'),
    resource,
  }).toString();
  return { url: url.href, verifier };
}

/** A raw authorization up to the redirect; returns the landing URL and the verifier. */
async function rawAuthorize(page: Page, clientId: string, plan: BrowserPlan, resource = serverUrl('currenttime')): Promise<{ landed: URL; verifier: string }> {
  const { url, verifier } = authorizationRequest(clientId, resource);
  return { landed: await authorizeInBrowser(page, url, plan), verifier };
}

async function tokenRequest(params: Record<string, string>): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${suite.gw.url}/oauth2/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(params).toString(),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

test('an unmodified SDK client connects with no credentials, then a second server without signing in again', async () => {
  const context = await suite.context();
  const page = await context.newPage();
  const app = { info: undefined as OAuthClientInformationMixed | undefined };

  // No cookie, no token: the check answers 401 and the SDK starts the authorization.
  const first = new TestOAuthProvider(page, { username: 'user', consent: 'allow', screenshot: 'consent' }, app, serverUrl('currenttime'));
  const client = await connect(first);
  assert.ok(app.info?.client_id, 'the client registered dynamically');
  assert.equal(first.landed?.searchParams.get('iss'), suite.gw.url, 'RFC 9207 iss on the authorization response');
  const tools = await client.listTools();
  assert.deepEqual(
    tools.tools.map((t) => t.name),
    ['current_time_by_timezone'],
  );
  const called = await client.callTool({ name: 'current_time_by_timezone', arguments: { tz_name: 'UTC' } });
  assert.notEqual(called.isError, true);

  // The token: RFC 9068 shape, bound to this server, this server's scopes only.
  const token = first.tokens()!.access_token;
  const claims = decodeJwt(token);
  assert.equal(claims.iss, suite.gw.url);
  assert.equal(claims.aud, serverUrl('currenttime'));
  // The client asked for what the 401 named (mcp:server:currenttime:execute): narrowed to it.
  assert.equal(claims['scope'], 'mcp:server:currenttime:execute');
  assert.equal(claims['client_id'], app.info.client_id);
  assert.equal(claims.sub, 'dev:user');
  assert.equal(claims['username'], 'user');
  assert.ok(first.tokens()!.refresh_token, 'a refresh token without offline_access');
  await client.close();

  // A token for another resource is refused: currenttime's token on fininfo.
  const wrong = await initializeWith(token, 'fininfo');
  assert.equal(wrong.status, 401);
  assert.match(wrong.headers.get('www-authenticate') ?? '', /error="invalid_token"/);

  // The same client application, a second server: no password, no consent page.
  const second = new TestOAuthProvider(page, {}, app, serverUrl('fininfo'));
  const fin = await connect(second);
  assert.ok(!second.seen.some((u) => u.includes('/idp/') || u.includes('/oauth2/interaction/')), `no sign-in or consent page: ${second.seen.join(' ')}`);
  const finTools = await fin.listTools();
  assert.ok(finTools.tools.length > 1);
  assert.equal(decodeJwt(second.tokens()!.access_token).aud, serverUrl('fininfo'));
  assert.equal(decodeJwt(second.tokens()!.access_token)['scope'], 'mcp:server:fininfo:execute');
  await fin.close();

  // The legacy SSE transport of the first server: its own resource URL, same client, same grant.
  const sseUrl = `${suite.gw.url}/api/execute/currenttime/sse`;
  const third = new TestOAuthProvider(page, {}, app, sseUrl);
  const overSse = await connect(third);
  assert.equal(decodeJwt(third.tokens()!.access_token).aud, sseUrl);
  assert.notEqual((await overSse.callTool({ name: 'current_time_by_timezone', arguments: { tz_name: 'UTC' } })).isError, true);
  await overSse.close();

  // A restart keeps the signing key (derived) and the grants (the record store): the fininfo
  // token still works and its refresh token still refreshes.
  await suite.gw.restart();
  assert.equal((await initializeWith(second.tokens()!.access_token, 'fininfo')).status, 200);
  const afterRestart = await tokenRequest({ grant_type: 'refresh_token', refresh_token: second.tokens()!.refresh_token!, client_id: app.info.client_id });
  assert.equal(afterRestart.status, 200, JSON.stringify(afterRestart.body));

  // Rotation: a refresh gives a new refresh token, and the old one is refused after.
  const refreshToken = first.tokens()!.refresh_token!;
  const refreshed = await tokenRequest({ grant_type: 'refresh_token', refresh_token: refreshToken, client_id: app.info.client_id });
  assert.equal(refreshed.status, 200, JSON.stringify(refreshed.body));
  assert.notEqual(refreshed.body['refresh_token'], refreshToken);
  assert.equal(decodeJwt(String(refreshed.body['access_token'])).aud, serverUrl('currenttime'));
  const replayed = await tokenRequest({ grant_type: 'refresh_token', refresh_token: refreshToken, client_id: app.info.client_id });
  assert.equal(replayed.status, 400);
  assert.equal(replayed.body['error'], 'invalid_grant');
  // Reuse of a rotated-out refresh token revokes the whole grant (oidc-provider's reuse detection):
  // the same client's fininfo refresh token stops working too.
  const sameGrant = await tokenRequest({
    grant_type: 'refresh_token',
    refresh_token: String(afterRestart.body['refresh_token']),
    client_id: app.info.client_id,
  });
  assert.equal(sameGrant.body['error'], 'invalid_grant');
  await context.close();
});

test('a one-tool person gets a token with that one tool: tools/list is filtered and other calls refused', async () => {
  const context = await suite.context();
  const page = await context.newPage();
  const provider = new TestOAuthProvider(page, { username: 'analyst', consent: 'allow' }, {}, serverUrl('fininfo'));
  const client = await connect(provider);
  assert.equal(decodeJwt(provider.tokens()!.access_token)['scope'], 'mcp:server:fininfo:tool:get_stock_aggregates:execute');
  const tools = await client.listTools();
  assert.deepEqual(
    tools.tools.map((t) => t.name),
    ['get_stock_aggregates'],
  );
  await assert.rejects(client.callTool({ name: MARKET_STATUS_TOOL, arguments: {} }));
  await client.close();

  // Someone else signs in to the page in this browser (the earlier page session ended without a
  // sign-out): an authorization that meets analyst's older sign-in at the authorization server
  // stops with an explanation and ends it; the next attempt is the page's person.
  await context.clearCookies({ name: /^(mcp_gateway_session|_session)/ });
  await page.goto(`${suite.gw.url}/login`);
  await page.fill('#username', 'user');
  await page.fill('#password', DEMO_PASSWORD);
  await Promise.all([page.waitForURL(`${suite.gw.url}/`), page.click('#submit')]);
  const registered = await registerClient([redirectUrl]);
  const clientId = String(((await registered.json()) as { client_id: string }).client_id);
  await page.goto(authorizationRequest(clientId).url);
  assert.equal(await page.locator('#error').getAttribute('data-status'), '403');
  const again = await rawAuthorize(page, clientId, { consent: 'allow' });
  const code = again.landed.searchParams.get('code');
  assert.ok(code, again.landed.href);
  const exchanged = await tokenRequest({
    grant_type: 'authorization_code',
    code,
    redirect_uri: redirectUrl,
    client_id: clientId,
    code_verifier: again.verifier,
    resource: serverUrl('currenttime'),
  });
  assert.equal(decodeJwt(String(exchanged.body['access_token'])).sub, 'dev:user');
  await context.close();
});

test('the failures: refused consent, wrong PKCE verifier, replayed code, unregistered redirect URI', async () => {
  const context = await suite.context();
  const page = await context.newPage();
  const registered = await registerClient([redirectUrl]);
  assert.equal(registered.status, 201);
  const clientId = String(((await registered.json()) as { client_id: string }).client_id);

  // Refused consent: access_denied at the redirect URI.
  const refused = await rawAuthorize(page, clientId, { username: 'user', consent: 'deny' });
  assert.equal(refused.landed.searchParams.get('error'), 'access_denied');
  assert.equal(refused.landed.searchParams.get('code'), null);

  // Allowed this time (already signed in: consent only).
  const allowed = await rawAuthorize(page, clientId, { consent: 'allow' });
  const code = allowed.landed.searchParams.get('code');
  assert.ok(code);
  const exchange = { grant_type: 'authorization_code', code, redirect_uri: redirectUrl, client_id: clientId, resource: serverUrl('currenttime') };
  const wrongVerifier = await tokenRequest({ ...exchange, code_verifier: randomBytes(32).toString('base64url') });
  assert.equal(wrongVerifier.status, 400);
  assert.equal(wrongVerifier.body['error'], 'invalid_grant');

  // A fresh code (the failed PKCE attempt consumed the last one), used once, then replayed.
  const again = await rawAuthorize(page, clientId, {});
  const code2 = again.landed.searchParams.get('code');
  assert.ok(code2, `consented already, so straight back with a code: ${again.landed.href}`);
  const ok = await tokenRequest({ ...exchange, code: code2, code_verifier: again.verifier });
  assert.equal(ok.status, 200, JSON.stringify(ok.body));
  assert.equal((await initializeWith(String(ok.body['access_token']), 'currenttime')).status, 200);
  const replay = await tokenRequest({ ...exchange, code: code2, code_verifier: again.verifier });
  assert.equal(replay.status, 400);
  assert.equal(replay.body['error'], 'invalid_grant');

  // A revoked grant (RFC 7009, revoking its refresh token): the refresh token is refused after.
  const revoked = await fetch(`${suite.gw.url}/oauth2/revocation`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ token: String(ok.body['refresh_token']), client_id: clientId }).toString(),
  });
  assert.equal(revoked.status, 200);
  const afterRevoke = await tokenRequest({ grant_type: 'refresh_token', refresh_token: String(ok.body['refresh_token']), client_id: clientId });
  assert.equal(afterRevoke.status, 400);
  assert.equal(afterRevoke.body['error'], 'invalid_grant');

  // An unregistered redirect URI: an error page at the authorization server, never a redirect.
  const url = new URL(`${suite.gw.url}/oauth2/authorize`);
  url.search = new URLSearchParams({
    response_type: 'code',
    client_id: clientId,
    redirect_uri: 'http://127.0.0.1:1/elsewhere',
    code_challenge: createHash('sha256').update('x'.repeat(43)).digest('base64url'),
    code_challenge_method: 'S256',
    resource: serverUrl('currenttime'),
  }).toString();
  const unregistered = await fetch(url, { redirect: 'manual' });
  assert.equal(unregistered.status, 400);
  assert.match(await unregistered.text(), /invalid_redirect_uri/);

  // Signing out of the page ends the authorization server's sign-in too: the next authorization
  // asks who you are, and someone else can sign in in this browser.
  await page.goto(`${suite.gw.url}/`);
  await Promise.all([page.waitForResponse((r) => new URL(r.url()).pathname === '/logout'), page.click('#sign-out')]);
  await page.waitForLoadState();
  const names = (await context.cookies(suite.gw.url)).map((c) => c.name);
  assert.ok(!names.some((n) => n.startsWith('_gw_oauth_session')), `the authorization server's session cookie is gone: ${names.join(' ')}`);
  // The dev IdP keeps its own sign-in (as a real IdP does); end it so another person can sign in.
  await context.clearCookies({ name: /^_session/ });
  const otherPerson = await rawAuthorize(page, clientId, { username: 'analyst', consent: 'allow' }, serverUrl('fininfo'));
  const otherCode = otherPerson.landed.searchParams.get('code');
  assert.ok(otherCode, otherPerson.landed.href);
  const otherToken = await tokenRequest({
    grant_type: 'authorization_code',
    code: otherCode,
    redirect_uri: redirectUrl,
    client_id: clientId,
    code_verifier: otherPerson.verifier,
    resource: serverUrl('fininfo'),
  });
  assert.equal(decodeJwt(String(otherToken.body['access_token'])).sub, 'dev:analyst');

  // Registration refuses a non-loopback http redirect URI and custom schemes nobody allowed.
  for (const uri of ['http://evil.example/cb', 'myapp://callback']) {
    const refusedRegistration = await registerClient([uri]);
    assert.equal(refusedRegistration.status, 400, uri);
    assert.equal(((await refusedRegistration.json()) as { error: string }).error, 'invalid_redirect_uri');
  }
  await context.close();
});

test('a mapping change reaches a running client at its next refresh; tokens already issued last until they expire', async () => {
  const context = await suite.context();
  const page = await context.newPage();
  const provider = new TestOAuthProvider(page, { username: 'mapped', consent: 'allow' }, {}, serverUrl('currenttime'));
  const client = await connect(provider);
  await client.close();
  const before = provider.tokens()!;
  assert.equal(decodeJwt(before.access_token)['scope'], 'mcp:server:currenttime:execute');
  const clientId = String(provider.client.info?.client_id);
  try {
    writeFileSync(suite.gw.mappingFile, 'groups:\n  "team-x": ["mcp:server:fininfo:execute"]\n');
    let refreshToken = before.refresh_token!;
    let scope: unknown;
    let accessToken = '';
    for (let i = 0; i < 40; i++) {
      const refreshed = await tokenRequest({ grant_type: 'refresh_token', refresh_token: refreshToken, client_id: clientId });
      assert.equal(refreshed.status, 200, JSON.stringify(refreshed.body));
      refreshToken = String(refreshed.body['refresh_token']);
      accessToken = String(refreshed.body['access_token']);
      scope = decodeJwt(accessToken)['scope'];
      if (scope === '') break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(scope, '', 'the refreshed token lost the scope the mapping no longer grants');
    assert.equal((await initializeWith(accessToken, 'currenttime')).status, 403);
    // The bound: the token issued before the change works until its exp (OAUTH_ACCESS_TOKEN_TTL_SECONDS).
    assert.equal((await initializeWith(before.access_token, 'currenttime')).status, 200);
  } finally {
    writeFileSync(suite.gw.mappingFile, MAPPING);
  }
  await context.close();
});

test('no console error, page error or CSP violation on the sign-in, continue and consent pages', () => {
  // The one expected: the 403 page of the authorization met by someone else's older sign-in.
  const refused = /^Failed to load resource: the server responded with a status of 403 \(Forbidden\) @ http:\/\/127\.0\.0\.1:\d+\/oauth2\/interaction\/[\w-]+$/;
  assert.deepEqual(suite.problems.on(new URL(suite.gw.url).origin, [refused]), []);
});
