import type { GatewayTokenVerifier } from '../authserver/verify.ts';
import type { PersonalTokens } from '../authserver/personal-tokens.ts';
import type { BearerResult } from './bearer.ts';
import { sessionIdFromCookieHeader } from '../sessions/cookie.ts';
import type { SessionIdentity } from '../sessions/session-data.ts';

/** Who a request is, as far as the check cares. */
export interface Principal {
  readonly identity: SessionIdentity;
  readonly scopes: readonly string[];
  /** For a machine (client-credentials) token: its client id. MCP sessions bind to it (session-binding.ts). */
  readonly machineClient?: string;
  /**
   * When the credential stops being valid (ms since epoch): the session's end, the token's `exp`.
   * A cached decision never outlives it (check-cache.ts). Unknown: undefined.
   */
  readonly expiresAt?: number | undefined;
}

export type CredentialResult =
  { ok: true; principal: Principal } | { ok: false; reason: 'no-credentials' | 'session-invalid' | 'token-invalid' | 'token-malformed'; detail?: string };

/**
 * Reads sessions synchronously from memory (the file record store keeps them there), so the
 * check does no I/O per request; expired and signed-out sessions read as undefined.
 */
export interface SessionLookup {
  peek(sid: string): { readonly identity?: SessionIdentity | undefined; readonly scopes?: readonly string[] | undefined } | undefined;
  /** When the live session ends (ms since epoch), for a cached decision's lifetime; omitted: unknown. */
  expiresAt?(sid: string): number | undefined;
}

/**
 * Finds the principal behind a request's session cookie. A cookie that is forged, tampered
 * with, expired or names no signed-in session is `session-invalid`; the reason stays in the
 * log, the client only learns 401. Bearer tokens join here with the identity-provider work.
 */
export function principalFromCookie(cookieHeader: string | undefined, secret: string, sessions: SessionLookup): CredentialResult {
  if (!cookieHeader) return { ok: false, reason: 'no-credentials' };
  const sid = sessionIdFromCookieHeader(cookieHeader, secret);
  if (sid === undefined) {
    return { ok: false, reason: cookieHeader.includes('mcp_gateway_session=') ? 'session-invalid' : 'no-credentials' };
  }
  const data = sessions.peek(sid);
  if (!data?.identity || !Array.isArray(data.scopes)) return { ok: false, reason: 'session-invalid' };
  return { ok: true, principal: { identity: data.identity, scopes: data.scopes, expiresAt: sessions.expiresAt?.(sid) } };
}

/** `Authorization: Bearer <token>` per RFC 6750 section 2.1 (b64token). */
const BEARER = /^Bearer ([A-Za-z0-9\-._~+/]+=*)$/i;

export interface BearerContext {
  readonly verify: ((token: string) => Promise<BearerResult>) | undefined;
  readonly provider: string;
  readonly scopesFor: (groups: readonly string[]) => string[];
  readonly machineScopes: (clientId: string | undefined) => string[];
}

/**
 * Finds the principal behind an `Authorization` header: a JWT access token from the IdP,
 * verified by bearer.ts. People get the scopes of their groups; machine (client-credentials)
 * tokens get only what the mapping file lists for their client id. A provider that accepts no
 * bearer tokens refuses them all as `token-invalid`.
 */
export async function principalFromBearer(authorization: string, context: BearerContext): Promise<CredentialResult> {
  const token = BEARER.exec(authorization)?.[1];
  if (token === undefined) return { ok: false, reason: 'token-malformed' };
  if (!context.verify) return { ok: false, reason: 'token-invalid', detail: 'this identity provider is configured to accept no bearer tokens' };
  const result = await context.verify(token);
  if (!result.ok) return { ok: false, reason: 'token-invalid', detail: result.reason };
  const who = result.identity;
  const scopes = who.machine ? context.machineScopes(who.clientId) : context.scopesFor(who.groups);
  return {
    ok: true,
    principal: {
      identity: { sub: who.sub, username: who.machine ? `client:${who.clientId ?? who.sub}` : who.username, groups: who.groups, provider: context.provider },
      scopes,
      ...(who.machine ? { machineClient: who.clientId ?? who.sub } : {}),
      expiresAt: result.expiresAt,
    },
  };
}

/** The token of an `Authorization: Bearer` header, or undefined when the header is malformed. */
export function bearerToken(authorization: string): string | undefined {
  return BEARER.exec(authorization)?.[1];
}

/**
 * Finds the principal behind an access token the gateway itself issued to an MCP client
 * (authserver/): valid only on the server whose MCP URL is its audience, with the scopes it
 * carries (that server's, never more than the person's groups grant). Its `sub` is
 * `<provider>:<sub>`, split back so the person is the same principal as with their cookie.
 */
export async function principalFromGatewayToken(token: string, server: string, verifier: GatewayTokenVerifier): Promise<CredentialResult> {
  const result = await verifier.verify(token, server);
  if (!result.ok) return { ok: false, reason: 'token-invalid', detail: result.reason };
  const who = result.identity;
  if (who.machine)
    return {
      ok: true,
      principal: {
        identity: { sub: who.clientId, username: `client:${who.clientId}`, groups: [], provider: 'gateway' },
        scopes: who.scopes,
        machineClient: who.clientId,
        expiresAt: result.expiresAt,
      },
    };
  const colon = who.sub.indexOf(':');
  return {
    ok: true,
    principal: {
      identity: {
        sub: colon < 0 ? who.sub : who.sub.slice(colon + 1),
        username: who.username,
        groups: [],
        provider: colon < 0 ? 'gateway' : who.sub.slice(0, colon),
      },
      scopes: who.scopes,
      expiresAt: result.expiresAt,
    },
  };
}

/**
 * Finds the person behind a personal access token (authserver/personal-tokens.ts): valid only
 * on the servers chosen at its creation, with the scopes the person holds there now. From
 * memory, no I/O; a revoked token fails on the next request.
 */
export function principalFromPersonalToken(token: string, server: string, tokens: Pick<PersonalTokens, 'check'>): CredentialResult {
  const result = tokens.check(token, server);
  if (!result.ok) return { ok: false, reason: 'token-invalid', detail: result.reason };
  const { owner } = result;
  return {
    ok: true,
    principal: {
      identity: { sub: owner.sub, username: owner.username, groups: [...owner.groups], provider: owner.provider },
      scopes: result.scopes,
      expiresAt: result.expiresAt,
    },
  };
}
