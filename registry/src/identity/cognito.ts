import type { IdentityConfig } from '../config/load.ts';
import { jwksUriOf, type ProviderSpec } from './external.ts';

type CognitoConfig = Extract<IdentityConfig, { type: 'cognito' }>;

/**
 * Amazon Cognito user pools. Discovery at <endpoint>/<pool>/.well-known/openid-configuration;
 * groups in `cognito:groups`. Cognito access tokens have no `aud`: a bearer token must say
 * `token_use: access` and carry, as `client_id`, the gateway's app client or a machine client
 * listed in the mapping file.
 */
export function cognitoSpec(config: CognitoConfig, machineClients: () => readonly string[]): ProviderSpec {
  return {
    name: 'cognito',
    displayName: 'Amazon Cognito',
    bearer: (configuration) => ({
      issuer: config.issuer,
      jwksUri: () => jwksUriOf(configuration),
      audience: undefined,
      clientClaim: 'client_id',
      tokenUse: 'access',
      allowedClients: () => [config.clientId, ...machineClients()],
      groupsClaim: config.groupsClaim,
      // A client-credentials token has `sub` = client_id and no `username`; a person's always
      // has `username` and a user-pool `sub` (a UUID).
      isMachine: (payload, clientId) => payload.sub === clientId && payload['username'] === undefined,
    }),
  };
}
