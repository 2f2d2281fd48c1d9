import { randomBytes } from 'node:crypto';
import {
  base64url,
  decodeJwt,
  decodeProtectedHeader,
  exportSPKI,
  generateKeyPair,
  importJWK,
  SignJWT,
  type CryptoKey,
  type JWTPayload,
  type ProtectedHeaderParameters,
} from 'jose';
import { publicPart, type TestIdp } from './test-idp.ts';

/** Clearly beyond the 60 s clock skew a verifier may allow. */
const FAR_SECONDS = 3600;

/**
 * Access tokens a gateway must refuse, each built from a real access token of `user` (so it
 * has the profile's exact header and claims) and wrong in one way only:
 *
 * - `expired`: iat 2 h ago, exp 1 h ago; signed with the IdP's key.
 * - `not-yet-valid`: iat and nbf 1 h ahead; signed with the IdP's key.
 * - `wrong-issuer`: a sibling issuer on the same origin (another pool / auth server / realm).
 * - `wrong-audience` (okta, generic): okta `api://other`; generic `['account']` only - Keycloak's
 *   own audience, which a gateway that accepts "any aud" would take.
 *   `wrong-client-id` (cognito, which has no aud): `client_id` of an app client not ours.
 * - `alg-none`: the profile's header with `alg: none`, empty signature. Built by hand: jose's
 *   UnsecuredJWT writes a bare `{alg: none}` header and we keep `kid`/`typ` as an attacker would.
 * - `hs256-public-key`: HS256 whose HMAC secret is the IdP's public key as SPKI PEM text (the
 *   classic algorithm-confusion attack), same `kid`. jose signs this (any bytes are a valid HMAC
 *   secret); only verifiers must refuse it.
 * - `unknown-kid`: signed with a fresh RSA key under a kid the JWKS does not have.
 * - `tampered-payload`: the real token with `mcp-admin` added to its groups and the original
 *   signature kept.
 * - `other-idp`: a genuine access token from `other` (its user token when `other` knows `user`,
 *   else its client-credentials token): valid there, foreign here.
 * - `id-token`: the real ID token, presented where an access token is expected.
 * - `other-application` (cognito, okta): the user's real access token, issued by the same IdP to
 *   another application (`client_id` / `cid` not the gateway's): same issuer, and at Okta the
 *   same audience, which every application of the org can get.
 */
export async function forgeTokens(idp: TestIdp, other: TestIdp, user: string): Promise<Array<{ name: string; token: string }>> {
  const real = await idp.userTokens(user);
  const header = decodeProtectedHeader(real.accessToken);
  const claims = decodeJwt(real.accessToken);
  const key = await importJWK(idp.signingKey.privateJwk, 'RS256');
  const sign = (payload: JWTPayload, h: ProtectedHeaderParameters = header) => new SignJWT(payload).setProtectedHeader({ ...h, alg: 'RS256' }).sign(key);
  const now = Math.floor(Date.now() / 1000);
  const lifetime = (claims.exp ?? now + 300) - (claims.iat ?? now);
  const groupsClaim = idp.profile === 'cognito' ? 'cognito:groups' : 'groups';
  const groups = Array.isArray(claims[groupsClaim]) ? (claims[groupsClaim] as string[]) : [];

  const forged: Array<{ name: string; token: string }> = [
    { name: 'expired', token: await sign({ ...claims, iat: now - 2 * FAR_SECONDS, exp: now - FAR_SECONDS, ...authTime(claims, now - 2 * FAR_SECONDS) }) },
    { name: 'not-yet-valid', token: await sign({ ...claims, iat: now + FAR_SECONDS, nbf: now + FAR_SECONDS, exp: now + FAR_SECONDS + lifetime }) },
    { name: 'wrong-issuer', token: await sign({ ...claims, iss: siblingIssuer(idp) }) },
    idp.profile === 'cognito'
      ? { name: 'wrong-client-id', token: await sign({ ...claims, client_id: '9someoneelsesappclient000z' }) }
      : { name: 'wrong-audience', token: await sign({ ...claims, aud: idp.profile === 'okta' ? 'api://other' : ['account'] }) },
    { name: 'alg-none', token: unsigned({ ...header, alg: 'none' }, claims) },
    { name: 'hs256-public-key', token: await hs256WithPublicKey(idp, header, claims) },
    { name: 'unknown-kid', token: await signWithFreshKey(header, claims) },
    { name: 'tampered-payload', token: withPayload(real.accessToken, { ...claims, [groupsClaim]: [...groups, 'mcp-admin'] }) },
    { name: 'other-idp', token: await tokenFrom(other, user) },
    { name: 'id-token', token: real.idToken },
  ];
  // Cognito and Okta: the user's genuine token from another application of the same pool / org
  // (at Okta with the same api://default audience). Keycloak puts the API in `aud` per client.
  if (idp.profile !== 'generic') forged.push({ name: 'other-application', token: (await idp.userTokens(user, { app: 'other' })).accessToken });
  return forged;
}

/** Same origin, a neighbouring tenant: the mistake is trusting a prefix or only the host. */
function siblingIssuer(idp: TestIdp): string {
  switch (idp.profile) {
    case 'cognito':
      return `${idp.origin}/us-east-1_OtherPool9`;
    case 'okta':
      return `${idp.origin}/oauth2/other`;
    case 'generic':
      return `${idp.origin}/realms/other`;
  }
}

function authTime(claims: JWTPayload, at: number): { auth_time?: number } {
  return claims['auth_time'] === undefined ? {} : { auth_time: at };
}

/** header.payload. with an empty signature (alg none). */
function unsigned(header: Record<string, unknown>, payload: JWTPayload): string {
  return `${encodeJson(header)}.${encodeJson(payload)}.`;
}

/** The real token's header and signature around a different payload. */
function withPayload(token: string, payload: JWTPayload): string {
  const [h, , s] = token.split('.');
  return `${h}.${encodeJson(payload)}.${s}`;
}

async function hs256WithPublicKey(idp: TestIdp, header: ProtectedHeaderParameters, claims: JWTPayload): Promise<string> {
  const publicKey = await importJWK(publicPart(idp.signingKey.privateJwk), 'RS256', { extractable: true });
  const pem = await exportSPKI(publicKey as CryptoKey);
  return new SignJWT(claims).setProtectedHeader({ ...header, alg: 'HS256' }).sign(new TextEncoder().encode(pem));
}

async function signWithFreshKey(header: ProtectedHeaderParameters, claims: JWTPayload): Promise<string> {
  const { privateKey } = await generateKeyPair('RS256');
  return new SignJWT(claims).setProtectedHeader({ ...header, alg: 'RS256', kid: `forged-${randomBytes(6).toString('base64url')}` }).sign(privateKey);
}

async function tokenFrom(other: TestIdp, user: string): Promise<string> {
  try {
    return (await other.userTokens(user)).accessToken;
  } catch {
    return other.clientCredentialsToken(); // `other` does not know this user
  }
}

function encodeJson(value: unknown): string {
  return base64url.encode(JSON.stringify(value));
}
