/**
 * What a backend that answered a health check with HTTP 401 wants (issue 13, "auto-detection"):
 * its `WWW-Authenticate` challenge (RFC 9110 §11.6.1, RFC 6750 §3, RFC 9728 §5.1), its protected
 * resource metadata (RFC 9728) and its authorization server's metadata (RFC 8414, else OpenID
 * Connect Discovery), fetched the way the MCP authorization spec (2025-06-18, 2025-11-25) tells
 * clients to: the header's `resource_metadata` URL, else the well-known URL derived from the MCP
 * URL (path form first, then the root).
 *
 * Everything here is untrusted input from the backend: each document is fetched without any
 * credential (never the gateway's, never a client's), over https (http only to a loopback host),
 * with one short deadline for the whole discovery and a size bound per response. A document whose
 * `resource` does not name this backend (RFC 9728 §3.3) or whose `issuer` is not the authorization
 * server asked (RFC 8414 §3.3) is refused, and why is recorded.
 */
import { discoverAuthorizationServerMetadata, discoverOAuthProtectedResourceMetadata } from '@modelcontextprotocol/sdk/client/auth.js';
import { checkResourceAllowed } from '@modelcontextprotocol/sdk/shared/auth-utils.js';
import type { FetchLike } from '@modelcontextprotocol/sdk/shared/transport.js';

/** One challenge of a `WWW-Authenticate` header. Parameter names are lower case; values unquoted. */
export interface AuthChallenge {
  /** As sent (compare case-insensitively). */
  readonly scheme: string;
  readonly params: Readonly<Record<string, string>>;
  readonly token68?: string;
}

/** The backend's OAuth settings, as discovered and checked. */
export interface DiscoveredAuth {
  /** The protected resource's identifier (RFC 9728 `resource`): what its tokens' audience must be (RFC 8707). */
  readonly resource: string;
  /** Every authorization server the resource named; the first was asked for its metadata. */
  readonly authorizationServers: readonly string[];
  /** The issuer of the authorization server whose metadata was read. */
  readonly issuer: string;
  /** The resource's `scopes_supported`, else the challenge's `scope`. */
  readonly scopesSupported?: readonly string[];
  readonly authorizationEndpoint: string;
  readonly tokenEndpoint: string;
  /** Present: the authorization server takes dynamic client registration (RFC 7591). */
  readonly registrationEndpoint?: string;
  readonly clientIdMetadataDocumentSupported?: boolean;
  readonly revocationEndpoint?: string;
  readonly codeChallengeMethodsSupported?: readonly string[];
  readonly grantTypesSupported?: readonly string[];
}

/** What a 401 told us: the challenge, and the discovered settings or why there are none. */
export interface AuthFinding {
  /** The Bearer challenge's parameters that matter here; absent when the 401 had no Bearer challenge. */
  readonly challenge?: { readonly resourceMetadata?: string; readonly scope?: string; readonly error?: string };
  /** Where the protected resource metadata was read (or refused). */
  readonly resourceMetadataUrl?: string;
  readonly discovered?: DiscoveredAuth;
  /** Why nothing (or not everything) was discovered: one line, no response body. */
  readonly problem?: string;
}

/** Whole discovery (every document), whatever the check's own timeout. */
export const DISCOVERY_TIMEOUT_MS = 5000;
/** Largest metadata document read. */
export const MAX_METADATA_BYTES = 64 * 1024;
/** Requests one discovery may make (well-known fallbacks and same-origin redirects included). */
const MAX_REQUESTS = 10;
const MAX_HEADER_CHARS = 8192;
const MAX_VALUE_CHARS = 2048;
const MAX_LIST = 50;

// ---------------------------------------------------------------- WWW-Authenticate (RFC 9110 §11.6.1)

const TCHAR = /[!#$%&'*+\-.^_`|~0-9A-Za-z]/;
const TOKEN68_CHAR = /[A-Za-z0-9\-._~+/]/;

/**
 * Every challenge of a `WWW-Authenticate` value (several headers joined with ", " are one value):
 * `scheme [token68 | #(name = token | quoted-string)]`, challenges separated by commas. Quoted
 * strings may hold commas, `=` and escaped quotes. Parameter names are lower-cased; a repeated
 * parameter keeps its first value. Malformed parts end the parse; what was read is kept.
 */
export function parseWwwAuthenticate(header: string): AuthChallenge[] {
  const s = header.slice(0, MAX_HEADER_CHARS);
  const challenges: { scheme: string; params: Record<string, string>; token68?: string }[] = [];
  let i = 0;
  const skipWs = () => {
    while (i < s.length && (s[i] === ' ' || s[i] === '\t')) i++;
  };
  const skipSeparators = () => {
    while (i < s.length && (s[i] === ' ' || s[i] === '\t' || s[i] === ',')) i++;
  };
  const token = (): string => {
    const start = i;
    while (i < s.length && TCHAR.test(s[i]!)) i++;
    return s.slice(start, i);
  };
  const quoted = (): string | undefined => {
    // s[i] === '"'
    let out = '';
    i++;
    while (i < s.length) {
      const c = s[i]!;
      if (c === '\\' && i + 1 < s.length) {
        out += s[i + 1];
        i += 2;
      } else if (c === '"') {
        i++;
        return out;
      } else {
        out += c;
        i++;
      }
    }
    return undefined; // unterminated
  };
  /** At i: `name BWS = BWS value`? Returns [name, value] and advances, else leaves i alone. */
  const param = (): [string, string] | undefined => {
    const start = i;
    const name = token();
    if (name === '') return undefined;
    skipWs();
    if (s[i] !== '=') return void (i = start);
    i++;
    skipWs();
    if (s[i] === '"') {
      const value = quoted();
      if (value === undefined) return void (i = start);
      return [name.toLowerCase(), value];
    }
    // A token by the grammar; leniently anything up to the next comma or space (servers send
    // unquoted URLs, which are not tokens).
    const from = i;
    while (i < s.length && !/[\s,"]/.test(s[i]!)) i++;
    const value = s.slice(from, i);
    if (value === '' || value.startsWith('=')) return void (i = start); // `name=` then nothing: a token68 with padding
    return [name.toLowerCase(), value];
  };

  let current: (typeof challenges)[number] | undefined;
  while (i < s.length && challenges.length < 20) {
    skipSeparators();
    if (i >= s.length) break;
    // A parameter of the current challenge, or a new challenge's scheme.
    if (current !== undefined && current.token68 === undefined) {
      const p = param();
      if (p !== undefined) {
        if (!(p[0] in current.params)) current.params[p[0]] = p[1].slice(0, MAX_VALUE_CHARS);
        continue;
      }
    }
    const scheme = token();
    if (scheme === '') break; // not a token: malformed, stop here
    current = { scheme, params: Object.create(null) as Record<string, string> };
    challenges.push(current);
    if (s[i] !== ' ' && s[i] !== '\t') continue; // no parameters
    skipWs();
    // token68 (`Basic dXNlcjpw==`) or the first parameter.
    const p = param();
    if (p !== undefined) {
      current.params[p[0]] = p[1].slice(0, MAX_VALUE_CHARS);
      continue;
    }
    const start = i;
    while (i < s.length && TOKEN68_CHAR.test(s[i]!)) i++;
    while (i < s.length && s[i] === '=') i++;
    const t68 = s.slice(start, i);
    skipWs();
    if (i < s.length && s[i] !== ',') break; // malformed: stop here
    if (t68 !== '') current.token68 = t68;
  }
  return challenges.map((c) => Object.freeze({ scheme: c.scheme, params: Object.freeze({ ...c.params }), ...(c.token68 ? { token68: c.token68 } : {}) }));
}

/** The first Bearer challenge of the header, if any. */
export function bearerChallenge(header: string | null | undefined): AuthChallenge | undefined {
  if (!header) return undefined;
  return parseWwwAuthenticate(header).find((c) => c.scheme.toLowerCase() === 'bearer');
}

// ---------------------------------------------------------------- discovery

/** Refuses a URL discovery may not fetch: https, or http to a loopback host (tests, a local sidecar). */
export function metadataUrlProblem(raw: string): string | undefined {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return `not a URL: ${shorten(raw)}`;
  }
  if (url.username || url.password) return `refused ${redact(url)}: credentials in the URL`;
  if (url.protocol === 'https:') return undefined;
  if (url.protocol === 'http:' && isLoopback(url.hostname)) return undefined;
  return `refused ${redact(url)}: metadata is only fetched over https (http only from a loopback host)`;
}

function isLoopback(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  return host === 'localhost' || host.endsWith('.localhost') || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

class DiscoveryProblem extends Error {}

/**
 * Discovers what a backend that answered 401 wants. Never rejects: a failure is the finding's
 * `problem`. `cancel` aborts it (the check was cancelled).
 */
export async function discoverBackendAuth(
  mcpUrl: string,
  wwwAuthenticate: string | null | undefined,
  cancel: AbortSignal,
  timeoutMs = DISCOVERY_TIMEOUT_MS,
): Promise<AuthFinding> {
  const bearer = bearerChallenge(wwwAuthenticate);
  const challenge = bearer
    ? {
        ...(bearer.params['resource_metadata'] ? { resourceMetadata: bearer.params['resource_metadata'] } : {}),
        ...(bearer.params['scope'] ? { scope: bearer.params['scope'] } : {}),
        ...(bearer.params['error'] ? { error: bearer.params['error'] } : {}),
      }
    : undefined;
  const base: { challenge?: AuthFinding['challenge'] } = challenge ? { challenge } : {};
  const signal = AbortSignal.any([cancel, AbortSignal.timeout(timeoutMs)]);
  const fetchFn = discoveryFetch(signal);
  let resourceMetadataUrl: string | undefined;
  try {
    // 1. The protected resource metadata: the header's URL, else the well-known ones (SDK: path form, then root).
    if (challenge?.resourceMetadata !== undefined) {
      resourceMetadataUrl = challenge.resourceMetadata;
      const problem = metadataUrlProblem(resourceMetadataUrl);
      if (problem) return { ...base, problem: `resource_metadata ${problem}` };
    } else {
      const problem = metadataUrlProblem(mcpUrl);
      if (problem) return { ...base, problem: `no resource_metadata in the challenge, and the well-known URL is ${problem}` };
    }
    let prm;
    try {
      prm = await discoverOAuthProtectedResourceMetadata(mcpUrl, resourceMetadataUrl ? { resourceMetadataUrl } : {}, fetchFn);
    } catch (err) {
      const reason = describe(err, signal, timeoutMs);
      const where = resourceMetadataUrl ?? 'the well-known URLs';
      const prefix = bearer ? '' : 'no Bearer challenge, and ';
      return {
        ...base,
        ...(resourceMetadataUrl ? { resourceMetadataUrl } : {}),
        problem: `${prefix}no protected resource metadata (RFC 9728) at ${shorten(where)}: ${reason}`,
      };
    }
    const withUrl = { ...base, ...(resourceMetadataUrl ? { resourceMetadataUrl } : {}) };
    // 2. RFC 9728 §3.3: the metadata must be about this backend.
    if (!resourceMatches(mcpUrl, prm.resource)) {
      return {
        ...withUrl,
        problem: `refused the protected resource metadata: its resource ${shorten(prm.resource)} is not this backend's URL ${shorten(mcpUrl)} (RFC 9728 §3.3)`,
      };
    }
    const servers = (prm.authorization_servers ?? []).slice(0, MAX_LIST).map(String);
    if (servers.length === 0) return { ...withUrl, problem: 'the protected resource metadata names no authorization_servers' };
    const asUrl = servers[0]!;
    const asProblem = metadataUrlProblem(asUrl);
    if (asProblem) return { ...withUrl, problem: `authorization server ${asProblem}` };
    // 3. The authorization server's metadata (RFC 8414 with path insertion, else OIDC discovery).
    let as;
    try {
      as = await discoverAuthorizationServerMetadata(asUrl, { fetchFn });
    } catch (err) {
      return { ...withUrl, problem: `no authorization server metadata for ${shorten(asUrl)}: ${describe(err, signal, timeoutMs)}` };
    }
    if (as === undefined) return { ...withUrl, problem: `no authorization server metadata (RFC 8414 or OpenID Connect) for ${shorten(asUrl)}` };
    // RFC 8414 §3.3: the issuer must be the authorization server asked.
    if (stripSlash(as.issuer) !== stripSlash(asUrl)) {
      return { ...withUrl, problem: `refused the authorization server metadata: its issuer ${shorten(as.issuer)} is not ${shorten(asUrl)} (RFC 8414 §3.3)` };
    }
    for (const endpoint of [as.authorization_endpoint, as.token_endpoint]) {
      const problem = metadataUrlProblem(endpoint);
      if (problem) return { ...withUrl, problem: `authorization server endpoint ${problem}` };
    }
    const revocation = (as as Record<string, unknown>)['revocation_endpoint'];
    const scopes = prm.scopes_supported ?? (challenge?.scope ? challenge.scope.split(' ').filter(Boolean) : undefined);
    const discovered: DiscoveredAuth = {
      resource: prm.resource,
      authorizationServers: servers,
      issuer: as.issuer,
      ...(scopes && scopes.length > 0 ? { scopesSupported: scopes.slice(0, MAX_LIST).map(String) } : {}),
      authorizationEndpoint: as.authorization_endpoint,
      tokenEndpoint: as.token_endpoint,
      ...(as.registration_endpoint ? { registrationEndpoint: as.registration_endpoint } : {}),
      ...(typeof as['client_id_metadata_document_supported'] === 'boolean'
        ? { clientIdMetadataDocumentSupported: as['client_id_metadata_document_supported'] as boolean }
        : {}),
      ...(typeof revocation === 'string' ? { revocationEndpoint: revocation } : {}),
      ...(as.code_challenge_methods_supported ? { codeChallengeMethodsSupported: as.code_challenge_methods_supported.slice(0, MAX_LIST) } : {}),
      ...(as.grant_types_supported ? { grantTypesSupported: as.grant_types_supported.slice(0, MAX_LIST) } : {}),
    };
    return { ...withUrl, discovered: deepFreeze(discovered) };
  } catch (err) {
    // A bug guard: discovery never fails the check.
    return { ...base, problem: `discovery failed: ${describe(err, signal, timeoutMs)}` };
  }
}

/**
 * The `resource` names this backend: the same URL, or (as MCP clients accept, the SDK's
 * checkResourceAllowed) a URL of the same origin whose path is a prefix of the MCP URL's.
 */
function resourceMatches(mcpUrl: string, resource: string): boolean {
  try {
    return checkResourceAllowed({ requestedResource: mcpUrl, configuredResource: resource });
  } catch {
    return false;
  }
}

/**
 * fetch for discovery: no credential of any kind (only Accept and MCP-Protocol-Version), https or
 * loopback http only, a bounded number of requests, each body read up to MAX_METADATA_BYTES.
 */
function discoveryFetch(signal: AbortSignal): FetchLike {
  let requests = 0;
  return async (input, init) => {
    const url = String(input instanceof Request ? input.url : input);
    const problem = metadataUrlProblem(url);
    if (problem) throw new DiscoveryProblem(problem);
    if (++requests > MAX_REQUESTS) throw new DiscoveryProblem(`more than ${MAX_REQUESTS} requests`);
    const given = new Headers(init?.headers);
    const headers = new Headers({ accept: 'application/json' });
    const version = given.get('mcp-protocol-version');
    if (version) headers.set('mcp-protocol-version', version);
    let response: Response;
    try {
      response = await fetch(url, { method: 'GET', headers, redirect: init?.redirect ?? 'manual', signal, credentials: 'omit' });
    } catch (err) {
      // Not a TypeError: the SDK would take that for CORS and hide the reason.
      throw new DiscoveryProblem(signal.aborted ? 'timed out' : networkReason(err));
    }
    if (response.body === null) return response;
    const reader = response.body.getReader();
    const chunks: Uint8Array[] = [];
    let seen = 0;
    for (;;) {
      const { done, value } = await reader.read().catch((err: unknown) => {
        throw new DiscoveryProblem(signal.aborted ? 'timed out' : networkReason(err));
      });
      if (done) break;
      seen += value.byteLength;
      if (seen > MAX_METADATA_BYTES) {
        await reader.cancel().catch(() => {});
        throw new DiscoveryProblem(`${redact(new URL(url))} sent more than ${MAX_METADATA_BYTES} bytes`);
      }
      chunks.push(value);
    }
    return new Response(Buffer.concat(chunks), { status: response.status, statusText: response.statusText, headers: response.headers });
  };
}

function describe(err: unknown, signal: AbortSignal, timeoutMs: number): string {
  if (signal.aborted) return `timed out after ${timeoutMs} ms`;
  if (err instanceof DiscoveryProblem) return err.message;
  if (err instanceof Error && err.name === 'ZodError') return 'the document is not valid metadata';
  if (err instanceof SyntaxError) return 'the document is not JSON';
  if (err instanceof Error) return shorten(err.message.replace(/\.$/, ''));
  return 'unknown error';
}

function networkReason(err: unknown): string {
  let current = err;
  for (let depth = 0; depth < 4 && current instanceof Error && current.cause !== undefined; depth++) current = current.cause;
  if (current instanceof AggregateError && current.errors.length > 0) current = current.errors[0];
  return current instanceof Error ? shorten(current.message || current.name) : 'network error';
}

function redact(url: URL): string {
  return shorten(`${url.origin}${url.pathname}`);
}

function stripSlash(value: string): string {
  return value.replace(/\/+$/, '');
}

function shorten(text: string, max = 200): string {
  const line = text.replace(/[\u0000-\u001f\u007f]+/g, ' ');
  return line.length <= max ? line : `${line.slice(0, max - 1)}…`;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
