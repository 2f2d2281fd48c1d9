/**
 * MCP sessions belong to the principal that opened them, with no table: the id a client sees
 * is the backend's id sealed with a key only that principal's requests unlock.
 *
 *   K    = HKDF-SHA256(SECRET_KEY, info 'mcp-session-binding v1')      (once per process)
 *   K_p  = HMAC-SHA256(K, principal id)                                (cached, bounded)
 *   tag  = base64url(HMAC-SHA256(K_p, kind NUL server NUL value))[0..22)   (132 bits)
 *   id   = base64url(value) '.' tag                                  (no flags)
 *   tag' = base64url(HMAC-SHA256(K_p, kind NUL server NUL value NUL flags))[0..22)
 *   id'  = base64url(value) '.' tag' '.' flags                           (flags: `u`)
 *
 * `kind` is `streamable` (value: the backend's Mcp-Session-Id) or `sse` (value: the path and
 * query of the backend's legacy messages endpoint). njs seals on the way out (nginx/njs/mcp.js,
 * with K_p the check handed it); the check opens on the way in, here. Every replica that shares
 * SECRET_KEY derives the same keys, so an id survives a restart and works on any replica.
 * Another principal's K_p gives another tag: the id is simply unknown to them.
 *
 * Flags record what the client declared when it opened the session, for the gateway's own
 * answers on later requests of it (issue 13): `u`, the initialize request declared
 * `capabilities.elicitation.url` (MCP 2025-11-25, client/elicitation "Capabilities"), so a
 * BACKEND_CONNECT_REQUIRED may be answered as a URLElicitationRequiredError. The id is the
 * only per-session record: no table, no lookup, every replica reads it. The flags are under
 * the tag, so a client cannot add them to a session later (it could only have declared them at
 * initialize); an id without flags is the format of before, so sessions survive the upgrade.
 */
import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';
import type { Principal } from './credentials.ts';

export type SessionKind = 'streamable' | 'sse';

/** What a sealed id may wrap: visible ASCII (the spec's rule for session ids), bounded. */
const SESSION_VALUE = /^[\x21-\x7e]{1,256}$/;
/**
 * A legacy messages target: an origin-relative path and query of visible ASCII, without `"`,
 * `#` or a leading `//` (which a backend could read as another host). nginx sends it as is.
 */
const SSE_TARGET = /^\/(?:[\x21\x24-\x2e\x30-\x7e][\x21\x24-\x7e]{0,1022})?$/;
const TAG_LENGTH = 22;
const SEALED = /^([A-Za-z0-9_-]{2,1400})\.([A-Za-z0-9_-]{22})(?:\.(u))?$/;
const MAX_CACHED_KEYS = 10_000;
const MAX_CACHED_OPENS = 10_000;

export const BINDING_LABEL = 'mcp-session-binding v1';

/**
 * The principal a session belongs to. JSON keeps the parts apart (no separator a `sub` could
 * contain can make a person look like a machine client). The same person signed in with a
 * cookie or holding a bearer token is one principal: provider and subject, nothing else.
 */
export function principalBindingId(principal: Principal, authEnabled: boolean): string {
  if (!authEnabled) return '["anonymous"]';
  const { identity } = principal;
  if (principal.machineClient !== undefined) return JSON.stringify(['client', identity.provider, principal.machineClient]);
  return JSON.stringify(['person', identity.provider, identity.sub]);
}

export interface PrincipalKey {
  readonly key: Buffer;
  /** K_p as base64url: what njs receives in X-MCP-Session-Key. */
  readonly header: string;
}

/** What the client declared at initialize, kept in its session id (the `flags` above). */
export type SessionFlags = '' | 'u';
/** `urlElicitation`: present (true) only when the session's initialize declared URL-mode elicitation. */
export type Opened = { ok: true; value: string; urlElicitation?: true } | { ok: false; reason: 'session-malformed' | 'session-unbound' };

export interface SessionBinding {
  keyFor(principalId: string): PrincipalKey;
  /** What njs does; here for tests and for one definition of the format. */
  seal(kind: SessionKind, server: string, value: string, key: PrincipalKey, flags?: SessionFlags): string;
  /** Checks a client's id against the principal's key; the backend value when it is theirs. */
  open(kind: SessionKind, server: string, sealed: string, key: PrincipalKey): Opened;
}

export function createSessionBinding(secret: string): SessionBinding {
  if (!secret) throw new TypeError('createSessionBinding: a secret is required');
  const root = Buffer.from(hkdfSync('sha256', secret, Buffer.alloc(0), BINDING_LABEL, 32));
  const cache = new Map<string, PrincipalKey>();
  /**
   * Ids already opened, by their exact text: a client sends the same id on every request of a
   * session, and an HMAC costs more than the rest of the check's session work (about 10 µs).
   * A hit needs the same key object, kind and server, so it can only repeat a success.
   */
  const opened = new Map<string, { readonly key: PrincipalKey; readonly kind: SessionKind; readonly server: string; readonly result: Opened }>();

  function keyFor(principalId: string): PrincipalKey {
    let found = cache.get(principalId);
    if (found === undefined) {
      const key = createHmac('sha256', root).update(principalId).digest();
      found = Object.freeze({ key, header: key.toString('base64url') });
      // Bounded: the oldest entry goes first; a miss only costs one HMAC.
      if (cache.size >= MAX_CACHED_KEYS) cache.delete(cache.keys().next().value as string);
      cache.set(principalId, found);
    }
    return found;
  }

  function tag(kind: SessionKind, server: string, value: string, key: PrincipalKey, flags: SessionFlags): string {
    const input = flags === '' ? `${kind}\u0000${server}\u0000${value}` : `${kind}\u0000${server}\u0000${value}\u0000${flags}`;
    return createHmac('sha256', key.key).update(input).digest('base64url').slice(0, TAG_LENGTH);
  }

  return {
    keyFor,
    seal(kind, server, value, key, flags = '') {
      if (!valueAllowed(kind, value)) throw new Error(`refusing to seal ${JSON.stringify(value.slice(0, 80))}`);
      const sealed = `${Buffer.from(value).toString('base64url')}.${tag(kind, server, value, key, flags)}`;
      return flags === '' ? sealed : `${sealed}.${flags}`;
    },
    open(kind, server, sealed, key) {
      const known = opened.get(sealed);
      if (known !== undefined && known.key === key && known.kind === kind && known.server === server) return known.result;
      const parts = SEALED.exec(sealed);
      if (!parts) return { ok: false, reason: 'session-malformed' };
      const value = Buffer.from(parts[1] ?? '', 'base64url').toString('latin1');
      // Canonical base64url only, so one session has one spelling.
      if (!valueAllowed(kind, value) || Buffer.from(value, 'latin1').toString('base64url') !== parts[1]) return { ok: false, reason: 'session-malformed' };
      const flags: SessionFlags = parts[3] === 'u' ? 'u' : '';
      const expected = Buffer.from(tag(kind, server, value, key, flags));
      const given = Buffer.from(parts[2] ?? '');
      if (!timingSafeEqual(expected, given)) return { ok: false, reason: 'session-unbound' };
      const result: Opened = Object.freeze(flags === 'u' ? { ok: true, value, urlElicitation: true } : { ok: true, value });
      if (opened.size >= MAX_CACHED_OPENS) opened.delete(opened.keys().next().value as string);
      opened.set(sealed, { key, kind, server, result });
      return result;
    },
  };
}

function valueAllowed(kind: SessionKind, value: string): boolean {
  return kind === 'sse' ? SSE_TARGET.test(value) : SESSION_VALUE.test(value);
}
