/**
 * The catalog's writes when it lives in a shared store (docs/store.md, "The catalog in a shared
 * store"): one record per server, keyed by its name. Every write is a compare-and-set on the
 * version that was read, so two replicas editing at once cannot both win, and seeding the same
 * files from several replicas at once converges instead of fighting.
 */
import { createHash } from 'node:crypto';
import { GatewayError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { StoredRecord, WatchedRecordStore } from '../store/record-store.ts';
import { formatServerDefinition } from './load-definition.ts';
import { freezeDefinition, serverDefinitionSchema, type ServerDefinition } from './server-definition.ts';

/**
 * One server in the shared store. `definition` absent: deleted through the page or the API
 * while its seed file still exists (a tombstone, so the unchanged file does not bring it back at
 * the next start). `fileHash`: SHA-256 of the seed file's text last applied, kept across page
 * and API edits, so a file only wins again when the file itself changes.
 */
export interface CatalogRecord {
  readonly definition?: ServerDefinition;
  readonly fileHash?: string;
}

export type CatalogStore = WatchedRecordStore<CatalogRecord>;

/** Catalog records do not expire; stores require an expiry, so it is a century away. */
const CENTURY_MS = 100 * 365 * 24 * 3600 * 1000;
/** Compare-and-set rounds before a write gives up (only reachable under a storm of writes to one server). */
const MAX_ROUNDS = 8;

/** The SHA-256 of a seed file's text. */
export function fileHash(text: string): string {
  return createHash('sha256').update(text).digest('base64url');
}

/**
 * A short fingerprint of a definition as the catalog writes it: an ETag for the REST API and
 * the hidden `version` of the edit form, so concurrent edits are refused, not lost.
 */
export function definitionVersion(def: ServerDefinition): string {
  return createHash('sha256').update(formatServerDefinition(def)).digest('base64url').slice(0, 22);
}

/**
 * The definition a record holds, validated again (it comes over the network from another
 * replica, perhaps of another version): undefined for a tombstone or an invalid definition.
 */
export function definitionOf(record: StoredRecord<CatalogRecord> | undefined, log: Logger): ServerDefinition | undefined {
  const stored = record?.value.definition;
  if (stored === undefined) return undefined;
  const parsed = serverDefinitionSchema.safeParse(stored);
  if (!parsed.success || parsed.data.name !== record?.key) {
    log.warn({ server: record?.key }, 'the shared catalog holds an invalid definition; it is ignored');
    return undefined;
  }
  return freezeDefinition(parsed.data);
}

export class SharedCatalogWriter {
  readonly #store: CatalogStore;
  readonly #log: Logger;

  constructor(store: CatalogStore, log: Logger) {
    this.#store = store;
    this.#log = log;
  }

  /**
   * Applies a seed file: writes its definition only when the file's text differs from the text
   * last applied from it. Idempotent, so replicas seeding the same file at once agree.
   * Returns the record written, or undefined when the store already had it.
   */
  async seed(def: ServerDefinition, hash: string): Promise<StoredRecord<CatalogRecord> | undefined> {
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const current = await this.#store.get(def.name);
      if (current?.value.fileHash === hash) return undefined;
      const value: CatalogRecord = { definition: def, fileHash: hash };
      const result = current
        ? await this.#store.compareAndSet(def.name, current.version, value, this.#forever())
        : await this.#store.create(def.name, value, this.#forever());
      if (result.ok) return result.record;
    }
    throw busy(def.name);
  }

  /** Registers a server (over a tombstone too). @throws SERVER_EXISTS when the name is taken. */
  async create(def: ServerDefinition): Promise<StoredRecord<CatalogRecord>> {
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const created = await this.#store.create(def.name, { definition: def }, this.#forever());
      if (created.ok) return created.record;
      const current = created.current;
      if (current === undefined) continue; // destroyed in between: try again
      if (definitionOf(current, this.#log) !== undefined) throw new GatewayError('SERVER_EXISTS', `A server named ${def.name} already exists.`);
      const revived = await this.#store.compareAndSet(def.name, current.version, { ...withHash(current), definition: def }, this.#forever());
      if (revived.ok) return revived.record;
    }
    throw busy(def.name);
  }

  /**
   * Replaces a definition. With `expectedVersion` (a definitionVersion), refuses when the
   * definition read differs from it, or when another write lands between that read and this
   * one (the compare-and-set loses): exactly one of two concurrent edits wins.
   * @throws SERVER_UNKNOWN, SERVER_CHANGED
   */
  async replace(name: string, def: ServerDefinition, expectedVersion: string | undefined): Promise<StoredRecord<CatalogRecord> | undefined> {
    return this.#update(name, expectedVersion, (current) => (definitionVersion(current) === definitionVersion(def) ? undefined : def));
  }

  /** Enables or disables a server; retried on a lost compare-and-set (the caller named no version). */
  async setEnabled(name: string, enabled: boolean): Promise<StoredRecord<CatalogRecord> | undefined> {
    return this.#update(name, undefined, (current) => (current.enabled === enabled ? undefined : Object.freeze({ ...current, enabled })));
  }

  /**
   * Deletes a server. A server seeded from a file leaves a tombstone (with the file's hash), so
   * the unchanged file does not register it again at the next start; others are destroyed.
   * @throws SERVER_UNKNOWN, SERVER_CHANGED
   */
  async delete(name: string, expectedVersion: string | undefined): Promise<{ key: string; record: StoredRecord<CatalogRecord> | undefined }> {
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const current = await this.#store.get(name);
      const def = definitionOf(current, this.#log);
      if (current === undefined || def === undefined) throw unknown(name);
      assertVersion(def, expectedVersion);
      if (current.value.fileHash === undefined) {
        if (await this.#store.destroy(name, current.version)) return { key: name, record: undefined };
      } else {
        const result = await this.#store.compareAndSet(name, current.version, { fileHash: current.value.fileHash }, this.#forever());
        if (result.ok) return { key: name, record: result.record };
      }
      if (expectedVersion !== undefined) throw changed(name);
    }
    throw busy(name);
  }

  /** Read, check, compare-and-set; `next` returns undefined when nothing needs writing. */
  async #update(
    name: string,
    expectedVersion: string | undefined,
    next: (current: ServerDefinition) => ServerDefinition | undefined,
  ): Promise<StoredRecord<CatalogRecord> | undefined> {
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const current = await this.#store.get(name);
      const def = definitionOf(current, this.#log);
      if (current === undefined || def === undefined) throw unknown(name);
      assertVersion(def, expectedVersion);
      const replacement = next(def);
      if (replacement === undefined) return undefined;
      const result = await this.#store.compareAndSet(name, current.version, { ...withHash(current), definition: replacement }, this.#forever());
      if (result.ok) return result.record;
      // Someone wrote in between. With a version named, that is exactly what it guards against.
      if (expectedVersion !== undefined) throw changed(name);
    }
    throw busy(name);
  }

  #forever(): { expiresAt: number } {
    return { expiresAt: Date.now() + CENTURY_MS };
  }
}

function withHash(record: StoredRecord<CatalogRecord>): { fileHash?: string } {
  return record.value.fileHash === undefined ? {} : { fileHash: record.value.fileHash };
}

export function assertVersion(current: ServerDefinition, expected: string | undefined): void {
  if (expected !== undefined && expected !== definitionVersion(current)) throw changed(current.name);
}

function changed(name: string): GatewayError {
  return new GatewayError('SERVER_CHANGED', `${name} was changed since you loaded it. Reload it and make your change again.`);
}

function unknown(name: string): GatewayError {
  return new GatewayError('SERVER_UNKNOWN', `There is no server named ${name}.`);
}

function busy(name: string): GatewayError {
  return new GatewayError('SERVER_CHANGED', `${name} is being changed by others right now. Reload it and try again.`);
}
