import { GatewayError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { StoredRecord, WatchedRecordStore } from '../store/index.ts';
import { sealedKeyId, type KeyRing } from './key-ring.ts';
import type { SecretInfo, SecretVault } from './types.ts';

/** The record store namespace (STATE_DIR/credentials, or the Redis namespace `credentials`). */
export const CREDENTIALS_NAMESPACE = 'credentials';

/** One secret at rest: sealed by the key ring, never the plaintext. */
export interface CredentialRecord {
  /** `v1.<kid>.<iv>.<ciphertext+tag>` (key-ring.ts), sealed for this record's key. */
  readonly sealed: string;
  /** The key that sealed it (the same as in `sealed`; kept apart for listing). */
  readonly keyId: string;
  /** When the secret was last set (ms since epoch); a reseal keeps it. */
  readonly updatedAt: number;
}

/** How many secrets each key id seals: an old key may leave the ring once its count is 0. */
export interface KeyUsage {
  readonly keyId: string;
  readonly secrets: number;
  /** The key that seals new values (the first of CREDENTIAL_KEYS). */
  readonly sealing: boolean;
  /** False: secrets sealed under a key no longer in the ring (they cannot be opened). */
  readonly inRing: boolean;
}

export interface VaultOptions {
  readonly store: WatchedRecordStore<CredentialRecord>;
  readonly keys: KeyRing;
  readonly log: Logger;
  readonly now?: () => number;
}

/**
 * Secrets never expire on their own: a record's expiresAt is far away (100 years), and every put
 * or reseal moves it on. They leave through `delete` only.
 */
const NO_EXPIRY_MS = 100 * 365 * 24 * 3600 * 1000;
/** Longest secret accepted (a header value, a token, a PEM key all fit). */
const MAX_PLAINTEXT_BYTES = 64 * 1024;
/** Compare-and-set attempts before a put gives up (each loss means another writer won a race). */
const MAX_ATTEMPTS = 16;

/**
 * The backend-secret vault (issue 13) over a record store that holds sealed values only.
 *
 * `peek` is the per-request read: the record from the store's memory, opened once per
 * (id, version) and cached. The cache follows the store's `onChange`, so a put, reseal or delete
 * on another replica (Redis) replaces or drops the plaintext here. A value that cannot be opened
 * (its key left the ring, or it was altered) reads as absent and is logged once per id. Neither
 * plaintext nor sealed values are ever logged.
 */
export class Vault implements SecretVault {
  readonly #store: WatchedRecordStore<CredentialRecord>;
  readonly #keys: KeyRing;
  readonly #log: Logger;
  readonly #now: () => number;
  /** id → the plaintext of one version (undefined: that version does not open). */
  readonly #cache = new Map<string, { readonly version: number; readonly plaintext: string | undefined }>();
  /** ids whose value could not be opened, logged once each until the value changes. */
  readonly #reported = new Set<string>();
  readonly #unsubscribe: () => void;

  constructor(options: VaultOptions) {
    this.#store = options.store;
    this.#keys = options.keys;
    this.#log = options.log;
    this.#now = options.now ?? Date.now;
    this.#unsubscribe = this.#store.onChange((id) => {
      this.#cache.delete(id);
      this.#reported.delete(id);
    });
  }

  async put(id: string, plaintext: string): Promise<void> {
    checkId(id);
    if (Buffer.byteLength(plaintext, 'utf8') > MAX_PLAINTEXT_BYTES)
      throw new GatewayError('REQUEST_INVALID', `a secret may be at most ${MAX_PLAINTEXT_BYTES / 1024} KiB`);
    const value: CredentialRecord = { sealed: this.#keys.seal(id, plaintext), keyId: this.#keys.sealingKeyId, updatedAt: this.#now() };
    let current = await this.#store.get(id);
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const options = { expiresAt: this.#now() + NO_EXPIRY_MS };
      const result =
        current === undefined ? await this.#store.create(id, value, options) : await this.#store.compareAndSet(id, current.version, value, options);
      if (result.ok) {
        this.#remember(result.record, plaintext);
        return;
      }
      current = result.current;
    }
    throw new GatewayError('INTERNAL', `the secret ${id} kept changing under ${MAX_ATTEMPTS} attempts to write it`);
  }

  peek(id: string): string | undefined {
    const record = this.#store.peek(id); // throws STORE_UNAVAILABLE when the mirror cannot answer
    if (record === undefined) return undefined;
    const cached = this.#cache.get(id);
    if (cached?.version === record.version) return cached.plaintext;
    const plaintext = this.#keys.open(id, record.value.sealed);
    if (plaintext === undefined && !this.#reported.has(id)) {
      this.#reported.add(id);
      const keyId = sealedKeyId(record.value.sealed);
      this.#log.error(
        { secret: id, keyId, inRing: keyId !== undefined && this.#keys.has(keyId) },
        'a backend secret cannot be opened (its key is not in CREDENTIAL_KEYS, or the stored value was altered); it is treated as absent',
      );
    }
    this.#cache.set(id, { version: record.version, plaintext });
    return plaintext;
  }

  async delete(id: string): Promise<boolean> {
    const removed = await this.#store.destroy(id);
    this.#cache.delete(id);
    return removed;
  }

  list(): readonly SecretInfo[] {
    return this.#store
      .snapshot()
      .map((record) => ({ id: record.key, updatedAt: record.value.updatedAt, keyId: keyIdOf(record) }))
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /** Secrets per key id: every key of the ring (0 when unused), then ids found that the ring lacks. */
  keyUsage(): readonly KeyUsage[] {
    const counts = new Map<string, number>(this.#keys.keyIds.map((kid) => [kid, 0]));
    for (const record of this.#store.snapshot()) {
      const kid = keyIdOf(record);
      counts.set(kid, (counts.get(kid) ?? 0) + 1);
    }
    return [...counts].map(([keyId, secrets]) => ({ keyId, secrets, sealing: keyId === this.#keys.sealingKeyId, inRing: this.#keys.has(keyId) }));
  }

  /**
   * Seals every secret not yet under the sealing key again under it (after a rotation), each with
   * compare-and-set: a secret changed meanwhile is left as its writer sealed it (under the
   * sealing key too, unless that replica has the older ring). Secrets that cannot be opened are
   * left as they are and logged. Reads the store itself (`list`), not the memory copy.
   */
  async reseal(): Promise<number> {
    const sealing = this.#keys.sealingKeyId;
    let resealed = 0;
    for (const record of await this.#store.list()) {
      if (keyIdOf(record) === sealing) continue;
      const plaintext = this.#keys.open(record.key, record.value.sealed);
      if (plaintext === undefined) {
        this.#log.error({ secret: record.key, keyId: keyIdOf(record) }, 'reseal: a backend secret cannot be opened; it stays as it is');
        continue;
      }
      const value: CredentialRecord = { sealed: this.#keys.seal(record.key, plaintext), keyId: sealing, updatedAt: record.value.updatedAt };
      const result = await this.#store.compareAndSet(record.key, record.version, value, { expiresAt: this.#now() + NO_EXPIRY_MS });
      if (!result.ok) continue;
      this.#remember(result.record, plaintext);
      resealed++;
    }
    this.#log.info({ resealed, keyId: sealing }, 'backend secrets resealed under the sealing key');
    return resealed;
  }

  /** Stops following the store (the store itself is closed by whoever opened it). */
  close(): void {
    this.#unsubscribe();
    this.#cache.clear();
  }

  /** Caches what this replica just wrote, unless a newer version is in memory already. */
  #remember(record: StoredRecord<CredentialRecord>, plaintext: string): void {
    const cached = this.#cache.get(record.key);
    if (cached !== undefined && cached.version > record.version) return;
    this.#cache.set(record.key, { version: record.version, plaintext });
    this.#reported.delete(record.key);
  }
}

function keyIdOf(record: StoredRecord<CredentialRecord>): string {
  return sealedKeyId(record.value.sealed) ?? record.value.keyId;
}

/** Ids are chosen by the gateway's own code (a server name and a field), never secret themselves. */
function checkId(id: string): void {
  if (!/^[\x21-\x7e]{1,256}$/.test(id)) throw new GatewayError('REQUEST_INVALID', 'a secret id must be 1-256 printable characters without spaces');
}
