import 'express-session';

/** What a signed-in session holds. The cookie carries only the signed session id. */
export interface SessionIdentity {
  readonly sub: string;
  readonly username: string;
  readonly email?: string;
  readonly groups: readonly string[];
  readonly provider: string;
}

/** One-time login state, deleted as soon as the callback reads it. */
export interface PendingLogin {
  readonly state: string;
  readonly nonce: string;
  readonly codeVerifier: string;
  readonly returnTo: string;
  readonly provider: string;
}

/** The IdP tokens a session keeps to refresh itself; the refresh token is sealed (seal.ts). */
export interface SessionTokens {
  readonly sealedRefreshToken: string | undefined;
  /** When the IdP's access token expires (ms since epoch); refreshed before then. */
  readonly expiresAt: number | undefined;
  /** When the access token was issued (ms since epoch), to refresh at a share of its lifetime. */
  readonly issuedAt: number;
}

/** One connect to a backend's authorization server in progress (credentials/user-oauth.ts). */
export interface BackendConnectPending {
  readonly server: string;
  readonly state: string;
  readonly codeVerifier: string;
  readonly nonce?: string;
  readonly issuer: string;
  readonly clientId: string;
  readonly resource?: string;
  /** The person it was started for: the callback must come back to the same person. */
  readonly personHash: string;
  readonly createdAt: number;
}

declare module 'express-session' {
  interface SessionData {
    identity: SessionIdentity;
    /** When the person signed in (ms since epoch): the absolute lifetime counts from here. */
    signedInAt: number;
    tokens: SessionTokens;
    scopes: string[];
    login: PendingLogin;
    csrfToken: string;
    notice: string;
    /**
     * Connects to backends' authorization servers in progress (user_oauth), by state: PKCE
     * verifier, nonce, server. Deleted as soon as the callback reads it; a few at most.
     */
    backendConnects: Record<string, BackendConnectPending>;
  }
}
