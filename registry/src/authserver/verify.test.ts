import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { test } from 'node:test';
import { importJWK, SignJWT, type JWK } from 'jose';
import { deriveSigningKey, publicJwk } from './keys.ts';
import { createGatewayTokenVerifier } from './verify.ts';

const PUBLIC = 'https://mcp.example.com';
const key = deriveSigningKey('verify-test-secret-key-verify-test-secret-key');
const verifier = createGatewayTokenVerifier({ issuer: PUBLIC, key: publicJwk(key), publicUrl: PUBLIC });

async function token(claims: Record<string, unknown>, options: { typ?: string; exp?: number; signWith?: JWK } = {}): Promise<string> {
  const signing = await importJWK(options.signWith ?? key, 'ES256');
  return new SignJWT({ client_id: 'c1', scope: 'mcp:server:fininfo:execute', username: 'user', ...claims })
    .setProtectedHeader({ alg: 'ES256', typ: options.typ ?? 'at+jwt', kid: key.kid })
    .setIssuer(PUBLIC)
    .setSubject('dev:user')
    .setIssuedAt()
    .setExpirationTime(options.exp ?? Math.floor(Date.now() / 1000) + 300)
    .sign(signing);
}

test("a gateway token is accepted on its audience's server only, on either transport", async () => {
  const streamable = await token({ aud: `${PUBLIC}/api/streamable/fininfo` });
  assert.ok(verifier.issuedHere(streamable));
  const ok = await verifier.verify(streamable, 'fininfo');
  assert.ok(ok.ok);
  assert.deepEqual(ok.identity.scopes, ['mcp:server:fininfo:execute']);
  assert.equal(ok.identity.username, 'user');
  assert.ok((await verifier.verify(await token({ aud: `${PUBLIC}/api/execute/fininfo/sse` }), 'fininfo')).ok);
  // Cached or not, another server refuses it.
  assert.equal((await verifier.verify(streamable, 'currenttime')).ok, false);
  assert.equal((await verifier.verify(await token({ aud: `${PUBLIC}/api/streamable/currenttime` }), 'fininfo')).ok, false);
  assert.equal((await verifier.verify(await token({ aud: [`${PUBLIC}/api/streamable/fininfo`, `${PUBLIC}/api/streamable/x`] }), 'fininfo')).ok, false);
});

test('forged, expired, ID-token-typed and foreign tokens are refused', async () => {
  const aud = `${PUBLIC}/api/streamable/fininfo`;
  assert.equal((await verifier.verify(await token({ aud }, { exp: Math.floor(Date.now() / 1000) - 120 }), 'fininfo')).ok, false);
  assert.equal((await verifier.verify(await token({ aud }, { typ: 'JWT' }), 'fininfo')).ok, false);
  const other = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' }) as JWK;
  assert.equal((await verifier.verify(await token({ aud }, { signWith: other }), 'fininfo')).ok, false);
  assert.equal((await verifier.verify('not-a-jwt', 'fininfo')).ok, false);
  assert.equal(verifier.issuedHere('not-a-jwt'), false);
  const foreign = await new SignJWT({ aud })
    .setProtectedHeader({ alg: 'ES256' })
    .setIssuer('https://idp.example')
    .sign(await importJWK(key, 'ES256'));
  assert.equal(verifier.issuedHere(foreign), false);
});
