import { createHmac, generateKeyPairSync } from 'node:crypto';
import { base64url, exportJWK, SignJWT } from 'jose';
import { DEV_MACHINE_CLIENT_ID } from '../../src/identity/dev.ts';
import { startTestIdp } from '../idp/test-idp.ts';
import { machineToken as devMachineToken } from './api-client.ts';
import { fininfoDefinition, mappingFor, runIdentityProviderContract, USERS } from './identity-contract.ts';
import { startTestGateway, TEST_SECRET_KEY } from './harness.ts';

/*
 * The built-in provider against the same contract. It issues no refresh tokens and hands no
 * user access tokens to tests, so those two checks are the external providers' only. Its
 * signing key never leaves the process: the forged tokens are built from a real machine token
 * (tampered, re-signed with none / HS256 / an unknown key) and from another IdP.
 */
runIdentityProviderContract(
  'dev',
  async (backend) => {
    const gw = await startTestGateway({ users: USERS, mapping: mappingFor(DEV_MACHINE_CLIENT_ID), definitions: [fininfoDefinition(backend)] });
    const other = await startTestIdp('okta', { redirectUri: 'http://127.0.0.1:1/cb', users: USERS });
    const machineToken = () => devMachineToken(gw.url, TEST_SECRET_KEY);
    return {
      gw,
      machineToken,
      async forged() {
        const real = await machineToken();
        const [header = '', payload = '', signature = ''] = real.split('.');
        const claims = JSON.parse(Buffer.from(payload, 'base64url').toString()) as Record<string, unknown>;
        const enc = (v: unknown) => base64url.encode(JSON.stringify(v));
        const jwks = (await (await fetch(`${gw.url}/idp/jwks`)).json()) as { keys: Array<Record<string, string>> };
        const publicPem = await import('node:crypto').then((c) =>
          c.createPublicKey({ key: jwks.keys[0] as never, format: 'jwk' }).export({ type: 'spki', format: 'pem' }),
        );
        const hs = `${enc({ alg: 'HS256', typ: 'at+jwt' })}.${payload}`;
        const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
        return [
          { name: 'tampered-payload', token: `${header}.${enc({ ...claims, client_id: 'someone-else', sub: 'someone-else' })}.${signature}` },
          { name: 'alg-none', token: `${enc({ alg: 'none', typ: 'at+jwt' })}.${payload}.` },
          { name: 'hs256-public-key', token: `${hs}.${createHmac('sha256', String(publicPem)).update(hs).digest('base64url')}` },
          { name: 'unknown-kid', token: await new SignJWT(claims).setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid: 'not-a-dev-key' }).sign(privateKey) },
          { name: 'other-idp', token: await other.clientCredentialsToken() },
          {
            name: 'expired-signed-elsewhere',
            token: await new SignJWT({ ...claims, exp: 1 })
              .setProtectedHeader({ alg: 'RS256', kid: String((await exportJWK(privateKey)).kid ?? 'x') })
              .sign(privateKey),
          },
        ];
      },
      async close() {
        await gw[Symbol.asyncDispose]();
        await other.close();
      },
    };
  },
  { userAccessTokens: false, refresh: false },
);
