import type { Router } from 'express';
import type { BearerRules } from './bearer-rules.ts';

/** Who signed in, as the identity provider says. Groups drive the scopes. */
export interface LoginIdentity {
  readonly sub: string;
  readonly username: string;
  readonly email?: string;
  readonly groups: readonly string[];
}

/** A finished sign-in or refresh: who, and what it takes to refresh later. */
export interface LoginResult {
  readonly identity: LoginIdentity;
  readonly refreshToken?: string;
  /** When the access token expires (ms since epoch): the session is refreshed before then. */
  readonly accessTokenExpiresAt?: number;
  /**
   * The IdP's access token and ID token of this sign-in or refresh: the subject tokens of token
   * exchange (credentials/idp-tokens.ts seals them in the vault). Never logged, never in a session.
   */
  readonly accessToken?: string;
  readonly idToken?: string;
  /** The ID token's `exp` (ms since epoch). */
  readonly idTokenExpiresAt?: number;
}

/** What the login route keeps in the session between the redirect and the callback. */
export interface LoginChallenge {
  readonly url: string;
  readonly state: string;
  readonly nonce: string;
  readonly codeVerifier: string;
}

/**
 * One interface for every identity provider (dev, and later cognito, okta, oidc).
 * Every implementation runs authorization code + PKCE (S256) + state + nonce through
 * openid-client and verifies the ID token.
 */
export interface IdentityProvider {
  /** Short name; the callback path is /oauth/callback/<name>. */
  readonly name: string;
  /** Shown on the sign-in button. */
  readonly displayName: string;
  /** Builds the authorization URL with fresh state, nonce and PKCE verifier. */
  startLogin(redirectUri: string): Promise<LoginChallenge>;
  /**
   * Exchanges the code in `callbackUrl` and verifies state, nonce, PKCE and the ID token.
   * Throws GatewayError LOGIN_STATE_INVALID for a wrong state or a used code, LOGIN_FAILED when
   * the provider cannot be reached or answers with an error.
   */
  finishLogin(callbackUrl: URL, expected: Omit<LoginChallenge, 'url'>, redirectUri: string): Promise<LoginResult>;
  /** Uses a refresh token; the groups in the result replace the session's. */
  refresh(refreshToken: string): Promise<LoginResult>;
  /** How this provider's bearer access tokens are verified; undefined when it accepts none. */
  readonly bearer: BearerRules | undefined;
  /** The redirect URI registered with the IdP (…/oauth/callback/<name>). */
  readonly redirectUri: string;
  /** Routes the provider itself serves (the dev provider's IdP), mounted before everything else. */
  readonly router?: Router;
  close?(): Promise<void>;
}
