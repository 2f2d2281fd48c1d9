import type { IdentityConfig } from '../config/load.ts';
import { jwksUriOf, type ProviderSpec } from './external.ts';

type OktaConfig = Extract<IdentityConfig, { type: 'okta' }>;

/**
 * Okta with a custom authorization server (<tenant>/oauth2/<id>, `default` unless set): its
 * access tokens are JWTs with `aud` = the server's audience (MCP_AUTH_AUDIENCE, required) and
 * the requesting client in `cid`. Groups in `groups` (add a groups claim to the server in Okta).
 *
 * The audience alone is not enough: every application in the org can get a token for it
 * (api://default most of all), so `cid` must also be the gateway's own application, a machine
 * client of the mapping file, or one listed in MCP_AUTH_OKTA_ALLOWED_CLIENT_IDS.
 */
export function oktaSpec(config: OktaConfig, machineClients: () => readonly string[]): ProviderSpec {
  return {
    name: 'okta',
    displayName: 'Okta',
    bearer: (configuration) => ({
      issuer: config.issuer,
      jwksUri: () => jwksUriOf(configuration),
      audience: config.audience,
      clientClaim: 'cid',
      allowedClients: () => [config.clientId, ...config.allowedClientIds, ...machineClients()],
      groupsClaim: config.groupsClaim,
      // Client credentials: `sub` is the client id and there is no `uid`; a person's token
      // always names the user in `uid` (and has the login, an email, in `sub`).
      isMachine: (payload, clientId) => payload.sub === clientId && payload['uid'] === undefined,
    }),
  };
}
