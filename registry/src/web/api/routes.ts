/**
 * The REST API under /api/registry, as one table: each route's method, path, schemas, the scope
 * it needs (for the docs) and its handler. router.ts serves this table and openapi.ts describes
 * it, so a route cannot exist without its description or differ from it.
 */
import { z } from 'zod';
import type { Principal } from '../../authz/credentials.ts';
import type { RegistryActions } from '../registry-actions.ts';
import {
  auditListSchema,
  auditQuerySchema,
  definitionBodySchema,
  deleteResultSchema,
  healthListSchema,
  meSchema,
  mutationResultSchema,
  serverDetailSchema,
  serverListSchema,
  serverNameParam,
  signedInUsersSchema,
  toggleBodySchema,
  toolSearchQuerySchema,
  toolSearchResultSchema,
  toolsResultSchema,
  whoCanBodySchema,
  whoCanResultSchema,
  connectionListSchema,
  credentialsBodySchema,
  credentialStatusSchema,
  resealResultSchema,
  secretKeysSchema,
  myTokenBodySchema,
  myTokenStatusSchema,
  connectionStatusSchema,
  connectionSchema,
  idParams,
  personalTokenBodySchema,
  personalTokenCreatedSchema,
  personalTokenListSchema,
  personalTokenSchema,
} from './schemas.ts';

export const API_PREFIX = '/api/registry';

export interface ApiContext {
  readonly principal: Principal;
  readonly params: Record<string, string>;
  readonly query: any;
  readonly body: any;
  /** The If-Match version, when the client sent one. */
  readonly ifMatch: string | undefined;
  /** The CSRF token of a cookie caller's session (for /me). */
  readonly csrfToken: string | undefined;
}

export interface ApiReply {
  readonly status?: number;
  readonly body: unknown;
  readonly etag?: string;
}

export interface ApiRoute {
  readonly method: 'get' | 'post' | 'put' | 'delete';
  /** Express syntax (`:name`); OpenAPI gets `{name}`. */
  readonly path: string;
  readonly operationId: string;
  readonly summary: string;
  /** Who may call it, in words, for the OpenAPI description. */
  readonly access: string;
  readonly params?: z.ZodObject;
  readonly query?: z.ZodType;
  readonly body?: z.ZodType;
  readonly status: number;
  readonly response: z.ZodType;
  /** Error statuses this route can answer besides 401 (documented). */
  readonly errors: readonly number[];
  handle(actions: RegistryActions, ctx: ApiContext): Promise<ApiReply> | ApiReply;
}

const nameParams = z.object({ name: serverNameParam });
const user = (ctx: ApiContext) => ctx.principal.identity.username;

export const API_ROUTES: readonly ApiRoute[] = [
  {
    method: 'get',
    path: '/me',
    operationId: 'getMe',
    summary: 'Who the caller is, their scopes, and (cookie callers) the CSRF token for writes',
    access: 'any signed-in caller',
    status: 200,
    response: meSchema,
    errors: [],
    handle: (_a, ctx) => ({
      body: {
        username: ctx.principal.identity.username,
        sub: ctx.principal.identity.sub,
        groups: [...ctx.principal.identity.groups],
        provider: ctx.principal.identity.provider,
        scopes: [...ctx.principal.scopes],
        ...(ctx.csrfToken ? { csrfToken: ctx.csrfToken } : {}),
      },
    }),
  },
  {
    method: 'get',
    path: '/servers',
    operationId: 'listServers',
    summary: 'The servers the caller may read',
    access: 'any signed-in caller; lists only servers their scopes name (all with mcp:registry:read)',
    status: 200,
    response: serverListSchema,
    errors: [],
    handle: (a, ctx) => ({ body: { servers: a.list(ctx.principal) } }),
  },
  {
    method: 'post',
    path: '/servers',
    operationId: 'registerServer',
    summary:
      'Register a server (writes <name>.json; answers once the change is routed: routed false if the gateway cannot route this definition, e.g. its backend host does not resolve)',
    access: 'mcp:registry:admin',
    body: definitionBodySchema,
    status: 201,
    response: mutationResultSchema,
    errors: [400, 403, 409],
    handle: async (a, ctx) => {
      const change = await a.register(ctx.principal, user(ctx), ctx.body);
      return { status: 201, body: change, etag: change.server.version };
    },
  },
  {
    method: 'get',
    path: '/servers/:name',
    operationId: 'getServer',
    summary: 'One server, with its tools and health',
    access: 'a scope on the server, or mcp:registry:read',
    params: nameParams,
    status: 200,
    response: serverDetailSchema,
    errors: [400, 404],
    handle: (a, ctx) => {
      const detail = a.get(ctx.principal, ctx.params['name']!);
      return { body: detail, etag: detail.version };
    },
  },
  {
    method: 'put',
    path: '/servers/:name',
    operationId: 'updateServer',
    summary: "Replace a server's definition (the name stays); If-Match refuses lost updates",
    access: 'mcp:server:<name>:edit',
    params: nameParams,
    body: definitionBodySchema,
    status: 200,
    response: mutationResultSchema,
    errors: [400, 403, 404, 412],
    handle: async (a, ctx) => {
      const change = await a.update(ctx.principal, user(ctx), ctx.params['name']!, ctx.body, ctx.ifMatch);
      return { body: change, etag: change.server.version };
    },
  },
  {
    method: 'delete',
    path: '/servers/:name',
    operationId: 'deleteServer',
    summary: 'Delete a server (its file and its nginx routes)',
    access: 'mcp:registry:admin',
    params: nameParams,
    status: 200,
    response: deleteResultSchema,
    errors: [400, 403, 404, 412],
    handle: async (a, ctx) => ({ body: { deleted: ctx.params['name']!, nginx: await a.delete(ctx.principal, user(ctx), ctx.params['name']!, ctx.ifMatch) } }),
  },
  {
    method: 'post',
    path: '/servers/:name/toggle',
    operationId: 'toggleServer',
    summary: 'Enable or disable a server (takes effect on the next MCP request; no nginx reload)',
    access: 'mcp:server:<name>:toggle',
    params: nameParams,
    body: toggleBodySchema,
    status: 200,
    response: mutationResultSchema,
    errors: [400, 403, 404],
    handle: async (a, ctx) => ({ body: await a.toggle(ctx.principal, user(ctx), ctx.params['name']!, ctx.body.enabled) }),
  },
  {
    method: 'get',
    path: '/servers/:name/credentials',
    operationId: 'getCredentials',
    summary: "The status of a server's backend credential: which secrets are set, from where and when, the cached token's expiry; never a value",
    access: 'mcp:server:<name>:edit',
    params: nameParams,
    status: 200,
    response: credentialStatusSchema,
    errors: [400, 403, 404],
    handle: (a, ctx) => ({ body: a.credentialStatus(ctx.principal, ctx.params['name']!) }),
  },
  {
    method: 'put',
    path: '/servers/:name/credentials',
    operationId: 'setCredentials',
    summary: "Set secrets of a server's backend credential in the vault (write-only; takes effect on the next MCP request). Secrets not named stay as they are",
    access: 'mcp:server:<name>:edit',
    params: nameParams,
    body: credentialsBodySchema,
    status: 200,
    response: credentialStatusSchema,
    errors: [400, 403, 404, 503],
    handle: async (a, ctx) => ({ body: await a.setCredentials(ctx.principal, user(ctx), ctx.params['name']!, ctx.body) }),
  },
  {
    method: 'delete',
    path: '/servers/:name/credentials',
    operationId: 'clearCredentials',
    summary: "Remove every vault secret of a server's backend credential (its MCP requests then answer 502 BACKEND_CREDENTIAL_FAILED)",
    access: 'mcp:server:<name>:edit',
    params: nameParams,
    status: 200,
    response: credentialStatusSchema,
    errors: [400, 403, 404],
    handle: async (a, ctx) => ({ body: await a.clearCredentials(ctx.principal, user(ctx), ctx.params['name']!) }),
  },
  {
    method: 'get',
    path: '/secrets/keys',
    operationId: 'getSecretKeys',
    summary: 'The key ring of backend secrets: how many secrets each key of CREDENTIAL_KEYS seals (never a key or a secret)',
    access: 'mcp:registry:admin',
    status: 200,
    response: secretKeysSchema,
    errors: [403, 404],
    handle: (a, ctx) => ({ body: { keys: [...a.secretKeys(ctx.principal)] } }),
  },
  {
    method: 'post',
    path: '/secrets/reseal',
    operationId: 'resealSecrets',
    summary: 'After a key rotation: seal every backend secret again under the first key of CREDENTIAL_KEYS',
    access: 'mcp:registry:admin',
    status: 200,
    response: resealResultSchema,
    errors: [403, 404],
    handle: async (a, ctx) => {
      const result = await a.resealSecrets(ctx.principal, user(ctx));
      return { body: { resealed: result.resealed, keys: [...result.keys] } };
    },
  },
  {
    method: 'get',
    path: '/servers/:name/my-token',
    operationId: 'getMyToken',
    summary: 'Your own token for a server whose backendAuth is "uploaded": whether it is set, when, until when; never the token',
    access: 'any signed-in person with a scope on the server',
    params: nameParams,
    status: 200,
    response: myTokenStatusSchema,
    errors: [400, 404],
    handle: (a, ctx) => ({ body: a.myToken(ctx.principal, ctx.params['name']!) }),
  },
  {
    method: 'put',
    path: '/servers/:name/my-token',
    operationId: 'setMyToken',
    summary: 'Upload your own token for an "uploaded" server (sealed; replaces yours; used from your next MCP request). An expired token is refused',
    access: 'any signed-in person with a scope on the server',
    params: nameParams,
    body: myTokenBodySchema,
    status: 200,
    response: myTokenStatusSchema,
    errors: [400, 404, 503],
    handle: async (a, ctx) => ({ body: await a.setMyToken(ctx.principal, user(ctx), ctx.params['name']!, ctx.body) }),
  },
  {
    method: 'delete',
    path: '/servers/:name/my-token',
    operationId: 'clearMyToken',
    summary: 'Remove your own token for a server (your MCP requests to it are then refused until you upload one)',
    access: 'any signed-in person with a scope on the server',
    params: nameParams,
    status: 200,
    response: myTokenStatusSchema,
    errors: [400, 404],
    handle: async (a, ctx) => ({ body: await a.clearMyToken(ctx.principal, user(ctx), ctx.params['name']!) }),
  },
  {
    method: 'get',
    path: '/servers/:name/connection',
    operationId: 'getMyConnection',
    summary: 'Your own connection to a server whose backendAuth is "user_oauth": connected as whom, expiry, last refresh, or broken and why; never a token',
    access: 'any signed-in person with a scope on the server',
    params: nameParams,
    status: 200,
    response: connectionStatusSchema,
    errors: [400, 404],
    handle: (a, ctx) => ({ body: a.myConnection(ctx.principal, ctx.params['name']!) }),
  },
  {
    method: 'delete',
    path: '/servers/:name/connection',
    operationId: 'disconnect',
    summary: 'Disconnect your account from a "user_oauth" server: its tokens are revoked where the authorization server supports it (RFC 7009), then deleted',
    access: 'any signed-in person with a scope on the server',
    params: nameParams,
    status: 200,
    response: connectionStatusSchema,
    errors: [400, 404],
    handle: async (a, ctx) => ({ body: await a.disconnect(ctx.principal, user(ctx), ctx.params['name']!) }),
  },
  {
    method: 'get',
    path: '/servers/:name/tools',
    operationId: 'listTools',
    summary: "A server's tools with descriptions and input schemas (from the last check)",
    access: 'a scope on the server; tool-scope-only callers see only their tools',
    params: nameParams,
    status: 200,
    response: toolsResultSchema,
    errors: [400, 404],
    handle: async (a, ctx) => ({ body: await a.tools(ctx.principal, ctx.params['name']!, false) }),
  },
  {
    method: 'post',
    path: '/servers/:name/refresh',
    operationId: 'refreshServer',
    summary: 'Check the backend now (MCP initialize + tools/list) and return its tools and health',
    access: 'a scope on the server',
    params: nameParams,
    status: 200,
    response: toolsResultSchema,
    errors: [400, 404],
    handle: async (a, ctx) => ({ body: await a.tools(ctx.principal, ctx.params['name']!, true) }),
  },
  {
    method: 'get',
    path: '/tools',
    operationId: 'searchTools',
    summary: 'Search tools across servers by name and description',
    access: 'any signed-in caller; searches only what they may see',
    query: toolSearchQuerySchema,
    status: 200,
    response: toolSearchResultSchema,
    errors: [400],
    handle: (a, ctx) => ({ body: { query: ctx.query.q, matches: a.searchTools(ctx.principal, ctx.query.q) } }),
  },
  {
    method: 'get',
    path: '/health',
    operationId: 'listHealth',
    summary: 'The last health check of every server the caller may read',
    access: 'any signed-in caller; only servers they may read',
    status: 200,
    response: healthListSchema,
    errors: [],
    handle: (a, ctx) => ({ body: { servers: a.health(ctx.principal) } }),
  },
  {
    method: 'post',
    path: '/who-can',
    operationId: 'whoCan',
    summary: "Who can do what: the gateway's decision for some groups or a signed-in user, a server and a tool",
    access: 'mcp:registry:read',
    body: whoCanBodySchema,
    status: 200,
    response: whoCanResultSchema,
    errors: [400, 403],
    handle: (a, ctx) => ({ body: a.whoCan(ctx.principal, ctx.body) }),
  },
  {
    method: 'get',
    path: '/users',
    operationId: 'listSignedInUsers',
    summary: 'Users signed in now, with their groups (for who-can)',
    access: 'mcp:registry:read',
    status: 200,
    response: signedInUsersSchema,
    errors: [403],
    handle: (a, ctx) => ({ body: { users: a.signedInUsers(ctx.principal) } }),
  },
  {
    method: 'get',
    path: '/audit',
    operationId: 'listAudit',
    summary: 'Recent access decisions and registry changes, newest first',
    access: 'mcp:registry:read for all; toggle or edit scopes show the servers they operate',
    query: auditQuerySchema,
    status: 200,
    response: auditListSchema,
    errors: [400, 403],
    handle: async (a, ctx) => ({ body: { entries: (await a.audit(ctx.principal, ctx.query)).map(stripUndefined) } }),
  },
  {
    method: 'get',
    path: '/connections',
    operationId: 'listConnections',
    summary: "The OAuth clients connected with your account (everyone's for an admin)",
    access: "any signed-in person; mcp:registry:admin sees everyone's",
    status: 200,
    response: connectionListSchema,
    errors: [],
    handle: async (a, ctx) => ({ body: { connections: (await a.account.listConnections(ctx.principal)).map(stripUndefined) } }),
  },
  {
    method: 'delete',
    path: '/connections/:id',
    operationId: 'revokeConnection',
    summary: 'Disconnect a client: its grant, refresh tokens and the access tokens it holds stop working at once',
    access: 'the person it is connected with, or mcp:registry:admin',
    params: idParams,
    status: 200,
    response: connectionSchema,
    errors: [400, 404],
    handle: async (a, ctx) => ({ body: stripUndefined(await a.account.revokeConnection(ctx.principal, ctx.params['id']!)) }),
  },
  {
    method: 'get',
    path: '/tokens',
    operationId: 'listTokens',
    summary: "Your personal access tokens (everyone's for an admin); never the tokens themselves",
    access: "any signed-in person; mcp:registry:admin sees everyone's",
    status: 200,
    response: personalTokenListSchema,
    errors: [],
    handle: (a, ctx) => ({ body: { tokens: a.account.listTokens(ctx.principal) } }),
  },
  {
    method: 'post',
    path: '/tokens',
    operationId: 'createToken',
    summary: 'Create a personal access token for some servers (lifetime up to PAT_MAX_LIFETIME_DAYS); the answer is the only time the token is shown',
    access: 'any signed-in person, for servers they hold MCP scopes on',
    body: personalTokenBodySchema,
    status: 201,
    response: personalTokenCreatedSchema,
    errors: [400, 403],
    handle: async (a, ctx) => {
      const { token, view } = await a.account.createToken(ctx.principal, ctx.body);
      return { body: { token, tokenInfo: view, mcpUrls: Object.fromEntries(view.servers.map((s) => [s, a.account.mcpUrl(s)])) } };
    },
  },
  {
    method: 'delete',
    path: '/tokens/:id',
    operationId: 'revokeToken',
    summary: 'Revoke a personal access token (it fails on the next request)',
    access: 'the person who created it, or mcp:registry:admin',
    params: idParams,
    status: 200,
    response: personalTokenSchema,
    errors: [400, 404],
    handle: async (a, ctx) => ({ body: await a.account.revokeToken(ctx.principal, ctx.params['id']!) }),
  },
];

function stripUndefined<T extends object>(entry: T): T {
  return Object.fromEntries(Object.entries(entry).filter(([, v]) => v !== undefined)) as T;
}
