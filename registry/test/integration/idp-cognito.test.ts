import { externalFixture, runIdentityProviderContract } from './identity-contract.ts';

runIdentityProviderContract('cognito', (backend) => externalFixture('cognito', backend), { userAccessTokens: true, refresh: true });
