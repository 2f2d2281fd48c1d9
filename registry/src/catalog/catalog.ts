import { EventEmitter } from 'node:events';
import { createHash } from 'node:crypto';
import { link, readdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { watch, type FSWatcher } from 'chokidar';
import { GatewayError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { formatServerDefinition, loadServerDefinition } from './load-definition.ts';
import { SERVER_NAME_PATTERN, type ServerDefinition } from './server-definition.ts';

/** A catalog file that failed validation; shown on the page until it is fixed. */
export interface CatalogProblem {
  readonly file: string;
  readonly message: string;
}

interface CatalogEvents {
  changed: [definitions: readonly ServerDefinition[]];
}

/**
 * The server catalog: one JSON file per server in `dir`. The files are the truth; this class
 * holds the last good definition of each, announces every change with `changed`, and is the
 * only writer (temp file + rename, so a reader never sees half a file). A file that fails
 * validation is reported in `problems()` and the last good definition stays in force.
 */
export class Catalog extends EventEmitter<CatalogEvents> {
  readonly dir: string;
  readonly #log: Logger;
  readonly #byFile = new Map<string, ServerDefinition>();
  readonly #problems = new Map<string, string>();
  #watcher: FSWatcher | undefined;
  #queue: Promise<void> = Promise.resolve();
  #writes = 0;

  private constructor(dir: string, log: Logger) {
    super();
    this.dir = dir;
    this.#log = log;
  }

  /** Reads every `*.json` file in `dir`. A missing folder is a start error. */
  static async open(dir: string, log: Logger): Promise<Catalog> {
    const catalog = new Catalog(dir, log);
    let names: string[];
    try {
      names = await readdir(dir);
    } catch (err) {
      throw new GatewayError('CONFIG_INVALID', `CATALOG_DIR ${dir} cannot be read: ${(err as Error).message}`, { cause: err });
    }
    for (const name of names.filter((n) => n.endsWith('.json')).sort()) await catalog.#reload(join(dir, name), false);
    return catalog;
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
    return this.#serialized(async () => {
      const current = this.#existing(name);
      if (def.name !== name)
        throw new GatewayError('REQUEST_INVALID', 'A server cannot be renamed; register it under the new name and delete the old one.', {
          fields: [{ field: 'name', message: `must stay ${name}` }],
        });
      this.#assertVersion(current, expectedVersion);
      if (definitionVersion(current) === definitionVersion(def)) return current;
      await this.#write(def, 'replace');
      this.#log.info({ server: name }, 'server definition updated');
      return def;
    });
  }

  /** Deletes a server's file; its routes leave nginx at the next sync. @throws SERVER_UNKNOWN, SERVER_CHANGED */
  async delete(name: string, expectedVersion?: string): Promise<void> {
    return this.#serialized(async () => {
      const current = this.#existing(name);
      this.#assertVersion(current, expectedVersion);
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
    const onFile = (path: string) => {
      if (path.endsWith('.json')) void this.#reload(path, true);
    };
    this.#watcher
      .on('add', onFile)
      .on('change', onFile)
      .on('unlink', (path) => this.#remove(path));
    this.#watcher.on('error', (err) => this.#log.error({ err }, 'catalog watcher failed'));
  }

  async close(): Promise<void> {
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

  #assertVersion(current: ServerDefinition, expected: string | undefined): void {
    if (expected !== undefined && expected !== definitionVersion(current)) {
      throw new GatewayError('SERVER_CHANGED', `${current.name} was changed since you loaded it. Reload it and make your change again.`);
    }
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
    const before = this.#byFile.get(file);
    this.#byFile.set(file, result.definition);
    const hadProblem = this.#problems.delete(file);
    if (hadProblem) this.#log.info({ file: basename(file) }, 'catalog file is valid again');
    if (announce && JSON.stringify(before) !== JSON.stringify(result.definition)) this.#announce();
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

/**
 * A short fingerprint of a definition as the catalog writes it: an ETag for the REST API and
 * the hidden `version` of the edit form, so concurrent edits are refused, not lost.
 */
export function definitionVersion(def: ServerDefinition): string {
  return createHash('sha256').update(formatServerDefinition(def)).digest('base64url').slice(0, 22);
}
