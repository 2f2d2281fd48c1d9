import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import type { BearerRules } from '../identity/bearer-rules.ts';
import { firstString, readGroups } from '../identity/claims.ts';

/** Asymmetric algorithms only: no `none`, and no HS* (a public key must never be an HMAC secret). */
export const ACCEPTED_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'] as const;

/** jose errors that mean the IdP's key set could not be had, whatever the token. */
const SERVER_FAULTS = new Set(['ERR_JWKS_TIMEOUT', 'ERR_JWKS_INVALID']);

/** Clock skew tolerated on exp / nbf / iat, in seconds. */
export const CLOCK_TOLERANCE_SECONDS = 60;

/** Who a verified access token speaks for. */
export interface BearerIdentity {
  readonly sub: string;
  readonly username: string;
  readonly clientId: string | undefined;
  readonly groups: readonly string[];
  /** A client-credentials token: a machine, not a person. Scopes come from the mapping's clients. */
  readonly machine: boolean;
}

/** The reason stays in the log; the client only ever learns `invalid_token`. */
export type BearerResult = { ok: true; identity: BearerIdentity; expiresAt: number } | { ok: false; reason: string };

/**
 * Builds the verifier for one provider: signature against the provider's JWKS (cached; an
 * unknown `kid` refetches at most once per 30 s), issuer, expiry and not-before with
 * {@link CLOCK_TOLERANCE_SECONDS}, {@link ACCEPTED_ALGORITHMS}, the provider's audience rule,
 * and that it is an access token (an ID token carries `nonce`/`at_hash`, Cognito's says
 * `token_use: id`). See RFC 9068 for JWT access tokens.
 */
export function createBearerVerifier(rules: BearerRules): (token: string) => Promise<BearerResult> {
  if (!rules?.issuer || typeof rules.jwksUri !== 'function') throw new TypeError('createBearerVerifier: issuer and jwksUri are required');
  const keys = lazyKeySet(rules.jwksUri);
  // A verified JWT cannot change until it expires, so each token is verified once: the RSA/EC
  // signature check is most of a bearer request's cost in the registry. Only successes are
  // remembered (a forged token costs a verification every time), each until its own `exp`.
  const verified = new Map<string, { identity: BearerIdentity; expiresAt: number }>();
  return async (token) => {
    const known = verified.get(token);
    if (known !== undefined) {
      if (known.expiresAt > Date.now() - CLOCK_TOLERANCE_SECONDS * 1000) return { ok: true, ...known };
      verified.delete(token);
    }
    const result = await verifyOnce(token);
    if (result.ok) {
      if (verified.size >= VERIFIED_MAX) verified.clear();
      verified.set(token, { identity: result.identity, expiresAt: result.expiresAt });
    }
    return result;
  };

  async function verifyOnce(token: string): Promise<BearerResult> {
    let payload: JWTPayload;
    let header: ReturnType<typeof decodeProtectedHeader>;
    try {
      header = decodeProtectedHeader(token);
    } catch {
      // Not a JWT at all (an opaque token, garbage): jose throws a TypeError without a code.
      return { ok: false, reason: 'the token is not a JWT' };
    }
    try {
      const typ = header.typ;
      if (typ !== undefined && !/^(?:application\/)?(?:at\+jwt|jwt)$/i.test(typ)) return { ok: false, reason: `token type ${typ} is not an access token` };
      ({ payload } = await jwtVerify(token, keys, {
        issuer: rules.issuer,
        ...(rules.audience === undefined ? {} : { audience: rules.audience }),
        algorithms: [...ACCEPTED_ALGORITHMS],
        clockTolerance: CLOCK_TOLERANCE_SECONDS,
        requiredClaims: ['exp', 'sub'],
      }));
    } catch (err) {
      const code = (err as { code?: string }).code;
      // Not reaching the IdP (discovery, keys) is not the token's fault: let it become a 500,
      // which denies too, but says "try later" rather than "your token is bad".
      if (code === undefined || !code.startsWith('ERR_J') || SERVER_FAULTS.has(code)) throw err;
      return { ok: false, reason: code };
    }
    const refused = accessTokenProblem(payload, rules);
    if (refused) return { ok: false, reason: refused };
    return { ok: true, identity: identityOf(payload, rules), expiresAt: (payload.exp ?? 0) * 1000 };
  }
}

const VERIFIED_MAX = 10_000;

function accessTokenProblem(payload: JWTPayload, rules: BearerRules): string | undefined {
  if (payload['nonce'] !== undefined || payload['at_hash'] !== undefined || payload['token_use'] === 'id') return 'an ID token is not an access token';
  if (rules.tokenUse !== undefined && payload['token_use'] !== rules.tokenUse) return `token_use is not ${rules.tokenUse}`;
  if (rules.allowedClients) {
    const client = payload[rules.clientClaim];
    if (typeof client !== 'string' || !rules.allowedClients().includes(client)) return `${rules.clientClaim} is not a client of this gateway`;
  }
  return undefined;
}

function identityOf(payload: JWTPayload, rules: BearerRules): BearerIdentity {
  const sub = payload.sub ?? '';
  const clientId = typeof payload[rules.clientClaim] === 'string' ? (payload[rules.clientClaim] as string) : undefined;
  const username = firstString(payload['preferred_username'], payload['username'], payload['cognito:username'], payload['email'], sub);
  const machine = clientId !== undefined && rules.isMachine(payload, clientId);
  return { sub, username, clientId, groups: readGroups(payload[rules.groupsClaim]), machine };
}

function lazyKeySet(uri: () => Promise<string>): JWTVerifyGetKey {
  let keys: Promise<JWTVerifyGetKey> | undefined;
  return async (header, token) => {
    keys ??= uri().then(
      (u) => createRemoteJWKSet(new URL(u), { cooldownDuration: 30_000, cacheMaxAge: 10 * 60_000, timeoutDuration: 5_000 }),
      (err: unknown) => {
        keys = undefined; // let the next request try discovery again
        throw err;
      },
    );
    return (await keys)(header, token);
  };
}
