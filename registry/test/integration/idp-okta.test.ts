import { externalFixture, runIdentityProviderContract } from './identity-contract.ts';

runIdentityProviderContract('okta', (backend) => externalFixture('okta', backend), { userAccessTokens: true, refresh: true });
