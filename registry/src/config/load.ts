import { createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { DERIVED_KEY_ID, parseCredentialKeys, type CredentialKey, type CredentialKeyEntry } from './credential-keys.ts';
import { demoUsers, mergeDevUsers, type DemoUser } from './dev-users.ts';
import { parseStaticClients, type StaticClient } from './oauth-clients.ts';
import { BACKEND_ENV_PREFIX, ENV_VARS, envSchema, isGatewaySetting } from './schema.ts';

/** The validated, frozen configuration every module receives. Nothing else reads process.env. */
export interface Config {
  readonly gateway: { readonly host: string; readonly port: number; readonly publicUrl: string };
  readonly registryPort: number;
  readonly authEnabled: boolean;
  readonly providerType: IdentityConfig['type'];
  readonly identity: IdentityConfig;
  /**
   * `passwordFrom`: `env` (ADMIN_PASSWORD), `file` (generated once into STATE_DIR/admin_password),
   * or `secret-key` (with REDIS_URL and SECRET_KEY: derived from SECRET_KEY, so every replica
   * shares it without a file of its own).
   */
  readonly admin: { readonly user: string; readonly password: string; readonly passwordFrom: 'env' | 'file' | 'secret-key' };
  /** The dev provider's users: the demo users, merged with DEV_IDP_USERS_FILE. */
  readonly devUsers: readonly DemoUser[];
  readonly secretKey: string;
  readonly secretKeyGenerated: boolean;
  /**
   * The key ring that seals backend secrets (CREDENTIAL_KEYS), the sealing key first. `from`:
   * `env`, `file` (generated once into STATE_DIR/credential_keys) or `secret-key` (with REDIS_URL
   * and no CREDENTIAL_KEYS: derived from SECRET_KEY, key id `sk`, the same on every replica).
   */
  readonly credentialKeys: { readonly keys: readonly CredentialKey[]; readonly from: 'env' | 'file' | 'secret-key' };
  readonly logLevel: string;
  readonly stateDir: string;
  readonly catalogDir: string;
  readonly auditLogFile: string;
  readonly sessionTtlSeconds: number;
  /** The absolute lifetime of a login, from sign-in (SESSION_MAX_LIFETIME_SECONDS). */
  readonly sessionMaxLifetimeSeconds: number;
  /** The gateway as the MCP clients' authorization server (registry/src/authserver). */
  readonly oauth: {
    readonly accessTokenTtlSeconds: number;
    readonly refreshTokenTtlSeconds: number;
    /** How old a person's groups may be when a token is issued to an MCP client (re-read at the IdP beyond). */
    readonly groupsMaxAgeSeconds: number;
    readonly clientTtlSeconds: number;
    /** Client ID Metadata Documents (https URL client ids, fetched with SSRF limits). */
    readonly clientMetadataDocuments: boolean;
    /** Dynamic registrations one client address may make per hour. */
    readonly registrationsPerHour: number;
    /** PAT_MAX_LIFETIME_DAYS: the longest a personal access token may live. */
    readonly patMaxLifetimeDays: number;
    /** Custom redirect URI schemes (without ':') an operator allows, besides loopback http and https. */
    readonly redirectSchemes: readonly string[];
    /** Clients registered ahead of time (OAUTH_CLIENTS_FILE), secrets resolved from the environment. */
    readonly clients: readonly StaticClient[];
  };
  /** Background MCP health checks of every backend (0 = on demand only), and each check's limit. */
  readonly healthCheck: { readonly intervalMs: number; readonly timeoutMs: number };
  /** Cookies are Secure when the public URL is https. */
  readonly cookieSecure: boolean;
  /** Browser origins allowed cross-origin on the MCP, metadata and OAuth endpoints (CORS_ALLOWED_ORIGINS); empty: no CORS. */
  readonly corsAllowedOrigins: readonly string[];
  /**
   * The gateway's own credentials for backends: the header names nginx has a slot for besides
   * Authorization (BACKEND_CREDENTIAL_HEADERS), and the values of the environment variables a
   * definition may read (MCP_BACKEND_* and BACKEND_CREDENTIAL_ENV), read once at start.
   */
  readonly backendCredentials: {
    readonly headerSlots: readonly string[];
    readonly env: Readonly<Record<string, string>>;
    readonly envAllowed: readonly string[];
    /** BACKEND_TOKEN_REFRESH_SECONDS, in ms: how often per-user OAuth tokens due are refreshed. */
    readonly refreshEveryMs: number;
  };
  /** METRICS_TOKEN: lets a scraper off loopback read /metrics; undefined = loopback only. */
  readonly metricsToken: string | undefined;
  readonly nginx: {
    readonly bin: string | undefined;
    readonly njsModule: string;
    readonly maxBodySize: string;
    readonly runtimeDir: string;
    /** CHECK_CACHE_SECONDS and CHECK_CACHE_DIR (undefined: the default, nginx/check-cache-dir.ts): cached decisions (0 seconds: none). */
    readonly checkCache: { readonly seconds: number; readonly dir: string | undefined };
  };
  /** REDIS_URL: state in Redis (shared by replicas) instead of files; how long the start waits for it. */
  readonly redis: { readonly url: string; readonly startTimeoutMs: number } | undefined;
  /** Development defaults in use, each naming the variable that turns it off. */
  readonly warnings: readonly string[];
}

/** What the identity provider needs, resolved from the MCP_AUTH_* variables. */
export type IdentityConfig =
  | (IdentityCommon & { readonly type: 'dev' })
  | (IdentityCommon & OidcClient & { readonly type: 'cognito'; readonly region: string; readonly userPoolId: string })
  | (IdentityCommon &
      OidcClient & {
        readonly type: 'okta';
        readonly audience: string;
        /** Applications besides the gateway's own whose access tokens are accepted (`cid`). */
        readonly allowedClientIds: readonly string[];
      })
  | (IdentityCommon &
      OidcClient & {
        readonly type: 'generic';
        readonly audience: string | undefined;
        /** Set when the IdP is configured without discovery. */
        readonly endpoints:
          { readonly authorization: string; readonly token: string; readonly jwks: string; readonly userinfo: string | undefined } | undefined;
      });

interface IdentityCommon {
  readonly scope: string;
  readonly groupsClaim: string;
  readonly mappingFile: string | undefined;
  readonly allowInsecureHttp: boolean;
}

interface OidcClient {
  readonly issuer: string;
  readonly clientId: string;
  readonly clientSecret: string | undefined;
  readonly redirectUri: string;
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
  // Replicas each have a STATE_DIR of their own: a password generated into one would sign the
  // admin in on that replica only. With a shared SECRET_KEY and Redis, all derive the same one.
  const passwordFrom = e.ADMIN_PASSWORD !== undefined ? 'env' : e.REDIS_URL !== undefined && e.SECRET_KEY !== undefined ? 'secret-key' : 'file';
  const password =
    e.ADMIN_PASSWORD ??
    (passwordFrom === 'secret-key'
      ? createHmac('sha256', secret).update('mcp-gateway dev admin password').digest('base64url').slice(0, 20)
      : readOrCreateSecret(join(stateDir, 'admin_password'), () => randomBytes(12).toString('base64url')));
  const admin = { user: e.ADMIN_USER, password };
  const credentialKeys = resolveCredentialKeys(e.CREDENTIAL_KEYS, e.REDIS_URL !== undefined, secret, stateDir);
  if ('errors' in credentialKeys) return { ok: false, errors: credentialKeys.errors };
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
  let oauthClients: StaticClient[] = [];
  if (e.OAUTH_CLIENTS_FILE !== undefined) {
    const file = resolveFrom(projectRoot, e.OAUTH_CLIENTS_FILE);
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      return { ok: false, errors: [`OAUTH_CLIENTS_FILE ${file} cannot be read: ${(err as Error).message}`] };
    }
    // mcp-dev-machine: the dev provider's demo machine client (identity/dev.ts) is registered already.
    const schemes = e.OAUTH_REDIRECT_SCHEMES.split(',')
      .map((scheme) => scheme.trim())
      .filter((scheme) => scheme !== '');
    const result = parseStaticClients(text, env, schemes, ['mcp-dev-machine']);
    if (!result.ok) return { ok: false, errors: result.errors.map((problem) => `OAUTH_CLIENTS_FILE ${file}: ${problem}`) };
    oauthClients = result.clients;
  }
  const publicUrl = (e.GATEWAY_PUBLIC_URL ?? `http://localhost:${e.GATEWAY_PORT}`).replace(/\/+$/, '');

  if (e.SECRET_KEY === undefined) warnings.push(`SECRET_KEY is not set: using a generated key kept in ${join(stateDir, 'secret_key')}`);
  if (e.SECRET_KEY === undefined && e.REDIS_URL !== undefined)
    warnings.push(
      'REDIS_URL is set but SECRET_KEY is not: replicas sharing this Redis must share SECRET_KEY, or their cookies and tokens are refused by each other',
    );
  if (credentialKeys.from === 'secret-key')
    warnings.push(
      'REDIS_URL is set but CREDENTIAL_KEYS is not: backend secrets are sealed under a key derived from SECRET_KEY (key id sk); set CREDENTIAL_KEYS so that key can be rotated apart from SECRET_KEY (docs/backend-credentials.md)',
    );
  if (!publicUrl.startsWith('https:')) warnings.push('cookies are not Secure because GATEWAY_PUBLIC_URL is not https');
  if (e.MCP_AUTH_PROVIDER_TYPE === 'dev') warnings.push('the built-in development identity provider is active (set MCP_AUTH_PROVIDER_TYPE for a real IdP)');

  const identity = identityConfig(e, publicUrl, projectRoot);
  if (identity.allowInsecureHttp) warnings.push('MCP_AUTH_ALLOW_INSECURE_HTTP=true: identity provider URLs may be http; use this for loopback tests only');
  if (identity.type === 'generic' && identity.audience === undefined)
    warnings.push('bearer tokens are refused: set MCP_AUTH_AUDIENCE to the audience your IdP puts in access tokens for the gateway');

  const config: Config = {
    gateway: { host: e.GATEWAY_HOST, port: e.GATEWAY_PORT, publicUrl },
    registryPort: e.REGISTRY_PORT,
    authEnabled: e.MCP_AUTH_ENABLED,
    providerType: e.MCP_AUTH_PROVIDER_TYPE,
    identity,
    admin: { user: e.ADMIN_USER, password, passwordFrom },
    devUsers,
    secretKey: secret,
    secretKeyGenerated: e.SECRET_KEY === undefined,
    credentialKeys,
    logLevel: e.LOGGING_LEVEL,
    stateDir,
    catalogDir,
    auditLogFile: e.AUDIT_LOG_FILE === undefined ? join(stateDir, 'audit.log') : resolveFrom(projectRoot, e.AUDIT_LOG_FILE),
    sessionTtlSeconds: e.SESSION_TTL_SECONDS,
    sessionMaxLifetimeSeconds: e.SESSION_MAX_LIFETIME_SECONDS,
    oauth: {
      accessTokenTtlSeconds: e.OAUTH_ACCESS_TOKEN_TTL_SECONDS,
      refreshTokenTtlSeconds: e.OAUTH_REFRESH_TOKEN_TTL_SECONDS,
      groupsMaxAgeSeconds: e.OAUTH_GROUPS_MAX_AGE_SECONDS,
      clientTtlSeconds: e.OAUTH_CLIENT_TTL_SECONDS,
      clientMetadataDocuments: e.OAUTH_CLIENT_METADATA_DOCUMENTS,
      registrationsPerHour: e.OAUTH_REGISTRATIONS_PER_HOUR,
      patMaxLifetimeDays: e.PAT_MAX_LIFETIME_DAYS,
      redirectSchemes: e.OAUTH_REDIRECT_SCHEMES.split(',')
        .map((s) => s.trim())
        .filter((s) => s !== ''),
      clients: oauthClients,
    },
    healthCheck: { intervalMs: e.HEALTH_CHECK_INTERVAL_SECONDS * 1000, timeoutMs: e.HEALTH_CHECK_TIMEOUT_SECONDS * 1000 },
    cookieSecure: publicUrl.startsWith('https:'),
    corsAllowedOrigins: e.CORS_ALLOWED_ORIGINS,
    metricsToken: e.METRICS_TOKEN,
    backendCredentials: {
      ...backendCredentialEnv(env, e.BACKEND_CREDENTIAL_HEADERS, e.BACKEND_CREDENTIAL_ENV),
      refreshEveryMs: e.BACKEND_TOKEN_REFRESH_SECONDS * 1000,
    },
    nginx: {
      bin: e.NGINX_BIN,
      njsModule: e.NGINX_NJS_MODULE,
      maxBodySize: e.NGINX_MAX_BODY_SIZE,
      runtimeDir: join(stateDir, 'nginx'),
      checkCache: {
        seconds: e.CHECK_CACHE_SECONDS,
        dir: e.CHECK_CACHE_DIR === undefined ? undefined : resolveFrom(projectRoot, e.CHECK_CACHE_DIR),
      },
    },
    redis: e.REDIS_URL === undefined ? undefined : { url: e.REDIS_URL, startTimeoutMs: e.REDIS_START_TIMEOUT_SECONDS * 1000 },
    warnings,
  };
  return { ok: true, config: deepFreeze(config) };
}

type Env = ReturnType<typeof envSchema.parse>;

function identityConfig(e: Env, publicUrl: string, projectRoot: string): IdentityConfig {
  const common = {
    scope: e.MCP_AUTH_SCOPES ?? 'openid profile email',
    groupsClaim: e.MCP_AUTH_GROUPS_CLAIM ?? (e.MCP_AUTH_PROVIDER_TYPE === 'cognito' ? 'cognito:groups' : 'groups'),
    mappingFile: e.MCP_AUTH_SCOPE_MAPPING_FILE === undefined ? undefined : resolveFrom(projectRoot, e.MCP_AUTH_SCOPE_MAPPING_FILE),
    allowInsecureHttp: e.MCP_AUTH_ALLOW_INSECURE_HTTP,
  };
  const callback = (type: string, set: string | undefined) => set ?? `${publicUrl}/oauth/callback/${type}`;
  const trim = (u: string) => u.replace(/\/+$/, '');
  // The schema's cross-field rules guarantee the `!` values for the chosen provider.
  switch (e.MCP_AUTH_PROVIDER_TYPE) {
    case 'dev':
      return { ...common, type: 'dev', scope: e.MCP_AUTH_SCOPES ?? 'openid profile email groups' };
    case 'cognito': {
      const endpoint = trim(e.MCP_AUTH_COGNITO_ENDPOINT ?? `https://cognito-idp.${e.MCP_AUTH_COGNITO_REGION}.amazonaws.com`);
      return {
        ...common,
        type: 'cognito',
        region: e.MCP_AUTH_COGNITO_REGION!,
        userPoolId: e.MCP_AUTH_COGNITO_USER_POOL_ID!,
        issuer: `${endpoint}/${e.MCP_AUTH_COGNITO_USER_POOL_ID}`,
        clientId: e.MCP_AUTH_COGNITO_CLIENT_ID!,
        clientSecret: e.MCP_AUTH_COGNITO_CLIENT_SECRET,
        redirectUri: callback('cognito', e.MCP_AUTH_COGNITO_CALLBACK_URI),
      };
    }
    case 'okta':
      return {
        ...common,
        type: 'okta',
        issuer: `${trim(e.MCP_AUTH_OKTA_TENANT_URL!)}/oauth2/${e.MCP_AUTH_OKTA_AUTH_SERVER}`,
        clientId: e.MCP_AUTH_OKTA_CLIENT_ID!,
        clientSecret: e.MCP_AUTH_OKTA_CLIENT_SECRET,
        redirectUri: callback('okta', e.MCP_AUTH_OKTA_CALLBACK_URI),
        // No default: api://default is every application's audience in an Okta org.
        audience: e.MCP_AUTH_AUDIENCE!,
        allowedClientIds: e.MCP_AUTH_OKTA_ALLOWED_CLIENT_IDS ?? [],
      };
    case 'generic':
      return {
        ...common,
        type: 'generic',
        // Exactly as configured: some issuers end in / and iss must match byte for byte.
        issuer: e.MCP_AUTH_ISSUER!,
        clientId: e.MCP_AUTH_CLIENT_ID!,
        clientSecret: e.MCP_AUTH_CLIENT_SECRET,
        redirectUri: callback('generic', e.MCP_AUTH_CALLBACK_URI),
        audience: e.MCP_AUTH_AUDIENCE,
        endpoints:
          e.MCP_AUTH_AUTHORIZE_URL === undefined
            ? undefined
            : { authorization: e.MCP_AUTH_AUTHORIZE_URL, token: e.MCP_AUTH_TOKEN_URL!, jwks: e.MCP_AUTH_JWKS_URL!, userinfo: e.MCP_AUTH_USERINFO_URL },
      };
  }
}

/**
 * The environment variables a server definition may name as a backend credential: every
 * MCP_BACKEND_* and those BACKEND_CREDENTIAL_ENV lists, never one of the gateway's own settings.
 */
function backendCredentialEnv(
  env: Readonly<Record<string, string | undefined>>,
  headerSlots: readonly string[],
  listed: readonly string[],
): Omit<Config['backendCredentials'], 'refreshEveryMs'> {
  const values: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) {
    if (value === undefined || value === '' || isGatewaySetting(name)) continue;
    if (name.startsWith(BACKEND_ENV_PREFIX) || listed.includes(name)) values[name] = value;
  }
  return { headerSlots: [...headerSlots], env: values, envAllowed: [...listed] };
}

/**
 * The key ring: CREDENTIAL_KEYS as written (the entry `sk` is the key derived from SECRET_KEY);
 * without it, with REDIS_URL, that derived key alone (replicas do not share a STATE_DIR, but they
 * share SECRET_KEY); otherwise one key generated once into STATE_DIR/credential_keys (0600).
 */
function resolveCredentialKeys(
  set: readonly CredentialKeyEntry[] | undefined,
  redis: boolean,
  secretKey: string,
  stateDir: string,
): Config['credentialKeys'] | { errors: string[] } {
  // Its own HKDF label: the derived key is unrelated to every other key taken from SECRET_KEY.
  const derived = () => Buffer.from(hkdfSync('sha256', secretKey, 'mcp-gateway', 'credential-vault key v1', 32)).toString('base64url');
  const withDerived = (entries: readonly CredentialKeyEntry[]) => entries.map(({ id, secret }) => ({ id, secret: secret ?? derived() }));
  if (set !== undefined) return { keys: withDerived(set), from: 'env' };
  if (redis) return { keys: withDerived([{ id: DERIVED_KEY_ID, secret: undefined }]), from: 'secret-key' };
  const file = join(stateDir, 'credential_keys');
  const day = new Date().toISOString().slice(0, 10).replace(/-/g, '');
  const text = readOrCreateSecret(file, () => `k${day}:${randomBytes(32).toString('base64url')}`);
  const parsed = parseCredentialKeys(text, file);
  return parsed.ok ? { keys: withDerived(parsed.keys), from: 'file' } : { errors: parsed.errors };
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
