import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import type { BearerRules } from '../identity/bearer-rules.ts';
import { createBearerVerifier } from './bearer.ts';
import { isServiceAccountToken } from '../identity/generic.ts';

test('verifies a token once and answers repeats from memory until it expires; forged tokens are never remembered', async () => {
  const { publicKey, privateKey } = await generateKeyPair('RS256');
  let jwksFetches = 0;
  const jwks = { keys: [{ ...(await exportJWK(publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' }] };
  const server = createServer((_req, res) => {
    jwksFetches++;
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(jwks));
  }).listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  try {
    const verify = createBearerVerifier({
      issuer: 'https://idp.test',
      jwksUri: async () => `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`,
      audience: 'mcp-gateway',
      clientClaim: 'azp',
      groupsClaim: 'groups',
      isMachine: isServiceAccountToken,
    });
    const sign = (claims: Record<string, unknown>, exp: string | number) =>
      new SignJWT({ azp: 'c1', groups: ['g'], ...claims })
        .setProtectedHeader({ alg: 'RS256', kid: 'k1' })
        .setIssuer('https://idp.test')
        .setAudience('mcp-gateway')
        .setSubject('u1')
        .setIssuedAt()
        .setExpirationTime(exp)
        .sign(privateKey);
    const token = await sign({}, '5m');
    for (let i = 0; i < 3; i++) assert.equal((await verify(token)).ok, true);
    assert.equal(jwksFetches, 1);
    const expired = await sign({}, Math.floor(Date.now() / 1000) - 120);
    assert.equal((await verify(expired)).ok, false);
    const tampered = `${token.split('.')[0]}.${Buffer.from(JSON.stringify({ iss: 'https://idp.test', aud: 'mcp-gateway', sub: 'u1', groups: ['mcp-admin'], exp: 9999999999 })).toString('base64url')}.${token.split('.')[2]}`;
    assert.equal((await verify(tampered)).ok, false);
    assert.equal((await verify(tampered)).ok, false, 'still refused the second time');
    const idToken = await sign({ nonce: 'n' }, '5m');
    assert.deepEqual(await verify(idToken), { ok: false, reason: 'an ID token is not an access token' });
  } finally {
    server.close();
  }
});

test("machine or person is decided by the provider's claim rule, never by a username prefix a person could choose", async () => {
  const { publicKey, privateKey } = await generateKeyPair('RS256');
  const jwks = { keys: [{ ...(await exportJWK(publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' }] };
  const server = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(jwks))).listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  try {
    const rules: BearerRules = {
      issuer: 'https://sso.test/realms/r',
      jwksUri: async () => `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`,
      audience: 'mcp-gateway',
      clientClaim: 'azp',
      groupsClaim: 'groups',
      isMachine: isServiceAccountToken,
    };
    const verify = createBearerVerifier(rules);
    const sign = (claims: Record<string, unknown>) =>
      new SignJWT(claims)
        .setProtectedHeader({ alg: 'RS256', kid: 'k1', typ: 'JWT' })
        .setIssuer(rules.issuer)
        .setAudience('mcp-gateway')
        .setIssuedAt()
        .setExpirationTime('5m')
        .sign(privateKey);
    const cases: Array<[string, Record<string, unknown>, boolean]> = [
      [
        'Keycloak service account (client_id claim)',
        { sub: 'f3c1-uuid', azp: 'mcp-m2m', client_id: 'mcp-m2m', preferred_username: 'service-account-mcp-m2m' },
        true,
      ],
      [
        'Keycloak before the client_id rename (clientId claim)',
        { sub: 'f3c2-uuid', azp: 'mcp-m2m', clientId: 'mcp-m2m', preferred_username: 'service-account-mcp-m2m' },
        true,
      ],
      ['RFC 9068 client credentials (sub is the client)', { sub: 'mcp-m2m', azp: 'mcp-m2m' }, true],
      [
        'a person named service-account-x',
        { sub: 'a1b2-uuid', azp: 'mcp-gateway', preferred_username: 'service-account-x', groups: ['mcp-server-fininfo'] },
        false,
      ],
      ['a person whose email starts with service-account-', { sub: 'a1b3-uuid', azp: 'mcp-gateway', email: 'service-account-y@example.test' }, false],
      ['a person with client_id naming another client', { sub: 'a1b4-uuid', azp: 'mcp-gateway', client_id: 'mcp-m2m' }, false],
    ];
    for (const [name, claims, machine] of cases) {
      const result = await verify(await sign(claims));
      assert.ok(result.ok, name);
      assert.equal(result.identity.machine, machine, name);
    }
  } finally {
    server.close();
  }
});
