import type { IdentityConfig } from '../config/load.ts';
import { jwksUriOf, type ProviderSpec } from './external.ts';

type OktaConfig = Extract<IdentityConfig, { type: 'okta' }>;

/**
 * Okta with a custom authorization server (<tenant>/oauth2/<id>, `default` unless set): its
 * access tokens are JWTs with `aud` = the server's audience (api://default unless set) and the
 * requesting client in `cid`. Groups in `groups` (add a groups claim to the server in Okta).
 */
export function oktaSpec(config: OktaConfig): ProviderSpec {
  return {
    name: 'okta',
    displayName: 'Okta',
    bearer: (configuration) => ({
      issuer: config.issuer,
      jwksUri: () => jwksUriOf(configuration),
      audience: config.audience,
      clientClaim: 'cid',
      groupsClaim: config.groupsClaim,
    }),
  };
}
