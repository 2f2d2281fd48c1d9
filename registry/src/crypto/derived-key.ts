import { createECDH, createHash, hkdfSync } from 'node:crypto';

/** An EC P-256 (ES256) signing key as a JWK, with its public half. */
export interface DerivedSigningJwk {
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
 * An ES256 signing key derived from SECRET_KEY (HKDF-SHA256, salt `mcp-gateway`, one label per
 * use) rather than generated: every replica sharing SECRET_KEY signs alike, so a token one issues
 * verifies on another; it survives a restart with nothing on disk; rotating SECRET_KEY retires it.
 */
export function deriveSigningJwk(secretKey: string, label: string): DerivedSigningJwk {
  const seed = Buffer.from(hkdfSync('sha256', secretKey, 'mcp-gateway', label, 32));
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
