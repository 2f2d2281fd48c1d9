import { z } from 'zod';
import { ENV_NAME_PATTERN, forbiddenHeaderReason, SLOT_HEADER_NAME_PATTERN } from '../catalog/backend-auth.ts';
import { parseCredentialKeys } from './credential-keys.ts';
import { isSerializedOrigin } from './origin.ts';

/**
 * Every environment variable the registry reads, with its default and what it is for.
 * Names follow the Python gateway so operators keep their deployment files.
 * `docs/configuration.md` is generated from this table (scripts/gen-config-docs.ts).
 */

const bool = (name: string) =>
  z
    .string()
    .trim()
    .toLowerCase()
    .refine((v) => ['true', 'false', '1', '0', 'yes', 'no'].includes(v), `${name} must be true or false`)
    .transform((v) => v === 'true' || v === '1' || v === 'yes');

const port = (name: string) =>
  z
    .string()
    .trim()
    .regex(/^\d{1,5}$/, `${name} must be a port number 0-65535`)
    .transform(Number)
    .refine((n) => n <= 65535, `${name} must be a port number 0-65535`);

/** The largest CHECK_CACHE_SECONDS: how long a changed group may still count at most (docs/performance.md). */
export const MAX_CHECK_CACHE_SECONDS = 60;

/** A whole number of seconds between `min` and `max`; `offAtZero` also allows 0 (switched off). */
const seconds = (name: string, min: number, max: number, offAtZero = false) =>
  z
    .string()
    .trim()
    .regex(/^\d+$/, `${name} must be a whole number of seconds`)
    .transform(Number)
    .refine((n) => (offAtZero && n === 0) || (n >= min && n <= max), `${name} must be ${offAtZero ? '0 (off) or ' : ''}between ${min} and ${max}`);

export interface EnvVarDoc {
  name: string;
  default: string;
  example: string;
  description: string;
}

/** The documentation of every variable; the schema below must cover exactly these. */
export const ENV_VARS: readonly EnvVarDoc[] = Object.freeze([
  { name: 'GATEWAY_PORT', default: '8080', example: '8443', description: 'Port nginx listens on for browsers and MCP clients.' },
  {
    name: 'GATEWAY_HOST',
    default: '127.0.0.1',
    example: '0.0.0.0',
    description: 'Address nginx listens on. The default keeps the development setup off the network; containers set 0.0.0.0.',
  },
  {
    name: 'GATEWAY_PUBLIC_URL',
    default: 'http://localhost:$GATEWAY_PORT',
    example: 'https://mcp.example.com',
    description:
      'The URL people and MCP clients use to reach the gateway. Login redirects and the dev IdP issuer are built from it; https makes cookies Secure.',
  },
  {
    name: 'REGISTRY_PORT',
    default: '0 (any free port)',
    example: '7860',
    description: 'Loopback port of the registry behind nginx. It never listens on another address.',
  },
  {
    name: 'MCP_AUTH_ENABLED',
    default: 'true',
    example: 'false',
    description:
      'false turns the check on MCP requests off: every MCP request is allowed as an anonymous admin (the page still asks for a login). For local experiments only; a warning says so at every start.',
  },
  {
    name: 'MCP_AUTH_PROVIDER_TYPE',
    default: 'dev',
    example: 'dev',
    description:
      'Identity provider: dev (built-in, demo users), cognito, okta, or generic (any OpenID Connect provider; oidc is an alias). See docs/identity-providers.md.',
  },
  {
    name: 'MCP_AUTH_COGNITO_USER_POOL_ID',
    default: '(required for cognito)',
    example: 'us-east-1_AbCdEf123',
    description: 'cognito: the user pool id. The issuer is <endpoint>/<pool id>.',
  },
  {
    name: 'MCP_AUTH_COGNITO_CLIENT_ID',
    default: '(required for cognito)',
    example: '3n4b5urk1ft4fl3mg5e62d9ado',
    description: 'cognito: the app client id; its access tokens carry it as client_id (they have no aud).',
  },
  {
    name: 'MCP_AUTH_COGNITO_CLIENT_SECRET',
    default: '(none: public client)',
    example: '(from the app client)',
    description: 'cognito: the app client secret. Never logged.',
  },
  {
    name: 'MCP_AUTH_COGNITO_CALLBACK_URI',
    default: 'GATEWAY_PUBLIC_URL/oauth/callback/cognito',
    example: 'https://mcp.example.com/oauth/callback/cognito',
    description: 'cognito: the redirect URI registered with the app client; its path must be /oauth/callback/cognito.',
  },
  { name: 'MCP_AUTH_COGNITO_REGION', default: '(required for cognito)', example: 'us-east-1', description: 'cognito: the AWS region of the user pool.' },
  {
    name: 'MCP_AUTH_COGNITO_ENDPOINT',
    default: 'https://cognito-idp.<region>.amazonaws.com',
    example: 'https://cognito-idp.us-east-1.amazonaws.com',
    description: 'cognito: the identity endpoint (override for private endpoints and tests).',
  },
  { name: 'MCP_AUTH_OKTA_TENANT_URL', default: '(required for okta)', example: 'https://dev-123456.okta.com', description: 'okta: the Okta org URL.' },
  { name: 'MCP_AUTH_OKTA_CLIENT_ID', default: '(required for okta)', example: '0oa1b2c3d4e5f6g7h8i9', description: 'okta: the application client id.' },
  {
    name: 'MCP_AUTH_OKTA_CLIENT_SECRET',
    default: '(none: public client)',
    example: '(from the application)',
    description: 'okta: the application client secret. Never logged.',
  },
  {
    name: 'MCP_AUTH_OKTA_CALLBACK_URI',
    default: 'GATEWAY_PUBLIC_URL/oauth/callback/okta',
    example: 'https://mcp.example.com/oauth/callback/okta',
    description: 'okta: the sign-in redirect URI; its path must be /oauth/callback/okta.',
  },
  {
    name: 'MCP_AUTH_OKTA_AUTH_SERVER',
    default: 'default',
    example: 'aus1a2b3c4d5e6f7g8h9',
    description: 'okta: the custom authorization server id; the issuer is <tenant>/oauth2/<id>. Bearer access tokens must carry MCP_AUTH_AUDIENCE.',
  },
  {
    name: 'MCP_AUTH_OKTA_ALLOWED_CLIENT_IDS',
    default: "(none: only MCP_AUTH_OKTA_CLIENT_ID and the mapping file's clients)",
    example: '0oa9mcpclient0001d7,0oa9cibot00002d7',
    description:
      "okta: more applications (client ids, comma-separated) whose bearer access tokens the gateway accepts. A token's cid must be the gateway's own client id, a client in MCP_AUTH_SCOPE_MAPPING_FILE, or one of these: every application in the org can get a token for the same audience.",
  },
  {
    name: 'MCP_AUTH_ISSUER',
    default: '(required for generic)',
    example: 'https://sso.example.com/realms/mcp',
    description: 'generic: the issuer. With no endpoint URLs set, its discovery document supplies them.',
  },
  { name: 'MCP_AUTH_CLIENT_ID', default: '(required for generic)', example: 'mcp-gateway', description: 'generic: the client id.' },
  { name: 'MCP_AUTH_CLIENT_SECRET', default: '(none: public client)', example: '(from the IdP)', description: 'generic: the client secret. Never logged.' },
  {
    name: 'MCP_AUTH_AUTHORIZE_URL',
    default: '(from discovery)',
    example: 'https://sso.example.com/realms/mcp/protocol/openid-connect/auth',
    description: 'generic: the authorization endpoint. Set it, MCP_AUTH_TOKEN_URL and MCP_AUTH_JWKS_URL together to skip discovery.',
  },
  {
    name: 'MCP_AUTH_TOKEN_URL',
    default: '(from discovery)',
    example: 'https://sso.example.com/realms/mcp/protocol/openid-connect/token',
    description: 'generic: the token endpoint.',
  },
  {
    name: 'MCP_AUTH_JWKS_URL',
    default: '(from discovery)',
    example: 'https://sso.example.com/realms/mcp/protocol/openid-connect/certs',
    description: 'generic: the JWKS endpoint used to verify ID tokens and bearer tokens.',
  },
  {
    name: 'MCP_AUTH_USERINFO_URL',
    default: '(from discovery, or none)',
    example: 'https://sso.example.com/realms/mcp/protocol/openid-connect/userinfo',
    description: 'generic: the userinfo endpoint, asked at sign-in when the ID token has no groups claim.',
  },
  {
    name: 'MCP_AUTH_CALLBACK_URI',
    default: 'GATEWAY_PUBLIC_URL/oauth/callback/generic',
    example: 'https://mcp.example.com/oauth/callback/generic',
    description: 'generic: the redirect URI; its path must be /oauth/callback/generic.',
  },
  {
    name: 'MCP_AUTH_SCOPES',
    default: 'openid profile email (+ groups for dev)',
    example: 'openid profile email groups offline_access',
    description: 'OAuth scopes asked for at sign-in (space-separated). Add offline_access where the IdP needs it to issue refresh tokens.',
  },
  {
    name: 'MCP_AUTH_AUDIENCE',
    default: 'okta: (required); generic: (none: bearer tokens refused)',
    example: 'api://mcp-gateway',
    description:
      'The audience a bearer access token must carry (okta, generic): the Audience of the Okta authorization server, the API audience in Keycloak and others. Required for okta, with no default: api://default is shared by every application of the org. Cognito tokens have no aud; their client_id is checked instead.',
  },
  {
    name: 'MCP_AUTH_GROUPS_CLAIM',
    default: 'cognito:groups for cognito, groups elsewhere',
    example: 'roles',
    description: "The claim that holds the user's groups, in ID tokens, userinfo and access tokens.",
  },
  {
    name: 'MCP_AUTH_SCOPE_MAPPING_FILE',
    default: '(none)',
    example: 'scope-mapping.yaml',
    description:
      'YAML or JSON: groups (group -> scopes) and clients (machine client id -> scopes). Validated at start, reloaded on change; an invalid edit keeps the last good mapping.',
  },
  {
    name: 'MCP_AUTH_ALLOW_INSECURE_HTTP',
    default: 'false',
    example: 'true',
    description: 'Allow http:// identity provider URLs (loopback tests only). Logged as a warning at every start.',
  },
  {
    name: 'SECRET_KEY',
    default: 'generated once into STATE_DIR/secret_key',
    example: '(64 random hex characters)',
    description:
      'Signs session cookies and CSRF tokens, keys the dev IdP cookies and binds MCP sessions to their principal (replicas must share it; changing it ends every MCP session). At least 32 characters. Never logged.',
  },
  {
    name: 'CREDENTIAL_KEYS',
    default: 'generated once into STATE_DIR/credential_keys; with REDIS_URL, derived from SECRET_KEY (key id sk)',
    example: 'k2026-11:(base64 of 32 random bytes),k2026-01:(the previous key)',
    description:
      'The key ring that seals the secrets the gateway keeps for backends (AES-256-GCM; docs/backend-credentials.md): comma-separated <kid>:<32 bytes in base64 or base64url>, key ids 1-32 of a-z 0-9 -. The first key seals, every key opens; to rotate, put a new key first, reseal, then drop the old one. The entry sk alone is the key derived from SECRET_KEY. Replicas must share it. Never logged.',
  },
  { name: 'ADMIN_USER', default: 'admin', example: 'root-operator', description: "Login name of the dev IdP's administrator (group mcp-admin)." },
  {
    name: 'ADMIN_PASSWORD',
    default: 'generated once into STATE_DIR/admin_password; with REDIS_URL and SECRET_KEY, derived from SECRET_KEY (the same on every replica)',
    example: '(a long password)',
    description: "Password of the dev IdP's administrator. At least 8 characters.",
  },
  {
    name: 'DEV_IDP_USERS_FILE',
    default: '(none)',
    example: 'dev-users.json',
    description:
      'dev provider only: a JSON array of { "username", "password", "groups": [...] } that replaces demo users of the same name and adds the others, to try your IdP\'s group names.',
  },
  {
    name: 'LOGGING_LEVEL',
    default: 'info',
    example: 'debug',
    description: 'One of trace, debug, info, warn, error, fatal, silent (any case, as the Python gateway accepted).',
  },
  {
    name: 'STATE_DIR',
    default: '.state',
    example: '/var/lib/mcp-gateway',
    description: 'Folder for sessions, generated secrets and the nginx runtime files. Relative paths are resolved from the project root.',
  },
  {
    name: 'AUDIT_LOG_FILE',
    default: 'STATE_DIR/audit.log',
    example: '/var/log/mcp-gateway/audit.log',
    description:
      'JSON lines, one per access decision (allow and deny) and per registry change: time, user, server, method, tool, decision, missing scope, request id, the W3C trace id the client sent. Never tokens or cookies.',
  },
  {
    name: 'CATALOG_DIR',
    default: 'registry/servers',
    example: '/etc/mcp-gateway/servers',
    description: 'Folder of server definition files (<name>.json), watched for changes.',
  },
  {
    name: 'SESSION_TTL_SECONDS',
    default: '28800 (8 hours)',
    example: '3600',
    description: 'How long a login lasts; every visit to the page renews it (MCP requests do not). Between 60 and 604800.',
  },
  {
    name: 'SESSION_MAX_LIFETIME_SECONDS',
    default: '86400 (24 hours)',
    example: '43200',
    description:
      'How long a login may last at most, counted from sign-in: renewal by SESSION_TTL_SECONDS and IdP refreshes never take a session past it, however often a page polls. Between 1 and 2592000 (30 days).',
  },
  {
    name: 'OAUTH_ACCESS_TOKEN_TTL_SECONDS',
    default: '300 (5 minutes)',
    example: '600',
    description:
      'How long an access token the gateway issues to an MCP client (/oauth2/token) is valid. It is also the bound on revocation: a revoked grant or a person removed from a group keeps working on tokens already issued until they expire. Between 60 and 3600.',
  },
  {
    name: 'OAUTH_REFRESH_TOKEN_TTL_SECONDS',
    default: '1209600 (14 days)',
    example: '604800',
    description:
      'How long an MCP client may go without refreshing before it must sign in again. Refresh tokens rotate at every use. Between 3600 and 7776000 (90 days).',
  },
  {
    name: 'OAUTH_GROUPS_MAX_AGE_SECONDS',
    default: '300 (5 minutes)',
    example: '900',
    description:
      "How old the groups behind a token the gateway issues to an MCP client (/oauth2/token, at code exchange and every refresh) may be. While the person has a live page session its groups (kept current from the IdP) are used; otherwise, groups older than this are read again at the IdP with the refresh token kept from the person's sign-in. An IdP that refuses that refresh ends the grant (invalid_grant); without an upstream refresh token, or when the IdP cannot be reached, the refresh is refused once the groups are older than this. 0 reads them again at every issue. Between 0 and 86400.",
  },
  {
    name: 'OAUTH_CLIENT_TTL_SECONDS',
    default: '2592000 (30 days)',
    example: '604800',
    description:
      'How long a dynamically registered MCP client (RFC 7591, /oauth2/register) is kept without being used; every token it gets renews it. Between 3600 and 31536000.',
  },
  {
    name: 'OAUTH_CLIENT_METADATA_DOCUMENTS',
    default: 'true',
    example: 'false',
    description:
      "Accept Client ID Metadata Documents, the MCP spec's first choice of client registration: an MCP client may use an https URL as its client_id, and the gateway fetches that document (https only; never to loopback, private or other special-use addresses; 5 KB, 2.5 s; cached 1 minute to 1 hour). `false` turns it off (the metadata stops advertising it). Dynamic registration works either way. Draft-02 in oidc-provider.",
  },
  {
    name: 'OAUTH_REGISTRATIONS_PER_HOUR',
    default: '30',
    example: '100',
    description: 'How many dynamic client registrations (/oauth2/register) one client address may make per hour; more are answered 429. Between 1 and 100000.',
  },
  {
    name: 'PAT_MAX_LIFETIME_DAYS',
    default: '90',
    example: '30',
    description:
      'The longest lifetime, in days, a person may give a personal access token they create on the Tokens page or with POST /api/registry/tokens (for MCP clients that only take a static Authorization header). Between 1 and 365.',
  },
  {
    name: 'OAUTH_CLIENTS_FILE',
    default: '(none)',
    example: '/etc/mcp-gateway/oauth-clients.yaml',
    description:
      "MCP clients registered ahead of time at the gateway's authorization server (YAML or JSON, `clients:` list; docs/mcp-clients.md \"Pre-registered clients\"): people's clients (authorization_code, refresh_token; redirect URIs under the same rule as dynamic registration) and machine clients (client_credentials, client_secret_basic; their scopes from MCP_AUTH_SCOPE_MAPPING_FILE's clients:). Secrets are never in the file: client_secret_env names the variable that holds one (at least 32 characters). A bad file stops the start, one line per problem.",
  },
  {
    name: 'OAUTH_REDIRECT_SCHEMES',
    default: '(none)',
    example: 'vscode,cursor',
    description:
      'Custom URI schemes MCP clients may register as redirect URIs, comma-separated. Without it only loopback http (any port) and https redirect URIs are accepted.',
  },
  {
    name: 'HEALTH_CHECK_INTERVAL_SECONDS',
    default: '60',
    example: '300',
    description:
      'How often the registry connects to every backend (MCP initialize + tools/list) to record its health and tools for the page and API. 0 checks only on demand and when a definition changes. Health never changes nginx config.',
  },
  {
    name: 'HEALTH_CHECK_TIMEOUT_SECONDS',
    default: '5',
    example: '10',
    description: 'How long one health check of one backend may take before it counts as failed. Between 1 and 120.',
  },
  {
    name: 'CORS_ALLOWED_ORIGINS',
    default: '(none: no CORS)',
    example: 'https://inspector.example.com,http://localhost:6274',
    description:
      'Browser origins (scheme://host[:port], comma-separated, exactly as browsers send Origin) whose pages may call the MCP endpoints, /.well-known/* and /oauth2/* cross-origin. nginx answers their preflights itself; responses carry Access-Control-Allow-Origin for these origins only, never with credentials (clients send tokens, not cookies).',
  },
  {
    name: 'BACKEND_CREDENTIAL_HEADERS',
    default: 'X-API-Key',
    example: 'X-API-Key,X-Api-Token',
    description:
      "Header names besides Authorization that a server definition's backendAuth may set on requests to its backend (comma-separated, at most 8). nginx gets one fixed slot per name when it starts (`proxy_set_header <Name> $mcp_backend_h<N>`), so a definition naming another header is refused; add it here and restart. A client's own header of one of these names never reaches a backend. See docs/backend-credentials.md.",
  },
  {
    name: 'BACKEND_CREDENTIAL_ENV',
    default: '(none: only MCP_BACKEND_* variables)',
    example: 'GITHUB_TOKEN,NOTION_API_KEY',
    description:
      'Environment variables, besides those named MCP_BACKEND_*, whose values a server definition may use as a backend credential (`"from": {"env": "GITHUB_TOKEN"}`), comma-separated. The gateway\'s own settings (SECRET_KEY, MCP_AUTH_*, REDIS_URL, ...) can never be named. Values are read at start and never logged.',
  },
  {
    name: 'BACKEND_TOKEN_REFRESH_SECONDS',
    default: '15',
    example: '30',
    description:
      "How often the gateway looks for people's per-user OAuth tokens (backendAuth user_oauth) that are due for a refresh, and refreshes them before they expire (one replica does, under a lease). Between 1 and 3600. See docs/backend-credentials.md.",
  },
  {
    name: 'CHECK_CACHE_SECONDS',
    default: '5',
    example: '0',
    description:
      "How long nginx may answer an MCP request from a cached decision of the access check instead of asking the registry (docs/performance.md, \"Cached decisions\"). A toggle, a sign-out, a revoked token or grant, a session's end, a definition or scope-mapping change bite on the next request whatever this is; it bounds how long a changed group or a mapping of an identity provider's token still counts. A token's or session's expiry always bites on time. Between 0 and 60; 0 caches nothing.",
  },
  {
    name: 'CHECK_CACHE_DIR',
    default: 'STATE_DIR/nginx/check-cache (as root, whose nginx workers run as nobody: a folder of the gateway under /run, a tmpfs, removed at stop)',
    example: '/run/mcp-gateway/check-cache',
    description:
      "Where nginx keeps the cached decisions (file names and keys are hashes: no cookie or token is written). Created with mode 700 when missing; at start it must be a folder owned by the user nginx's workers run as and open to no one else, or the gateway refuses to start and says why. A tmpfs (/run) keeps it off disk.",
  },
  {
    name: 'METRICS_TOKEN',
    default: '(none: loopback only)',
    example: '(32 random characters)',
    description:
      'Bearer token a Prometheus scraper outside this host sends to read /metrics (`Authorization: Bearer <token>`; compared in constant time). Clients on loopback read /metrics without it; without a token anyone else gets 404, with one a request without it gets 401. 16 to 256 printable characters, no spaces. Never logged. See docs/operations.md.',
  },
  {
    name: 'NGINX_BIN',
    default: 'nginx on PATH, else /usr/sbin/nginx',
    example: '/usr/local/sbin/nginx',
    description: 'The nginx binary the registry runs as its child.',
  },
  {
    name: 'NGINX_NJS_MODULE',
    default: '/usr/lib/nginx/modules/ngx_http_js_module.so',
    example: '/usr/lib/nginx/modules/ngx_http_js_module.so',
    description: 'The njs dynamic module (Debian package libnginx-mod-http-js).',
  },
  {
    name: 'NGINX_MAX_BODY_SIZE',
    default: '1m',
    example: '4m',
    description: 'Largest MCP request body nginx accepts (413 above it). nginx size syntax: digits with k or m.',
  },
  {
    name: 'REDIS_URL',
    default: '(none: state in files under STATE_DIR)',
    example: 'rediss://:password@redis.internal:6380/0',
    description:
      "Keeps login sessions, the authorization server's grants and revocations, personal access tokens and the dev IdP's storage in Redis (redis:// or rediss://), so several gateways can share them; they need the same SECRET_KEY too. Each replica keeps a copy in memory for the check on MCP requests, kept current by pub/sub; while Redis cannot be reached MCP requests and pages answer 503 STORE_UNAVAILABLE (fail closed). The password is never logged.",
  },
  {
    name: 'REDIS_START_TIMEOUT_SECONDS',
    default: '30',
    example: '120',
    description: 'How long the start waits for Redis (retrying, with a log line each time) before it stops with STORE_UNAVAILABLE. Between 1 and 600.',
  },
]);

/** The prefix of environment variables any definition may read as a backend credential. */
export const BACKEND_ENV_PREFIX = 'MCP_BACKEND_';

/** A variable the gateway reads for itself (or a family of them): never a backend credential. */
export function isGatewaySetting(name: string): boolean {
  return ENV_VARS.some((v) => v.name === name) || /^(?:MCP_AUTH_|REDIS_|NGINX_|OAUTH_|SESSION_|GATEWAY_|SECRET|VAULT_)/.test(name);
}

const clientId = (name: string) =>
  z
    .string()
    .trim()
    .regex(/^[\x21-\x7e]{1,256}$/, `${name} must be 1-256 printable characters`)
    .optional();

const url = (name: string) => z.url({ protocol: /^https?$/, error: `${name} must be an http(s) URL` }).optional();

/** Which variables each identity provider needs; the check names the missing ones. */
const REQUIRED_BY_PROVIDER = {
  dev: [],
  cognito: ['MCP_AUTH_COGNITO_USER_POOL_ID', 'MCP_AUTH_COGNITO_CLIENT_ID', 'MCP_AUTH_COGNITO_REGION'],
  okta: ['MCP_AUTH_OKTA_TENANT_URL', 'MCP_AUTH_OKTA_CLIENT_ID', 'MCP_AUTH_AUDIENCE'],
  generic: ['MCP_AUTH_ISSUER', 'MCP_AUTH_CLIENT_ID'],
} as const;

/** What to put in a missing variable where the name alone does not say. */
const HINTS: Partial<Record<string, string>> = {
  MCP_AUTH_AUDIENCE: ": the Audience of the Okta authorization server, as the gateway's access tokens carry it; api://default is no longer assumed",
};

const EXPLICIT_ENDPOINTS = ['MCP_AUTH_AUTHORIZE_URL', 'MCP_AUTH_TOKEN_URL', 'MCP_AUTH_JWKS_URL'] as const;

export const envSchema = z
  .object({
    GATEWAY_PORT: port('GATEWAY_PORT').default(8080),
    GATEWAY_HOST: z
      .string()
      .trim()
      .regex(/^(?:\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-fA-F:]+\]|localhost)$/, 'GATEWAY_HOST must be an IP address such as 127.0.0.1 or 0.0.0.0')
      .default('127.0.0.1'),
    GATEWAY_PUBLIC_URL: z
      .url({ protocol: /^https?$/, error: 'GATEWAY_PUBLIC_URL must be an http(s) URL such as https://mcp.example.com' })
      .refine((u) => !/[?#]/.test(u), 'GATEWAY_PUBLIC_URL must not have a query or fragment')
      .optional(),
    REGISTRY_PORT: port('REGISTRY_PORT').default(0),
    MCP_AUTH_ENABLED: bool('MCP_AUTH_ENABLED').default(true),
    MCP_AUTH_PROVIDER_TYPE: z
      .string()
      .trim()
      .toLowerCase()
      .transform((v) => (v === 'oidc' ? 'generic' : v))
      .pipe(
        z.enum(['dev', 'cognito', 'okta', 'generic'], {
          error: (i) => `MCP_AUTH_PROVIDER_TYPE "${String(i.input)}" is not one of: dev, cognito, okta, generic`,
        }),
      )
      .default('dev'),
    MCP_AUTH_COGNITO_USER_POOL_ID: z
      .string()
      .trim()
      .regex(/^[a-z]{2}(?:-[a-z]+)+-\d_[A-Za-z0-9]+$/, 'MCP_AUTH_COGNITO_USER_POOL_ID must look like us-east-1_AbCdEf123')
      .optional(),
    MCP_AUTH_COGNITO_CLIENT_ID: clientId('MCP_AUTH_COGNITO_CLIENT_ID'),
    MCP_AUTH_COGNITO_CLIENT_SECRET: z.string().min(1).optional(),
    MCP_AUTH_COGNITO_CALLBACK_URI: url('MCP_AUTH_COGNITO_CALLBACK_URI'),
    MCP_AUTH_COGNITO_REGION: z
      .string()
      .trim()
      .regex(/^[a-z]{2}(?:-[a-z]+)+-\d$/, 'MCP_AUTH_COGNITO_REGION must be an AWS region such as us-east-1')
      .optional(),
    MCP_AUTH_COGNITO_ENDPOINT: url('MCP_AUTH_COGNITO_ENDPOINT'),
    MCP_AUTH_OKTA_TENANT_URL: url('MCP_AUTH_OKTA_TENANT_URL'),
    MCP_AUTH_OKTA_CLIENT_ID: clientId('MCP_AUTH_OKTA_CLIENT_ID'),
    MCP_AUTH_OKTA_CLIENT_SECRET: z.string().min(1).optional(),
    MCP_AUTH_OKTA_CALLBACK_URI: url('MCP_AUTH_OKTA_CALLBACK_URI'),
    MCP_AUTH_OKTA_ALLOWED_CLIENT_IDS: z
      .string()
      .trim()
      .regex(
        /^[\x21-\x2b\x2d-\x7e]{1,256}(?:\s*,\s*[\x21-\x2b\x2d-\x7e]{1,256})*,?$/,
        'MCP_AUTH_OKTA_ALLOWED_CLIENT_IDS must be client ids separated by commas',
      )
      .transform((v) =>
        v
          .split(',')
          .map((id) => id.trim())
          .filter(Boolean),
      )
      .optional(),
    MCP_AUTH_OKTA_AUTH_SERVER: z
      .string()
      .trim()
      .regex(/^[A-Za-z0-9]{1,64}$/, 'MCP_AUTH_OKTA_AUTH_SERVER must be an authorization server id such as default')
      .default('default'),
    MCP_AUTH_ISSUER: url('MCP_AUTH_ISSUER'),
    MCP_AUTH_CLIENT_ID: clientId('MCP_AUTH_CLIENT_ID'),
    MCP_AUTH_CLIENT_SECRET: z.string().min(1).optional(),
    MCP_AUTH_AUTHORIZE_URL: url('MCP_AUTH_AUTHORIZE_URL'),
    MCP_AUTH_TOKEN_URL: url('MCP_AUTH_TOKEN_URL'),
    MCP_AUTH_JWKS_URL: url('MCP_AUTH_JWKS_URL'),
    MCP_AUTH_USERINFO_URL: url('MCP_AUTH_USERINFO_URL'),
    MCP_AUTH_CALLBACK_URI: url('MCP_AUTH_CALLBACK_URI'),
    MCP_AUTH_SCOPES: z
      .string()
      .trim()
      .regex(/^[\x21\x23-\x5b\x5d-\x7e]+(?: [\x21\x23-\x5b\x5d-\x7e]+)*$/, 'MCP_AUTH_SCOPES must be space-separated OAuth scopes')
      .refine((v) => v.split(' ').includes('openid'), 'MCP_AUTH_SCOPES must include openid')
      .optional(),
    MCP_AUTH_AUDIENCE: z.string().trim().min(1).max(512).optional(),
    MCP_AUTH_GROUPS_CLAIM: z
      .string()
      .trim()
      .regex(/^[A-Za-z0-9_:.\/-]{1,128}$/, 'MCP_AUTH_GROUPS_CLAIM must be a claim name such as groups')
      .optional(),
    MCP_AUTH_SCOPE_MAPPING_FILE: z.string().trim().min(1).optional(),
    MCP_AUTH_ALLOW_INSECURE_HTTP: bool('MCP_AUTH_ALLOW_INSECURE_HTTP').default(false),
    SECRET_KEY: z.string().min(32, 'SECRET_KEY must be at least 32 characters (try: openssl rand -hex 32)').optional(),
    CREDENTIAL_KEYS: z
      .string()
      .transform((value, ctx) => {
        const parsed = parseCredentialKeys(value, 'CREDENTIAL_KEYS');
        if (parsed.ok) return parsed.keys;
        for (const message of parsed.errors) ctx.addIssue({ code: 'custom', message });
        return z.NEVER;
      })
      .optional(),
    ADMIN_USER: z
      .string()
      .trim()
      .regex(/^[A-Za-z0-9._@-]{1,64}$/, 'ADMIN_USER must be 1-64 of A-Z a-z 0-9 . _ @ -')
      .default('admin'),
    ADMIN_PASSWORD: z.string().min(8, 'ADMIN_PASSWORD must be at least 8 characters').optional(),
    DEV_IDP_USERS_FILE: z.string().trim().min(1).optional(),
    LOGGING_LEVEL: z
      .string()
      .trim()
      .toLowerCase()
      .pipe(
        z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'], {
          error: 'LOGGING_LEVEL must be one of trace, debug, info, warn, error, fatal, silent',
        }),
      )
      .default('info'),
    STATE_DIR: z.string().trim().min(1).default('.state'),
    CATALOG_DIR: z.string().trim().min(1).default('registry/servers'),
    AUDIT_LOG_FILE: z.string().trim().min(1).optional(),
    HEALTH_CHECK_INTERVAL_SECONDS: seconds('HEALTH_CHECK_INTERVAL_SECONDS', 5, 86400, true).default(60),
    HEALTH_CHECK_TIMEOUT_SECONDS: seconds('HEALTH_CHECK_TIMEOUT_SECONDS', 1, 120).default(5),
    BACKEND_TOKEN_REFRESH_SECONDS: seconds('BACKEND_TOKEN_REFRESH_SECONDS', 1, 3600).default(15),
    CHECK_CACHE_SECONDS: seconds('CHECK_CACHE_SECONDS', 0, MAX_CHECK_CACHE_SECONDS).default(5),
    CHECK_CACHE_DIR: z.string().trim().min(1).optional(),
    SESSION_TTL_SECONDS: seconds('SESSION_TTL_SECONDS', 60, 604800).default(28800),
    SESSION_MAX_LIFETIME_SECONDS: seconds('SESSION_MAX_LIFETIME_SECONDS', 1, 2592000).default(86400),
    CORS_ALLOWED_ORIGINS: z
      .string()
      .transform((v) =>
        v
          .split(',')
          .map((origin) => origin.trim())
          .filter(Boolean),
      )
      .pipe(
        z
          .array(
            z.string().refine(isSerializedOrigin, {
              error: (i) =>
                `CORS_ALLOWED_ORIGINS: ${JSON.stringify(i.input)} is not an origin; write scheme://host[:port] in lowercase, with no path, no trailing slash and no default port`,
            }),
          )
          .max(100, 'CORS_ALLOWED_ORIGINS holds at most 100 origins'),
      )
      .transform((list) => [...new Set(list)])
      .default([]),
    OAUTH_ACCESS_TOKEN_TTL_SECONDS: seconds('OAUTH_ACCESS_TOKEN_TTL_SECONDS', 60, 3600).default(300),
    OAUTH_REFRESH_TOKEN_TTL_SECONDS: seconds('OAUTH_REFRESH_TOKEN_TTL_SECONDS', 3600, 7776000).default(1209600),
    OAUTH_CLIENTS_FILE: z.string().trim().min(1).optional(),
    OAUTH_GROUPS_MAX_AGE_SECONDS: seconds('OAUTH_GROUPS_MAX_AGE_SECONDS', 0, 86400).default(300),
    OAUTH_CLIENT_TTL_SECONDS: seconds('OAUTH_CLIENT_TTL_SECONDS', 3600, 31536000).default(2592000),
    OAUTH_CLIENT_METADATA_DOCUMENTS: bool('OAUTH_CLIENT_METADATA_DOCUMENTS').default(true),
    OAUTH_REGISTRATIONS_PER_HOUR: z
      .string()
      .trim()
      .regex(/^\d{1,6}$/, 'OAUTH_REGISTRATIONS_PER_HOUR must be a whole number')
      .transform(Number)
      .refine((n) => n >= 1 && n <= 100000, 'OAUTH_REGISTRATIONS_PER_HOUR must be between 1 and 100000')
      .default(30),
    PAT_MAX_LIFETIME_DAYS: z
      .string()
      .trim()
      .regex(/^\d{1,3}$/, 'PAT_MAX_LIFETIME_DAYS must be a whole number of days')
      .transform(Number)
      .refine((n) => n >= 1 && n <= 365, 'PAT_MAX_LIFETIME_DAYS must be between 1 and 365')
      .default(90),
    OAUTH_REDIRECT_SCHEMES: z
      .string()
      .trim()
      .toLowerCase()
      .regex(/^(?:[a-z][a-z0-9+.-]*(?:\s*,\s*[a-z][a-z0-9+.-]*)*)?$/, 'OAUTH_REDIRECT_SCHEMES must be URI schemes separated by commas, such as vscode,cursor')
      .refine(
        (v) => !/(?:^|,)\s*(?:https?|javascript|data|file|vbscript)\s*(?:,|$)/.test(v),
        'OAUTH_REDIRECT_SCHEMES must not list http, https, javascript, data, file or vbscript',
      )
      .default(''),
    BACKEND_CREDENTIAL_HEADERS: z
      .string()
      .transform((v) =>
        v
          .split(',')
          .map((h) => h.trim())
          .filter(Boolean),
      )
      .pipe(
        z
          .array(
            z.string().regex(SLOT_HEADER_NAME_PATTERN, {
              error: (i) => `BACKEND_CREDENTIAL_HEADERS: ${JSON.stringify(i.input)} is not a header name of letters, digits and dashes`,
            }),
          )
          .max(8, 'BACKEND_CREDENTIAL_HEADERS holds at most 8 header names'),
      )
      .superRefine((names, ctx) => {
        const seen = new Set<string>();
        for (const name of names) {
          const reason = name.toLowerCase() === 'authorization' ? 'Authorization has its own slot already' : forbiddenHeaderReason(name);
          if (reason) ctx.addIssue({ code: 'custom', message: `BACKEND_CREDENTIAL_HEADERS: ${reason}` });
          if (seen.has(name.toLowerCase())) ctx.addIssue({ code: 'custom', message: `BACKEND_CREDENTIAL_HEADERS: ${name} is listed twice` });
          seen.add(name.toLowerCase());
        }
      })
      .default(['X-API-Key']),
    BACKEND_CREDENTIAL_ENV: z
      .string()
      .transform((v) =>
        v
          .split(',')
          .map((h) => h.trim())
          .filter(Boolean),
      )
      .pipe(z.array(z.string().regex(ENV_NAME_PATTERN, { error: (i) => `BACKEND_CREDENTIAL_ENV: ${JSON.stringify(i.input)} is not a variable name` })).max(100))
      .superRefine((names, ctx) => {
        for (const name of names)
          if (isGatewaySetting(name))
            ctx.addIssue({ code: 'custom', message: `BACKEND_CREDENTIAL_ENV: ${name} is a setting of the gateway itself and cannot be a backend credential` });
      })
      .default([]),
    METRICS_TOKEN: z
      .string()
      .regex(/^[\x21-\x7e]{16,256}$/, 'METRICS_TOKEN must be 16 to 256 printable characters without spaces (try: openssl rand -hex 32)')
      .optional(),
    NGINX_BIN: z.string().trim().min(1).optional(),
    NGINX_NJS_MODULE: z.string().trim().min(1).default('/usr/lib/nginx/modules/ngx_http_js_module.so'),
    REDIS_URL: z
      .url({ protocol: /^rediss?$/, error: 'REDIS_URL must be a redis:// or rediss:// URL, such as redis://localhost:6379' })
      .refine((v) => new URL(v).hostname !== '', 'REDIS_URL must name a host, such as redis://localhost:6379')
      .optional(),
    REDIS_START_TIMEOUT_SECONDS: seconds('REDIS_START_TIMEOUT_SECONDS', 1, 600).default(30),
    NGINX_MAX_BODY_SIZE: z
      .string()
      .trim()
      .regex(/^\d{1,6}[km]$/, 'NGINX_MAX_BODY_SIZE must be digits followed by k or m, such as 1m')
      .default('1m'),
  })
  .superRefine((env, ctx) => {
    const provider = env.MCP_AUTH_PROVIDER_TYPE;
    for (const name of REQUIRED_BY_PROVIDER[provider]) {
      if (env[name] === undefined)
        ctx.addIssue({ code: 'custom', path: [name], message: `${name} is missing (needed when MCP_AUTH_PROVIDER_TYPE=${provider}${HINTS[name] ?? ''})` });
    }
    if (provider === 'generic') {
      const set = EXPLICIT_ENDPOINTS.filter((name) => env[name] !== undefined);
      if (set.length > 0 && set.length < EXPLICIT_ENDPOINTS.length) {
        for (const name of EXPLICIT_ENDPOINTS.filter((n) => env[n] === undefined)) {
          ctx.addIssue({
            code: 'custom',
            path: [name],
            message: `${name} is missing (set MCP_AUTH_AUTHORIZE_URL, MCP_AUTH_TOKEN_URL and MCP_AUTH_JWKS_URL together, or none of them to use discovery)`,
          });
        }
      }
    }
    if (!env.MCP_AUTH_ALLOW_INSECURE_HTTP) {
      for (const [name, value] of Object.entries(env)) {
        if (name.startsWith('MCP_AUTH_') && typeof value === 'string' && value.startsWith('http://') && !name.endsWith('CALLBACK_URI')) {
          ctx.addIssue({
            code: 'custom',
            path: [name],
            message: `${name} must be https (http is allowed only with MCP_AUTH_ALLOW_INSECURE_HTTP=true, for loopback tests)`,
          });
        }
      }
    }
    for (const [name, path] of [
      ['MCP_AUTH_COGNITO_CALLBACK_URI', 'cognito'],
      ['MCP_AUTH_OKTA_CALLBACK_URI', 'okta'],
      ['MCP_AUTH_CALLBACK_URI', 'generic'],
    ] as const) {
      const value = env[name];
      if (value !== undefined && new URL(value).pathname !== `/oauth/callback/${path}`) {
        ctx.addIssue({ code: 'custom', path: [name], message: `${name} must end in /oauth/callback/${path}, the path the registry serves` });
      }
    }
  });

export type EnvInput = z.input<typeof envSchema>;
export type ParsedEnv = z.output<typeof envSchema>;
