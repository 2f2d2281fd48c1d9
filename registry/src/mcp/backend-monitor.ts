/**
 * Watches the backends in the catalog with the real MCP client: `initialize`, then every page of
 * `tools/list`, then the connection is closed. The result is only recorded here, for the
 * operators' page and the REST API; a failing backend never changes nginx or the catalog.
 *
 * Everything a backend sends is untrusted: each check has one deadline for the whole
 * exchange, each HTTP response body is capped, and the tools kept are trimmed to bounded sizes.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport, SseError } from '@modelcontextprotocol/sdk/client/sse.js';
import { StreamableHTTPClientTransport, StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { FetchLike } from '@modelcontextprotocol/sdk/shared/transport.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import type { Catalog } from '../catalog/catalog.ts';
import { SERVER_NAME_PATTERN, type ServerDefinition } from '../catalog/server-definition.ts';
import { GatewayError } from '../errors.ts';
import type { Logger } from '../log.ts';

export interface ToolInfo {
  readonly name: string;
  readonly title?: string;
  /** '' when absent; capped at 4000 chars. */
  readonly description: string;
  /** As the backend sent it; a schema over 64 KiB of JSON is replaced by {@link SCHEMA_TOO_LARGE}. */
  readonly inputSchema: Readonly<Record<string, unknown>>;
}

export type HealthStatus = 'unknown' | 'healthy' | 'unhealthy';

export interface BackendHealth {
  /** 'unknown' until the first check finishes. */
  readonly status: HealthStatus;
  /** ISO time the last check finished. */
  readonly checkedAt?: string;
  /** Wall time of the last check (connect + initialize + tools/list), integer ms. */
  readonly latencyMs?: number;
  /** The last failure: one line, at most 300 chars, no stack. */
  readonly error?: string;
  /** Which transport the check used. */
  readonly transport?: 'streamable-http' | 'sse';
  readonly serverInfo?: { readonly name: string; readonly version: string };
}

export interface BackendSnapshot {
  readonly health: BackendHealth;
  /** The tools from the last successful tools/list; undefined before the first success. Kept (stale) when a later check fails. */
  readonly tools?: readonly ToolInfo[];
  readonly toolsFetchedAt?: string;
}

export interface BackendMonitorOptions {
  readonly catalog: Pick<Catalog, 'list' | 'get' | 'on' | 'off'>;
  /** How often every server is checked; 0 = never on a schedule (only on demand and on catalog change). */
  readonly intervalMs: number;
  /** Per check, for the whole check; on timeout the server is unhealthy with 'timed out after N ms'. */
  readonly timeoutMs: number;
  readonly log: Logger;
}

export const CLIENT_INFO = Object.freeze({ name: 'mcp-gateway-registry', version: '0.1.0' });
/** Checks running at once, across all servers. */
export const MAX_CONCURRENT_CHECKS = 4;
export const MAX_TOOLS = 1000;
export const MAX_DESCRIPTION_CHARS = 4000;
export const MAX_SCHEMA_BYTES = 64 * 1024;
export const MAX_ERROR_CHARS = 300;
/** Largest body of one HTTP response from a backend (an SSE stream counts as one response). */
export const MAX_RESPONSE_BYTES = 16 * 1024 * 1024;
/** Longer tool names are dropped (the spec allows 128). */
const MAX_TOOL_NAME_CHARS = 256;
const MAX_TITLE_CHARS = 300;
const MAX_INFO_CHARS = 200;
const MAX_PAGES = 1000;
const MAX_CURSOR_CHARS = 4096;

export const SCHEMA_TOO_LARGE: Readonly<Record<string, unknown>> = Object.freeze({
  type: 'object',
  description: '(schema too large to show)',
});
const EMPTY_SCHEMA: Readonly<Record<string, unknown>> = Object.freeze({ type: 'object' });
const UNKNOWN: BackendSnapshot = Object.freeze({ health: Object.freeze({ status: 'unknown' as const }) });

/** tools/list as a backend may send it: only the envelope is checked, each tool on its own. */
const toolsPageSchema = z.looseObject({ tools: z.array(z.unknown()), nextCursor: z.unknown().optional() });

type TransportKind = 'streamable-http' | 'sse';
type Stage = 'initialize' | 'tools/list';

type ProbeOutcome =
  | { ok: true; transport: TransportKind; latencyMs: number; serverInfo?: BackendHealth['serverInfo']; tools: readonly ToolInfo[] }
  | { ok: false; transport: TransportKind; latencyMs: number; serverInfo?: BackendHealth['serverInfo']; error: string };

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
  readonly #log: Logger;
  readonly #entries = new Map<string, Entry>();
  readonly #inFlight = new Set<Promise<unknown>>();
  readonly #limiter = new Limiter(MAX_CONCURRENT_CHECKS);
  #timer: NodeJS.Timeout | undefined;
  #started = false;
  #stopped = false;

  constructor(options: BackendMonitorOptions) {
    if (!Number.isFinite(options.intervalMs) || options.intervalMs < 0) throw new Error('intervalMs must be 0 or more');
    if (!Number.isFinite(options.timeoutMs) || options.timeoutMs <= 0) throw new Error('timeoutMs must be more than 0');
    this.#catalog = options.catalog;
    this.#intervalMs = options.intervalMs;
    this.#timeoutMs = options.timeoutMs;
    this.#log = options.log.child({ module: 'backend-monitor' });
  }

  /** Checks every server now, then every intervalMs, and follows the catalog's changes. */
  start(): void {
    if (this.#started) return;
    this.#started = true;
    this.#stopped = false;
    this.#catalog.on('changed', this.#onChanged);
    this.#round();
    if (this.#intervalMs > 0) {
      this.#timer = setInterval(() => this.#round(), this.#intervalMs);
      this.#timer.unref();
    }
  }

  /** Stops the schedule and the catalog subscription, aborts the checks in flight and waits for them. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#started) {
      this.#started = false;
      this.#catalog.off('changed', this.#onChanged);
    }
    clearInterval(this.#timer);
    this.#timer = undefined;
    for (const entry of this.#entries.values()) entry.running?.controller.abort();
    await this.settled();
  }

  /** The last recorded state; `{ health: { status: 'unknown' } }` for a server never checked or not in the catalog. */
  snapshot(name: string): BackendSnapshot {
    if (this.#catalog.get(name) === undefined) return UNKNOWN;
    return this.#entries.get(name)?.snapshot ?? UNKNOWN;
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
      this.#log.debug({ server: name }, 'server left the catalog; its health is forgotten');
    }
  }

  /** Starts a check of `def`, or joins the one running for the same url and transports. */
  #check(def: ServerDefinition): Promise<BackendSnapshot> {
    const name = def.name;
    const print = fingerprint(def);
    let entry = this.#entries.get(name);
    if (entry === undefined) {
      entry = { fingerprint: print, snapshot: UNKNOWN };
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
      .run(() => probe(def, this.#timeoutMs, controller.signal))
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
    this.#inFlight.add(promise);
    void promise.finally(() => this.#inFlight.delete(promise));
    return promise;
  }

  #record(name: string, entry: Entry, outcome: ProbeOutcome): void {
    const checkedAt = new Date().toISOString();
    const before = entry.snapshot.health.status;
    const health: BackendHealth = Object.freeze({
      status: outcome.ok ? ('healthy' as const) : ('unhealthy' as const),
      checkedAt,
      latencyMs: outcome.latencyMs,
      ...(outcome.ok ? {} : { error: outcome.error }),
      transport: outcome.transport,
      ...(outcome.serverInfo ? { serverInfo: outcome.serverInfo } : {}),
    });
    if (outcome.ok) {
      entry.snapshot = Object.freeze({ health, tools: outcome.tools, toolsFetchedAt: checkedAt });
      if (before === 'unhealthy') this.#log.info({ server: name, tools: outcome.tools.length }, 'backend is healthy again');
      else if (before === 'unknown') this.#log.debug({ server: name, tools: outcome.tools.length }, 'backend is healthy');
    } else {
      const { tools, toolsFetchedAt } = entry.snapshot;
      entry.snapshot = Object.freeze({ health, ...(tools ? { tools, toolsFetchedAt } : {}) });
      if (before !== 'unhealthy') this.#log.warn({ server: name, error: outcome.error }, 'backend is unhealthy');
    }
  }
}

/** What decides where a check goes: a change of it means the last result is about another place. */
function fingerprint(def: ServerDefinition): string {
  return JSON.stringify([def.url, def.transports['streamable-http'] ?? null, def.transports.sse ?? null]);
}

/**
 * One check: connect, initialize, every page of tools/list, close. Resolves with the outcome, or
 * undefined when `cancel` fired (stop, a removed or moved server): that is no news about the
 * backend. Never rejects for anything the backend does.
 */
async function probe(def: ServerDefinition, timeoutMs: number, cancel: AbortSignal): Promise<ProbeOutcome | undefined> {
  if (cancel.aborted) return undefined;
  const streamablePath = def.transports['streamable-http'];
  const kind: TransportKind = streamablePath !== undefined ? 'streamable-http' : 'sse';
  const base = def.url.replace(/\/+$/, '');
  const deadline = new AbortController();
  const signal = deadline.signal;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    deadline.abort(new Error(`timed out after ${timeoutMs} ms`));
  }, timeoutMs);
  timer.unref();
  const onCancel = () => deadline.abort(new Error('check cancelled'));
  cancel.addEventListener('abort', onCancel, { once: true });
  // Rejects when the deadline passes or the check is cancelled, whatever the SDK is waiting for.
  const aborted = new Promise<never>((_, reject) => signal.addEventListener('abort', () => reject(signal.reason), { once: true }));
  aborted.catch(() => {});

  // Set, and the check ended at once, when a response outgrows MAX_RESPONSE_BYTES: over SSE the
  // SDK would only report it to onerror and go on waiting.
  let overflow: string | undefined;
  const fetch = checkFetch(MAX_RESPONSE_BYTES, (message) => {
    overflow ??= message;
    deadline.abort(new Error(message));
  });
  const started = performance.now();
  const elapsed = () => Math.max(0, Math.round(performance.now() - started));
  let stage: Stage = 'initialize';
  let serverInfo: BackendHealth['serverInfo'];
  let transport: StreamableHTTPClientTransport | SSEClientTransport | undefined;
  const client = new Client({ ...CLIENT_INFO });
  try {
    transport =
      kind === 'streamable-http'
        ? new StreamableHTTPClientTransport(new URL(base + streamablePath), {
            fetch,
            // One check is one exchange: no reconnecting the standalone GET stream behind our back.
            reconnectionOptions: { maxRetries: 0, initialReconnectionDelay: 1000, maxReconnectionDelay: 1000, reconnectionDelayGrowFactor: 1 },
          })
        : new SSEClientTransport(new URL(base + (def.transports.sse ?? '/sse')), { fetch });
    const t = transport;
    // The SDK's own per-request timeout is a backstop that never fires before ours.
    const requestOptions = { signal, timeout: timeoutMs + 1000 };
    const work = (async () => {
      await client.connect(t, requestOptions);
      serverInfo = cleanServerInfo(client.getServerVersion());
      stage = 'tools/list';
      // A server without the tools capability has no tools; asking would be a protocol error.
      if (client.getServerCapabilities()?.tools === undefined) return [];
      return listAllTools(client, requestOptions);
    })();
    work.catch(() => {});
    const tools = await Promise.race([work, aborted]);
    return { ok: true, transport: kind, latencyMs: elapsed(), ...(serverInfo ? { serverInfo } : {}), tools: Object.freeze(tools) };
  } catch (err) {
    if (cancel.aborted) return undefined;
    const latencyMs = elapsed();
    const error = overflow ?? (timedOut ? `timed out after ${timeoutMs} ms` : describeError(err, stage));
    return { ok: false, transport: kind, latencyMs, ...(serverInfo ? { serverInfo } : {}), error: oneLine(error) };
  } finally {
    // Ends the backend's session (bounded by the same deadline), then drops every socket.
    if (transport instanceof StreamableHTTPClientTransport && transport.sessionId !== undefined && !signal.aborted) {
      await Promise.race([transport.terminateSession().catch(() => {}), aborted.catch(() => {})]);
    }
    clearTimeout(timer);
    cancel.removeEventListener('abort', onCancel);
    await client.close().catch(() => {});
    await transport?.close().catch(() => {});
  }
}

/** Every page of tools/list, cleaned, at most MAX_TOOLS, stopping on a missing, repeated or odd cursor. */
async function listAllTools(client: Client, options: { signal: AbortSignal; timeout: number }): Promise<ToolInfo[]> {
  const tools: ToolInfo[] = [];
  const names = new Set<string>();
  const cursors = new Set<string>();
  let cursor: string | undefined;
  for (let page = 0; page < MAX_PAGES; page++) {
    const result = await client.request(
      { method: 'tools/list', ...(cursor === undefined ? {} : { params: { cursor } }) },
      toolsPageSchema,
      options,
    );
    for (const raw of result.tools) {
      const tool = cleanTool(raw);
      if (tool === undefined || names.has(tool.name)) continue;
      names.add(tool.name);
      tools.push(tool);
      if (tools.length >= MAX_TOOLS) return tools;
    }
    const next = result.nextCursor;
    if (typeof next !== 'string' || next === '' || next.length > MAX_CURSOR_CHARS || cursors.has(next)) break;
    cursors.add(next);
    cursor = next;
  }
  return tools;
}

/** A tool as the backend described it, trimmed to bounded sizes; undefined when it has no usable name. */
function cleanTool(raw: unknown): ToolInfo | undefined {
  if (!isPlainObject(raw)) return undefined;
  const { name, title, description, inputSchema } = raw;
  if (typeof name !== 'string' || name.length === 0 || name.length > MAX_TOOL_NAME_CHARS) return undefined;
  return Object.freeze({
    name,
    ...(typeof title === 'string' ? { title: cap(title, MAX_TITLE_CHARS) } : {}),
    description: typeof description === 'string' ? cap(description, MAX_DESCRIPTION_CHARS) : '',
    inputSchema: cleanSchema(inputSchema),
  });
}

function cleanSchema(schema: unknown): Readonly<Record<string, unknown>> {
  if (!isPlainObject(schema)) return EMPTY_SCHEMA;
  let json: string;
  try {
    json = JSON.stringify(schema);
  } catch {
    return EMPTY_SCHEMA;
  }
  if (Buffer.byteLength(json, 'utf8') > MAX_SCHEMA_BYTES) return SCHEMA_TOO_LARGE;
  // A copy of our own, frozen all the way down: nothing the backend built is kept by reference.
  return deepFreeze(JSON.parse(json) as Record<string, unknown>);
}

function cleanServerInfo(info: { name?: unknown; version?: unknown } | undefined): BackendHealth['serverInfo'] {
  if (info === undefined || typeof info.name !== 'string' || typeof info.version !== 'string') return undefined;
  return Object.freeze({ name: cap(singleLine(info.name), MAX_INFO_CHARS), version: cap(singleLine(info.version), MAX_INFO_CHARS) });
}

/**
 * A short, useful, one-line reason: the network error itself, the HTTP status, or what the
 * protocol said. Never a response body or header: the SDK puts the body text into some of its
 * messages, so those errors are reduced to their status.
 */
function describeError(err: unknown, stage: Stage): string {
  if (err instanceof StreamableHTTPError || err instanceof SseError) {
    if (typeof err.code === 'number' && err.code > 0) return `HTTP ${err.code} from backend`;
    const inner = err.message.replace(/^(SSE error|Streamable HTTP error):\s*/, '').replace(/^TypeError: fetch failed:\s*/, '');
    if (/^Error POSTing to endpoint/.test(inner)) return 'request to backend failed';
    return inner;
  }
  if (err instanceof McpError) return `${stage} failed: ${err.message}`;
  if (err instanceof Error && err.name === 'ZodError') return `backend sent an invalid ${stage} result`;
  if (err instanceof SyntaxError) return `backend sent invalid JSON (${stage})`;
  const root = rootCause(err);
  if (root instanceof Error) return root.message || root.name;
  return String(root);
}

/** fetch failures carry the socket error as `cause` (an AggregateError when several addresses were tried). */
function rootCause(err: unknown): unknown {
  let current = err;
  for (let depth = 0; depth < 5; depth++) {
    if (current instanceof AggregateError && current.errors.length > 0) {
      current = current.errors[0];
      continue;
    }
    if (current instanceof Error && current.cause !== undefined && current.message === 'fetch failed') {
      current = current.cause;
      continue;
    }
    break;
  }
  return current;
}

/**
 * fetch for one check. Each response body is capped, so a backend cannot make us buffer without
 * bound. Each request has its own connection (`Connection: close`): a pooled keep-alive socket
 * the backend dropped since the last check would otherwise fail the next check with "other side
 * closed" although the backend is up, and nothing is left open once the check is over.
 */
function checkFetch(maxBytes: number, overflowed: (message: string) => void): FetchLike {
  return async (url, init) => {
    const headers = new Headers(init?.headers);
    headers.set('connection', 'close');
    const response = await fetch(url, { ...init, headers });
    if (response.body === null || !response.ok) return response;
    let seen = 0;
    const limit = new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        seen += chunk.byteLength;
        if (seen > maxBytes) {
          const message = `backend response larger than ${maxBytes} bytes`;
          controller.error(new Error(message));
          overflowed(message);
        } else {
          controller.enqueue(chunk);
        }
      },
    });
    return new Response(response.body.pipeThrough(limit), {
      status: response.status,
      statusText: response.statusText,
      headers: response.headers,
    });
  };
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

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Iterative, so a deeply nested schema cannot overflow the stack. */
function deepFreeze<T>(value: T): T {
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const item = stack.pop();
    if (typeof item !== 'object' || item === null || Object.isFrozen(item)) continue;
    Object.freeze(item);
    for (const child of Object.values(item)) stack.push(child);
  }
  return value;
}

/** At most `max` UTF-16 units, never ending in half a surrogate pair. */
function cap(text: string, max: number): string {
  if (text.length <= max) return text;
  const cut = text.slice(0, max);
  return /[\uD800-\uDBFF]$/.test(cut) ? cut.slice(0, -1) : cut;
}

/** Control characters and line breaks become single spaces. */
function singleLine(text: string): string {
  return text.replace(/[\u0000-\u001f\u007f\s]+/g, ' ').trim();
}

function oneLine(error: string): string {
  return cap(singleLine(error), MAX_ERROR_CHARS) || 'check failed';
}
