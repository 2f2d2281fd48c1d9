/**
 * CREDENTIAL_KEYS: the key ring that seals backend secrets at rest (credentials/key-ring.ts).
 * `<kid>:<key>[,<kid>:<key>…]`, the first key seals, every key opens; a key is 32 bytes in
 * base64 or base64url (`openssl rand -base64 32`). The entry `sk` alone stands for the key
 * derived from SECRET_KEY (the default with REDIS_URL), so a ring can move off it.
 *
 * Problems name the entry by its position and never repeat what was written: an entry that
 * lacks its colon is all key.
 */

/** One key of the ring: its id (stored next to what it sealed) and 32 bytes in base64url. */
export interface CredentialKey {
  readonly id: string;
  readonly secret: string;
}

/** A key id as written to the ring; `secret` undefined: the key derived from SECRET_KEY (`sk`). */
export type CredentialKeyEntry = { readonly id: string; readonly secret: string | undefined };

/** The id of the key derived from SECRET_KEY. */
export const DERIVED_KEY_ID = 'sk';

const KEY_ID = /^[a-z0-9-]{1,32}$/;
const BASE64 = /^[A-Za-z0-9+/_-]+={0,2}$/;
const FORM = 'write <kid>:<32 bytes in base64> (try: echo "k1:$(openssl rand -base64 32)")';

/**
 * Parses a key ring. Every problem is one line naming `source` (CREDENTIAL_KEYS, or the
 * generated file) and the entry's position, never the key.
 */
export function parseCredentialKeys(text: string, source: string): { ok: true; keys: CredentialKeyEntry[] } | { ok: false; errors: string[] } {
  const entries = text.split(',').map((entry) => entry.trim());
  const errors: string[] = [];
  const keys: CredentialKeyEntry[] = [];
  const seen = new Set<string>();
  entries.forEach((entry, index) => {
    const where = entries.length === 1 ? source : `${source} entry ${index + 1} of ${entries.length}`;
    const parsed = parseEntry(entry, seen);
    if (typeof parsed === 'string') errors.push(`${where}${parsed}`);
    else keys.push(parsed);
  });
  return errors.length > 0 ? { ok: false, errors } : { ok: true, keys };
}

/** One entry, or what is wrong with it (to follow the entry's name). */
function parseEntry(entry: string, seen: Set<string>): CredentialKeyEntry | string {
  if (entry === '') return ` is empty; ${FORM}`;
  const colon = entry.indexOf(':');
  if (colon < 0 && entry !== DERIVED_KEY_ID) return ` has no key id; ${FORM}`;
  const id = colon < 0 ? entry : entry.slice(0, colon);
  if (!KEY_ID.test(id)) return `: the key id must be 1-32 of a-z 0-9 - ; ${FORM}`;
  if (seen.has(id)) return `: the key id ${id} appears twice; each key id must be unique`;
  seen.add(id);
  if (id === DERIVED_KEY_ID)
    return colon < 0 ? { id, secret: undefined } : ': the key id sk is the key derived from SECRET_KEY; write sk alone for it, or choose another id';
  const encoded = entry.slice(colon + 1);
  const bytes = BASE64.test(encoded) ? Buffer.from(encoded.replace(/-/g, '+').replace(/_/g, '/'), 'base64') : undefined;
  if (bytes === undefined) return `: the key of ${id} is not base64 or base64url; ${FORM}`;
  if (bytes.length !== 32) return `: the key of ${id} is ${bytes.length} bytes, not 32; ${FORM}`;
  return { id, secret: bytes.toString('base64url') };
}
