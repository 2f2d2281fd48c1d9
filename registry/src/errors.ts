/**
 * The one registry of error codes. Request errors become a GatewayError and reach a client
 * only through toHttp(); programmer errors throw plain Errors and crash; config errors stop
 * the start (see config/load.ts).
 */
export type GatewayErrorCode =
  | 'CONFIG_INVALID'
  | 'CATALOG_FILE_INVALID'
  | 'SERVER_NAME_INVALID'
  | 'SERVER_UNKNOWN'
  | 'SERVER_EXISTS'
  | 'SERVER_CHANGED'
  | 'SERVER_DISABLED'
  | 'REQUEST_INVALID'
  | 'AUTH_NO_CREDENTIALS'
  | 'AUTH_SESSION_INVALID'
  | 'AUTH_SCOPE_MISSING'
  | 'LOGIN_STATE_INVALID'
  | 'LOGIN_FAILED'
  | 'CSRF_TOKEN_INVALID'
  | 'NGINX_CONFIG_REJECTED'
  | 'NGINX_UNAVAILABLE'
  | 'STORE_UNAVAILABLE'
  | 'BACKEND_UNAVAILABLE'
  | 'BACKEND_CREDENTIAL_FAILED'
  | 'BACKEND_CONNECT_REQUIRED'
  | 'BODY_TOO_LARGE'
  | 'MCP_REQUEST_INVALID'
  | 'MCP_HEADER_MISMATCH'
  | 'MCP_SESSION_UNKNOWN'
  | 'METHOD_NOT_ALLOWED'
  | 'NOT_FOUND'
  | 'INTERNAL';

const STATUS: Record<GatewayErrorCode, number> = {
  CONFIG_INVALID: 500,
  CATALOG_FILE_INVALID: 400,
  SERVER_NAME_INVALID: 400,
  SERVER_UNKNOWN: 404,
  SERVER_EXISTS: 409,
  SERVER_CHANGED: 412,
  SERVER_DISABLED: 503,
  REQUEST_INVALID: 400,
  AUTH_NO_CREDENTIALS: 401,
  AUTH_SESSION_INVALID: 401,
  AUTH_SCOPE_MISSING: 403,
  LOGIN_STATE_INVALID: 400,
  LOGIN_FAILED: 502,
  CSRF_TOKEN_INVALID: 403,
  NGINX_CONFIG_REJECTED: 500,
  NGINX_UNAVAILABLE: 503,
  STORE_UNAVAILABLE: 503,
  BACKEND_UNAVAILABLE: 502,
  BACKEND_CREDENTIAL_FAILED: 502,
  // The person connects (uploads a token, links an account) at the page named; not a fault of ours.
  BACKEND_CONNECT_REQUIRED: 403,
  BODY_TOO_LARGE: 413,
  MCP_REQUEST_INVALID: 400,
  MCP_HEADER_MISMATCH: 400,
  MCP_SESSION_UNKNOWN: 404,
  METHOD_NOT_ALLOWED: 405,
  NOT_FOUND: 404,
  INTERNAL: 500,
};

/**
 * What a client is told of a server fault whose cause it should know (its message is not shown:
 * it may name internals). STORE_UNAVAILABLE: the person can do nothing but wait, and should know.
 */
const PUBLIC_MESSAGE: Partial<Record<GatewayErrorCode, string>> = {
  STORE_UNAVAILABLE: 'the state store (Redis) cannot be reached; nothing can be checked or saved until it is back, try again shortly',
};

export const GATEWAY_ERROR_CODES = Object.freeze(Object.keys(STATUS) as GatewayErrorCode[]);

/** One invalid field of a request: its path (`url`, `transports.sse`, `tags.2`) and what is wrong. */
export interface FieldProblem {
  readonly field: string;
  readonly message: string;
}

export class GatewayError extends Error {
  readonly code: GatewayErrorCode;
  readonly status: number;
  /** Whether `message` may be shown to the client. Server faults never are. */
  readonly expose: boolean;
  /** For REQUEST_INVALID: each invalid field, so forms can show the message next to it. */
  readonly fields: readonly FieldProblem[] | undefined;
  /** For AUTH_SCOPE_MISSING: the scope that would allow the request (safe to show). */
  readonly missingScope: string | undefined;

  constructor(code: GatewayErrorCode, message: string, options?: { cause?: unknown; fields?: readonly FieldProblem[]; missingScope?: string }) {
    super(message, options);
    this.name = 'GatewayError';
    this.code = code;
    this.status = STATUS[code];
    this.expose = this.status < 500;
    this.fields = options?.fields;
    this.missingScope = options?.missingScope;
  }
}

export interface HttpError {
  status: number;
  body: { error: GatewayErrorCode; message: string; fields?: readonly FieldProblem[]; missing_scope?: string };
}

/** Maps any thrown value to what the client may see. Unknown errors are a 500 with no detail. */
export function toHttp(err: unknown): HttpError {
  if (err instanceof GatewayError) {
    return {
      status: err.status,
      body: {
        error: err.code,
        message: err.expose ? err.message : (PUBLIC_MESSAGE[err.code] ?? 'internal error'),
        ...(err.expose && err.fields ? { fields: err.fields } : {}),
        ...(err.expose && err.missingScope ? { missing_scope: err.missingScope } : {}),
      },
    };
  }
  return { status: 500, body: { error: 'INTERNAL', message: 'internal error' } };
}
