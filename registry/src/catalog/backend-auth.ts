/**
 * How the gateway authenticates to a server's backend (issue 13): the `backendAuth` part of a
 * server definition. A definition names where a secret comes from (the vault, or an allowed
 * environment variable), never the secret itself. What depends on the configuration (which
 * header names nginx has slots for, which environment variables a definition may read) is
 * checked by credentials/backend-auth-policy.ts; this file holds the rules that never change.
 */
import { z } from 'zod';

/** RFC 9110 token characters: what a header name may hold. */
export const HEADER_NAME_PATTERN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$/;

/**
 * A header name nginx gets a slot for (BACKEND_CREDENTIAL_HEADERS): letters, digits and dashes
 * only, since it is written into the config as a directive argument.
 */
export const SLOT_HEADER_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9-]{0,63}$/;

/** An environment variable name a definition may point at (its value is read at start). */
export const ENV_NAME_PATTERN = /^[A-Z_][A-Z0-9_]{0,127}$/;

/**
 * Header names a backend credential may never use, lower-case: hop-by-hop and framing headers
 * nginx owns, the client's own credentials, MCP's protocol headers (the session, version and
 * 2026-07-28 routing headers the gateway sets or checks), tracing, forwarding, and the
 * gateway's identity vocabulary. Everything starting `x-mcp-` (the check's own vocabulary) is
 * refused too (FORBIDDEN_HEADER_PREFIXES). nginx/render-server.ts's lists are tested against this.
 */
export const FORBIDDEN_HEADERS: ReadonlySet<string> = new Set([
  'host',
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authorization',
  'proxy-authenticate',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'content-length',
  'content-type',
  'content-encoding',
  'accept-encoding',
  'expect',
  'cookie',
  'set-cookie',
  'via',
  'forwarded',
  'x-forwarded-for',
  'x-forwarded-host',
  'x-forwarded-proto',
  'x-forwarded-port',
  'x-real-ip',
  'x-request-id',
  'traceparent',
  'tracestate',
  'mcp-session-id',
  'mcp-protocol-version',
  'last-event-id',
  'mcp-method',
  'mcp-name',
  'x-user',
  'x-username',
  'x-scopes',
  'x-missing-scope',
  'x-original-uri',
  'x-original-method',
  'x-gateway-client-address',
  'x-csrf-token',
]);
export const FORBIDDEN_HEADER_PREFIXES: readonly string[] = ['x-mcp-', 'mcp-param-', 'proxy-'];

/** Why a header name may not carry a backend credential, or undefined when it may. */
export function forbiddenHeaderReason(name: string): string | undefined {
  const lower = name.toLowerCase();
  if (FORBIDDEN_HEADERS.has(lower)) return `${name} is set by the gateway or the protocol and cannot carry a backend credential`;
  const prefix = FORBIDDEN_HEADER_PREFIXES.find((p) => lower.startsWith(p));
  if (prefix) return `headers starting ${prefix} belong to the gateway or the protocol and cannot carry a backend credential`;
  return undefined;
}

export const BACKEND_AUTH_MODES = ['none', 'headers', 'client_credentials', 'uploaded', 'user_oauth', 'token_exchange'] as const;
/** The modes whose credential is each person's own: the check needs the caller, a machine client has none. */
export const PERSONAL_MODES = ['uploaded', 'user_oauth', 'token_exchange'] as const;

const SECRET_FIELDS = ['value', 'secret', 'token', 'password', 'clientSecret', 'client_secret', 'apiKey', 'api_key'];

/** Refuses a literal secret with a message that says where secrets go instead. */
function noLiteralSecrets(where: string) {
  return (value: unknown, ctx: z.core.$RefinementCtx) => {
    if (value === null || typeof value !== 'object') return;
    for (const key of SECRET_FIELDS) {
      if (Object.prototype.hasOwnProperty.call(value, key))
        ctx.addIssue({
          code: 'custom',
          path: [key],
          message: `a definition never holds secret values: remove "${key}" and set the ${where} through PUT /api/registry/servers/<name>/credentials (the vault) or name an environment variable`,
        });
    }
  };
}

/** Where a secret comes from: the vault (set through the page or API), or an environment variable. */
export const secretSourceSchema = z.union(
  [
    z.literal('vault'),
    z.strictObject({ env: z.string().regex(ENV_NAME_PATTERN, 'env must be an environment variable name such as MCP_BACKEND_GITHUB_TOKEN') }),
  ],
  { error: 'must be "vault" or {"env": "<VARIABLE>"}' },
);
export type SecretSource = z.infer<typeof secretSourceSchema>;

const headerNameSchema = z
  .string()
  .regex(HEADER_NAME_PATTERN, "header name must be 1-64 token characters (A-Z a-z 0-9 and !#$%&'*+.^_`|~-)")
  .superRefine((name, ctx) => {
    const reason = forbiddenHeaderReason(name);
    if (reason) ctx.addIssue({ code: 'custom', message: reason });
  });

const prefixSchema = z.string().regex(/^[\x21-\x7e][\x20-\x7e]{0,31}$/, 'prefix must be up to 32 printable characters, such as "Bearer "');

const headerSchema = z
  .unknown()
  .superRefine(noLiteralSecrets('header value'))
  .pipe(
    z.strictObject({
      name: headerNameSchema,
      prefix: prefixSchema.optional(),
      from: secretSourceSchema,
    }),
  );

const url = (field: string) =>
  z
    .url({ protocol: /^https?$/, error: `${field} must be an http(s) URL` })
    .max(2000)
    .refine((u) => {
      const parsed = new URL(u);
      // The client secret travels to it: plain http only to this host.
      return parsed.protocol === 'https:' || ['127.0.0.1', 'localhost', '[::1]'].includes(parsed.hostname);
    }, `${field} must be https (http only on loopback)`)
    .refine((u) => !u.includes('#'), `${field} must not have a fragment`);

const noneSchema = z.strictObject({ type: z.literal('none') });

const headersSchema = z.strictObject({
  type: z.literal('headers'),
  headers: z
    .array(headerSchema)
    .min(1, 'name at least one header')
    .max(8, 'at most 8 headers')
    .superRefine((headers, ctx) => {
      const seen = new Set<string>();
      headers.forEach((h, i) => {
        const lower = h.name.toLowerCase();
        if (seen.has(lower)) ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `${h.name} is named twice` });
        seen.add(lower);
      });
    }),
});

const scopeSchema = z.string().regex(/^[\x21\x23-\x5b\x5d-\x7e]{1,256}$/, 'a scope is 1-256 printable characters without spaces, " or \\');
const clientIdSchema = z.string().regex(/^[\x21-\x7e]{1,256}$/, 'clientId must be 1-256 printable characters');
const audienceSchema = z.string().regex(/^[\x21-\x7e]{1,512}$/, 'audience must be 1-512 printable characters');

const clientCredentialsSchema = z
  .strictObject({
    type: z.literal('client_credentials'),
    issuer: url('issuer').optional().describe('The token endpoint comes from its discovery document.'),
    tokenUrl: url('tokenUrl').optional(),
    clientId: clientIdSchema,
    clientSecretFrom: secretSourceSchema.default('vault'),
    scopes: z.array(scopeSchema).max(50).default([]),
    resource: url('resource').optional().describe('RFC 8707 resource indicator sent with the token request.'),
    audience: audienceSchema.optional(),
  })
  .refine((c) => (c.issuer === undefined) !== (c.tokenUrl === undefined), {
    message: 'give either issuer (discovery) or tokenUrl, not both',
    path: ['tokenUrl'],
  });

/**
 * A token each person pastes for the server (backends that issue tokens by hand): sent as
 * `header` (Authorization by default, or a BACKEND_CREDENTIAL_HEADERS slot) with `prefix`
 * (`Bearer ` by default for Authorization). `instructions` tell people where to get one.
 */
const uploadedSchema = z.strictObject({
  type: z.literal('uploaded'),
  header: headerNameSchema.default('Authorization'),
  prefix: prefixSchema.optional(),
  instructions: z
    .string()
    .max(2000, 'instructions are at most 2000 characters')
    .refine((t) => !/[\x00-\x08\x0b-\x1f\x7f]/.test(t), 'instructions must not hold control characters')
    .optional(),
});

/**
 * The gateway's own credential for a per-person server's health checks and tool discovery
 * (issue 13: "an operator-chosen service credential, or discovery is skipped with a clear
 * status"): static headers or client credentials. Its client secret has its own vault id
 * (serviceClientSecretId), so it never collides with the mode's own client.
 */
const serviceSchema = z.discriminatedUnion('type', [headersSchema, clientCredentialsSchema], {
  error: 'service.type must be headers or client_credentials',
});

/**
 * The client the gateway is at the backend's authorization server, for `user_oauth`:
 * - `auto` (default): a Client ID Metadata Document when the AS advertises
 *   `client_id_metadata_document_supported` (MCP 2025-11-25, Authorization §Client Registration
 *   Approaches: preferred), else dynamic client registration (RFC 7591) when it has a
 *   `registration_endpoint`, else the connect attempt fails naming what to configure;
 * - `metadata_document`, `dynamic`: only that approach;
 * - a configured client (`clientId`, and `clientSecretFrom` for a confidential one).
 */
const oauthClientSchema = z.union(
  [z.enum(['auto', 'metadata_document', 'dynamic']), z.strictObject({ clientId: clientIdSchema, clientSecretFrom: secretSourceSchema.optional() })],
  { error: 'client must be "auto", "metadata_document", "dynamic" or {"clientId": "...", "clientSecretFrom": "vault"}' },
);

/**
 * Each person connects their own account at the backend's authorization server (authorization
 * code + PKCE). Everything not given is discovered when a person connects: the protected
 * resource metadata (RFC 9728, `resourceMetadataUrl` or the well-known URLs of the backend),
 * then the authorization server's metadata (RFC 8414, else OpenID Connect Discovery).
 */
const userOAuthSchema = z.strictObject({
  type: z.literal('user_oauth'),
  /** The authorization server's issuer; default: the first of the resource metadata's `authorization_servers`. */
  authorizationServer: url('authorizationServer').optional(),
  resourceMetadataUrl: url('resourceMetadataUrl').optional(),
  /** RFC 8707 resource indicator; default: the resource metadata's `resource`, else the backend's MCP URL. */
  resource: url('resource').optional(),
  /** Scopes asked for; default: the resource metadata's `scopes_supported` (none when it lists none). */
  scopes: z.array(scopeSchema).max(50).optional(),
  client: oauthClientSchema.default('auto'),
  /** The name people see: "Connect to <provider>" (default: the server's display name). */
  provider: z
    .string()
    .min(1)
    .max(60)
    .refine((t) => !/[\x00-\x1f\x7f]/.test(t), 'provider must not hold control characters')
    .optional(),
  service: serviceSchema.optional(),
});

/**
 * RFC 8693 token exchange: the person's identity-provider token (the subject token) is exchanged
 * at `issuer`'s (discovery) or `tokenUrl`'s token endpoint for a token scoped to the backend
 * (`audience` and/or `resource`, `scopes`). The gateway authenticates as `clientId`.
 */
const tokenExchangeSchema = z
  .strictObject({
    type: z.literal('token_exchange'),
    issuer: url('issuer').optional(),
    tokenUrl: url('tokenUrl').optional(),
    clientId: clientIdSchema,
    clientSecretFrom: secretSourceSchema.default('vault'),
    audience: audienceSchema.optional(),
    resource: url('resource').optional(),
    scopes: z.array(scopeSchema).max(50).default([]),
    /** Which of the person's IdP tokens is the subject token (RFC 8693 §3 token type). */
    subjectTokenType: z.enum(['access_token', 'id_token']).default('access_token'),
    service: serviceSchema.optional(),
  })
  .refine((c) => (c.issuer === undefined) !== (c.tokenUrl === undefined), {
    message: 'give either issuer (discovery) or tokenUrl, not both',
    path: ['tokenUrl'],
  });

const uploadedWithService = uploadedSchema.extend({ service: serviceSchema.optional() });

/** `backendAuth` of a definition: a union on `type`. */
export const backendAuthSchema = z
  .unknown()
  .superRefine(noLiteralSecrets('client secret'))
  .pipe(
    z.discriminatedUnion('type', [noneSchema, headersSchema, clientCredentialsSchema, uploadedWithService, userOAuthSchema, tokenExchangeSchema], {
      error: `backendAuth.type must be one of ${BACKEND_AUTH_MODES.join(', ')}`,
    }),
  );

export type BackendAuth = z.infer<typeof backendAuthSchema>;
export type HeadersAuth = Extract<BackendAuth, { type: 'headers' }>;
export type ClientCredentialsAuth = Extract<BackendAuth, { type: 'client_credentials' }>;
export type UploadedAuth = Extract<BackendAuth, { type: 'uploaded' }>;
export type UserOAuthAuth = Extract<BackendAuth, { type: 'user_oauth' }>;
export type TokenExchangeAuth = Extract<BackendAuth, { type: 'token_exchange' }>;
export type PersonalAuth = UploadedAuth | UserOAuthAuth | TokenExchangeAuth;
export type ServiceAuth = NonNullable<PersonalAuth['service']>;

/** True for the modes whose credential is each person's own (PERSONAL_MODES). */
export function isPersonal(auth: BackendAuth | undefined): auth is PersonalAuth {
  return auth !== undefined && (PERSONAL_MODES as readonly string[]).includes(auth.type);
}
export type BackendHeader = HeadersAuth['headers'][number];

/** The prefix an uploaded token is sent with: the definition's, else `Bearer ` for Authorization. */
export function uploadedPrefix(auth: UploadedAuth): string {
  return auth.prefix ?? (auth.header.toLowerCase() === 'authorization' ? 'Bearer ' : '');
}

/** The vault id of a header's secret: `server:<name>:header:<lower-cased header name>`. */
export function headerSecretId(server: string, header: string): string {
  return `server:${server}:header:${header.toLowerCase()}`;
}

/** The vault id of a client-credentials secret. */
export function clientSecretId(server: string): string {
  return `server:${server}:client-secret`;
}

/** The vault id of a per-person server's service credential's client secret (`service.type: client_credentials`). */
export function serviceClientSecretId(server: string): string {
  return `server:${server}:service-client-secret`;
}

/** The vault id of a token_exchange server's client secret. */
export function exchangeClientSecretId(server: string): string {
  return `server:${server}:exchange-client-secret`;
}

/** The vault id of a user_oauth server's configured client's secret (`client.clientSecretFrom: "vault"`). */
export function oauthClientSecretId(server: string): string {
  return `server:${server}:oauth-client-secret`;
}

/** The vault id of the client the gateway registered (RFC 7591) at a user_oauth server's authorization server. */
export function oauthRegistrationId(server: string): string {
  return `server:${server}:oauth-registration`;
}

/** The prefix of every vault id of one server. */
export function serverSecretPrefix(server: string): string {
  return `server:${server}:`;
}

/** Deep-freezes a validated backendAuth. */
export function freezeBackendAuth(auth: BackendAuth): BackendAuth {
  if (auth.type === 'headers') {
    for (const h of auth.headers) {
      if (typeof h.from === 'object') Object.freeze(h.from);
      Object.freeze(h);
    }
    Object.freeze(auth.headers);
  } else if (auth.type === 'client_credentials' || auth.type === 'token_exchange') {
    if (typeof auth.clientSecretFrom === 'object') Object.freeze(auth.clientSecretFrom);
    Object.freeze(auth.scopes);
  } else if (auth.type === 'user_oauth') {
    if (auth.scopes) Object.freeze(auth.scopes);
    if (typeof auth.client === 'object') {
      if (typeof auth.client.clientSecretFrom === 'object') Object.freeze(auth.client.clientSecretFrom);
      Object.freeze(auth.client);
    }
  }
  if (isPersonal(auth) && auth.service) freezeBackendAuth(auth.service);
  return Object.freeze(auth);
}
