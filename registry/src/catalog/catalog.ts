import { EventEmitter } from 'node:events';
import { readdir, readFile, rename, writeFile } from 'node:fs/promises';
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
    if (!SERVER_NAME_PATTERN.test(name)) throw new GatewayError('SERVER_NAME_INVALID', 'not a valid server name');
    const current = this.get(name);
    if (!current) throw new GatewayError('SERVER_UNKNOWN', `no server named ${name}`);
    if (current.enabled === enabled) return current;
    const next = Object.freeze({ ...current, enabled });
    const file = this.#fileFor(name);
    const tmp = join(this.dir, `.${name}.json.${process.pid}.tmp`);
    await writeFile(tmp, formatServerDefinition(next), { mode: 0o644 });
    await rename(tmp, file);
    this.#byFile.set(file, next);
    this.#problems.delete(file);
    this.#log.info({ server: name, enabled }, 'server toggled');
    this.#announce();
    return next;
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
    this.#watcher.on('add', onFile).on('change', onFile).on('unlink', (path) => this.#remove(path));
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
