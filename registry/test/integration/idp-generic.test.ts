import { externalFixture, runIdentityProviderContract } from './identity-contract.ts';

runIdentityProviderContract('generic', (backend) => externalFixture('generic', backend), { userAccessTokens: true, refresh: true });
