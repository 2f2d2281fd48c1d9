import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { watch, type FSWatcher } from 'chokidar';
import { GatewayError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { scopesForGroups } from '../scopes/convention.ts';
import { EMPTY_MAPPING, parseScopeMapping, type ScopeMapping } from '../scopes/mapping-file.ts';

/**
 * MCP_AUTH_SCOPE_MAPPING_FILE, kept current: read and validated at start (a bad file stops the
 * start, naming every problem), reloaded when it changes (a bad edit is logged and the last good
 * mapping stays). Sessions pick up a new mapping at their next refresh or sign-in; bearer tokens
 * at their next request.
 */
export class ScopeMappingSource {
  readonly #file: string | undefined;
  readonly #log: Logger;
  #mapping: ScopeMapping = EMPTY_MAPPING;
  #watcher: FSWatcher | undefined;
  readonly #reloaded = new Set<() => void>();

  constructor(file: string | undefined, log: Logger) {
    this.#file = file;
    this.#log = log;
    if (file === undefined) return;
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new GatewayError('CONFIG_INVALID', `MCP_AUTH_SCOPE_MAPPING_FILE ${file} cannot be read: ${(err as Error).message}`);
    }
    const result = parseScopeMapping(text);
    if (!result.ok) throw new GatewayError('CONFIG_INVALID', result.errors.map((e) => `MCP_AUTH_SCOPE_MAPPING_FILE ${file}: ${e}`).join('\n'));
    this.#mapping = result.mapping;
  }

  current(): ScopeMapping {
    return this.#mapping;
  }

  /** A person's scopes: the convention plus the mapping's groups. */
  scopesFor(groups: readonly string[]): string[] {
    return scopesForGroups(groups, this.#mapping.groups);
  }

  /** A machine client's scopes: only what the mapping lists for its client id. */
  machineScopes(clientId: string | undefined): string[] {
    if (clientId === undefined || !Object.hasOwn(this.#mapping.clients, clientId)) return [];
    return [...(this.#mapping.clients[clientId] ?? [])].sort();
  }

  machineClients(): readonly string[] {
    return Object.keys(this.#mapping.clients);
  }

  /** Calls `listener` after each reload that changed the mapping in force; returns the unsubscribe. */
  onReload(listener: () => void): () => void {
    this.#reloaded.add(listener);
    return () => this.#reloaded.delete(listener);
  }

  watch(): void {
    const file = this.#file;
    if (file === undefined || this.#watcher) return;
    this.#watcher = watch(file, { ignoreInitial: true, awaitWriteFinish: { stabilityThreshold: 50, pollInterval: 20 } });
    this.#watcher.on('change', () => void this.#reload(file)).on('add', () => void this.#reload(file));
    this.#watcher.on('error', (err) => this.#log.error({ err }, 'scope mapping watcher failed'));
  }

  async close(): Promise<void> {
    await this.#watcher?.close();
    this.#watcher = undefined;
  }

  async #reload(file: string): Promise<void> {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      this.#log.error({ file, err }, 'scope mapping file cannot be read; the last good mapping stays');
      return;
    }
    const result = parseScopeMapping(text);
    if (!result.ok) {
      this.#log.error({ file, problems: result.errors }, 'scope mapping file is invalid; the last good mapping stays');
      return;
    }
    this.#mapping = result.mapping;
    for (const listener of this.#reloaded) listener();
    this.#log.info({ file, groups: Object.keys(result.mapping.groups).length, clients: Object.keys(result.mapping.clients).length }, 'scope mapping reloaded');
  }
}
