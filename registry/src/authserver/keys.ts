import { deriveSigningJwk } from '../crypto/derived-key.ts';

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
  return deriveSigningJwk(secretKey, 'authserver-signing-key v1');
}

/** The public half of {@link deriveSigningKey}'s key, for verification. */
export function publicJwk(key: SigningJwk): Omit<SigningJwk, 'd'> {
  const { d: _d, ...pub } = key;
  return pub;
}
