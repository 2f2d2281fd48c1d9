import type { Catalog } from '../catalog/catalog.ts';
import type { ServerDefinition } from '../catalog/server-definition.ts';
import { GatewayError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { NginxController } from './apply.ts';

export interface NginxSyncStatus {
  lastAppliedAt?: string;
  lastError?: string;
  /** Servers nginx refused on their own (server name -> nginx's reason): left out of the config, not routed. */
  refused?: Record<string, string>;
}

/** What a controller must offer; NginxController does. */
type Controller = Pick<NginxController, 'start' | 'apply' | 'test' | 'status' | 'stop'>;

/**
 * Keeps nginx in step with the catalog: catalog announces, this listens. Bursts of changes
 * are debounced into one render; an unchanged config is never reloaded; a config nginx
 * refuses is reported and the last good one keeps serving.
 *
 * One definition must not hold every other server hostage: nginx checks the whole file, so a
 * backend host it cannot resolve (`upstream { server no-such-host:9000; }` is resolved at load)
 * fails `nginx -t` for all. When nginx refuses a config, the definitions are bisected with
 * `nginx -t` to find the ones it refuses on their own; those are left out and reported per
 * server (status().refused, the log), and the rest is applied. Each later change tries every
 * definition again, so a fixed definition (or a host that now resolves) comes back.
 */
export class NginxSync {
  readonly #controller: Controller;
  readonly #render: (servers: readonly ServerDefinition[]) => string;
  readonly #log: Logger;
  readonly #debounceMs: number;
  /** A config that could not even be rendered; nginx never saw it. Everything else the controller tracks. */
  #renderError: string | undefined;
  #timer: NodeJS.Timeout | undefined;
  #latest: readonly ServerDefinition[] = [];
  #running: Promise<void> = Promise.resolve();
  #refused = new Map<string, string>();

  constructor(options: { controller: Controller; render: (servers: readonly ServerDefinition[]) => string; log: Logger; debounceMs?: number }) {
    this.#controller = options.controller;
    this.#render = options.render;
    this.#log = options.log;
    this.#debounceMs = options.debounceMs ?? 100;
  }

  /** Starts nginx on the catalog's current definitions and follows its changes. */
  async start(catalog: Catalog): Promise<void> {
    const servers = catalog.list();
    await this.#orWithoutRefused(servers, (config) => this.#controller.start(config));
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
    return {
      ...(lastAppliedAt === undefined ? {} : { lastAppliedAt }),
      ...(error === undefined ? {} : { lastError: error }),
      ...(this.#refused.size === 0 ? {} : { refused: Object.fromEntries(this.#refused) }),
    };
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
      const { changed } = await this.#orWithoutRefused(this.#latest, (c) => this.#controller.apply(c), config);
      if (changed)
        this.#log.info({ servers: this.#latest.length - this.#refused.size, refused: [...this.#refused.keys()] }, 'nginx reloaded with the new configuration');
    } catch (err) {
      // The controller keeps the error for status(); the log gets the cause.
      this.#log.error({ err }, 'nginx refused the new configuration; the last good one keeps serving');
    }
  }

  /**
   * Runs `use` (start or apply) on the config of every server; when nginx refuses it, finds
   * the servers it refuses on their own and runs `use` once more without them. The refusal
   * stands (and is thrown) when no single server is to blame.
   */
  async #orWithoutRefused<T>(servers: readonly ServerDefinition[], use: (config: string) => Promise<T>, config = this.#render(servers)): Promise<T> {
    try {
      const result = await use(config);
      this.#refused.clear();
      return result;
    } catch (err) {
      if (!(err instanceof GatewayError && err.code === 'NGINX_CONFIG_REJECTED')) throw err;
      const accepted = await this.#withoutRefused(servers, config);
      if (accepted === servers) throw err;
      return use(this.#render(accepted));
    }
  }

  /**
   * The definitions nginx accepts, with the refused ones recorded in #refused (`config` is the
   * rendering of all of them). Halves are tested with `nginx -t` against what is known good,
   * down to single servers: about 2·log2(n) tests per refused server. When the whole config
   * passes the test after all (a reload failed for another reason), or nginx refuses even the
   * config with no server, no server is to blame: the same list comes back.
   */
  async #withoutRefused(servers: readonly ServerDefinition[], config: string): Promise<readonly ServerDefinition[]> {
    if ((await this.#accepts(config)) || !(await this.#accepts(this.#render([])))) return servers;
    const accepted: ServerDefinition[] = [];
    const refused = new Map<string, string>();
    const split = async (group: readonly ServerDefinition[]): Promise<void> => {
      if (group.length === 0) return;
      const verdict = await this.#verdict(this.#render([...accepted, ...group]));
      if (verdict === undefined) {
        accepted.push(...group);
      } else if (group.length === 1) {
        refused.set(group[0]!.name, reasonOf(verdict));
      } else {
        const half = Math.ceil(group.length / 2);
        await split(group.slice(0, half));
        await split(group.slice(half));
      }
    };
    await split(servers);
    this.#refused = refused;
    for (const [server, reason] of refused)
      this.#log.error({ server, reason }, 'nginx refuses this server definition; it is left out of the config and not routed');
    // Keep the catalog's order (the rendered config is stable, so unchanged configs stay unchanged).
    const keep = new Set(accepted.map((d) => d.name));
    return servers.filter((d) => keep.has(d.name));
  }

  async #accepts(config: string): Promise<boolean> {
    return (await this.#verdict(config)) === undefined;
  }

  /** undefined when `nginx -t` takes the config; nginx's error lines when it refuses it. */
  async #verdict(config: string): Promise<string | undefined> {
    try {
      await this.#controller.test(config, { quiet: true });
      return undefined;
    } catch (err) {
      if (err instanceof GatewayError && err.code === 'NGINX_CONFIG_REJECTED') return err.message;
      throw err;
    }
  }
}

/** nginx's first error line without its prefix and the candidate file's path and line. */
function reasonOf(detail: string): string {
  const first = detail.split('\n').find(Boolean) ?? detail;
  // `nginx: [emerg] ...` from -t, or `2026/11/30 09:45:38 [emerg] 123#123: ...` from a log.
  return first.replace(/^.*?\[\w+\] (?:\d+#\d+: )?/, '').replace(/ in \S+:\d+$/, '');
}
