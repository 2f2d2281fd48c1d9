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
          }),
  };
}
