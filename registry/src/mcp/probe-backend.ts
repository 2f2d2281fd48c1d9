/**
 * One health check of one backend with the real MCP client: connect, `initialize`, every page of
 * `tools/list`, close. Everything a backend sends is untrusted: one deadline for the whole
 * exchange, each HTTP response body capped, and the tools kept trimmed to bounded sizes.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport, SseError } from '@modelcontextprotocol/sdk/client/sse.js';
import { StreamableHTTPClientTransport, StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { FetchLike } from '@modelcontextprotocol/sdk/shared/transport.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import type { ServerDefinition } from '../catalog/server-definition.ts';
import { discoverBackendAuth, DISCOVERY_TIMEOUT_MS, type AuthFinding } from './discover-auth.ts';

export interface ToolInfo {
  readonly name: string;
  readonly title?: string;
  /** '' when absent; capped at 4000 chars. */
  readonly description: string;
  /** As the backend sent it; a schema over 64 KiB of JSON is replaced by {@link SCHEMA_TOO_LARGE}. */
  readonly inputSchema: Readonly<Record<string, unknown>>;
}

/** unauthorized: the backend answered HTTP 401 (it wants a credential the check did not have, or refused it). */
export type HealthStatus = 'unknown' | 'healthy' | 'unhealthy' | 'unauthorized' | 'skipped';

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
  /** status unauthorized only: what the 401 asked for (RFC 9728 discovery), or why that is unknown. */
  readonly auth?: AuthFinding;
}

export const CLIENT_INFO = Object.freeze({ name: 'mcp-gateway-registry', version: '0.1.0' });
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

/** tools/list as a backend may send it: only the envelope is checked, each tool on its own. */
const toolsPageSchema = z.looseObject({ tools: z.array(z.unknown()), nextCursor: z.unknown().optional() });

type TransportKind = 'streamable-http' | 'sse';
type Stage = 'initialize' | 'tools/list';

export type ProbeOutcome =
  | { ok: true; transport: TransportKind; latencyMs: number; serverInfo?: BackendHealth['serverInfo']; tools: readonly ToolInfo[] }
  | { ok: false; transport: TransportKind; latencyMs: number; serverInfo?: BackendHealth['serverInfo']; error: string; auth?: AuthFinding };

/**
 * One check: connect, initialize, every page of tools/list, close. Resolves with the outcome, or
 * undefined when `cancel` fired (stop, a removed or moved server): that is no news about the
 * backend. Never rejects for anything the backend does.
 */
export async function probe(
  def: ServerDefinition,
  timeoutMs: number,
  cancel: AbortSignal,
  credential: Readonly<Record<string, string>> = {},
): Promise<ProbeOutcome | undefined> {
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
  // The first HTTP 401 of the check: its challenge leads to the backend's OAuth metadata.
  let unauthorized: { wwwAuthenticate: string | null } | undefined;
  // The gateway's own credential for this backend (issue 13) rides on every request of the check.
  const fetch = checkFetch(
    MAX_RESPONSE_BYTES,
    credential,
    (message) => {
      overflow ??= message;
      deadline.abort(new Error(message));
    },
    (wwwAuthenticate) => {
      unauthorized ??= { wwwAuthenticate };
    },
  );
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
    if (unauthorized !== undefined && overflow === undefined && !timedOut) {
      // Issue 13: what the backend wants, from its own metadata (never with any credential).
      const mcpUrl = base + (kind === 'streamable-http' ? streamablePath : (def.transports.sse ?? '/sse'));
      const auth = await discoverBackendAuth(mcpUrl, unauthorized.wwwAuthenticate, cancel, Math.min(timeoutMs, DISCOVERY_TIMEOUT_MS));
      if (cancel.aborted) return undefined;
      return { ok: false, transport: kind, latencyMs, ...(serverInfo ? { serverInfo } : {}), error: oneLine(unauthorizedError(auth)), auth };
    }
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
    const result = await client.request({ method: 'tools/list', ...(cursor === undefined ? {} : { params: { cursor } }) }, toolsPageSchema, options);
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

/** The check's one-line error for a 401: what the backend asks for, or why that is unknown. */
function unauthorizedError(auth: AuthFinding): string {
  if (auth.discovered) {
    const d = auth.discovered;
    return `HTTP 401 from backend: it requires OAuth (authorization server ${d.issuer}${d.registrationEndpoint ? ', dynamic client registration supported' : ''})`;
  }
  return `HTTP 401 from backend: it requires a credential${auth.problem ? ` (${auth.problem})` : ''}`;
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
function checkFetch(
  maxBytes: number,
  credential: Readonly<Record<string, string>>,
  overflowed: (message: string) => void,
  refused: (wwwAuthenticate: string | null) => void,
): FetchLike {
  return async (url, init) => {
    const headers = new Headers(init?.headers);
    for (const [name, value] of Object.entries(credential)) headers.set(name, value);
    headers.set('connection', 'close');
    const response = await fetch(url, { ...init, headers });
    if (response.status === 401) refused(response.headers.get('www-authenticate'));
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
