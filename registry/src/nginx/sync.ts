import { GatewayError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { NginxController } from './apply.ts';
import type { BackendUpstream, RouteTable } from './route.ts';

export interface NginxSyncStatus {
  /** When nginx took its config (at start: catalog changes never reload it). */
  lastAppliedAt?: string;
  lastError?: string;
  /** Servers the gateway cannot route (server name -> why): a bad definition, or a backend host that does not resolve. */
  refused?: Record<string, string>;
  /** Backend origins added since nginx started: proxied to their IP address without upstream keep-alive until a restart. */
  withoutKeepalive?: string[];
}

/** What a controller must offer; NginxController does. */
type Controller = Pick<NginxController, 'start' | 'status' | 'stop'>;

/**
 * Runs nginx for the gateway. nginx's config does not follow the catalog: MCP requests are
 * routed by the check (nginx/route.ts), so adding, editing, toggling or removing a server
 * changes the route table in memory and nginx is never reloaded for it: no keep-alive
 * connection is closed, no open stream is cut (docs/nginx.md, "Routing without reloads").
 *
 * At start the config declares one upstream block (keep-alive) per backend origin that
 * resolved. Should nginx still refuse it (a host nginx resolves differently from the
 * registry), it starts without them: every backend is then reached by its IP address, without
 * keep-alive, and the rest of the gateway serves.
 */
export class NginxSync {
  readonly #controller: Controller;
  readonly #render: (upstreams: readonly BackendUpstream[]) => string;
  readonly #routes: RouteTable;
  readonly #log: Logger;

  constructor(options: { controller: Controller; render: (upstreams: readonly BackendUpstream[]) => string; routes: RouteTable; log: Logger }) {
    this.#controller = options.controller;
    this.#render = options.render;
    this.#routes = options.routes;
    this.#log = options.log;
  }

  /** Resolves the catalog's backends, starts nginx, and from then on routes every catalog change without touching nginx. */
  async start(): Promise<void> {
    const upstreams = await this.#routes.start();
    try {
      await this.#controller.start(this.#render(upstreams));
    } catch (err) {
      if (!(err instanceof GatewayError && err.code === 'NGINX_CONFIG_REJECTED') || upstreams.length === 0) throw err;
      this.#log.error({ err }, 'nginx refused the upstream blocks of the backends; starting without them (no upstream keep-alive until a restart)');
      this.#routes.withoutUpstreams();
      await this.#controller.start(this.#render([]));
    }
  }

  /** Resolves once every catalog change so far is routed (the backend host lookups it started have finished). */
  async settled(): Promise<void> {
    await this.#routes.settled();
  }

  status(): Readonly<NginxSyncStatus> {
    const { lastAppliedAt, lastError } = this.#controller.status();
    return {
      ...(lastAppliedAt === undefined ? {} : { lastAppliedAt }),
      ...(lastError === undefined ? {} : { lastError }),
      ...this.#routes.status(),
    };
  }

  async stop(): Promise<void> {
    this.#routes.stop();
    await this.#controller.stop();
  }
}
