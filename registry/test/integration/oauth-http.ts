import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { jarFetch, type CookieJar } from './cookie-jar.ts';

/** A client's token response from the gateway's /oauth2/token. */
export interface TokenResponse {
  readonly status: number;
  readonly body: Record<string, unknown>;
}

/** Registers a public MCP client (RFC 7591) with a loopback redirect URI; returns its client id. */
export async function registerPublicClient(gatewayUrl: string, redirectUri: string, name = 'test client'): Promise<string> {
  const response = await fetch(`${gatewayUrl}/oauth2/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      client_name: name,
      redirect_uris: [redirectUri],
      token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
    }),
  });
  const body = (await response.json()) as Record<string, unknown>;
  assert.equal(response.status, 201, JSON.stringify(body));
  return String(body['client_id']);
}

/**
 * The authorization-code flow over HTTP as the person signed in to the page in `jar`: authorize,
 * the interaction's sign-in step, Allow on the consent page, then the code exchanged at the token
 * endpoint (PKCE S256, resource = `resource`).
 */
export async function authorizeOverHttp(
  gatewayUrl: string,
  jar: CookieJar,
  client: { clientId: string; redirectUri: string },
  resource: string,
): Promise<TokenResponse> {
  const verifier = randomBytes(32).toString('base64url');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  const query = new URLSearchParams({
    response_type: 'code',
    client_id: client.clientId,
    redirect_uri: client.redirectUri,
    code_challenge: challenge,
    code_challenge_method: 'S256',
    state: randomBytes(8).toString('hex'),
    resource,
  });
  let url = `${gatewayUrl}/oauth2/authorize?${query}`;
  for (let hop = 0; hop < 15; hop++) {
    if (url.startsWith(client.redirectUri)) {
      const code = new URL(url).searchParams.get('code');
      assert.ok(code, `no code at the redirect URI: ${url}`);
      return tokenRequest(gatewayUrl, {
        grant_type: 'authorization_code',
        code,
        redirect_uri: client.redirectUri,
        client_id: client.clientId,
        code_verifier: verifier,
        resource,
      });
    }
    const response = await jarFetch(jar, url);
    if (response.status >= 300 && response.status < 400) {
      url = new URL(response.headers.get('location') ?? '', url).href;
      continue;
    }
    const body = await response.text();
    assert.equal(response.status, 200, `${response.status} at ${url}: ${body.slice(0, 300)}`);
    const next = /id="continue-link" href="([^"]+)"|<a href="([^"]+)" id="continue-link"/.exec(body);
    if (next) {
      url = new URL((next[1] ?? next[2] ?? '').replaceAll('&amp;', '&'), url).href;
      continue;
    }
    const allow = /action="([^"]+\/allow)"[\s\S]*?name="_csrf" value="([^"]+)"/.exec(body);
    assert.ok(allow, `neither a continue link nor a consent page at ${url}: ${body.slice(0, 300)}`);
    const posted = await jarFetch(jar, new URL(allow[1] ?? '', url).href, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ _csrf: allow[2] ?? '' }).toString(),
    });
    assert.ok(posted.status >= 300 && posted.status < 400, `Allow answered ${posted.status}`);
    url = new URL(posted.headers.get('location') ?? '', url).href;
  }
  throw new Error('too many redirects while authorizing');
}

/** A form POST to the gateway's token endpoint (public client: client_id in the body, or Basic in `authorization`). */
export async function tokenRequest(gatewayUrl: string, params: Record<string, string>, authorization?: string): Promise<TokenResponse> {
  const response = await fetch(`${gatewayUrl}/oauth2/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...(authorization ? { authorization } : {}) },
    body: new URLSearchParams(params).toString(),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

/** A raw MCP `initialize` to `mcpUrl` with `Authorization: Bearer <token>`: what the check answers. */
export function initializeWithBearer(mcpUrl: string, token: string): Promise<Response> {
  return rawInitialize(mcpUrl, { authorization: `Bearer ${token}` });
}

/** A raw MCP `initialize` to `mcpUrl` with a session cookie (`mcp_gateway_session=...`). */
export function initializeWithCookie(mcpUrl: string, cookie: string): Promise<Response> {
  return rawInitialize(mcpUrl, { cookie });
}

function rawInitialize(mcpUrl: string, credential: Record<string, string>): Promise<Response> {
  return fetch(mcpUrl, {
    method: 'POST',
    headers: { ...credential, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
    }),
  });
}
