import { z } from 'zod';

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

export interface EnvVarDoc {
  name: string;
  default: string;
  example: string;
  description: string;
}

/** The documentation of every variable; the schema below must cover exactly these. */
export const ENV_VARS: readonly EnvVarDoc[] = Object.freeze([
  { name: 'GATEWAY_PORT', default: '8080', example: '8443', description: 'Port nginx listens on for browsers and MCP clients.' },
  { name: 'GATEWAY_HOST', default: '127.0.0.1', example: '0.0.0.0', description: 'Address nginx listens on. The default keeps the development setup off the network; containers set 0.0.0.0.' },
  { name: 'GATEWAY_PUBLIC_URL', default: 'http://localhost:$GATEWAY_PORT', example: 'https://mcp.example.com', description: 'The URL people and MCP clients use to reach the gateway. Login redirects and the dev IdP issuer are built from it; https makes cookies Secure.' },
  { name: 'REGISTRY_PORT', default: '0 (any free port)', example: '7860', description: 'Loopback port of the registry behind nginx. It never listens on another address.' },
  { name: 'MCP_AUTH_ENABLED', default: 'true', example: 'false', description: 'false turns the check on MCP requests off: every MCP request is allowed as an anonymous admin (the page still asks for a login). For local experiments only; a warning says so at every start.' },
  { name: 'MCP_AUTH_PROVIDER_TYPE', default: 'dev', example: 'dev', description: 'Identity provider: dev (built-in, demo users). cognito, okta and oidc follow in the identity-provider work.' },
  { name: 'SECRET_KEY', default: 'generated once into STATE_DIR/secret_key', example: '(64 random hex characters)', description: 'Signs session cookies and CSRF tokens and keys the dev IdP cookies. At least 32 characters. Never logged.' },
  { name: 'ADMIN_USER', default: 'admin', example: 'root-operator', description: 'Login name of the dev IdP\'s administrator (group mcp-admin).' },
  { name: 'ADMIN_PASSWORD', default: 'generated once into STATE_DIR/admin_password', example: '(a long password)', description: 'Password of the dev IdP\'s administrator. At least 8 characters.' },
  { name: 'DEV_IDP_USERS_FILE', default: '(none)', example: 'dev-users.json', description: 'dev provider only: a JSON array of { "username", "password", "groups": [...] } that replaces demo users of the same name and adds the others, to try your IdP\'s group names.' },
  { name: 'LOGGING_LEVEL', default: 'info', example: 'debug', description: 'One of trace, debug, info, warn, error, fatal, silent (any case, as the Python gateway accepted).' },
  { name: 'STATE_DIR', default: '.state', example: '/var/lib/mcp-gateway', description: 'Folder for sessions, generated secrets and the nginx runtime files. Relative paths are resolved from the project root.' },
  { name: 'AUDIT_LOG_FILE', default: 'STATE_DIR/audit.log', example: '/var/log/mcp-gateway/audit.log', description: 'JSON lines, one per access decision (allow and deny) and per registry change: time, user, server, method, tool, decision, missing scope, request id. Never tokens or cookies.' },
  { name: 'CATALOG_DIR', default: 'registry/servers', example: '/etc/mcp-gateway/servers', description: 'Folder of server definition files (<name>.json), watched for changes.' },
  { name: 'SESSION_TTL_SECONDS', default: '28800 (8 hours)', example: '3600', description: 'How long a login lasts; every visit to the page renews it (MCP requests do not). Between 60 and 604800.' },
  { name: 'NGINX_BIN', default: 'nginx on PATH, else /usr/sbin/nginx', example: '/usr/local/sbin/nginx', description: 'The nginx binary the registry runs as its child.' },
  { name: 'NGINX_NJS_MODULE', default: '/usr/lib/nginx/modules/ngx_http_js_module.so', example: '/usr/lib/nginx/modules/ngx_http_js_module.so', description: 'The njs dynamic module (Debian package libnginx-mod-http-js).' },
  { name: 'NGINX_MAX_BODY_SIZE', default: '1m', example: '4m', description: 'Largest MCP request body nginx accepts (413 above it). nginx size syntax: digits with k or m.' },
]);

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
      .pipe(z.enum(['dev'], { error: (i) => `MCP_AUTH_PROVIDER_TYPE "${String(i.input)}" is not one of: dev` }))
      .default('dev'),
    SECRET_KEY: z.string().min(32, 'SECRET_KEY must be at least 32 characters (try: openssl rand -hex 32)').optional(),
    ADMIN_USER: z.string().trim().regex(/^[A-Za-z0-9._@-]{1,64}$/, 'ADMIN_USER must be 1-64 of A-Z a-z 0-9 . _ @ -').default('admin'),
    ADMIN_PASSWORD: z.string().min(8, 'ADMIN_PASSWORD must be at least 8 characters').optional(),
    DEV_IDP_USERS_FILE: z.string().trim().min(1).optional(),
    LOGGING_LEVEL: z
      .string()
      .trim()
      .toLowerCase()
      .pipe(z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'], { error: 'LOGGING_LEVEL must be one of trace, debug, info, warn, error, fatal, silent' }))
      .default('info'),
    STATE_DIR: z.string().trim().min(1).default('.state'),
    CATALOG_DIR: z.string().trim().min(1).default('registry/servers'),
    AUDIT_LOG_FILE: z.string().trim().min(1).optional(),
    SESSION_TTL_SECONDS: z
      .string()
      .trim()
      .regex(/^\d+$/, 'SESSION_TTL_SECONDS must be a whole number of seconds')
      .transform(Number)
      .refine((n) => n >= 60 && n <= 604800, 'SESSION_TTL_SECONDS must be between 60 and 604800')
      .default(28800),
    NGINX_BIN: z.string().trim().min(1).optional(),
    NGINX_NJS_MODULE: z.string().trim().min(1).default('/usr/lib/nginx/modules/ngx_http_js_module.so'),
    NGINX_MAX_BODY_SIZE: z.string().trim().regex(/^\d{1,6}[km]$/, 'NGINX_MAX_BODY_SIZE must be digits followed by k or m, such as 1m').default('1m'),
  });

export type EnvInput = z.input<typeof envSchema>;
export type ParsedEnv = z.output<typeof envSchema>;
