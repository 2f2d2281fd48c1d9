import * as client from 'openid-client';
import { GatewayError } from '../errors.ts';
import { firstString, readGroups } from './claims.ts';
import type { LoginChallenge, LoginIdentity, LoginResult } from './provider.ts';

export interface OidcLoginOptions {
  /** Built once, on first use (discovery may need the network); a failure is retried next time. */
  readonly configuration: () => Promise<client.Configuration>;
  readonly scope: string;
  /** Claim that holds the user's groups (cognito:groups for Cognito, groups elsewhere). */
  readonly groupsClaim: string;
}

/**
 * Authorization code + PKCE + state + nonce, and refresh, all through openid-client. Shared by
 * every provider; they differ in how the Configuration is built and which claim holds groups.
 */
export class OidcLogin {
  readonly #options: OidcLoginOptions;
  #configuration: Promise<client.Configuration> | undefined;

  constructor(options: OidcLoginOptions) {
    this.#options = options;
  }

  /** The openid-client configuration (discovered once). */
  configuration(): Promise<client.Configuration> {
    this.#configuration ??= this.#options.configuration().catch((err: unknown) => {
      this.#configuration = undefined;
      throw new GatewayError('LOGIN_FAILED', 'the identity provider cannot be reached', { cause: err });
    });
    return this.#configuration;
  }

  async startLogin(redirectUri: string): Promise<LoginChallenge> {
    const config = await this.configuration();
    const codeVerifier = client.randomPKCECodeVerifier();
    const state = client.randomState();
    const nonce = client.randomNonce();
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: redirectUri,
      scope: this.#options.scope,
      code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
      code_challenge_method: 'S256',
      state,
      nonce,
    });
    return { url: url.href, state, nonce, codeVerifier };
  }

  async finishLogin(callbackUrl: URL, expected: Omit<LoginChallenge, 'url'>, redirectUri: string): Promise<LoginResult> {
    const config = await this.configuration();
    let tokens: client.TokenEndpointResponse & client.TokenEndpointResponseHelpers;
    try {
      tokens = await client.authorizationCodeGrant(
        config,
        callbackUrl,
        { pkceCodeVerifier: expected.codeVerifier, expectedState: expected.state, expectedNonce: expected.nonce, idTokenExpected: true },
        { redirect_uri: redirectUri },
      );
    } catch (err) {
      throw classify(err);
    }
    return this.#result(config, tokens);
  }

  /**
   * Uses a refresh token and reads the user's groups afresh (from the new ID token, or
   * userinfo). Throws GatewayError LOGIN_STATE_INVALID when the IdP refuses the refresh token
   * (the session must end) and LOGIN_FAILED when it cannot be reached (try again later).
   */
  async refresh(refreshToken: string): Promise<LoginResult> {
    const config = await this.configuration();
    let tokens: client.TokenEndpointResponse & client.TokenEndpointResponseHelpers;
    try {
      tokens = await client.refreshTokenGrant(config, refreshToken);
    } catch (err) {
      throw classify(err);
    }
    return this.#result(config, tokens, refreshToken);
  }

  async #result(
    config: client.Configuration,
    tokens: client.TokenEndpointResponse & client.TokenEndpointResponseHelpers,
    previousRefresh?: string,
  ): Promise<LoginResult> {
    const claims = tokens.claims();
    let source: Record<string, unknown> | undefined = claims;
    if (!claims || !(this.#options.groupsClaim in claims)) {
      // Some providers put groups in userinfo only; ask at login and refresh, never per request.
      if (!config.serverMetadata().userinfo_endpoint) {
        if (!claims) throw new GatewayError('LOGIN_FAILED', 'the identity provider returned no ID token');
      } else {
        try {
          source = { ...(await client.fetchUserInfo(config, tokens.access_token, claims?.sub ?? client.skipSubjectCheck)), ...claims };
        } catch (err) {
          throw classify(err);
        }
      }
    }
    const data = source ?? {};
    const sub = String(claims?.sub ?? data['sub'] ?? '');
    const identity: LoginIdentity = {
      sub,
      username: firstString(data['preferred_username'], data['cognito:username'], data['username'], data['email'], sub),
      ...(typeof data['email'] === 'string' ? { email: data['email'] } : {}),
      groups: readGroups(data[this.#options.groupsClaim]),
    };
    const refreshToken = tokens.refresh_token ?? previousRefresh;
    const expiresIn = tokens.expiresIn();
    return {
      identity,
      ...(refreshToken === undefined ? {} : { refreshToken }),
      ...(expiresIn === undefined ? {} : { accessTokenExpiresAt: Date.now() + expiresIn * 1000 }),
      accessToken: tokens.access_token,
      ...(tokens.id_token === undefined ? {} : { idToken: tokens.id_token }),
      ...(typeof claims?.exp === 'number' ? { idTokenExpiresAt: claims.exp * 1000 } : {}),
    };
  }
}

/** Wrong state and used or unknown codes are the client's fault (400); the rest is the IdP's (502). */
function classify(err: unknown): GatewayError {
  if (err instanceof GatewayError) return err;
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
