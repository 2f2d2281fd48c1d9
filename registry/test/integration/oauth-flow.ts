/**
 * One OAuth authorization code flow (PKCE, RFC 8707 resource) against the gateway's authorization
 * server over plain HTTP, as a signed-in person whose page session is in `jar`: register a
 * client, authorize (the interaction's login step and the consent form), exchange the code.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { type CookieJar, jarFetch } from './cookie-jar.ts';

export const FLOW_REDIRECT_URI = 'http://127.0.0.1:9/cb';

export interface AuthorizedClient {
  readonly clientId: string;
  readonly accessToken: string;
  readonly expiresIn: number;
  /** Uses the refresh token once; the token endpoint's status and JSON. */
  refresh(): Promise<{ status: number; body: Record<string, unknown> }>;
}

export async function authorizeOverHttp(gatewayUrl: string, jar: CookieJar, options: { clientName: string; server: string }): Promise<AuthorizedClient> {
  const registered = await fetch(`${gatewayUrl}/oauth2/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      client_name: options.clientName,
      redirect_uris: [FLOW_REDIRECT_URI],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    }),
  });
  assert.equal(registered.status, 201, await registered.clone().text());
  const clientId = ((await registered.json()) as { client_id: string }).client_id;
  const verifier = randomBytes(32).toString('base64url');
  const resource = `${gatewayUrl}/api/streamable/${options.server}`;
  const authorize = new URL(`${gatewayUrl}/oauth2/authorize`);
  authorize.search = new URLSearchParams({
    response_type: 'code',
    client_id: clientId,
    redirect_uri: FLOW_REDIRECT_URI,
    code_challenge: createHash('sha256').update(verifier).digest('base64url'),
    code_challenge_method: 'S256',
    state: 's',
    resource,
  }).toString();
  let url = authorize.href;
  let code: string | undefined;
  for (let hop = 0; hop < 20 && code === undefined; hop++) {
    if (url.startsWith(FLOW_REDIRECT_URI)) {
      code = new URL(url).searchParams.get('code') ?? undefined;
      assert.ok(code, `no code: ${url}`);
      break;
    }
    const res = await jarFetch(jar, url);
    if (res.status >= 300 && res.status < 400) {
      url = new URL(res.headers.get('location') ?? '', url).href;
      continue;
    }
    const body = await res.text();
    assert.equal(res.status, 200, `${url}: ${body.slice(0, 400)}`);
    const refresh = /http-equiv="refresh" content="0;url=([^"]+)"/.exec(body);
    if (refresh) {
      url = new URL(refresh[1]!.replaceAll('&amp;', '&').replaceAll('&#x2F;', '/'), url).href;
      continue;
    }
    const allow = /action="(\/oauth2\/interaction\/[^"]+\/allow)"[\s\S]*?name="_csrf" value="([^"]+)"/.exec(body);
    assert.ok(allow, `neither a continue page nor a consent form at ${url}: ${body.slice(0, 400)}`);
    const posted = await jarFetch(jar, new URL(allow[1]!, url).href, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ _csrf: allow[2]! }).toString(),
    });
    assert.equal(posted.status, 303, await posted.text());
    url = new URL(posted.headers.get('location') ?? '', url).href;
  }
  assert.ok(code, 'the authorization never reached the redirect URI');
  const token = async (params: Record<string, string>) => {
    const res = await fetch(`${gatewayUrl}/oauth2/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ client_id: clientId, ...params }).toString(),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  const first = await token({ grant_type: 'authorization_code', code, redirect_uri: FLOW_REDIRECT_URI, code_verifier: verifier, resource });
  assert.equal(first.status, 200, JSON.stringify(first.body));
  let refreshToken = String(first.body['refresh_token']);
  return {
    clientId,
    accessToken: String(first.body['access_token']),
    expiresIn: Number(first.body['expires_in']),
    async refresh() {
      const next = await token({ grant_type: 'refresh_token', refresh_token: refreshToken, resource });
      if (next.status === 200) refreshToken = String(next.body['refresh_token']);
      return next;
    },
  };
}
