import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { demoUsers, mergeDevUsers, type DemoUser } from '../identity/demo-users.ts';
import { ENV_VARS, envSchema } from './schema.ts';

/** The validated, frozen configuration every module receives. Nothing else reads process.env. */
export interface Config {
  readonly gateway: { readonly host: string; readonly port: number; readonly publicUrl: string };
  readonly registryPort: number;
  readonly authEnabled: boolean;
  readonly providerType: 'dev';
  readonly admin: { readonly user: string; readonly password: string; readonly passwordGenerated: boolean };
  /** The dev provider's users: the demo users, merged with DEV_IDP_USERS_FILE. */
  readonly devUsers: readonly DemoUser[];
  readonly secretKey: string;
  readonly secretKeyGenerated: boolean;
  readonly logLevel: string;
  readonly stateDir: string;
  readonly catalogDir: string;
  readonly auditLogFile: string;
  readonly sessionTtlSeconds: number;
  /** Cookies are Secure when the public URL is https. */
  readonly cookieSecure: boolean;
  readonly nginx: { readonly bin: string | undefined; readonly njsModule: string; readonly maxBodySize: string; readonly runtimeDir: string };
  /** Development defaults in use, each naming the variable that turns it off. */
  readonly warnings: readonly string[];
}

export type LoadResult = { ok: true; config: Config } | { ok: false; errors: string[] };

const KNOWN = new Set(ENV_VARS.map((v) => v.name));

/**
 * Validates the whole environment in one pass and reports every problem, one line each.
 * Secrets that are not set are generated once into STATE_DIR (mode 0600) and reused.
 */
export function loadConfig(env: Readonly<Record<string, string | undefined>>, projectRoot: string): LoadResult {
  const input: Record<string, string> = {};
  for (const name of KNOWN) {
    const value = env[name];
    if (value !== undefined && value !== '') input[name] = value;
  }
  const parsed = envSchema.safeParse(input);
  if (!parsed.success) {
    return { ok: false, errors: parsed.error.issues.map((i) => formatIssue(i.path, i.message)) };
  }
  const e = parsed.data;
  const warnings: string[] = [];
  for (const name of Object.keys(env)) {
    if (name.startsWith('MCP_AUTH_') && !KNOWN.has(name)) {
      warnings.push(`${name} is not a setting this gateway knows; it is ignored (check the spelling)`);
    }
  }

  const stateDir = resolveFrom(projectRoot, e.STATE_DIR);
  const catalogDir = resolveFrom(projectRoot, e.CATALOG_DIR);
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });

  const secret = e.SECRET_KEY ?? readOrCreateSecret(join(stateDir, 'secret_key'), () => randomBytes(32).toString('hex'));
  const password =
    e.ADMIN_PASSWORD ?? readOrCreateSecret(join(stateDir, 'admin_password'), () => randomBytes(12).toString('base64url'));
  const admin = { user: e.ADMIN_USER, password };
  let devUsers = demoUsers(admin);
  if (e.DEV_IDP_USERS_FILE !== undefined) {
    const file = resolveFrom(projectRoot, e.DEV_IDP_USERS_FILE);
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      return { ok: false, errors: [`DEV_IDP_USERS_FILE ${file} cannot be read: ${(err as Error).message}`] };
    }
    const merged = mergeDevUsers(devUsers, text, file);
    if ('errors' in merged) return { ok: false, errors: merged.errors };
    devUsers = merged.users;
  }
  const publicUrl = (e.GATEWAY_PUBLIC_URL ?? `http://localhost:${e.GATEWAY_PORT}`).replace(/\/+$/, '');

  if (e.SECRET_KEY === undefined) warnings.push(`SECRET_KEY is not set: using a generated key kept in ${join(stateDir, 'secret_key')}`);
  if (!publicUrl.startsWith('https:')) warnings.push('cookies are not Secure because GATEWAY_PUBLIC_URL is not https');
  if (e.MCP_AUTH_PROVIDER_TYPE === 'dev') warnings.push('the built-in development identity provider is active (set MCP_AUTH_PROVIDER_TYPE for a real IdP)');

  const config: Config = {
    gateway: { host: e.GATEWAY_HOST, port: e.GATEWAY_PORT, publicUrl },
    registryPort: e.REGISTRY_PORT,
    authEnabled: e.MCP_AUTH_ENABLED,
    providerType: e.MCP_AUTH_PROVIDER_TYPE,
    admin: { user: e.ADMIN_USER, password, passwordGenerated: e.ADMIN_PASSWORD === undefined },
    devUsers,
    secretKey: secret,
    secretKeyGenerated: e.SECRET_KEY === undefined,
    logLevel: e.LOGGING_LEVEL,
    stateDir,
    catalogDir,
    auditLogFile: e.AUDIT_LOG_FILE === undefined ? join(stateDir, 'audit.log') : resolveFrom(projectRoot, e.AUDIT_LOG_FILE),
    sessionTtlSeconds: e.SESSION_TTL_SECONDS,
    cookieSecure: publicUrl.startsWith('https:'),
    nginx: { bin: e.NGINX_BIN, njsModule: e.NGINX_NJS_MODULE, maxBodySize: e.NGINX_MAX_BODY_SIZE, runtimeDir: join(stateDir, 'nginx') },
    warnings,
  };
  return { ok: true, config: deepFreeze(config) };
}

function formatIssue(path: readonly PropertyKey[], message: string): string {
  const name = String(path[0] ?? 'environment');
  return message.includes(name) ? message : `${name}: ${message}`;
}

function resolveFrom(root: string, p: string): string {
  return isAbsolute(p) ? p : resolve(root, p);
}

function readOrCreateSecret(file: string, make: () => string): string {
  if (existsSync(file)) {
    const value = readFileSync(file, 'utf8').trim();
    if (value.length > 0) return value;
  }
  const value = make();
  // 'wx' fails if another process created it first; then read theirs, so both agree.
  try {
    writeFileSync(file, `${value}\n`, { mode: 0o600, flag: 'wx' });
    return value;
  } catch {
    return readFileSync(file, 'utf8').trim();
  }
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
