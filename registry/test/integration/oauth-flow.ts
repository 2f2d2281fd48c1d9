/**
 * One MCP client connected through the gateway's authorization server over plain HTTP, as a
 * signed-in person whose page session is in `jar`: registered, authorized (PKCE, RFC 8707
 * resource, Allow on the consent page) and holding its tokens. Built on oauth-http.ts.
 */
import assert from 'node:assert/strict';
import { type CookieJar } from './cookie-jar.ts';
import { authorizeOverHttp, registerPublicClient, tokenRequest, type TokenResponse } from './oauth-http.ts';

export const FLOW_REDIRECT_URI = 'http://127.0.0.1:9/cb';

export interface ConnectedClient {
  readonly clientId: string;
  readonly accessToken: string;
  readonly expiresIn: number;
  /** Uses the refresh token once (keeping the rotated one); the token endpoint's status and JSON. */
  refresh(): Promise<TokenResponse>;
}

/** Registers a client named `clientName` and connects it to one server's streamable URL. */
export async function connectClientOverHttp(gatewayUrl: string, jar: CookieJar, options: { clientName: string; server: string }): Promise<ConnectedClient> {
  const clientId = await registerPublicClient(gatewayUrl, FLOW_REDIRECT_URI, options.clientName);
  const resource = `${gatewayUrl}/api/streamable/${options.server}`;
  const first = await authorizeOverHttp(gatewayUrl, jar, { clientId, redirectUri: FLOW_REDIRECT_URI }, resource);
  assert.equal(first.status, 200, JSON.stringify(first.body));
  let refreshToken = String(first.body['refresh_token']);
  return {
    clientId,
    accessToken: String(first.body['access_token']),
    expiresIn: Number(first.body['expires_in']),
    async refresh() {
      const next = await tokenRequest(gatewayUrl, { grant_type: 'refresh_token', refresh_token: refreshToken, client_id: clientId, resource });
      if (next.status === 200) refreshToken = String(next.body['refresh_token']);
      return next;
    },
  };
}
