import { EventEmitter } from 'node:events';
import { link, readdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { watch, type FSWatcher } from 'chokidar';
import { GatewayError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { StoredRecord } from '../store/record-store.ts';
import { formatServerDefinition, loadServerDefinition } from './load-definition.ts';
import { SERVER_NAME_PATTERN, type ServerDefinition } from './server-definition.ts';
import { assertVersion, definitionOf, definitionVersion, fileHash, SharedCatalogWriter, type CatalogRecord, type CatalogStore } from './shared-catalog.ts';

export { definitionVersion } from './shared-catalog.ts';
export type { CatalogRecord, CatalogStore } from './shared-catalog.ts';

/** A catalog file that failed validation; shown on the page until it is fixed. */
export interface CatalogProblem {
  readonly file: string;
  readonly message: string;
}

interface SharedBacking {
  readonly store: CatalogStore;
  readonly writer: SharedCatalogWriter;
  /** The newest record version applied per server. */
  readonly versions: Map<string, number>;
  unsubscribe: () => void;
  closed: boolean;
  readonly retryMs: number;
}

/**
 * Rules of this gateway's configuration a definition must also follow (a backend credential
 * header nginx has a slot for, say): a message, or undefined when it passes. A file that
 * fails is reported and ignored like an invalid one.
 */
export type DefinitionPolicy = (def: ServerDefinition) => string | undefined;

interface CatalogEvents {
  changed: [definitions: readonly ServerDefinition[]];
}

export interface SharedCatalogOptions {
  /** The seed files (`CATALOG_DIR`); read at start and watched, never written. */
  readonly dir: string;
  /** The shared catalog: Redis's local mirror in production, a FileRecordStore for one process. */
  readonly store: CatalogStore;
  readonly log: Logger;
  /** How soon a file that could not be applied (store unreachable) is tried again; default 5 s. */
  readonly seedRetryMs?: number;
  readonly policy?: DefinitionPolicy;
}

/**
 * The server catalog, with one of two backings:
 * - files (`open`): one JSON file per server in `dir`. The files are the truth; this class
 *   holds the last good definition of each and is the only writer (temp file + rename, so a
 *   reader never sees half a file).
 * - a shared store (`openShared`): every replica reads and writes one record per server, and
 *   hears every replica's changes (the store's onChange). The files in `dir` are a seed: a
 *   file's definition is written when the file's text differs from the text last applied from
 *   it, so page and API edits survive restarts until the file itself changes.
 * Either way it announces every change with `changed`, and a file that fails validation is
 * reported in `problems()` while the last good definition stays in force.
 */
export class Catalog extends EventEmitter<CatalogEvents> {
  readonly dir: string;
  readonly #log: Logger;
  readonly #byFile = new Map<string, ServerDefinition>();
  readonly #problems = new Map<string, string>();
  /** Shared mode only: the store, its writer, the newest version applied per server, and the unsubscribe. */
  readonly #shared: SharedBacking | undefined;
  #watcher: FSWatcher | undefined;
  #queue: Promise<void> = Promise.resolve();
  #writes = 0;
  readonly #policy: DefinitionPolicy | undefined;

  private constructor(dir: string, log: Logger, store?: CatalogStore, seedRetryMs = 5000, policy?: DefinitionPolicy) {
    super();
    this.dir = dir;
    this.#log = log;
    this.#policy = policy;
    if (store) {
      const versions = new Map<string, number>();
      this.#shared = { store, writer: new SharedCatalogWriter(store, log), versions, unsubscribe: () => undefined, closed: false, retryMs: seedRetryMs };
      // Subscribe before the first snapshot, so no change falls between the two.
      this.#shared.unsubscribe = store.onChange((key, record) => this.#applyRecord(key, record));
    }
  }

  /** Reads every `*.json` file in `dir`: the files are the catalog. A missing folder is a start error. */
  static async open(dir: string, log: Logger, policy?: DefinitionPolicy): Promise<Catalog> {
    const catalog = new Catalog(dir, log, undefined, 5000, policy);
    await catalog.#loadFolder();
    return catalog;
  }

  /**
   * A catalog kept in a shared store, seeded from the files in `dir` (see the class comment).
   * Page and API edits go to the store only; deleting a file deletes nothing.
   */
  static async openShared(options: SharedCatalogOptions): Promise<Catalog> {
    const catalog = new Catalog(options.dir, options.log, options.store, options.seedRetryMs, options.policy);
    for (const record of options.store.snapshot()) catalog.#applyRecord(record.key, record);
    await catalog.#loadFolder();
    return catalog;
  }

  /** True when the catalog lives in a shared store (edits are not written to files). */
  get shared(): boolean {
    return this.#shared !== undefined;
  }

  async #loadFolder(): Promise<void> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      throw new GatewayError('CONFIG_INVALID', `CATALOG_DIR ${this.dir} cannot be read: ${(err as Error).message}`, { cause: err });
    }
    for (const name of names.filter((n) => n.endsWith('.json')).sort()) await this.#reload(join(this.dir, name), false);
  }

  /** Every valid definition, sorted by name. */
  list(): readonly ServerDefinition[] {
    return [...this.#byFile.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  /**
   * The definition of one server, by name. On every MCP request (the check), so a map lookup: a
   * definition's file is always `<name>.json` in this folder (load-definition.ts enforces it).
   */
  get(name: string): ServerDefinition | undefined {
    return this.#byFile.get(this.#fileFor(name));
  }

  problems(): readonly CatalogProblem[] {
    return [...this.#problems].map(([file, message]) => ({ file: basename(file), message }));
  }

  /** Enables or disables a server by rewriting its file; announces the change at once. */
  async setEnabled(name: string, enabled: boolean): Promise<ServerDefinition> {
    if (this.#shared) {
      this.#existing(name);
      const record = await this.#shared.writer.setEnabled(name, enabled);
      if (record) this.#log.info({ server: name, enabled }, 'server toggled');
      return this.#afterWrite(name, record);
    }
    return this.#serialized(async () => {
      const current = this.#existing(name);
      if (current.enabled === enabled) return current;
      const next = Object.freeze({ ...current, enabled });
      await this.#write(next, 'replace');
      this.#log.info({ server: name, enabled }, 'server toggled');
      return next;
    });
  }

  /**
   * Adds a server: writes `<name>.json` only if no file of that name exists (a hard link of a
   * finished temp file, so it is atomic, and a hand-made file with problems is never overwritten).
   * @throws GatewayError SERVER_EXISTS when the name is taken.
   */
  async create(def: ServerDefinition): Promise<ServerDefinition> {
    if (this.#shared) {
      const record = await this.#shared.writer.create(def);
      this.#log.info({ server: def.name }, 'server registered');
      return this.#afterWrite(def.name, record);
    }
    return this.#serialized(async () => {
      if (this.get(def.name)) throw new GatewayError('SERVER_EXISTS', `A server named ${def.name} already exists.`);
      await this.#write(def, 'create');
      this.#log.info({ server: def.name }, 'server registered');
      return def;
    });
  }

  /**
   * Replaces a server's definition (same name). With `expectedVersion`, refuses when the
   * definition changed since the caller read it (another operator, or an edit on disk).
   * @throws GatewayError SERVER_UNKNOWN, SERVER_CHANGED
   */
  async replace(name: string, def: ServerDefinition, expectedVersion?: string): Promise<ServerDefinition> {
    if (this.#shared) {
      this.#existing(name);
      assertSameName(name, def);
      const record = await this.#shared.writer.replace(name, def, expectedVersion);
      if (record) this.#log.info({ server: name }, 'server definition updated');
      return this.#afterWrite(name, record);
    }
    return this.#serialized(async () => {
      const current = this.#existing(name);
      assertSameName(name, def);
      assertVersion(current, expectedVersion);
      if (definitionVersion(current) === definitionVersion(def)) return current;
      await this.#write(def, 'replace');
      this.#log.info({ server: name }, 'server definition updated');
      return def;
    });
  }

  /** Deletes a server's file; its routes leave nginx at the next sync. @throws SERVER_UNKNOWN, SERVER_CHANGED */
  async delete(name: string, expectedVersion?: string): Promise<void> {
    if (this.#shared) {
      this.#existing(name);
      const { key, record } = await this.#shared.writer.delete(name, expectedVersion);
      this.#applyRecord(key, record);
      this.#log.info({ server: name }, 'server deleted');
      return;
    }
    return this.#serialized(async () => {
      const current = this.#existing(name);
      assertVersion(current, expectedVersion);
      try {
        await unlink(this.#fileFor(name));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
      this.#remove(this.#fileFor(name));
      this.#log.info({ server: name }, 'server deleted');
    });
  }

  /** Watches the folder; edits on disk take effect at once (after the write settles). */
  watch(): void {
    if (this.#watcher) return;
    this.#watcher = watch(this.dir, {
      ignoreInitial: true,
      depth: 0,
      ignored: (path: string) => basename(path).startsWith('.'),
      awaitWriteFinish: { stabilityThreshold: 50, pollInterval: 20 },
    });
    // In line with the page's and API's writes: a reload that read the file just before one of
    // them landed must not apply that older text after it (a toggle briefly undone).
    const onFile = (path: string) => {
      if (path.endsWith('.json')) void this.#serialized(() => this.#reload(path, true));
    };
    this.#watcher
      .on('add', onFile)
      .on('change', onFile)
      // With a shared store a file is only a seed: removing it deletes nothing (delete through the page or API).
      .on('unlink', (path) => (this.#shared ? this.#problems.delete(join(this.dir, basename(path))) : this.#remove(path)));
    this.#watcher.on('error', (err) => this.#log.error({ err }, 'catalog watcher failed'));
  }

  /** Stops watching (and listening to the shared store, which stays open: its owner closes it). */
  async close(): Promise<void> {
    this.#shared?.unsubscribe();
    if (this.#shared) this.#shared.closed = true;
    await this.#watcher?.close();
    this.#watcher = undefined;
  }

  /** The one key a file has in #byFile, however the watcher spelled its path. */
  #fileFor(name: string): string {
    return join(this.dir, `${name}.json`);
  }

  #existing(name: string): ServerDefinition {
    if (!SERVER_NAME_PATTERN.test(name)) throw new GatewayError('SERVER_NAME_INVALID', 'That is not a valid server name.');
    const current = this.get(name);
    if (!current) throw new GatewayError('SERVER_UNKNOWN', `There is no server named ${name}.`);
    return current;
  }

  /** After a write of ours to the shared store: apply it at once (the store may announce it later), return what is in force. */
  #afterWrite(name: string, record: StoredRecord<CatalogRecord> | undefined): ServerDefinition {
    if (record) this.#applyRecord(name, record);
    return this.#existing(name);
  }

  /**
   * Shared mode: a record changed (any replica's write, or ours). Applied only when newer than
   * the last one applied for that server, so a late announcement never undoes a newer write.
   */
  #applyRecord(key: string, record: StoredRecord<CatalogRecord> | undefined): void {
    const shared = this.#shared;
    if (shared === undefined || !SERVER_NAME_PATTERN.test(key)) return;
    const seen = shared.versions.get(key);
    if (record !== undefined) {
      if (seen !== undefined && record.version <= seen) return;
      shared.versions.set(key, record.version);
    }
    // Destroyed: the last version applied stays remembered, so an older write announced late is ignored.
    const file = this.#fileFor(key);
    const before = this.#byFile.get(file);
    const def = definitionOf(record, this.#log);
    // A definition this replica cannot validate (a newer replica's?): the last good one stays in force.
    if (def === undefined && record?.value.definition !== undefined) return;
    if (def) this.#byFile.set(file, def);
    else this.#byFile.delete(file);
    if (JSON.stringify(before) !== JSON.stringify(def)) this.#announce();
  }

  /** Writes one definition atomically (temp file, then rename or link) and announces it. */
  async #write(def: ServerDefinition, mode: 'create' | 'replace'): Promise<void> {
    const file = this.#fileFor(def.name);
    const tmp = join(this.dir, `.${def.name}.json.${process.pid}.${++this.#writes}.tmp`);
    await writeFile(tmp, formatServerDefinition(def), { mode: 0o644 });
    try {
      if (mode === 'replace') {
        await rename(tmp, file);
      } else {
        try {
          await link(tmp, file);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
            const problem = this.#problems.get(file);
            throw new GatewayError(
              'SERVER_EXISTS',
              `A file named ${def.name}.json is already in the catalog${problem ? ` (it has problems: ${problem})` : ''}.`,
            );
          }
          throw err;
        }
      }
    } finally {
      if (mode === 'create') await unlink(tmp).catch(() => undefined);
    }
    this.#byFile.set(file, def);
    this.#problems.delete(file);
    this.#announce();
  }

  /** Runs writes one at a time, so a read-check-write never interleaves with another. */
  #serialized<T>(work: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(work, work);
    this.#queue = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  async #reload(path: string, announce: boolean): Promise<void> {
    const file = join(this.dir, basename(path));
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return this.#remove(file);
      return this.#report(file, `cannot be read: ${(err as Error).message}`);
    }
    const result = loadServerDefinition(file, text);
    if (!result.ok) return this.#report(file, result.message);
    const refused = this.#policy?.(result.definition);
    if (refused !== undefined) return this.#report(file, refused);
    if (this.#shared) return this.#seed(file, result.definition, fileHash(text));
    const before = this.#byFile.get(file);
    this.#byFile.set(file, result.definition);
    const hadProblem = this.#problems.delete(file);
    if (hadProblem) this.#log.info({ file: basename(file) }, 'catalog file is valid again');
    if (announce && JSON.stringify(before) !== JSON.stringify(result.definition)) this.#announce();
  }

  /** Shared mode: writes a seed file's definition when its text changed since it was last applied. */
  async #seed(file: string, def: ServerDefinition, hash: string): Promise<void> {
    const shared = this.#shared as SharedBacking;
    try {
      const record = await shared.writer.seed(def, hash);
      if (this.#problems.delete(file)) this.#log.info({ file: basename(file) }, 'catalog file is valid again');
      if (record) {
        this.#log.info({ server: def.name, file: basename(file) }, 'server definition applied from its file');
        this.#applyRecord(def.name, record);
      }
    } catch (err) {
      this.#report(file, `could not be applied to the shared catalog: ${(err as Error).message}`);
      // The store is unreachable (or busy): try again later, reading the file afresh.
      if (!shared.closed) setTimeout(() => void (shared.closed ? undefined : this.#reload(file, true)), shared.retryMs).unref();
    }
  }

  #remove(path: string): void {
    const file = join(this.dir, basename(path));
    const had = this.#byFile.delete(file);
    this.#problems.delete(file);
    if (had) {
      this.#log.info({ file: basename(file) }, 'server definition removed');
      this.#announce();
    }
  }

  #report(file: string, message: string): void {
    this.#problems.set(file, message);
    const kept = this.#byFile.has(file) ? 'the last good definition stays in force' : 'the file is ignored';
    this.#log.warn({ file: basename(file), problem: message }, `catalog file is invalid; ${kept}`);
  }

  #announce(): void {
    this.emit('changed', this.list());
  }
}

function assertSameName(name: string, def: ServerDefinition): void {
  if (def.name !== name)
    throw new GatewayError('REQUEST_INVALID', 'A server cannot be renamed; register it under the new name and delete the old one.', {
      fields: [{ field: 'name', message: `must stay ${name}` }],
    });
}
