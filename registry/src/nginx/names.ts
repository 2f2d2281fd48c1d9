/**
 * Every value that reaches the generated nginx config passes one of these checks first.
 *
 * The catalog already validates definitions with the same patterns; checking again here is
 * defence in depth: `renderNginxConfig` takes only the branded types below, so a value that
 * skipped this file cannot be typed into the config, whoever built the input. The checks are
 * allow-lists (never "strip the bad characters"), because nginx config has several quoting
 * contexts (`;`, `{`, `}`, `$`, `#`, quotes, whitespace, `\`) and a miss in any of them would
 * let a definition file add directives.
 */
import { SLOT_HEADER_NAME_PATTERN } from '../catalog/backend-auth.ts';
import { BACKEND_PATH_PATTERN, BACKEND_URL_PATTERN, SERVER_NAME_PATTERN } from '../catalog/server-definition.ts';
import { isSerializedOrigin } from '../config/origin.ts';
import { GatewayError, type GatewayErrorCode } from '../errors.ts';

declare const checked: unique symbol;
/** A string that passed the named check in this file. Type-level only; erased at run time. */
type Checked<Kind extends string> = string & { readonly [checked]: Kind };

export type ServerName = Checked<'ServerName'>;
export type BackendUrl = Checked<'BackendUrl'>;
export type BackendPath = Checked<'BackendPath'>;
export type ListenHost = Checked<'ListenHost'>;
export type FilePath = Checked<'FilePath'>;
export type WorkerUser = Checked<'WorkerUser'>;
export type BodySize = Checked<'BodySize'>;
/** `host:port` for `listen` and `server` directives. */
export type HostPort = Checked<'HostPort'>;
/** A browser origin of the CORS allow-list (`scheme://host[:port]`), for the `map $http_origin`. */
export type CorsOrigin = Checked<'CorsOrigin'>;
/** A header name of BACKEND_CREDENTIAL_HEADERS: letters, digits, dashes (a `proxy_set_header` argument). */
export type HeaderName = Checked<'HeaderName'>;
/** A checked backend URL with a checked path appended: a `proxy_pass` target. */
export type BackendTarget = Checked<'BackendTarget'>;

/** IPv4 dotted quad, bracketed IPv6 literal, `*`, or a DNS host name. */
const LISTEN_HOST_PATTERN =
  /^(?:\*|(?:\d{1,3}\.){3}\d{1,3}|\[[0-9A-Fa-f:.]{2,45}\]|[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*)$/;
/** Absolute, no `..` or `.` segments, and only characters that need no quoting in nginx. */
const FILE_PATH_PATTERN = /^(?:\/[A-Za-z0-9_.-]+)+\/?$|^\/$/;
/** `user <user> [<group>]` as POSIX portable names. */
const WORKER_USER_PATTERN = /^[a-z_][a-z0-9_-]{0,31}(?: [a-z_][a-z0-9_-]{0,31})?$/;
/** nginx size syntax: a number with an optional k/m suffix (`1m`, `512k`). */
const BODY_SIZE_PATTERN = /^[1-9][0-9]{0,5}[kKmM]?$/;

/** JSON-quotes a value for an error message, so control characters show up escaped. */
function shown(value: unknown): string {
  const text = JSON.stringify(typeof value === 'string' ? value : String(value));
  return text.length > 80 ? `${text.slice(0, 77)}..."` : text;
}

function check<Kind extends string>(value: unknown, pattern: RegExp, code: GatewayErrorCode, what: string): Checked<Kind> {
  // `typeof` first: a regex would coerce a non-string (`{ toString }`) and test that instead.
  if (typeof value !== 'string' || !pattern.test(value)) {
    throw new GatewayError(code, `${what}: ${shown(value)} is not allowed`);
  }
  return value as Checked<Kind>;
}

/**
 * Checks a server name against `[a-z0-9][a-z0-9-]{0,62}`.
 * @throws GatewayError `SERVER_NAME_INVALID` for anything else (uppercase, `.`, `_`, `/`,
 *   whitespace, control or non-ASCII characters, empty, longer than 63).
 */
export function assertServerName(value: unknown): ServerName {
  return check<'ServerName'>(value, SERVER_NAME_PATTERN, 'SERVER_NAME_INVALID', 'server name must match [a-z0-9][a-z0-9-]{0,62}');
}

/**
 * Checks a backend base URL (`http(s)://host[:port][/path]`, no query, userinfo or quoting
 * characters) and that its port, if any, is 1-65535. A trailing `/` is removed so the
 * transport path can be appended.
 * @throws GatewayError `CATALOG_FILE_INVALID` when the URL does not match or does not parse.
 */
export function assertBackendUrl(value: unknown): BackendUrl {
  const url = check<'BackendUrl'>(value, BACKEND_URL_PATTERN, 'CATALOG_FILE_INVALID', 'backend url must be http(s)://host[:port][/path]');
  let port: string;
  try {
    port = new URL(url).port;
  } catch (cause) {
    throw new GatewayError('CATALOG_FILE_INVALID', `backend url: ${shown(url)} does not parse`, { cause });
  }
  if (port === '0') {
    throw new GatewayError('CATALOG_FILE_INVALID', `backend url: ${shown(url)} has port 0`);
  }
  return url.replace(/\/+$/, '') as BackendUrl;
}

/**
 * Checks a transport path on the backend (`/mcp`, `/sse`).
 * @throws GatewayError `CATALOG_FILE_INVALID` unless it starts with `/` and holds only
 *   `A-Z a-z 0-9 . _ ~ / -` (at most 201 characters).
 */
export function assertBackendPath(value: unknown): BackendPath {
  return check<'BackendPath'>(value, BACKEND_PATH_PATTERN, 'CATALOG_FILE_INVALID', 'backend path must start with / and hold only A-Z a-z 0-9 . _ ~ / -');
}

/**
 * Checks the host part of nginx's `listen` (IPv4, `[IPv6]`, `*` or a host name).
 * @throws GatewayError `CONFIG_INVALID` for anything else, including an IPv4 octet above 255.
 */
export function assertListenHost(value: unknown): ListenHost {
  const host = check<'ListenHost'>(value, LISTEN_HOST_PATTERN, 'CONFIG_INVALID', 'listen host');
  if (/^[\d.]+$/.test(host) && host.split('.').some((octet) => Number(octet) > 255)) {
    throw new GatewayError('CONFIG_INVALID', `listen host: ${shown(host)} is not an IPv4 address`);
  }
  return host;
}

/**
 * Checks a TCP port.
 * @throws GatewayError `CONFIG_INVALID` unless it is an integer 1-65535.
 */
export function assertPort(value: unknown, what = 'port'): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 65535) {
    throw new GatewayError('CONFIG_INVALID', `${what}: ${shown(value)} is not a port 1-65535`);
  }
  return value;
}

/**
 * Checks an absolute file or directory path made of `A-Z a-z 0-9 _ . -` segments, with no
 * `.` or `..` segment (so it names what it appears to name).
 * @throws GatewayError `CONFIG_INVALID` for relative paths, `..`, whitespace, quotes, `$`, `;`,
 *   non-ASCII or control characters.
 */
export function assertFilePath(value: unknown): FilePath {
  const path = check<'FilePath'>(value, FILE_PATH_PATTERN, 'CONFIG_INVALID', 'file path must be absolute with only A-Z a-z 0-9 _ . - segments');
  if (path.split('/').some((segment) => segment === '.' || segment === '..')) {
    throw new GatewayError('CONFIG_INVALID', `file path: ${shown(path)} has a . or .. segment`);
  }
  return path;
}

/**
 * Checks the argument of nginx's `user` directive (`nobody nogroup`).
 * @throws GatewayError `CONFIG_INVALID` unless it is one or two POSIX user/group names.
 */
export function assertWorkerUser(value: unknown): WorkerUser {
  return check<'WorkerUser'>(value, WORKER_USER_PATTERN, 'CONFIG_INVALID', 'worker user must be "user [group]"');
}

/**
 * Checks an nginx size (`1m`, `512k`, `65536`).
 * @throws GatewayError `CONFIG_INVALID` for anything else.
 */
export function assertBodySize(value: unknown): BodySize {
  return check<'BodySize'>(value, BODY_SIZE_PATTERN, 'CONFIG_INVALID', 'body size must look like 1m or 512k');
}

/**
 * Checks one origin of CORS_ALLOWED_ORIGINS: exactly a serialized http(s) origin (lowercase
 * host name, IPv4 or bracketed IPv6, optional non-default port; no path, query, userinfo,
 * whitespace or quoting characters), since it becomes a `map` key and a header value.
 * @throws GatewayError `CONFIG_INVALID` for anything else (`*`, `null`, a trailing slash, ...).
 */
export function assertCorsOrigin(value: unknown): CorsOrigin {
  if (typeof value !== 'string' || !isSerializedOrigin(value)) {
    throw new GatewayError('CONFIG_INVALID', `CORS origin: ${shown(value)} is not allowed (scheme://host[:port], lowercase)`);
  }
  return value as CorsOrigin;
}

/** Joins a checked host and port. @throws GatewayError `CONFIG_INVALID` for a bad port. */
/**
 * Checks a header name nginx sets on backend requests (BACKEND_CREDENTIAL_HEADERS).
 * @throws GatewayError `CONFIG_INVALID` for anything but letters, digits and dashes (1-64).
 */
export function assertHeaderName(value: unknown): HeaderName {
  return check<'HeaderName'>(value, SLOT_HEADER_NAME_PATTERN, 'CONFIG_INVALID', 'backend credential header name');
}

export function hostPort(host: ListenHost, port: number): HostPort {
  return `${host}:${assertPort(port)}` as HostPort;
}

/** `scheme://host[:port]` of a checked backend URL: a `proxy_pass` target with no URI part. */
export type BackendOrigin = Checked<'BackendOrigin'>;
/** The path part of a checked backend URL without a trailing `/` (may be empty). */
export type BackendBase = Checked<'BackendBase'>;

/** Splits a checked backend URL into its origin (what a named location may proxy_pass to). */
export function backendOrigin(url: BackendUrl): BackendOrigin {
  return /^https?:\/\/[^/]+/.exec(url)?.[0] as BackendOrigin;
}

/** The backend URL's own path (`http://h/base` -> `/base`, `http://h` -> ``). */
export function backendBasePath(url: BackendUrl): BackendBase {
  return url.slice(backendOrigin(url).length).replace(/\/+$/, '') as BackendBase;
}

/** The Host header for a backend: `host[:port]` as the URL spells it. */
export function hostOf(origin: BackendOrigin): HostPort {
  return origin.replace(/^https?:\/\//, '') as HostPort;
}

/** Appends a checked transport path to a checked backend URL (which has no trailing `/`). */
export function backendTarget(url: BackendUrl | BackendBase, path: BackendPath): BackendTarget {
  return `${url}${path}` as BackendTarget;
}

/**
 * Wraps a checked value in double quotes for the config. The checks above already exclude
 * every character that is special inside an nginx double-quoted string; refusing them again
 * here keeps one typo in a pattern from becoming an injection.
 * @throws Error (a programmer error) when the value holds `"`, `\`, `$`, or a control character.
 */
export function quoted(value: Checked<string>): string {
  if (/["\\$\u0000-\u001f\u007f]/.test(value)) {
    throw new Error(`refusing to quote ${shown(value)} into nginx config`);
  }
  return `"${value}"`;
}
