/**
 * What the check hands nginx for a backend's credential (issue 13), shared by every mode: the
 * headers of its answer, the answer itself, and the interface of the per-person modes.
 */
import type { PersonalAuth } from '../catalog/backend-auth.ts';
import type { ServerDefinition } from '../catalog/server-definition.ts';
import { credentialValueProblem } from './header-value.ts';
import type { Person } from './uploaded-tokens.ts';

/**
 * On the check's 200 for a server with a credential: the slots it fills, space-separated
 * (`authorization`, `h1`..`h8`); each slot's value is in `x-mcp-backend-<slot>`. njs copies them
 * into `$mcp_backend_<slot>`, which the backend locations send as `Authorization` and as the
 * BACKEND_CREDENTIAL_HEADERS names. Never from a client, never to a backend or a client.
 */
export const BACKEND_CREDENTIAL_HEADER = 'x-mcp-backend-credential';
export const BACKEND_SLOT_HEADER_PREFIX = 'x-mcp-backend-';
/** On a 502 BACKEND_CREDENTIAL_FAILED: what failed, in words without secrets (njs puts it in the message). */
export const ERROR_DETAIL_HEADER = 'x-mcp-error-detail';
/** At most this many custom header names (BACKEND_CREDENTIAL_HEADERS). */
export const MAX_HEADER_SLOTS = 8;

/**
 * Header name (lower case) → nginx slot: `authorization`, then `h1`.. for the
 * BACKEND_CREDENTIAL_HEADERS names in order.
 */
export function headerSlotMap(headerSlots: readonly string[]): ReadonlyMap<string, string> {
  if (headerSlots.length > MAX_HEADER_SLOTS) throw new TypeError(`at most ${MAX_HEADER_SLOTS} header slots`);
  return new Map([['authorization', 'authorization'], ...headerSlots.map((name, i) => [name.toLowerCase(), `h${i + 1}`] as [string, string])]);
}

/**
 * The check's answer for one server: the headers to add to its 200, or why there is no
 * credential. `connect`: the person can fix it themselves at this page (connect an account,
 * upload a token); the check answers BACKEND_CONNECT_REQUIRED naming it (URL-mode elicitation
 * on clients that support it), otherwise BACKEND_CREDENTIAL_FAILED.
 */
export type CredentialAnswer =
  { readonly ok: true; readonly headers: Readonly<Record<string, string>> } | { readonly ok: false; readonly reason: string; readonly connect?: string };

/**
 * The per-person credential of one mode (user_oauth: credentials/user-oauth.ts; token_exchange:
 * credentials/token-exchange.ts). `forCheck` is the hot path: memory only once a token is cached;
 * it returns a promise only when it must fetch (no token cached yet, or the cached one expired),
 * concurrent callers for one person and server sharing that fetch.
 */
export interface PersonalCredentialSource<A extends PersonalAuth> {
  forCheck(def: ServerDefinition, auth: A, person: Person): CredentialAnswer | Promise<CredentialAnswer>;
  /** Forgets what it holds for a server (it was deleted): sealed records included. Returns how many. */
  forgetServer?(server: string): Promise<number>;
  /** For the operator's view: how many people have a credential for this server (never whose). */
  count?(server: string): number;
}

/**
 * The check's answer that sends `token` as `Authorization: Bearer <token>` (nginx's
 * `authorization` slot), or why it cannot be sent as a header.
 */
export function bearerAnswer(token: string): CredentialAnswer {
  const value = `Bearer ${token}`;
  const problem = credentialValueProblem(value);
  if (problem) return { ok: false, reason: `the access token from the token endpoint cannot be sent: ${problem}` };
  return Object.freeze({
    ok: true,
    headers: Object.freeze({ [BACKEND_CREDENTIAL_HEADER]: 'authorization', [`${BACKEND_SLOT_HEADER_PREFIX}authorization`]: value }),
  });
}
