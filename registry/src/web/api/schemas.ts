/**
 * The shapes of the REST API under /api/registry: what requests must hold (validated with these
 * schemas) and what responses hold (checked against them before they are sent). The OpenAPI
 * document is generated from the same objects (openapi.ts), so the API and its description
 * cannot drift apart.
 */
import { z } from 'zod';
import { serverDefinitionSchema, SERVER_NAME_PATTERN, TOOL_NAME_PATTERN, TRANSPORTS } from '../../catalog/server-definition.ts';
import { BACKEND_AUTH_MODES, HEADER_NAME_PATTERN } from '../../catalog/backend-auth.ts';
import { GATEWAY_ERROR_CODES, type FieldProblem } from '../../errors.ts';

/**
 * A zod error as one problem per field, for forms and API clients. An unknown key is named as
 * its own field (`transports.proxy_pass`), not as the object that holds it.
 */
export function fieldProblemsOf(error: z.ZodError, fallback: string): FieldProblem[] {
  return error.issues.flatMap((issue) => {
    const at = issue.path.map(String);
    if (issue.code === 'unrecognized_keys')
      return issue.keys.map((key) => ({ field: [...at, key].join('.'), message: `unknown field ${JSON.stringify(key)}` }));
    return [{ field: at.join('.') || fallback, message: issue.message }];
  });
}

export const serverNameParam = z.string().regex(SERVER_NAME_PATTERN, 'server name must match [a-z0-9][a-z0-9-]{0,62}');

export const errorSchema = z
  .object({
    error: z.enum(GATEWAY_ERROR_CODES as [string, ...string[]]).describe('A stable code from docs/errors.md.'),
    message: z.string().describe('What went wrong and what to do, for people.'),
    fields: z
      .array(z.object({ field: z.string().describe('Path of the invalid field, e.g. `transports.sse`.'), message: z.string() }))
      .optional()
      .describe('REQUEST_INVALID only: each invalid field of the request.'),
    missing_scope: z.string().optional().describe('AUTH_SCOPE_MISSING only: the scope that would allow the request.'),
  })
  .meta({ id: 'Error' });

const discoveredAuthSchema = z
  .object({
    resource: z.string().describe("The protected resource's identifier (RFC 9728 `resource`): the audience its tokens must carry (RFC 8707)."),
    authorizationServers: z.array(z.string()).describe('The authorization servers the resource names; the first was asked for its metadata.'),
    issuer: z.string().describe("The authorization server's issuer (RFC 8414 / OpenID Connect metadata)."),
    scopesSupported: z.array(z.string()).optional().describe("The resource's `scopes_supported`, else the challenge's `scope`."),
    authorizationEndpoint: z.string(),
    tokenEndpoint: z.string(),
    registrationEndpoint: z.string().optional().describe('Present when the authorization server takes dynamic client registration (RFC 7591).'),
    clientIdMetadataDocumentSupported: z.boolean().optional().describe('Whether the authorization server takes client ID metadata documents (CIMD).'),
    revocationEndpoint: z.string().optional(),
    codeChallengeMethodsSupported: z.array(z.string()).optional(),
    grantTypesSupported: z.array(z.string()).optional(),
  })
  .meta({ id: 'DiscoveredBackendAuth' });

const authSuggestionSchema = z
  .object({
    mode: z.enum(['client_credentials', 'user_oauth']),
    available: z.boolean().describe('false: this mode is not implemented yet (user_oauth: a later version).'),
    note: z.string(),
    backendAuth: z.record(z.string(), z.unknown()).describe('A backendAuth block for the definition, from the discovered settings; replace the placeholders.'),
  })
  .meta({ id: 'BackendAuthSuggestion' });

export const authFindingSchema = z
  .object({
    challenge: z
      .object({ resourceMetadata: z.string().optional(), scope: z.string().optional(), error: z.string().optional() })
      .optional()
      .describe("The 401's `WWW-Authenticate: Bearer` parameters (RFC 6750 §3, RFC 9728 §5.1); absent when it had no Bearer challenge."),
    resourceMetadataUrl: z.string().optional().describe('Where the protected resource metadata (RFC 9728) was read or refused.'),
    discovered: discoveredAuthSchema.optional(),
    problem: z.string().optional().describe('Why nothing was discovered, e.g. no metadata, or metadata refused (a `resource` that is not this backend).'),
    suggestions: z.array(authSuggestionSchema).optional().describe('backendAuth blocks to choose from, once settings were discovered.'),
  })
  .meta({ id: 'BackendAuthFinding' });

export const healthSchema = z
  .object({
    status: z
      .enum(['unknown', 'healthy', 'unhealthy', 'unauthorized', 'skipped'])
      .describe(
        'unknown until the first check finishes; unauthorized: the backend answered HTTP 401 (it wants a credential, see `auth`); skipped: not checked, because the backend takes a credential of each person (`uploaded`) and the gateway has none of its own (`error` says why).',
      ),
    checkedAt: z.string().optional().describe('When the last check finished (ISO 8601).'),
    latencyMs: z.number().int().optional().describe('How long the last check took: connect, initialize and tools/list.'),
    error: z.string().optional().describe('Why the last check failed.'),
    transport: z.enum(TRANSPORTS).optional(),
    serverInfo: z.object({ name: z.string(), version: z.string() }).optional().describe('What the backend said it is.'),
    auth: authFindingSchema
      .optional()
      .describe(
        'status unauthorized, for callers with the edit scope: what the backend asks for (its RFC 9728 and RFC 8414 metadata) and ready backendAuth suggestions.',
      ),
  })
  .meta({ id: 'Health' });

export const permissionsSchema = z
  .object({
    toggle: z.boolean().describe('mcp:server:<name>:toggle'),
    edit: z.boolean().describe('mcp:server:<name>:edit'),
    delete: z.boolean().describe('mcp:registry:admin'),
    allTools: z.boolean().describe('Whether every tool is usable (execute); otherwise only the tools of the tool scopes.'),
  })
  .meta({ id: 'Permissions' });

export const serverSummarySchema = z
  .object({
    name: z.string(),
    description: z.string(),
    tags: z.array(z.string()),
    enabled: z.boolean(),
    transports: z.array(z.enum(TRANSPORTS)),
    endpoints: z
      .object({ 'streamable-http': z.string().optional(), sse: z.string().optional() })
      .describe('The gateway URLs to give an MCP client, per transport.'),
    health: healthSchema,
    toolCount: z.number().int().describe('Tools this caller may see: from the backend once a check succeeded, else from the definition.'),
    permissions: permissionsSchema,
    routed: z
      .boolean()
      .describe('Whether the gateway routes this server now. false: it cannot (see routeError); fix the definition or the backend host and it is tried again.'),
    routeError: z
      .string()
      .optional()
      .describe('Why the gateway cannot route this server, e.g. host not found: "no-such-host.invalid:9000" (getaddrinfo ENOTFOUND no-such-host.invalid).'),
    version: z.string().describe('Fingerprint of the definition; send it as If-Match to update or delete only what you read.'),
    definition: serverDefinitionSchema.optional().describe('The definition file, backend URL included: for callers with the edit scope only.'),
  })
  .meta({ id: 'ServerSummary' });

export const toolViewSchema = z
  .object({
    name: z.string(),
    title: z.string().optional(),
    description: z.string(),
    inputSchema: z
      .record(z.string(), z.unknown())
      .optional()
      .describe('The JSON Schema the backend gave for the arguments; absent for tools only declared in the definition.'),
  })
  .meta({ id: 'Tool' });

export const toolsResultSchema = z
  .object({
    server: z.string(),
    source: z.enum(['backend', 'definition']).describe('backend: from MCP tools/list; definition: the declared tools, until a check succeeds.'),
    fetchedAt: z.string().optional(),
    health: healthSchema,
    tools: z.array(toolViewSchema),
  })
  .meta({ id: 'ToolList' });

export const serverDetailSchema = serverSummarySchema.extend({ tools: toolsResultSchema }).meta({ id: 'ServerDetail' });

export const serverListSchema = z.object({ servers: z.array(serverSummarySchema) }).meta({ id: 'ServerList' });

export const nginxStateSchema = z
  .object({
    lastAppliedAt: z.string().optional().describe('When nginx last took a new configuration.'),
    lastError: z.string().optional().describe('Why nginx refused the newest configuration; the last good one keeps serving.'),
    refused: z
      .record(z.string(), z.string())
      .optional()
      .describe(
        'Servers the gateway cannot route (such as a backend host that does not resolve), by name, with the reason. Their requests are answered 502; every other server is routed.',
      ),
    withoutKeepalive: z
      .array(z.string())
      .optional()
      .describe('Backend origins added since nginx started: proxied to their IP address, without upstream keep-alive until the gateway restarts.'),
  })
  .meta({ id: 'NginxState' });

export const mutationResultSchema = z.object({ server: serverSummarySchema, nginx: nginxStateSchema }).meta({ id: 'ServerChange' });

export const deleteResultSchema = z.object({ deleted: z.string(), nginx: nginxStateSchema }).meta({ id: 'ServerDeleted' });

export const toggleBodySchema = z.strictObject({ enabled: z.boolean() }).meta({ id: 'Toggle' });

/** Register and update take a whole definition file. */
export const definitionBodySchema = serverDefinitionSchema;

export const toolsQuerySchema = z.object({
  refresh: z.enum(['true', 'false']).optional().describe('true: ask the backend now (MCP tools/list) instead of the last check.'),
});

export const toolSearchQuerySchema = z.object({
  q: z.string().max(200).default('').describe('Words to find in tool names and descriptions (all must match, any case).'),
});

export const toolSearchResultSchema = z
  .object({
    query: z.string(),
    matches: z.array(z.object({ server: z.string(), tool: toolViewSchema })),
  })
  .meta({ id: 'ToolSearchResult' });

export const healthListSchema = z
  .object({ servers: z.array(z.object({ name: z.string(), enabled: z.boolean(), health: healthSchema })) })
  .meta({ id: 'HealthList' });

export const whoCanBodySchema = z
  .strictObject({
    groups: z.array(z.string().min(1).max(256)).max(100).optional().describe('IdP groups to try; or name a signed-in user.'),
    user: z.string().min(1).max(256).optional().describe("A signed-in user: their session's scopes are used."),
    server: serverNameParam,
    tool: z.string().regex(TOOL_NAME_PATTERN).optional().describe('Decide a tools/call of this tool.'),
    method: z.string().min(1).max(128).optional().describe('Decide a request with this MCP method (default: tools/call with a tool, else opening a session).'),
  })
  .refine((b) => (b.groups === undefined) !== (b.user === undefined), { message: 'give either groups or user', path: ['groups'] })
  .meta({ id: 'WhoCanQuestion' });

export const whoCanResultSchema = z
  .object({
    subject: z.object({ groups: z.array(z.string()), user: z.string().optional() }),
    scopes: z.array(z.string()).describe("The scopes those groups map to (convention + mapping file), or the user's session scopes."),
    server: z.string(),
    request: z.object({ method: z.string().optional(), tool: z.string().optional() }),
    decision: z.enum(['allow', 'deny']),
    status: z.number().int().describe('What the gateway answers: 200, 403, 404 or 503.'),
    reason: z.string().optional().describe('server-unknown, server-disabled or scope-missing.'),
    missingScope: z.string().optional(),
    toolFilter: z.array(z.string()).optional().describe('When only some tools are usable: tools/list shows just these.'),
    explanation: z.string(),
    registry: z
      .object({ read: z.boolean(), toggle: z.boolean(), edit: z.boolean(), delete: z.boolean() })
      .describe('What the same scopes allow in the registry.'),
  })
  .meta({ id: 'WhoCanAnswer' });

export const signedInUsersSchema = z
  .object({ users: z.array(z.object({ username: z.string(), groups: z.array(z.string()), provider: z.string() })) })
  .meta({ id: 'SignedInUsers' });

export const auditQuerySchema = z.object({
  user: z.string().max(256).optional(),
  server: serverNameParam.optional(),
  decision: z.enum(['allow', 'deny']).optional(),
  event: z.enum(['access', 'change']).optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
});

export const auditListSchema = z
  .object({
    entries: z.array(
      z.object({
        time: z.string(),
        event: z.enum(['access', 'change']),
        user: z.string(),
        server: z.string(),
        decision: z.enum(['allow', 'deny']).optional(),
        status: z.number().int().optional(),
        method: z.string().optional(),
        tool: z.string().optional(),
        transport: z.string().optional(),
        missingScope: z.string().optional(),
        reason: z.string().optional(),
        action: z.string().optional(),
        requestId: z.string().optional(),
        traceId: z.string().optional().describe("The W3C trace id of the client's traceparent, when it sent a valid one."),
        answeredBy: z
          .enum(['cache', 'nginx'])
          .optional()
          .describe(
            "Access entries the check did not decide itself: `cache`, nginx answered from a cached decision of the check (CHECK_CACHE_SECONDS; the decision is that answer's); `nginx`, nginx refused the request before asking (a malformed body). Absent: the check decided.",
          ),
      }),
    ),
  })
  .meta({ id: 'AuditEntries' });

export const meSchema = z
  .object({
    username: z.string(),
    sub: z.string(),
    groups: z.array(z.string()),
    provider: z.string(),
    scopes: z.array(z.string()),
    csrfToken: z.string().optional().describe('Cookie callers only: send it as X-CSRF-Token on POST, PUT and DELETE.'),
  })
  .meta({ id: 'Me' });

export type ServerSummary = z.infer<typeof serverSummarySchema>;
export type ServerDetail = z.infer<typeof serverDetailSchema>;
export type ToolView = z.infer<typeof toolViewSchema>;
export type ToolsResult = z.infer<typeof toolsResultSchema>;
export type WhoCanQuestion = z.infer<typeof whoCanBodySchema>;
export type WhoCanAnswer = z.infer<typeof whoCanResultSchema>;
export type NginxState = z.infer<typeof nginxStateSchema>;

/** A personal access token as listed (never the token itself). */
export const personalTokenSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    owner: z.string(),
    servers: z.array(z.string()),
    createdAt: z.string(),
    expiresAt: z.string(),
  })
  .meta({ id: 'PersonalToken' });

export const personalTokenListSchema = z.object({ tokens: z.array(personalTokenSchema) }).meta({ id: 'PersonalTokenList' });

export const personalTokenBodySchema = z
  .strictObject({
    name: z.string().trim().min(1).max(64),
    servers: z.array(serverNameParam).min(1).max(100),
    lifetimeDays: z.number().int().min(1),
  })
  .meta({ id: 'NewPersonalToken' });

/** The only answer that holds the token: keep it, it is not shown again. */
export const personalTokenCreatedSchema = z
  .object({ token: z.string(), tokenInfo: personalTokenSchema, mcpUrls: z.record(z.string(), z.string()) })
  .meta({ id: 'PersonalTokenCreated' });

/** Secrets for a server's backend credential: write-only (answers never hold them). */
export const credentialsBodySchema = z
  .strictObject({
    headers: z
      .record(z.string().regex(HEADER_NAME_PATTERN, 'a header name'), z.string().min(1).max(8192))
      .optional()
      .describe(
        'Values by header name, for the headers of the server\'s backendAuth that read from the vault. A value that starts with the header\'s prefix ("Bearer ") has it removed; it is added when sent.',
      ),
    clientSecret: z
      .string()
      .min(1)
      .max(4096)
      .optional()
      .describe('The client secret of a client_credentials or token_exchange backendAuth, or of a user_oauth client, that reads from the vault.'),
    serviceClientSecret: z
      .string()
      .min(1)
      .max(4096)
      .optional()
      .describe("The client secret of a per-person server's service credential (backendAuth.service of type client_credentials) that reads from the vault."),
  })
  .meta({ id: 'CredentialSecrets' });

export const credentialStatusSchema = z
  .object({
    server: z.string(),
    type: z.enum(BACKEND_AUTH_MODES),
    secrets: z.array(
      z.object({
        name: z.string().describe('The header name, or "client secret".'),
        source: z.enum(['vault', 'env']),
        id: z
          .string()
          .optional()
          .describe('The vault id (server:<name>:header:<header>, server:<name>:client-secret or server:<name>:exchange-client-secret).'),
        env: z.string().optional().describe('The environment variable it is read from.'),
        set: z.boolean(),
        updatedAt: z.string().optional().describe('When it was set (vault only).'),
        keyId: z.string().optional().describe('The vault key that sealed it (its id, never the key).'),
      }),
    ),
    token: z
      .object({ cachedUntil: z.string().optional(), lastError: z.string().optional(), lastFetchedAt: z.string().optional() })
      .optional()
      .describe('client_credentials: the cached token (never the token) and the last failure of the token endpoint.'),
    uploadedTokens: z.number().int().optional().describe('uploaded: how many people have uploaded a token (never whose, never a token).'),
    connections: z.number().int().optional().describe('user_oauth: how many people have connected their account (never whose, never a token).'),
    exchangedTokens: z.number().int().optional().describe('token_exchange: how many people have an exchanged token cached now (never whose, never a token).'),
    problem: z.string().optional().describe('Why the gateway cannot build this credential with its configuration.'),
  })
  .meta({ id: 'CredentialStatus' });

/** A person's own token for an `uploaded` server (PUT .../my-token). */
export const myTokenBodySchema = z
  .strictObject({
    token: z
      .string()
      .min(1)
      .max(16384)
      .describe(
        'The token the backend issued you. A JWT\'s exp is read as its expiry (its signature is not checked). A token starting with the prefix ("Bearer ") has it removed.',
      ),
    expiresAt: z
      .string()
      .max(64)
      .optional()
      .describe('For a token that is not a JWT with exp: when it expires, a date (2026-12-31, through that day UTC) or a date and time with a zone.'),
  })
  .meta({ id: 'MyTokenUpload' });

export const myTokenStatusSchema = z
  .object({
    server: z.string(),
    set: z.boolean().describe('Whether you have uploaded a token for this server.'),
    uploadedAt: z.string().optional(),
    expiresAt: z.string().optional().describe('Absent when unknown (not a JWT with exp, and no date given).'),
    expirySource: z.enum(['jwt', 'given']).optional().describe("jwt: the token's own exp; given: the date given when uploading."),
    expired: z
      .boolean()
      .describe('An expired token is not sent: MCP requests answer BACKEND_CONNECT_REQUIRED, naming the upload page, until you upload a new one.'),
    instructions: z.string().optional().describe("The server definition's instructions: where to get a token."),
    uploadUrl: z.string().describe('The page where you upload one.'),
  })
  .meta({ id: 'MyTokenStatus' });

export const idParams = z.object({ id: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/) });

/** An OAuth client connected with a person's account (a grant of the authorization server). */
export const connectionSchema = z
  .object({
    id: z.string(),
    accountId: z.string(),
    username: z.string(),
    clientId: z.string(),
    clientName: z.string().optional(),
    redirectHosts: z.array(z.string()),
    authorizedAt: z.string(),
    lastUsedAt: z.string().optional(),
    servers: z.array(z.object({ server: z.string(), scopes: z.array(z.string()) })),
  })
  .meta({ id: 'Connection' });

export const connectionListSchema = z.object({ connections: z.array(connectionSchema) }).meta({ id: 'ConnectionList' });

export const secretKeysSchema = z
  .object({
    keys: z.array(
      z.object({
        keyId: z.string().describe('A key id of CREDENTIAL_KEYS (never the key).'),
        secrets: z.number().int().describe('How many backend secrets it seals; an old key may leave CREDENTIAL_KEYS at 0.'),
        sealing: z.boolean().describe('The first key: it seals new and changed secrets.'),
        inRing: z.boolean().describe('false: secrets sealed under a key no longer in CREDENTIAL_KEYS, which cannot be opened until it is put back.'),
      }),
    ),
  })
  .meta({ id: 'SecretKeys' });

export const resealResultSchema = secretKeysSchema
  .extend({ resealed: z.number().int().describe('Secrets sealed again under the first key.') })
  .meta({ id: 'ResealResult' });

/** A person's own connection to a `user_oauth` server (GET/DELETE .../connection). */
export const connectionStatusSchema = z
  .object({
    server: z.string(),
    provider: z.string().describe('The name people see ("Connect to <provider>").'),
    state: z
      .enum(['none', 'connected', 'expired', 'broken'])
      .describe('none: not connected; broken: the authorization server refused the last refresh (connect again); expired: expired and not refreshable.'),
    account: z.string().optional().describe('Who you are connected as at the backend (its ID token or token claims).'),
    connectedAt: z.string().optional(),
    refreshedAt: z.string().optional().describe('The last refresh of the access token.'),
    expiresAt: z.string().optional().describe('When the current access token expires; it is refreshed before then.'),
    scope: z.string().optional().describe('The scope the authorization server granted.'),
    refreshable: z.boolean().optional(),
    problem: z.string().optional().describe('Why the connection is broken.'),
    connectUrl: z.string().describe('The page where you connect (a browser flow: the API cannot do it for you).'),
    revoked: z
      .enum(['revoked', 'unsupported', 'failed', 'nothing'])
      .optional()
      .describe('DELETE only: whether the tokens were revoked at the authorization server (RFC 7009) before the gateway deleted them.'),
  })
  .meta({ id: 'ConnectionStatus' });
