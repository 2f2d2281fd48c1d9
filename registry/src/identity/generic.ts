import type { JWTPayload } from 'jose';
import type { IdentityConfig } from '../config/load.ts';
import { jwksUriOf, type ProviderSpec } from './external.ts';

type GenericConfig = Extract<IdentityConfig, { type: 'generic' }>;

/**
 * Any OpenID Connect provider (Keycloak, Auth0, Entra ID, Dex...): discovery from the issuer,
 * or explicit endpoints. Bearer tokens are accepted only with MCP_AUTH_AUDIENCE set, and must
 * carry it in `aud`: many IdPs add audiences of their own (Keycloak's `account`), so "any aud"
 * would accept tokens meant for other services.
 */
export function genericSpec(config: GenericConfig): ProviderSpec {
  const audience = config.audience;
  const endpoints = config.endpoints;
  return {
    name: 'generic',
    displayName: 'Single sign-on',
    ...(endpoints === undefined
      ? {}
      : {
          metadata: {
            issuer: config.issuer,
            authorization_endpoint: endpoints.authorization,
            token_endpoint: endpoints.token,
            jwks_uri: endpoints.jwks,
            ...(endpoints.userinfo === undefined ? {} : { userinfo_endpoint: endpoints.userinfo }),
          },
        }),
    bearer:
      audience === undefined
        ? undefined
        : (configuration) => ({
            issuer: config.issuer,
            jwksUri: () => jwksUriOf(configuration),
            audience,
            clientClaim: 'azp',
            groupsClaim: config.groupsClaim,
            isMachine: isServiceAccountToken,
          }),
  };
}

/**
 * A client-credentials token, by what the IdP itself writes for that grant: RFC 9068 (2.2) makes
 * `sub` the client id when there is no resource owner; Keycloak gives the token of a client's
 * service account a `client_id` claim (older versions: `clientId`) equal to `azp`, from its
 * built-in service-account scope. A person's token has neither, whatever their
 * `preferred_username` says (Keycloak names service-account users `service-account-<client>`,
 * and nothing stops a person registering that name).
 */
export function isServiceAccountToken(payload: JWTPayload, clientId: string): boolean {
  return payload.sub === clientId || payload['client_id'] === clientId || payload['clientId'] === clientId;
}
