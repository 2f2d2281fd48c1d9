import { deriveSigningJwk, type DerivedSigningJwk } from '../crypto/derived-key.ts';

/** The signing key's JWK (EC P-256, ES256), with its public half. */
export type SigningJwk = DerivedSigningJwk;

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
