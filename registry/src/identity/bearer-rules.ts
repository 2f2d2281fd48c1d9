import type { JWTPayload } from 'jose';

/**
 * How one identity provider's access tokens are checked. Audiences differ by IdP, and getting
 * them wrong is how the Python gateway failed (DESIGN.md): Okta custom authorization servers and
 * generic IdPs put the API in `aud`; Cognito access tokens carry no `aud`, so the requesting
 * `client_id` is checked against the clients we know instead.
 */
export interface BearerRules {
  readonly issuer: string;
  /** Resolved lazily (discovery may be needed); the key set is fetched once and cached. */
  readonly jwksUri: () => Promise<string>;
  /** The `aud` a token must carry; undefined where the IdP puts none (Cognito). */
  readonly audience: string | undefined;
  /** The claim naming the client the token was issued to. */
  readonly clientClaim: 'client_id' | 'cid' | 'azp';
  /** Cognito: `token_use` must be `access`. */
  readonly tokenUse?: 'access';
  /** The client ids whose tokens we accept (Cognito, which has no audience; Okta, whose org shares one). */
  readonly allowedClients?: () => readonly string[];
  readonly groupsClaim: string;
  /**
   * Whether a verified token is a client-credentials token (a machine, not a person), decided
   * from claims only the IdP sets for that grant - never from a name a person could choose
   * (`service-account-…` is a username anyone may register).
   */
  readonly isMachine: (payload: JWTPayload, clientId: string) => boolean;
}
