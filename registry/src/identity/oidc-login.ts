import * as client from 'openid-client';
import { GatewayError } from '../errors.ts';
import type { LoginChallenge, LoginIdentity } from './provider.ts';

export interface OidcLoginOptions {
  readonly configuration: client.Configuration;
  readonly scope: string;
  /** Claim that holds the user's groups (cognito:groups for Cognito, groups elsewhere). */
  readonly groupsClaim: string;
}

/**
 * Authorization code + PKCE + state + nonce, all through openid-client. Shared by every
 * provider; they differ only in how the Configuration is built and which claim holds groups.
 */
export class OidcLogin {
  readonly #options: OidcLoginOptions;

  constructor(options: OidcLoginOptions) {
    this.#options = options;
  }

  async startLogin(redirectUri: string): Promise<LoginChallenge> {
    const codeVerifier = client.randomPKCECodeVerifier();
    const state = client.randomState();
    const nonce = client.randomNonce();
    const url = client.buildAuthorizationUrl(this.#options.configuration, {
      redirect_uri: redirectUri,
      scope: this.#options.scope,
      code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
      code_challenge_method: 'S256',
      state,
      nonce,
    });
    return { url: url.href, state, nonce, codeVerifier };
  }

  async finishLogin(callbackUrl: URL, expected: Omit<LoginChallenge, 'url'>, redirectUri: string): Promise<LoginIdentity> {
    const config = this.#options.configuration;
    let tokens: Awaited<ReturnType<typeof client.authorizationCodeGrant>>;
    try {
      tokens = await client.authorizationCodeGrant(config, callbackUrl, {
        pkceCodeVerifier: expected.codeVerifier,
        expectedState: expected.state,
        expectedNonce: expected.nonce,
        idTokenExpected: true,
      }, { redirect_uri: redirectUri });
    } catch (err) {
      throw classify(err);
    }
    const claims = tokens.claims();
    if (!claims) throw new GatewayError('LOGIN_FAILED', 'the identity provider returned no ID token');
    let source: Record<string, unknown> = claims;
    if (!(this.#options.groupsClaim in claims)) {
      // Some providers put groups in userinfo only; ask once, at login, never per request.
      source = { ...(await client.fetchUserInfo(config, tokens.access_token, claims.sub)), ...claims };
    }
    return {
      sub: claims.sub,
      username: firstString(source['preferred_username'], source['username'], source['email'], claims.sub),
      ...(typeof source['email'] === 'string' ? { email: source['email'] } : {}),
      groups: readGroups(source[this.#options.groupsClaim]),
    };
  }
}

/** Wrong state and used or unknown codes are the client's fault (400); the rest is the IdP's (502). */
function classify(err: unknown): GatewayError {
  if (err instanceof client.AuthorizationResponseError) {
    return new GatewayError('LOGIN_FAILED', `the identity provider refused the sign-in (${err.error})`, { cause: err });
  }
  if (err instanceof client.ResponseBodyError && err.error === 'invalid_grant') {
    return new GatewayError('LOGIN_STATE_INVALID', 'this sign-in code was already used or has expired', { cause: err });
  }
  if (causes(err).some((e) => e.code === 'OAUTH_INVALID_RESPONSE' && /"state"/.test(e.message))) {
    return new GatewayError('LOGIN_STATE_INVALID', 'the sign-in response does not belong to this browser session', { cause: err });
  }
  return new GatewayError('LOGIN_FAILED', 'the sign-in could not be completed with the identity provider', { cause: err });
}

function causes(err: unknown): Array<{ code?: unknown; message: string }> {
  const chain: Array<{ code?: unknown; message: string }> = [];
  for (let e = err; e instanceof Error && chain.length < 5; e = e.cause) chain.push(e as Error & { code?: unknown });
  return chain;
}

function readGroups(value: unknown): string[] {
  if (Array.isArray(value)) return value.filter((g): g is string => typeof g === 'string');
  if (typeof value === 'string') return value.split(/[,\s]+/).filter(Boolean);
  return [];
}

function firstString(...values: unknown[]): string {
  for (const v of values) if (typeof v === 'string' && v.length > 0) return v;
  return '';
}
