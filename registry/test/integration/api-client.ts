/**
 * A small client for the registry's REST API in tests: calls a route by its operationId (from
 * the route table, so a renamed path cannot silently skip a test), records which routes
 * answered with their documented success status, and checks error bodies against the
 * documented error schema.
 */
import assert from 'node:assert/strict';
import { DEV_MACHINE_CLIENT_ID, devMachineSecret } from '../../src/identity/dev.ts';
import { API_PREFIX, API_ROUTES, type ApiRoute } from '../../src/web/api/routes.ts';
import { errorSchema } from '../../src/web/api/schemas.ts';

/** Who calls: a bearer token, a session cookie (with the CSRF token for writes), raw headers, or nobody. */
export type Caller =
  | { readonly bearer: string; readonly cookie?: string }
  | { readonly cookie: string; readonly csrf?: string }
  | { readonly headers: Readonly<Record<string, string>> }
  | undefined;

export interface CallOptions {
  /** Path parameters, inserted as given (encode them yourself when you mean to). */
  readonly params?: Readonly<Record<string, string>>;
  readonly query?: Readonly<Record<string, string>>;
  /** Sent as JSON with Content-Type: application/json. */
  readonly body?: unknown;
  /** Sent as is, with `contentType` (default application/json). */
  readonly rawBody?: string;
  readonly contentType?: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly as?: Caller;
}

export interface ApiResponse {
  readonly status: number;
  readonly headers: Headers;
  /** Parsed JSON, or undefined when the answer was not JSON. */
  readonly body: any;
  readonly text: string;
}

export type ErrorBody = { error: string; message: string; fields?: { field: string; message: string }[]; missing_scope?: string };

export class ApiClient {
  /** operationIds that answered with their documented success status. */
  readonly succeeded = new Set<string>();
  readonly baseUrl: string;

  constructor(baseUrl: string) {
    this.baseUrl = baseUrl;
  }

  route(operationId: string): ApiRoute {
    const route = API_ROUTES.find((r) => r.operationId === operationId);
    assert.ok(route, `no route with operationId ${operationId}`);
    return route;
  }

  /** The URL path of a route, `:name` replaced from `params`. */
  path(operationId: string, params: Readonly<Record<string, string>> = {}): string {
    const route = this.route(operationId);
    return `${API_PREFIX}${route.path.replace(/:([A-Za-z]+)/g, (_m, key: string) => {
      const value = params[key];
      assert.ok(value !== undefined, `${operationId} needs the path parameter ${key}`);
      return value;
    })}`;
  }

  async call(operationId: string, options: CallOptions = {}): Promise<ApiResponse> {
    const route = this.route(operationId);
    const query = options.query ? `?${new URLSearchParams(options.query).toString()}` : '';
    const headers: Record<string, string> = { accept: 'application/json', ...callerHeaders(options.as, route.method !== 'get') };
    let body: string | undefined;
    if (options.rawBody !== undefined) {
      body = options.rawBody;
      headers['content-type'] = options.contentType ?? 'application/json';
    } else if (options.body !== undefined) {
      body = JSON.stringify(options.body);
      headers['content-type'] = options.contentType ?? 'application/json';
    }
    Object.assign(headers, options.headers);
    const res = await this.fetch(route.method.toUpperCase(), `${this.path(operationId, options.params)}${query}`, headers, body);
    if (res.status === route.status) this.succeeded.add(operationId);
    return res;
  }

  /** Any request to the gateway, answer read whole. */
  async fetch(method: string, path: string, headers: Record<string, string> = {}, body?: string): Promise<ApiResponse> {
    const res = await fetch(`${this.baseUrl}${path}`, { method, headers, ...(body !== undefined ? { body } : {}), redirect: 'manual' });
    const text = await res.text();
    let parsed: unknown;
    if (text !== '' && /application\/json/.test(res.headers.get('content-type') ?? '')) parsed = JSON.parse(text);
    return { status: res.status, headers: res.headers, body: parsed, text };
  }
}

function callerHeaders(caller: Caller, write: boolean): Record<string, string> {
  if (caller === undefined) return {};
  if ('headers' in caller) return { ...caller.headers };
  if ('bearer' in caller) return { authorization: `Bearer ${caller.bearer}`, ...(caller.cookie ? { cookie: caller.cookie } : {}) };
  return { cookie: caller.cookie, ...(write && caller.csrf !== undefined ? { 'x-csrf-token': caller.csrf } : {}) };
}

/**
 * Asserts a JSON error answer: the status, the code, and a body that matches the documented
 * Error schema (no extra keys). Returns the body.
 */
export function assertError(res: ApiResponse, status: number, code: string, context = ''): ErrorBody {
  const where = `${context}${context ? ': ' : ''}${res.status} ${res.text.slice(0, 300)}`;
  assert.equal(res.status, status, where);
  assert.match(res.headers.get('content-type') ?? '', /^application\/json/, `JSON, never a page (${where})`);
  const checked = errorSchema.strict().safeParse(res.body);
  assert.ok(checked.success, `the error body matches the Error schema (${where}): ${checked.success ? '' : checked.error.message}`);
  assert.equal(res.body.error, code, where);
  return res.body as ErrorBody;
}

/** A client-credentials access token of the built-in IdP's machine client. */
export async function machineToken(gatewayUrl: string, secretKey: string): Promise<string> {
  const res = await fetch(`${gatewayUrl}/idp/token`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: `Basic ${Buffer.from(`${DEV_MACHINE_CLIENT_ID}:${devMachineSecret(secretKey)}`).toString('base64')}`,
    },
    body: 'grant_type=client_credentials',
  });
  const body = (await res.json()) as { access_token?: string };
  if (!body.access_token) throw new Error(`no token: ${JSON.stringify(body)}`);
  return body.access_token;
}
