import { createECDH, createHash, hkdfSync } from 'node:crypto';

/** The signing key's JWK (EC P-256, ES256), with its public half. */
export interface SigningJwk {
  readonly kty: 'EC';
  readonly crv: 'P-256';
  readonly x: string;
  readonly y: string;
  readonly d: string;
  readonly kid: string;
  readonly alg: 'ES256';
  readonly use: 'sig';
}

/**
 * The authorization server's signing key, derived from SECRET_KEY (HKDF-SHA256, its own label)
 * rather than generated and stored: it survives a restart with nothing on disk to protect or
 * lose, every registry sharing SECRET_KEY signs alike, and rotating SECRET_KEY (which already
 * ends every login session) also retires every token signed under the old key.
 */
export function deriveSigningKey(secretKey: string): SigningJwk {
  const seed = Buffer.from(hkdfSync('sha256', secretKey, 'mcp-gateway', 'authserver-signing-key v1', 32));
  const ecdh = createECDH('prime256v1');
  // A 32-byte seed is a valid P-256 private key except with probability ~2^-32 (>= n or zero);
  // in that case setPrivateKey throws and the operator picks another SECRET_KEY.
  ecdh.setPrivateKey(seed);
  const pub = ecdh.getPublicKey(); // 0x04 | x | y
  const x = pub.subarray(1, 33).toString('base64url');
  const y = pub.subarray(33, 65).toString('base64url');
  const kid = createHash('sha256').update(`${x}.${y}`).digest('base64url').slice(0, 16);
  return { kty: 'EC', crv: 'P-256', x, y, d: seed.toString('base64url'), kid, alg: 'ES256', use: 'sig' };
}

/** The public half of {@link deriveSigningKey}'s key, for verification. */
export function publicJwk(key: SigningJwk): Omit<SigningJwk, 'd'> {
  const { d: _d, ...pub } = key;
  return pub;
}
