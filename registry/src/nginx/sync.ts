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
  /** A config that could not even be rendered; nginx never saw it. Everything else the controller tracks. */
  #renderError: string | undefined;
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
    const { lastAppliedAt, lastError } = this.#controller.status();
    const error = this.#renderError ?? lastError;
    return { ...(lastAppliedAt === undefined ? {} : { lastAppliedAt }), ...(error === undefined ? {} : { lastError: error }) };
  }

  async stop(): Promise<void> {
    clearTimeout(this.#timer);
    await this.#running;
    await this.#controller.stop();
  }

  async #applyLatest(): Promise<void> {
    let config: string;
    try {
      config = this.#render(this.#latest);
      this.#renderError = undefined;
    } catch (err) {
      this.#renderError = err instanceof GatewayError ? err.message : String(err);
      this.#log.error({ err }, 'the catalog could not be rendered; the last good nginx config keeps serving');
      return;
    }
    try {
      const { changed } = await this.#controller.apply(config);
      if (changed) this.#log.info({ servers: this.#latest.length }, 'nginx reloaded with the new configuration');
    } catch (err) {
      // The controller keeps the error for status(); the log gets the cause.
      this.#log.error({ err }, 'nginx refused the new configuration; the last good one keeps serving');
    }
  }
}
