import { decodeJwt, importJWK, jwtVerify, type CryptoKey, type JWK, type JWTPayload } from 'jose';
import { resourcesOf, serverOfResource } from './resources.ts';

/** Clock skew tolerated on exp / iat, in seconds (the same clock signs and verifies: small). */
const CLOCK_TOLERANCE_SECONDS = 30;
const VERIFIED_MAX = 10_000;

/** Who a verified gateway access token speaks for, on the one server it is for. */
export interface GatewayTokenIdentity {
  readonly sub: string;
  readonly username: string;
  readonly clientId: string;
  /** The server whose MCP URL is the token's audience. */
  readonly server: string;
  /** Space-separated `scope` claim, split: this server's scopes only. */
  readonly scopes: readonly string[];
  /** A client-credentials token: `sub` is the client itself, no person behind it. */
  readonly machine: boolean;
}

export type GatewayTokenResult = { ok: true; identity: GatewayTokenIdentity; expiresAt: number } | { ok: false; reason: string };

export interface GatewayTokenVerifier {
  /** True when the token says the gateway issued it (unverified: only to choose the verifier). */
  issuedHere(token: string): boolean;
  /** Verifies signature (ES256 only), `iss`, `exp`, `typ` at+jwt, and that `aud` is one of `server`'s MCP URLs. */
  verify(token: string, server: string): Promise<GatewayTokenResult>;
}

/**
 * The check's verifier for the gateway's own access tokens: in-process against the signing key's
 * public half, no HTTP and no store read. Verified tokens are remembered until their `exp` (the
 * signature is most of the cost); the audience is checked on every request, so a token for one
 * server is refused on another even when cached.
 */
export function createGatewayTokenVerifier(options: { issuer: string; key: Record<string, unknown>; publicUrl: string }): GatewayTokenVerifier {
  const { issuer, publicUrl } = options;
  let key: Promise<CryptoKey | Uint8Array> | undefined;
  const verified = new Map<string, { identity: Omit<GatewayTokenIdentity, 'server'>; audience: string; expiresAt: number }>();

  return {
    issuedHere(token) {
      try {
        return decodeJwt(token).iss === issuer;
      } catch {
        return false;
      }
    },
    async verify(token, server) {
      let known = verified.get(token);
      if (known !== undefined && known.expiresAt <= Date.now() - CLOCK_TOLERANCE_SECONDS * 1000) {
        verified.delete(token);
        known = undefined;
      }
      if (known === undefined) {
        const result = await verifyOnce(token);
        if ('reason' in result) return { ok: false, reason: result.reason };
        known = result;
        if (verified.size >= VERIFIED_MAX) verified.clear();
        verified.set(token, known);
      }
      if (serverOfResource(publicUrl, known.audience) !== server || !resourcesOf(publicUrl, server).includes(known.audience))
        return { ok: false, reason: `the token is for ${known.audience}, not for server ${server}` };
      return { ok: true, identity: { ...known.identity, server }, expiresAt: known.expiresAt };
    },
  };

  async function verifyOnce(
    token: string,
  ): Promise<{ identity: Omit<GatewayTokenIdentity, 'server'>; audience: string; expiresAt: number } | { reason: string }> {
    key ??= importJWK(options.key as JWK, 'ES256');
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, await key, {
        issuer,
        algorithms: ['ES256'],
        typ: 'at+jwt',
        clockTolerance: CLOCK_TOLERANCE_SECONDS,
        requiredClaims: ['exp', 'sub', 'aud', 'client_id'],
      }));
    } catch (err) {
      return { reason: (err as { code?: string }).code ?? 'the token is not a valid JWT' };
    }
    const audience = Array.isArray(payload.aud) ? (payload.aud.length === 1 ? payload.aud[0] : undefined) : payload.aud;
    if (typeof audience !== 'string') return { reason: 'the token must name exactly one audience' };
    const scope = typeof payload['scope'] === 'string' ? payload['scope'] : '';
    const sub = payload.sub ?? '';
    return {
      audience,
      expiresAt: (payload.exp ?? 0) * 1000,
      identity: {
        sub,
        username: typeof payload['username'] === 'string' ? payload['username'] : sub,
        clientId: String(payload['client_id']),
        scopes: Object.freeze(scope.split(' ').filter(Boolean)),
        machine: sub === String(payload['client_id']),
      },
    };
  }
}
