import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { CredentialKey } from '../config/credential-keys.ts';

/**
 * The key ring that seals backend secrets at rest (CREDENTIAL_KEYS): AES-256-GCM, a random
 * 96-bit IV per seal, the first key seals and every key opens.
 *
 * A sealed value is `v1.<kid>.<iv>.<ciphertext+tag>` (iv and body in base64url). The additional
 * authenticated data binds the format version, the key id and the secret's id, so a value edited
 * in the store, relabelled with another key id, or copied to another secret's id does not open.
 * Key bytes stay in this module: nothing here logs, and no error carries a key or a value.
 */
export class KeyRing {
  readonly #keys: ReadonlyMap<string, Buffer>;
  readonly #sealing: string;

  /** `keys` as config/load.ts resolved them (32 bytes each, base64url), the sealing key first. */
  constructor(keys: readonly CredentialKey[]) {
    const first = keys[0];
    if (first === undefined) throw new TypeError('a key ring needs at least one key');
    const map = new Map<string, Buffer>();
    for (const { id, secret } of keys) {
      const bytes = Buffer.from(secret, 'base64url');
      if (!KEY_ID.test(id) || bytes.length !== 32 || map.has(id)) throw new TypeError(`key ${map.size + 1} of the ring is malformed or repeated`);
      map.set(id, bytes);
    }
    this.#keys = map;
    this.#sealing = first.id;
  }

  /** The id of the key new seals use (the first). */
  get sealingKeyId(): string {
    return this.#sealing;
  }

  /** Every key id, the sealing one first. */
  get keyIds(): readonly string[] {
    return [...this.#keys.keys()];
  }

  /** Seals `plaintext` for the secret `id` under the first key. */
  seal(id: string, plaintext: string): string {
    const kid = this.#sealing;
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.#keys.get(kid)!, iv);
    cipher.setAAD(aad(kid, id));
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final(), cipher.getAuthTag()]);
    return [VERSION, kid, iv.toString('base64url'), body.toString('base64url')].join('.');
  }

  /**
   * The plaintext of a value sealed for `id`, or undefined: malformed, sealed under a key not in
   * the ring, altered, or sealed for another id (GCM's tag covers all of it).
   */
  open(id: string, sealed: string): string | undefined {
    const parts = parseSealed(sealed);
    const key = parts && this.#keys.get(parts.kid);
    if (!parts || !key) return undefined;
    try {
      const decipher = createDecipheriv('aes-256-gcm', key, parts.iv);
      decipher.setAAD(aad(parts.kid, id));
      decipher.setAuthTag(parts.body.subarray(parts.body.length - TAG_BYTES));
      return Buffer.concat([decipher.update(parts.body.subarray(0, parts.body.length - TAG_BYTES)), decipher.final()]).toString('utf8');
    } catch {
      return undefined;
    }
  }

  /** Whether this ring holds the key `kid`. */
  has(kid: string): boolean {
    return this.#keys.has(kid);
  }
}

/** The key id a sealed value names (not proof that it was sealed with it: only `open` proves that). */
export function sealedKeyId(sealed: string): string | undefined {
  return parseSealed(sealed)?.kid;
}

const VERSION = 'v1';
const IV_BYTES = 12;
const TAG_BYTES = 16;
const KEY_ID = /^[a-z0-9-]{1,32}$/;

/** Length-prefixed by JSON, so no (kid, id) pair can be spelt like another. */
function aad(kid: string, id: string): Buffer {
  return Buffer.from(JSON.stringify(['mcp-gateway credential', VERSION, kid, id]), 'utf8');
}

function parseSealed(sealed: string): { kid: string; iv: Buffer; body: Buffer } | undefined {
  if (typeof sealed !== 'string') return undefined; // a record of another shape (another version wrote it)
  const parts = sealed.split('.');
  if (parts.length !== 4 || parts[0] !== VERSION) return undefined;
  const [, kid, iv, body] = parts as [string, string, string, string];
  if (!KEY_ID.test(kid) || !/^[A-Za-z0-9_-]+$/.test(iv) || !/^[A-Za-z0-9_-]+$/.test(body)) return undefined;
  const ivBytes = Buffer.from(iv, 'base64url');
  const bodyBytes = Buffer.from(body, 'base64url');
  if (ivBytes.length !== IV_BYTES || bodyBytes.length < TAG_BYTES) return undefined;
  return { kid, iv: ivBytes, body: bodyBytes };
}
