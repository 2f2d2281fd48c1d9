import type { Catalog } from '../catalog/catalog.ts';
import type { ServerDefinition } from '../catalog/server-definition.ts';
import { GatewayError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { NginxController } from './apply.ts';

export interface NginxSyncStatus {
  lastAppliedAt?: string;
  lastError?: string;
}

/**
 * Keeps nginx in step with the catalog: catalog announces, this listens. Bursts of changes
 * are debounced into one render; an unchanged config is never reloaded; a config nginx
 * refuses is reported and the last good one keeps serving.
 */
export class NginxSync {
  readonly #controller: NginxController;
  readonly #render: (servers: readonly ServerDefinition[]) => string;
  readonly #log: Logger;
  readonly #debounceMs: number;
  readonly #status: NginxSyncStatus = {};
  #timer: NodeJS.Timeout | undefined;
  #latest: readonly ServerDefinition[] = [];
  #running: Promise<void> = Promise.resolve();

  constructor(options: { controller: NginxController; render: (servers: readonly ServerDefinition[]) => string; log: Logger; debounceMs?: number }) {
    this.#controller = options.controller;
    this.#render = options.render;
    this.#log = options.log;
    this.#debounceMs = options.debounceMs ?? 100;
  }

  /** Starts nginx on the catalog's current definitions and follows its changes. */
  async start(catalog: Catalog): Promise<void> {
    await this.#controller.start(this.#render(catalog.list()));
    this.#status.lastAppliedAt = new Date().toISOString();
    catalog.on('changed', (defs) => this.schedule(defs));
  }

  schedule(definitions: readonly ServerDefinition[]): void {
    this.#latest = definitions;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#running = this.#running.then(() => this.#applyLatest());
    }, this.#debounceMs);
  }

  /** Resolves when every scheduled change has been applied (or refused). */
  async settled(): Promise<void> {
    await new Promise((r) => setTimeout(r, this.#debounceMs + 5));
    await this.#running;
  }

  status(): Readonly<NginxSyncStatus> {
    return { ...this.#status };
  }

  async stop(): Promise<void> {
    clearTimeout(this.#timer);
    await this.#running;
    await this.#controller.stop();
  }

  async #applyLatest(): Promise<void> {
    try {
      const { changed } = await this.#controller.apply(this.#render(this.#latest));
      if (changed) {
        this.#status.lastAppliedAt = new Date().toISOString();
        this.#log.info({ servers: this.#latest.length }, 'nginx reloaded with the new configuration');
      }
      delete this.#status.lastError;
    } catch (err) {
      const message = err instanceof GatewayError ? err.message : String(err);
      this.#status.lastError = message;
      this.#log.error({ err }, 'nginx refused the new configuration; the last good one keeps serving');
    }
  }
}
