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

declare module 'express-session' {
  interface SessionData {
    identity: SessionIdentity;
    scopes: string[];
    login: PendingLogin;
    csrfToken: string;
    notice: string;
  }
}
