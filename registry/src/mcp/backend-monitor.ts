/**
 * Watches the backends in the catalog: a health check (probe-backend.ts) of every server on a
 * schedule, when its definition changes, and on demand. The result is only recorded here, for
 * the operators' page and the REST API; a failing backend never changes nginx or the catalog.
 *
 * With several replicas (issue 12) the checks run once: only the holder of a lease runs the
 * schedule, and it publishes each result to a shared store that every replica reads from memory.
 */
import { isPersonal } from '../catalog/backend-auth.ts';
import type { Catalog } from '../catalog/catalog.ts';
import { SERVER_NAME_PATTERN, type ServerDefinition } from '../catalog/server-definition.ts';
import { GatewayError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { publishedSnapshot, writeSnapshot, type BackendHealthStore, type Lease } from './shared-health.ts';
import { probe, type BackendHealth, type ProbeOutcome, type ToolInfo } from './probe-backend.ts';

export { CLIENT_INFO, MAX_DESCRIPTION_CHARS, MAX_ERROR_CHARS, MAX_RESPONSE_BYTES, MAX_SCHEMA_BYTES, MAX_TOOLS, SCHEMA_TOO_LARGE } from './probe-backend.ts';
export type { BackendHealth, HealthStatus, ToolInfo } from './probe-backend.ts';
export type { AuthFinding, DiscoveredAuth } from './discover-auth.ts';

export interface BackendSnapshot {
  readonly health: BackendHealth;
  /** The tools from the last successful tools/list; undefined before the first success. Kept (stale) when a later check fails. */
  readonly tools?: readonly ToolInfo[];
  readonly toolsFetchedAt?: string;
}

export type { BackendHealthStore, Lease, SharedBackendSnapshot } from './shared-health.ts';

export interface BackendMonitorOptions {
  readonly catalog: Pick<Catalog, 'list' | 'get' | 'on' | 'off'>;
  /**
   * With several replicas: the schedule runs only while this is held (it starts when the lease
   * is acquired and stops when it is lost). Absent: always, as with one process.
   */
  readonly lease?: Lease;
  /** Where results are published for, and read from, every replica. Absent: this process's own only. */
  readonly shared?: BackendHealthStore;
  /** How often every server is checked; 0 = never on a schedule (only on demand and on catalog change). */
  readonly intervalMs: number;
  /** Per check, for the whole check; on timeout the server is unhealthy with 'timed out after N ms'. */
  readonly timeoutMs: number;
  /**
   * The gateway's own credential for a backend (issue 13: the same the check injects), as
   * headers for the check's requests. Rejects when it cannot be had: the server is unhealthy.
   */
  readonly credentials?: (def: ServerDefinition) => Promise<Readonly<Record<string, string>>>;
  readonly log: Logger;
}

/** Checks running at once, across all servers. */
export const MAX_CONCURRENT_CHECKS = 4;
/** Why a backend that takes each person's own token is not checked. */
const SKIPPED_REASON =
  "not checked: this backend takes each person's own credential, and its definition names no service credential (backendAuth.service) for the gateway's health checks and tool discovery";

const UNKNOWN: BackendSnapshot = Object.freeze({ health: Object.freeze({ status: 'unknown' as const }) });
/** How long a published result lasts without a new check: a holder that died leaves no result forever. */
const MIN_SHARED_TTL_MS = 10 * 60_000;

interface Running {
  readonly controller: AbortController;
  readonly fingerprint: string;
  promise?: Promise<BackendSnapshot>;
}

interface Entry {
  /** url + transports of the definition last checked: a change means a new check at once. */
  fingerprint: string;
  snapshot: BackendSnapshot;
  running?: Running;
}

export class BackendMonitor {
  readonly #catalog: BackendMonitorOptions['catalog'];
  readonly #intervalMs: number;
  readonly #timeoutMs: number;
  readonly #credentials: BackendMonitorOptions['credentials'];
  readonly #log: Logger;
  readonly #entries = new Map<string, Entry>();
  readonly #inFlight = new Set<Promise<unknown>>();
  readonly #limiter = new Limiter(MAX_CONCURRENT_CHECKS);
  readonly #lease: Lease | undefined;
  readonly #shared: BackendHealthStore | undefined;
  #timer: NodeJS.Timeout | undefined;
  #unsubscribeLease: (() => void) | undefined;
  #started = false;
  #stopped = false;
  /** Runs the schedule: started, and the lease (if any) held. */
  #active = false;
  #publishFailing = false;

  constructor(options: BackendMonitorOptions) {
    if (!Number.isFinite(options.intervalMs) || options.intervalMs < 0) throw new Error('intervalMs must be 0 or more');
    if (!Number.isFinite(options.timeoutMs) || options.timeoutMs <= 0) throw new Error('timeoutMs must be more than 0');
    this.#catalog = options.catalog;
    this.#intervalMs = options.intervalMs;
    this.#timeoutMs = options.timeoutMs;
    this.#credentials = options.credentials;
    this.#lease = options.lease;
    this.#shared = options.shared;
    this.#log = options.log.child({ module: 'backend-monitor' });
  }

  /**
   * Checks every server now, then every intervalMs, and follows the catalog's changes; with a
   * lease, only while it is held (and from the moment it is acquired).
   */
  start(): void {
    if (this.#started) return;
    this.#started = true;
    this.#stopped = false;
    this.#catalog.on('changed', this.#onChanged);
    this.#unsubscribeLease = this.#lease?.onChange((held) => (held ? this.#activate() : this.#deactivate()));
    if (this.#lease === undefined || this.#lease.held()) this.#activate();
  }

  /** The schedule starts: a round now, then every intervalMs. */
  #activate(): void {
    if (!this.#started || this.#active) return;
    this.#active = true;
    if (this.#lease) this.#log.info('this replica now runs the backend checks');
    this.#round();
    if (this.#intervalMs > 0) {
      this.#timer = setInterval(() => this.#round(), this.#intervalMs);
      this.#timer.unref();
    }
  }

  /** The lease was lost: the schedule stops and the checks in flight are dropped (the new holder checks). */
  #deactivate(): void {
    if (!this.#active) return;
    this.#active = false;
    this.#log.info('another replica runs the backend checks now');
    clearInterval(this.#timer);
    this.#timer = undefined;
    for (const entry of this.#entries.values()) entry.running?.controller.abort();
  }

  /** Stops the schedule and the catalog subscription, aborts the checks in flight and waits for them. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#active = false;
    this.#unsubscribeLease?.();
    this.#unsubscribeLease = undefined;
    if (this.#started) {
      this.#started = false;
      this.#catalog.off('changed', this.#onChanged);
    }
    clearInterval(this.#timer);
    this.#timer = undefined;
    for (const entry of this.#entries.values()) entry.running?.controller.abort();
    await this.settled();
  }

  /**
   * The last recorded state, the newer of this replica's own and the published one (of the same
   * url and transports); `{ health: { status: 'unknown' } }` for a server never checked or not
   * in the catalog. Memory only.
   */
  snapshot(name: string): BackendSnapshot {
    const def = this.#catalog.get(name);
    if (def === undefined) return UNKNOWN;
    const own = this.#entries.get(name)?.snapshot;
    const published = this.#published(def);
    if (own === undefined || own === UNKNOWN) return published ?? UNKNOWN;
    if (published === undefined) return own;
    return (published.health.checkedAt ?? '') > (own.health.checkedAt ?? '') ? published : own;
  }

  /** The result another replica (or this one) published for this definition; undefined without one or while the store is down. */
  #published(def: ServerDefinition): BackendSnapshot | undefined {
    return this.#shared === undefined ? undefined : publishedSnapshot(this.#shared, def.name, fingerprint(def));
  }

  /**
   * Checks one server now and resolves with its new snapshot. Calls while a check of the same
   * server (same url and transports) runs share that check. After stop() no check starts and
   * the last snapshot is returned.
   * @throws GatewayError SERVER_UNKNOWN when the catalog has no such server.
   */
  async refresh(name: string): Promise<BackendSnapshot> {
    const def = this.#catalog.get(name);
    if (def === undefined) {
      throw new GatewayError('SERVER_UNKNOWN', SERVER_NAME_PATTERN.test(name) ? `no server named ${name}` : 'no such server');
    }
    if (this.#stopped) return this.snapshot(name);
    return this.#check(def);
  }

  /** Resolves when no check is in flight (queued checks included). */
  async settled(): Promise<void> {
    while (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight]);
  }

  /** One scheduled round: every server whose check is not already running. Never throws. */
  #round(): void {
    try {
      const definitions = this.#catalog.list();
      this.#forgetMissing(definitions);
      for (const def of definitions) {
        if (this.#entries.get(def.name)?.running) continue;
        void this.#check(def);
      }
    } catch (err) {
      this.#log.warn({ err }, 'backend check round failed');
    }
  }

  readonly #onChanged = (definitions: readonly ServerDefinition[]): void => {
    try {
      this.#forgetMissing(definitions);
      if (!this.#active) return; // the lease holder checks what changed
      for (const def of definitions) {
        const entry = this.#entries.get(def.name);
        if (entry === undefined || entry.fingerprint !== fingerprint(def)) void this.#check(def);
      }
    } catch (err) {
      this.#log.warn({ err }, 'could not follow a catalog change');
    }
  };

  #forgetMissing(definitions: readonly ServerDefinition[]): void {
    const names = new Set(definitions.map((d) => d.name));
    for (const [name, entry] of this.#entries) {
      if (names.has(name)) continue;
      entry.running?.controller.abort();
      this.#entries.delete(name);
      if (this.#active && this.#shared) this.#track(this.#shared.destroy(name).catch(() => false));
      this.#log.debug({ server: name }, 'server left the catalog; its health is forgotten');
    }
  }

  /** Starts a check of `def`, or joins the one running for the same url and transports. */
  #check(def: ServerDefinition): Promise<BackendSnapshot> {
    const name = def.name;
    const print = fingerprint(def);
    let entry = this.#entries.get(name);
    if (entry === undefined) {
      // A new holder starts from what the previous one published (tools are kept when a check fails).
      entry = { fingerprint: print, snapshot: this.#published(def) ?? UNKNOWN };
      this.#entries.set(name, entry);
    }
    if (entry.running) {
      if (entry.running.fingerprint === print) return entry.running.promise as Promise<BackendSnapshot>;
      entry.running.controller.abort(); // superseded: the backend moved; its result would be stale
    }
    entry.fingerprint = print;
    const controller = new AbortController();
    const running: Running = { controller, fingerprint: print };
    entry.running = running;
    const current = entry;
    const promise = this.#limiter
      .run(() => this.#probe(def, controller.signal))
      .then((outcome) => {
        if (outcome !== undefined && !controller.signal.aborted && this.#entries.get(name) === current) {
          this.#record(name, current, outcome);
        }
      })
      .catch((err: unknown) => {
        // probe() records every backend failure itself; this is a bug guard, never a crash.
        this.#log.warn({ server: name, err }, 'backend check failed unexpectedly');
      })
      .then(() => {
        if (current.running === running) current.running = undefined;
        return this.snapshot(name);
      });
    running.promise = promise;
    this.#track(promise);
    return promise;
  }

  /** One check with the server's credential; a credential that cannot be had is the check's failure. */
  async #probe(def: ServerDefinition, signal: AbortSignal): Promise<ProbeOutcome | 'skipped' | undefined> {
    // A backend that takes each person's own token has no credential the gateway could check it
    // with (issue 13: "or discovery is skipped with a clear status"); calling it without one
    // would only report a 401 that says nothing about the backend.
    if (isPersonal(def.backendAuth) && def.backendAuth.service === undefined) return 'skipped';
    let headers: Readonly<Record<string, string>> = {};
    if (this.#credentials && def.backendAuth !== undefined && def.backendAuth.type !== 'none') {
      try {
        headers = await this.#credentials(def);
      } catch (err) {
        if (signal.aborted) return undefined;
        const reason = err instanceof GatewayError ? err.message : 'unknown error';
        return {
          ok: false,
          transport: def.transports['streamable-http'] !== undefined ? 'streamable-http' : 'sse',
          latencyMs: 0,
          error: `backend credential unavailable: ${reason}`.slice(0, 300),
        };
      }
    }
    return probe(def, this.#timeoutMs, signal, headers);
  }

  #track(promise: Promise<unknown>): void {
    this.#inFlight.add(promise);
    void promise.finally(() => this.#inFlight.delete(promise));
  }

  /** Publishes a result for every replica (compare-and-set on what is there, a few rounds); logs an outage once. */
  #publish(name: string, entry: Entry): void {
    const store = this.#shared;
    if (store === undefined) return;
    const expiresAt = Date.now() + Math.max(MIN_SHARED_TTL_MS, this.#intervalMs * 10);
    this.#track(
      writeSnapshot(store, name, { ...entry.snapshot, fingerprint: entry.fingerprint }, expiresAt).then(
        () => {
          if (this.#publishFailing) this.#log.info('backend check results reach the other replicas again');
          this.#publishFailing = false;
        },
        (err: unknown) => {
          if (!this.#publishFailing) this.#log.warn({ err }, 'backend check results cannot be published to the other replicas');
          this.#publishFailing = true;
        },
      ),
    );
  }

  #record(name: string, entry: Entry, outcome: ProbeOutcome | 'skipped'): void {
    const checkedAt = new Date().toISOString();
    const before = entry.snapshot.health.status;
    if (outcome === 'skipped') {
      // The tools shown are the definition's (there is no discovery without a credential).
      entry.snapshot = Object.freeze({ health: Object.freeze({ status: 'skipped' as const, checkedAt, error: SKIPPED_REASON }) });
      if (before !== 'skipped') this.#log.info({ server: name }, "backend not checked: it takes each person's own credential and has no service credential");
      this.#publish(name, entry);
      return;
    }
    const health: BackendHealth = Object.freeze({
      // A 401 is its own state (issue 13): the backend is up and wants a credential.
      status: outcome.ok ? ('healthy' as const) : outcome.auth ? ('unauthorized' as const) : ('unhealthy' as const),
      checkedAt,
      latencyMs: outcome.latencyMs,
      ...(outcome.ok ? {} : { error: outcome.error }),
      ...(!outcome.ok && outcome.auth ? { auth: outcome.auth } : {}),
      transport: outcome.transport,
      ...(outcome.serverInfo ? { serverInfo: outcome.serverInfo } : {}),
    });
    if (outcome.ok) {
      entry.snapshot = Object.freeze({ health, tools: outcome.tools, toolsFetchedAt: checkedAt });
      if (before === 'unhealthy' || before === 'unauthorized') this.#log.info({ server: name, tools: outcome.tools.length }, 'backend is healthy again');
      else if (before === 'unknown') this.#log.debug({ server: name, tools: outcome.tools.length }, 'backend is healthy');
    } else {
      const { tools, toolsFetchedAt } = entry.snapshot;
      entry.snapshot = Object.freeze({ health, ...(tools ? { tools, toolsFetchedAt } : {}) });
      if (before !== health.status) {
        this.#log.warn(
          { server: name, error: outcome.error },
          health.status === 'unauthorized' ? 'backend asks for a credential (HTTP 401)' : 'backend is unhealthy',
        );
      }
    }
    this.#publish(name, entry);
  }
}

/** What decides where a check goes: a change of it means the last result is about another place. */
function fingerprint(def: ServerDefinition): string {
  return JSON.stringify([def.url, def.transports['streamable-http'] ?? null, def.transports.sse ?? null, def.backendAuth ?? null]);
}

/** Hands slots over directly on release, so a newcomer can never jump in between and exceed `max`. */
class Limiter {
  #free: number;
  readonly #waiting: (() => void)[] = [];

  constructor(max: number) {
    this.#free = max;
  }

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.#free > 0) this.#free--;
    else await new Promise<void>((resolve) => this.#waiting.push(resolve));
    try {
      return await task();
    } finally {
      const next = this.#waiting.shift();
      if (next) next();
      else this.#free++;
    }
  }
}
