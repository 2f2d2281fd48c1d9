/**
 * The gateway's Prometheus metrics (prom-client), on a registry of their own. Labels are bounded:
 * a server label is a name from the catalog or `unknown`, outcomes and states are fixed words,
 * store names are chosen in code; never a user, token, tool name or other free text.
 * docs/operations.md lists every metric.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { StoreHealth } from './stores.ts';

export const METRIC_PREFIX = 'mcp_gateway_';

/** The check's answers (authz/validate-route.ts) and what each means. */
const OUTCOMES = {
  200: 'allow',
  401: 'unauthenticated',
  403: 'forbidden',
  404: 'not_found',
  503: 'disabled',
  500: 'error',
} as const satisfies Record<number, string>;
export type CheckOutcome = (typeof OUTCOMES)[keyof typeof OUTCOMES] | 'other';

/** The check's outcome for the status it answered: 404 is an unknown server or an MCP session of someone else. */
export function outcomeOf(status: number): CheckOutcome {
  return (OUTCOMES as Record<number, CheckOutcome>)[status] ?? 'other';
}

/** From 100 µs to 100 ms: the check answers from memory in well under a millisecond; slow is a bearer key fetch or a busy event loop. */
export const CHECK_SECONDS_BUCKETS = Object.freeze([0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1]);

export type BackendHealthState = 'unknown' | 'healthy' | 'unhealthy' | 'unauthorized' | 'skipped';
const BACKEND_STATES: readonly BackendHealthState[] = ['healthy', 'unhealthy', 'unauthorized', 'skipped', 'unknown'];

export interface GatewayMetricsOptions {
  /** True for a server in the catalog: only those get their own label value. */
  readonly isKnownServer: (name: string) => boolean;
  /** Every server in the catalog with its last health check (BackendMonitor), read at each scrape. */
  readonly backends: () => Iterable<{ readonly server: string; readonly state: BackendHealthState }>;
  /** How many people are signed in now, read at each scrape. */
  readonly loginSessions: () => number;
  readonly stores: StoreHealth;
  /** prom-client's process metrics (CPU, memory, event loop lag, GC); default true. */
  readonly processMetrics?: boolean;
}

type Child = { inc(): void };
type Observer = { observe(value: number): void };

export class GatewayMetrics {
  readonly registry = new Registry();
  readonly #isKnownServer: (name: string) => boolean;
  readonly #decisions: Counter<'server' | 'outcome' | 'status'>;
  /** server -> status -> counter child: resolved once, so a decision costs one inc. */
  readonly #decisionChildren = new Map<string, Map<number, Child>>();
  readonly #latency = new Map<CheckOutcome, Observer>();
  readonly #reloads: Counter;
  readonly #reloadFailures: Counter;
  readonly #cacheHits: Counter<'server' | 'outcome'>;

  constructor(options: GatewayMetricsOptions) {
    const registers = [this.registry];
    this.#isKnownServer = options.isKnownServer;
    this.#decisions = new Counter({
      name: `${METRIC_PREFIX}check_decisions_total`,
      help: 'Answers of the check nginx asks on every MCP request, by server (catalog name or unknown), outcome and HTTP status; cached answers nginx served included.',
      labelNames: ['server', 'outcome', 'status'],
      registers,
    });
    this.#cacheHits = new Counter({
      name: `${METRIC_PREFIX}check_cache_hits_total`,
      help: 'MCP requests nginx answered from a cached decision of the check (CHECK_CACHE_SECONDS), by server and outcome; counted as nginx logs them (within about a second).',
      labelNames: ['server', 'outcome'],
      registers,
    });
    const latency = new Histogram({
      name: `${METRIC_PREFIX}check_duration_seconds`,
      help: 'Time the registry took to answer the check, by outcome (from the request to the answer written).',
      labelNames: ['outcome'],
      buckets: [...CHECK_SECONDS_BUCKETS],
      registers,
    });
    for (const outcome of [...Object.values(OUTCOMES), 'other'] as const) this.#latency.set(outcome, latency.labels(outcome));
    this.#reloads = new Counter({ name: `${METRIC_PREFIX}nginx_reloads_total`, help: 'nginx reloads that put a new configuration live.', registers });
    this.#reloadFailures = new Counter({
      name: `${METRIC_PREFIX}nginx_reload_failures_total`,
      help: 'New configurations nginx refused (nginx -t or the reload itself); the previous one kept serving.',
      registers,
    });
    new Gauge({
      name: `${METRIC_PREFIX}backend_health`,
      help: 'Last health check of each catalog server: 1 for its current state (healthy, unhealthy, unauthorized = the backend answered HTTP 401, unknown = not checked yet), 0 for the others.',
      labelNames: ['server', 'state'],
      registers,
      collect() {
        this.reset();
        for (const { server, state } of options.backends()) for (const s of BACKEND_STATES) this.set({ server, state: s }, s === state ? 1 : 0);
      },
    });
    new Gauge({
      name: `${METRIC_PREFIX}login_sessions`,
      help: 'Signed-in login sessions (the page and cookie-carrying MCP clients).',
      registers,
      collect() {
        this.set(options.loginSessions());
      },
    });
    new Gauge({
      name: `${METRIC_PREFIX}store_up`,
      help: 'Whether each store the registry depends on is reachable (1) or not (0).',
      labelNames: ['store'],
      registers,
      collect() {
        this.reset();
        for (const { name, up } of options.stores.list()) this.set({ store: name }, up ? 1 : 0);
      },
    });
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: METRIC_PREFIX });
  }

  /**
   * Counts one answer of the check and observes how long it took. `server` is what nginx named
   * (X-MCP-Server); a name not in the catalog is counted as `unknown`.
   */
  recordDecision(server: string | undefined, status: number, seconds: number): void {
    this.#countDecision(server, status);
    this.#latency.get(outcomeOf(status))?.observe(seconds);
  }

  /**
   * Counts one MCP request nginx answered from a cached decision of the check (nginx/audit-tail.ts):
   * a decision like any other, and a cache hit; no latency (the registry did not run).
   */
  recordCachedDecision(server: string, status: number): void {
    this.#cacheHits.labels(this.#countDecision(server, status), outcomeOf(status)).inc();
  }

  /** Counts a decision under its server's label (resolved once per server and status); returns the label. */
  #countDecision(server: string | undefined, status: number): string {
    const name = server !== undefined && this.#isKnownServer(server) ? server : 'unknown';
    let byStatus = this.#decisionChildren.get(name);
    if (byStatus === undefined) {
      byStatus = new Map();
      this.#decisionChildren.set(name, byStatus);
    }
    let child = byStatus.get(status);
    if (child === undefined) {
      child = this.#decisions.labels(name, outcomeOf(status), String(status));
      byStatus.set(status, child);
    }
    child.inc();
    return name;
  }

  /**
   * Wraps the check handler: times it and counts its answer (the status it wrote) under the
   * server named in `serverHeader`. The handler itself is not changed.
   */
  timeCheck(
    handler: (req: IncomingMessage, res: ServerResponse) => Promise<void>,
    serverHeader: string,
  ): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
    const header = serverHeader.toLowerCase();
    return async (req, res) => {
      const started = performance.now();
      try {
        await handler(req, res);
      } finally {
        const value = req.headers[header];
        this.recordDecision(typeof value === 'string' ? value : undefined, res.statusCode, (performance.now() - started) / 1000);
      }
    };
  }

  /** The outcome of one nginx apply (nginx/apply.ts `onApply`): `reloaded` and `failed` are counted. */
  nginxApply(outcome: 'reloaded' | 'unchanged' | 'failed'): void {
    if (outcome === 'reloaded') this.#reloads.inc();
    else if (outcome === 'failed') this.#reloadFailures.inc();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The text exposition of every metric. */
  render(): Promise<string> {
    return this.registry.metrics();
  }
}
