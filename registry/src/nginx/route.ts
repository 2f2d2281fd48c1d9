/**
 * Routing without reloads (docs/nginx.md): nginx has generic MCP locations, and the check asks
 * this table where a request goes. Catalog changes only change this table, in memory, at
 * once; nginx is never reloaded for them, so no keep-alive connection is closed and no open
 * stream is cut.
 *
 * What nginx receives (the X-MCP-Route header, copied by njs into proxy_pass / Host /
 * proxy_ssl_name variables) is built here from values that passed names.ts, and checked again
 * as a whole before it leaves: visible ASCII of the expected shapes, no space inside a field,
 * no CR/LF.
 *
 * Keep-alive needs an `upstream` block, and nginx 1.22 cannot add one without a reload: the
 * config rendered at start declares one per backend origin of the catalog then
 * (`mcp_backend_<hash>`). An origin first seen later is answered as the `IP:port` this table
 * resolved itself with dns.lookup (so nginx needs no resolver; /etc/hosts and container DNS
 * apply), refreshed in the background, never on the request path; it runs without keep-alive
 * until the next start, which is logged once and shown in the nginx status.
 */
import { createHash } from 'node:crypto';
import { lookup as dnsLookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import type { RouteBackend, RouteDecision, RouteLookup, RouteRequest } from '../authz/route.ts';
import type { Catalog } from '../catalog/catalog.ts';
import { SSE_MESSAGES_PATH, type ServerDefinition } from '../catalog/server-definition.ts';
import { GatewayError } from '../errors.ts';
import type { Logger } from '../log.ts';
import {
  assertBackendPath,
  assertBackendUrl,
  assertListenHost,
  assertPort,
  assertServerName,
  backendBasePath,
  backendOrigin,
  hostOf,
  hostPort,
  type HostPort,
} from './names.ts';

/** One `upstream` block of the start-time config: its name and its `server host:port`. */
export interface BackendUpstream {
  readonly name: string;
  readonly server: HostPort;
}

export type AddressLookup = (host: string) => Promise<{ address: string; family: number }>;

export interface RouteTableOptions {
  readonly catalog: Pick<Catalog, 'list' | 'get' | 'on'>;
  readonly log: Logger;
  /** dns.lookup by default; tests pass their own. */
  readonly lookup?: AddressLookup;
  /** How often origins answered as an IP literal are resolved again (30 s). */
  readonly refreshMs?: number;
  /** A lookup slower than this counts as failed (2 s). */
  readonly lookupTimeoutMs?: number;
}

export interface RouteStatus {
  /** Servers the gateway cannot route (server name -> why): a bad definition, or a host that does not resolve. */
  readonly refused?: Record<string, string>;
  /** Backend origins that appeared after nginx started: proxied to an IP literal, without upstream keep-alive until a restart. */
  readonly withoutKeepalive?: string[];
}

/** `upstream` block names: a hash of the origin, so no host name (with its `.`/`-`) is spelled in a directive name. */
export const UPSTREAM_NAME_PATTERN = /^mcp_backend_[0-9a-f]{12}$/;

/**
 * The whole X-MCP-Route value: kind, scheme, upstream (block name, IPv4:port or [IPv6]:port),
 * Host header (host[:port] as the URL spells it), backend URI (`-` for the messages endpoint).
 */
const ROUTE_VALUE =
  /^(?:streamable|sse|sse-messages) https? (?:mcp_backend_[0-9a-f]{12}|[0-9.]{7,15}:\d{1,5}|\[[0-9A-Fa-f:.]{2,45}\]:\d{1,5}) [A-Za-z0-9.:[\]-]{1,300} (?:-|\/[A-Za-z0-9._~/-]{0,1000})$/;

interface Origin {
  /** `scheme://host:port`, lowercase, port explicit. */
  readonly key: string;
  readonly scheme: 'http' | 'https';
  /** Without brackets for IPv6 (what dns.lookup and isIP take). */
  readonly host: string;
  readonly port: number;
  /** The Host header: host[:port] as the definition's URL spells it. */
  readonly hostHeader: string;
  upstream: string | undefined;
  /** `IP:port` when no upstream block serves it. */
  literal: string | undefined;
  error: string | undefined;
  pending: Promise<void> | undefined;
  /** `<scheme> <upstream> <host>`, checked; undefined while unresolved. */
  target: string | undefined;
  noKeepaliveLogged: boolean;
}

interface ServerRoute {
  readonly name: string;
  readonly origin: Origin | undefined;
  readonly streamable: string | undefined;
  /** The SSE path below /api/execute/<name>, and the backend URI it proxies to. */
  readonly ssePath: string | undefined;
  readonly sseUri: string | undefined;
  /** Why this definition cannot be routed (it fails names.ts). */
  readonly error: string | undefined;
}

const NOT_FOUND = { ok: false, refusal: { status: 404, refused: 'NOT_FOUND' } } as const;
const SERVER_UNKNOWN = { ok: false, refusal: { status: 404, refused: 'SERVER_UNKNOWN' } } as const;
const GET_ONLY = { ok: false, refusal: { status: 405, refused: 'METHOD_NOT_ALLOWED', allow: 'GET' } } as const;
const POST_ONLY = { ok: false, refusal: { status: 405, refused: 'METHOD_NOT_ALLOWED', allow: 'POST' } } as const;

export class RouteTable {
  readonly #catalog: RouteTableOptions['catalog'];
  readonly #log: Logger;
  readonly #lookup: AddressLookup;
  readonly #refreshMs: number;
  readonly #timeoutMs: number;
  readonly #origins = new Map<string, Origin>();
  /**
   * By server name, with what the route depends on (URL and transport paths): computed once per
   * change, whether the catalog hands out the same object on every get or a copy.
   */
  readonly #routes = new Map<string, { readonly key: string; readonly route: ServerRoute }>();
  #timer: NodeJS.Timeout | undefined;
  #started = false;

  constructor(options: RouteTableOptions) {
    this.#catalog = options.catalog;
    this.#log = options.log;
    this.#lookup = options.lookup ?? ((host) => dnsLookup(host, { verbatim: true }));
    this.#refreshMs = options.refreshMs ?? 30_000;
    this.#timeoutMs = options.lookupTimeoutMs ?? 2_000;
  }

  /**
   * Resolves every backend origin of the catalog now and returns the upstream blocks for the
   * config nginx starts with (those that resolved: a host nginx cannot resolve would make it
   * refuse the whole config). Then follows the catalog: every change is routed at once.
   */
  async start(): Promise<BackendUpstream[]> {
    const defs = this.#catalog.list();
    for (const def of defs) this.#routeOf(def);
    await this.settled();
    const upstreams: BackendUpstream[] = [];
    for (const origin of [...this.#origins.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))) {
      if (origin.error !== undefined) continue;
      const name = `mcp_backend_${createHash('sha256').update(origin.key).digest('hex').slice(0, 12)}`;
      upstreams.push({ name, server: hostPort(assertListenHost(origin.host.includes(':') ? `[${origin.host}]` : origin.host), origin.port) });
      origin.upstream = name;
      origin.target = checkedTarget(origin, name);
    }
    this.#started = true;
    this.#catalog.on('changed', (list) => {
      const used = new Set<Origin>();
      const names = new Set(list.map((def) => def.name));
      for (const name of this.#routes.keys()) if (!names.has(name)) this.#routes.delete(name);
      for (const def of list) {
        const origin = this.#routeOf(def).origin;
        if (origin !== undefined) used.add(origin);
      }
      // An origin no server uses any more is forgotten (and no longer looked up), unless nginx has its block.
      for (const [key, origin] of this.#origins) if (!used.has(origin) && origin.upstream === undefined) this.#origins.delete(key);
    });
    this.#timer = setInterval(() => this.#refresh(), this.#refreshMs);
    this.#timer.unref();
    return upstreams;
  }

  /**
   * nginx refused the config with these upstream blocks (a host it resolves differently): run
   * every origin on IP literals instead, so the rest of the gateway still starts.
   */
  withoutUpstreams(): void {
    for (const origin of this.#origins.values()) {
      origin.upstream = undefined;
      origin.target = undefined;
      this.#resolve(origin);
    }
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  /** Resolves when every lookup in flight has finished. */
  async settled(): Promise<void> {
    await Promise.all([...this.#origins.values()].map((o) => o.pending));
  }

  status(): RouteStatus {
    const refused: Record<string, string> = {};
    const without = new Set<string>();
    for (const def of this.#catalog.list()) {
      const route = this.#routeOf(def);
      const problem = route.error ?? (route.origin?.target === undefined ? route.origin?.error : undefined);
      if (problem !== undefined) refused[def.name] = problem;
      else if (route.origin?.upstream === undefined && route.origin !== undefined) without.add(route.origin.key);
    }
    return {
      ...(Object.keys(refused).length === 0 ? {} : { refused }),
      ...(without.size === 0 ? {} : { withoutKeepalive: [...without].sort() }),
    };
  }

  /** The check's lookup (authz/route.ts): pure memory, except a first lookup still in flight. */
  readonly lookup: RouteLookup = (request: RouteRequest): RouteDecision => {
    const def = this.#catalog.get(request.server);
    if (def === undefined) return SERVER_UNKNOWN;
    const route = this.#routeOf(def);
    let kind: 'streamable' | 'sse' | 'sse-messages';
    let uri: string;
    if (request.transport === 'streamable-http') {
      if (route.streamable === undefined && route.error === undefined) return SERVER_UNKNOWN;
      [kind, uri] = ['streamable', route.streamable ?? '-'];
    } else {
      if (def.transports.sse === undefined) return SERVER_UNKNOWN;
      if (request.path === SSE_MESSAGES_PATH) {
        if (request.method !== 'POST') return POST_ONLY;
        [kind, uri] = ['sse-messages', '-'];
      } else if (request.path === def.transports.sse) {
        if (request.method !== 'GET') return GET_ONLY;
        [kind, uri] = ['sse', route.sseUri ?? '-'];
      } else {
        return NOT_FOUND;
      }
    }
    return { ok: true, backend: () => this.#backend(route, kind, uri) };
  };

  #backend(route: ServerRoute, kind: string, uri: string): RouteBackend | Promise<RouteBackend> {
    if (route.error !== undefined || route.origin === undefined) return { ok: false, reason: route.error ?? 'no backend' };
    const origin = route.origin;
    if (origin.target !== undefined) return { ok: true, header: `${kind} ${origin.target} ${uri}` };
    if (origin.pending !== undefined) return origin.pending.then(() => this.#backend(route, kind, uri));
    return { ok: false, reason: origin.error ?? 'the backend host is not resolved' };
  }

  #routeOf(def: ServerDefinition): ServerRoute {
    const key = `${def.url} ${def.transports['streamable-http'] ?? ''} ${def.transports.sse ?? ''}`;
    const cached = this.#routes.get(def.name);
    if (cached?.key === key) return cached.route;
    const route = this.#build(def);
    this.#routes.set(def.name, { key, route });
    return route;
  }

  #build(def: ServerDefinition): ServerRoute {
    try {
      const name = assertServerName(def.name);
      const url = assertBackendUrl(def.url);
      const base = backendBasePath(url);
      const streamablePath = def.transports['streamable-http'];
      const ssePath = def.transports.sse;
      const streamable = streamablePath === undefined ? undefined : `${base}${assertBackendPath(streamablePath)}`;
      const sseUri = ssePath === undefined ? undefined : `${base}${assertBackendPath(ssePath)}`;
      if (ssePath === SSE_MESSAGES_PATH) throw new GatewayError('CATALOG_FILE_INVALID', `the sse path cannot be ${SSE_MESSAGES_PATH}`);
      for (const uri of [streamable, sseUri])
        if (uri !== undefined && !ROUTE_VALUE.test(`sse http mcp_backend_000000000000 h ${uri}`))
          throw new GatewayError('CATALOG_FILE_INVALID', `backend path ${JSON.stringify(uri)} is too long`);
      return { name, origin: this.#originOf(url), streamable, ssePath, sseUri, error: undefined };
    } catch (err) {
      const error = err instanceof GatewayError ? err.message : String(err);
      this.#log.error({ server: def.name, error }, 'this server definition cannot be routed; the others are not affected');
      return { name: def.name, origin: undefined, streamable: undefined, ssePath: undefined, sseUri: undefined, error };
    }
  }

  #originOf(url: string): Origin {
    const parsed = new URL(backendOrigin(url as Parameters<typeof backendOrigin>[0]));
    const scheme = parsed.protocol === 'https:' ? 'https' : 'http';
    const port = assertPort(parsed.port === '' ? (scheme === 'https' ? 443 : 80) : Number(parsed.port), 'backend port');
    const host = parsed.hostname.replace(/^\[|\]$/g, '').toLowerCase();
    const hostHeader = hostOf(backendOrigin(url as Parameters<typeof backendOrigin>[0]));
    const key = `${scheme}://${host.includes(':') ? `[${host}]` : host}:${port}`;
    let origin = this.#origins.get(key);
    if (origin === undefined) {
      origin = {
        key,
        scheme,
        host,
        port,
        hostHeader,
        upstream: undefined,
        literal: undefined,
        error: undefined,
        pending: undefined,
        target: undefined,
        noKeepaliveLogged: false,
      };
      this.#origins.set(key, origin);
      this.#resolve(origin);
    }
    return origin;
  }

  /** Looks the origin's host up (not on the request path: at start, on a catalog change, in the background). */
  #resolve(origin: Origin): void {
    if (origin.pending !== undefined) return;
    const done = (address: string | undefined, error: string | undefined): void => {
      origin.pending = undefined;
      if (address !== undefined) {
        const literal = address.includes(':') ? `[${address}]:${origin.port}` : `${address}:${origin.port}`;
        origin.literal = literal;
        origin.error = undefined;
        if (origin.upstream === undefined && this.#started) {
          try {
            origin.target = checkedTarget(origin, literal);
          } catch (err) {
            origin.error = String(err);
            return;
          }
          if (!origin.noKeepaliveLogged) {
            origin.noKeepaliveLogged = true;
            this.#log.warn(
              { origin: origin.key, address: literal },
              'new backend origin: proxied to its IP address without upstream keep-alive until nginx restarts',
            );
          }
        }
      } else if (origin.literal === undefined) {
        // Never resolved: refused until it does. Once resolved, a failed refresh keeps the last address.
        origin.error = error;
        this.#log.error({ origin: origin.key, error }, 'backend host does not resolve; its servers answer 502 until it does');
      } else {
        this.#log.warn({ origin: origin.key, error }, 'backend host lookup failed; keeping its last address');
      }
    };
    if (isIP(origin.host) !== 0) return done(origin.host, undefined);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${this.#timeoutMs} ms`)), this.#timeoutMs);
    });
    origin.pending = Promise.race([this.#lookup(origin.host), timeout])
      .then(
        (found) => done(found.address, undefined),
        (err: unknown) => done(undefined, `host not found: ${JSON.stringify(`${origin.host}:${origin.port}`)} (${(err as Error).message})`),
      )
      .finally(() => clearTimeout(timer));
  }

  #refresh(): void {
    for (const origin of this.#origins.values()) if (origin.upstream === undefined) this.#resolve(origin);
  }
}

/** `<scheme> <upstream> <host>`, refused (a programmer error) unless the whole route value would pass ROUTE_VALUE. */
function checkedTarget(origin: Origin, upstream: string): string {
  const target = `${origin.scheme} ${upstream} ${origin.hostHeader}`;
  if (!ROUTE_VALUE.test(`sse ${target} -`)) throw new Error(`refusing to send route ${JSON.stringify(target)} to nginx`);
  return target;
}
