import { createHmac } from 'node:crypto';
import express, { type Request, type Response } from 'express';
import Provider, { errors, interactionPolicy, type Configuration, type KoaContextWithOIDC } from 'oidc-provider';
import type { Catalog } from '../catalog/catalog.ts';
import { recordStoreAdapter, type OidcStoreEntry } from '../identity/oidc-adapter.ts';
import type { Logger } from '../log.ts';
import { hasScope } from '../scopes/grants.ts';
import { promptsScope, resourcesScope, serverScope, toolScope } from '../scopes/scope.ts';
import { redirectUriProblem } from '../config/oauth-clients.ts';
import type { RecordStore } from '../store/index.ts';
import { createSealer } from '../sessions/seal.ts';
import type { AccountFreshness, RecheckResult, UpstreamTokens } from './group-recheck.ts';
import { deriveSigningKey, publicJwk } from './keys.ts';
import { narrowScopes, serverOfResource, serverScopes } from './resources.ts';
import { createGatewayTokenVerifier, type GatewayTokenVerifier } from './verify.ts';

/** Where the authorization server's endpoints live (the issuer is GATEWAY_PUBLIC_URL itself). */
export const OAUTH_PREFIX = '/oauth2';
export const INTERACTION_PREFIX = `${OAUTH_PREFIX}/interaction/`;
const OPENID_DISCOVERY = '/.well-known/openid-configuration';
const OAUTH_DISCOVERY = '/.well-known/oauth-authorization-server';
/**
 * The scope every authorization request for a server carries (added when the client asked for
 * none): oidc-provider refuses an authorization that grants no requested scope, and most MCP
 * clients request none. It grants nothing itself (it is not an `mcp:` scope, so the check ignores
 * it); the token's scopes are the person's, narrowed by any `mcp:server:<name>:...` the client asked for.
 */
export const GATEWAY_SCOPE = 'mcp';
/** The authorization server's sign-in session cookie (one sign-in covers every server). */
const SESSION_COOKIE = '_gw_oauth_session';
/** The redirect URI rule (config/oauth-clients.ts), for dynamic registrations and pre-registered clients alike. */
export { redirectUriProblem };

export interface AuthorizationServerOptions {
  /** GATEWAY_PUBLIC_URL: the issuer, and the base of every resource URL. */
  readonly publicUrl: string;
  readonly secretKey: string;
  /** Where codes, grants, refresh tokens, registered clients and accounts are kept (STATE_DIR/authserver). */
  readonly records: RecordStore<OidcStoreEntry>;
  readonly catalog: Pick<Catalog, 'get'>;
  /** Groups -> scopes with the current mapping (tokens carry the intersection with what was consented). */
  readonly scopesFor: (groups: readonly string[]) => string[];
  /**
   * The person's groups as a live login session of theirs holds them now (the session refresher
   * keeps those current from the IdP), or undefined when they have none: then the groups recorded
   * at their last sign-in apply.
   */
  readonly liveGroups?: (account: Pick<GatewayAccount, 'provider' | 'sub'>) => readonly string[] | undefined;
  /**
   * The person's live page session as the group re-check needs it: its groups, when they were read
   * from the IdP, and its current upstream tokens (kept with the account, so the re-check has a
   * refresh token the IdP has not rotated out). Undefined when they have none.
   */
  readonly liveSession?: (
    account: Pick<GatewayAccount, 'provider' | 'sub'>,
  ) => { readonly groups: readonly string[]; readonly readAt: number; readonly upstream: UpstreamTokens | undefined } | undefined;
  /**
   * Keeps the groups behind every token issue (code exchange, refresh) no older than
   * OAUTH_GROUPS_MAX_AGE_SECONDS when the person has no live page session (group-recheck.ts).
   */
  readonly recheck?: {
    ensureFresh(accountId: string): Promise<RecheckResult>;
    noteLive(accountId: string, groups: readonly string[], readAt: number, upstream: UpstreamTokens | undefined): Promise<void>;
  };
  readonly accessTokenTtlSeconds: number;
  readonly refreshTokenTtlSeconds: number;
  readonly clientTtlSeconds: number;
  /** Accept https URLs as client ids (Client ID Metadata Documents, draft-02). */
  readonly clientMetadataDocuments?: boolean;
  /**
   * Tests only (never from configuration): replaces oidc-provider's `fetch`, which it uses for
   * client metadata documents (and any other outbound request it makes). oidc-provider calls it
   * with `options.dispatcher` set to its SSRF-guarded agent; production leaves this unset and keeps
   * that guarded fetch.
   */
  readonly clientMetadataFetch?: ClientMetadataFetch;
  /** Dynamic registrations one client address may make per hour (429 beyond). */
  readonly registrationsPerHour?: number;
  /** How long one sign-in at the authorization server covers further authorizations (more servers). */
  readonly sessionTtlSeconds: number;
  /**
   * Machine clients that may use the client-credentials grant here (confidential, client_secret_basic),
   * and the scopes the mapping file gives each (`clients:` section).
   */
  readonly machineClients?: readonly { readonly clientId: string; readonly clientSecret: string }[];
  readonly machineScopes?: (clientId: string) => string[];
  /**
   * Clients an operator registered ahead of time (OAUTH_CLIENTS_FILE), as oidc-provider static
   * client metadata: people's clients and machine clients (whose scopes come from `machineScopes`).
   */
  readonly staticClients?: readonly { readonly client_id: string }[];
  /** Custom redirect URI schemes an operator allows (OAUTH_REDIRECT_SCHEMES). */
  readonly redirectSchemes: readonly string[];
  readonly log: Logger;
}

/** oidc-provider's `fetch` configuration: the options carry its SSRF-guarded `dispatcher`. */
export type ClientMetadataFetch = (url: string, options: RequestInit & { dispatcher?: unknown }) => Promise<globalThis.Response>;

/** Who signed in, as the gateway's login session knows them. */
export interface GatewayAccount {
  readonly sub: string;
  readonly username: string;
  readonly provider: string;
  readonly groups: readonly string[];
}

/** What the consent page shows and the interaction routes need to know. */
export interface InteractionView {
  readonly uid: string;
  readonly prompt: 'login' | 'consent';
  /** The account the authorization server's session is for (consent only). */
  readonly accountId: string | undefined;
  readonly clientId: string;
  readonly clientName: string | undefined;
  /** The host the authorization code will be sent to. */
  readonly redirectHost: string;
  /** The redirect URI as a CSP source (`https://host:port`, or `scheme:`), for the consent page's form-action. */
  readonly redirectSource: string;
  /** Each requested server with the scopes a token for it would carry. */
  readonly servers: readonly { readonly resource: string; readonly server: string; readonly scopes: readonly string[] }[];
}

export interface AuthorizationServer {
  readonly issuer: string;
  /** The cookies of its sign-in session (and their signatures): signing out of the page clears them. */
  readonly sessionCookies: readonly string[];
  /** Discovery (RFC 8414 and OpenID) and the /oauth2 endpoints; mount before any body parser. */
  readonly router: express.Router;
  /** Verifies the gateway's own access tokens, in-process (authz uses it in the check). */
  readonly verifier: GatewayTokenVerifier;
  /** The account id a gateway login session signs in as: `<provider>:<sub>`. */
  accountIdOf(account: Pick<GatewayAccount, 'provider' | 'sub'>): string;
  /** The interaction behind /oauth2/interaction/<uid>; throws when it is unknown or expired. */
  interaction(req: Request, res: Response, scopesOf: (account: GatewayAccount) => readonly string[]): Promise<InteractionView>;
  /**
   * Finishes the login step as the signed-in person; returns where the browser goes next.
   * `freshness`: when the page session's groups were read and its upstream tokens (kept for the group re-check).
   */
  finishLogin(req: Request, res: Response, account: GatewayAccount, freshness?: AccountFreshness): Promise<string>;
  /** Allow: grants the shown scopes on the shown servers to this client; returns where the browser goes next. */
  finishConsent(req: Request, res: Response, account: GatewayAccount, freshness?: AccountFreshness): Promise<string>;
  /** Deny: the client gets `access_denied`; returns where the browser goes next. */
  deny(req: Request, res: Response): Promise<string>;
}

/**
 * The gateway as the MCP clients' OAuth 2.1 authorization server: node-oidc-provider embedded in
 * the registry, its sign-in sent to the gateway's own login (the configured upstream IdP), a
 * consent step per client, and JWT access tokens (RFC 9068) bound to one server's MCP URL
 * (RFC 8707) carrying only that server's scopes. docs/mcp-clients.md tells the whole flow.
 */
export function createAuthorizationServer(options: AuthorizationServerOptions): AuthorizationServer {
  const { publicUrl, log } = options;
  const issuer = publicUrl;
  const signingKey = deriveSigningKey(options.secretKey);
  // Token ids are stored hashed and session pointers sealed (oidc-adapter.ts): no usable token at rest.
  const Adapter = recordStoreAdapter(options.records, undefined, createSealer(options.secretKey));
  const accounts = new Adapter('GatewayAccount');
  const clients = new Adapter('Client');

  const provider = new Provider(issuer, configuration());
  provider.proxy = true;
  provider.on('server_error', (_ctx: unknown, err: Error) => log.error({ err }, 'authorization server error'));
  const refused = (event: string) => (_ctx: unknown, err: Error & { error_description?: string }) =>
    log.info(
      { event, error: err.message, description: err.error_description, cause: err.cause instanceof Error ? err.cause.message : undefined },
      'authorization server refused a request',
    );
  provider.on('authorization.error', refused('authorization'));
  provider.on('grant.error', refused('token'));
  provider.on('registration_create.error', refused('registration'));
  provider.on('revocation.error', refused('revocation'));
  // Every token a client gets renews its registration: only unused registrations expire. Clients
  // from configuration are not stored: one removed from the file must not live on as a registration.
  const configured = new Set([...(options.machineClients ?? []).map((c) => c.clientId), ...(options.staticClients ?? []).map((c) => c.client_id)]);
  provider.on('grant.success', (ctx: KoaContextWithOIDC) => {
    const client = ctx.oidc.client;
    if (client && !client.clientId.startsWith('https://') && !configured.has(client.clientId))
      void clients
        .upsert(client.clientId, client.metadata(), options.clientTtlSeconds)
        .catch((err: unknown) => log.warn({ err }, 'could not renew a client registration'));
  });

  const verifier = createGatewayTokenVerifier({ issuer, key: publicJwk(signingKey), publicUrl });
  const accountIdOf = (account: Pick<GatewayAccount, 'provider' | 'sub'>) => `${account.provider}:${account.sub}`;

  async function accountOf(accountId: string): Promise<GatewayAccount | undefined> {
    const payload = await accounts.find(accountId);
    return payload === undefined ? undefined : (payload['account'] as GatewayAccount);
  }

  /**
   * Before a token is issued for `accountId`: a live page session's groups are current (noted with
   * the account); otherwise groups older than the bound are read again at the IdP. An IdP that
   * refuses the person's refresh token ends the grant (invalid_grant); groups that cannot be read
   * again refuse this issue (invalid_grant without an upstream refresh token, temporarily_unavailable
   * when the IdP cannot be reached) and leave the client's refresh token unspent.
   */
  async function freshen(accountId: string, account: GatewayAccount, grantId: string | undefined): Promise<void> {
    const recheck = options.recheck;
    if (recheck === undefined) return;
    const live = options.liveSession?.(account);
    if (live !== undefined) return recheck.noteLive(accountId, live.groups, live.readAt, live.upstream);
    const result = await recheck.ensureFresh(accountId);
    if (result.ok) return;
    if (result.ended && grantId !== undefined) await endGrant(grantId);
    if (result.unavailable)
      throw Object.assign(new errors.TemporarilyUnavailable(result.reason), { status: 503, statusCode: 503, error_description: result.reason });
    throw Object.assign(new errors.InvalidGrant(result.reason), { error_description: result.reason });
  }

  /** Revokes a grant: its refresh tokens and codes go with it (access tokens already issued live out their short lifetime). */
  async function endGrant(grantId: string): Promise<void> {
    const models = provider as unknown as Record<'RefreshToken' | 'AuthorizationCode' | 'AccessToken', { revokeByGrantId(id: string): Promise<void> }>;
    await Promise.all([
      models.RefreshToken.revokeByGrantId(grantId),
      models.AuthorizationCode.revokeByGrantId(grantId),
      models.AccessToken.revokeByGrantId(grantId),
      provider.Grant.adapter.destroy(grantId),
    ]);
  }

  /** The scopes `account` holds on `server` now (current mapping), spelled for that server. */
  function heldOn(account: GatewayAccount, server: string): string[] {
    return serverScopes(options.scopesFor(options.liveGroups?.(account) ?? account.groups), server);
  }

  function requestedResources(params: Record<string, unknown>): string[] {
    const value = params['resource'];
    return (Array.isArray(value) ? value : value === undefined ? [] : [value]).filter((r): r is string => typeof r === 'string');
  }

  function configuration(): Configuration {
    const policy = interactionPolicy.base();
    // A client gets a token for a server only after the person consented to that server for it
    // (or, for a client they already consented to, after loadExistingGrant extended the grant).
    policy.get('consent')!.checks.add(
      new interactionPolicy.Check('gateway_server_not_consented', 'no consent for this server yet', (ctx: KoaContextWithOIDC) => {
        const grant = ctx.oidc.grant;
        for (const indicator of Object.keys(ctx.oidc.resourceServers ?? {}))
          if (!grant || grant.getResourceScopeEncountered(indicator).trim() === '') return interactionPolicy.Check.REQUEST_PROMPT;
        return interactionPolicy.Check.NO_NEED_TO_PROMPT;
      }),
    );
    return {
      adapter: Adapter,
      jwks: { keys: [{ ...signingKey }] },
      cookies: {
        names: { session: SESSION_COOKIE, interaction: '_gw_oauth_interaction', resume: '_gw_oauth_resume' },
        keys: [derive(options.secretKey, 'authserver-cookies')],
        long: { httpOnly: true, sameSite: 'lax', secure: publicUrl.startsWith('https:') },
        short: { httpOnly: true, sameSite: 'lax', secure: publicUrl.startsWith('https:') },
      },
      routes: {
        authorization: `${OAUTH_PREFIX}/authorize`,
        token: `${OAUTH_PREFIX}/token`,
        registration: `${OAUTH_PREFIX}/register`,
        revocation: `${OAUTH_PREFIX}/revocation`,
        jwks: `${OAUTH_PREFIX}/jwks`,
        userinfo: `${OAUTH_PREFIX}/userinfo`,
        end_session: `${OAUTH_PREFIX}/logout`,
        introspection: `${OAUTH_PREFIX}/introspect`,
        pushed_authorization_request: `${OAUTH_PREFIX}/par`,
        code_verification: `${OAUTH_PREFIX}/device`,
        device_authorization: `${OAUTH_PREFIX}/device/auth`,
        backchannel_authentication: `${OAUTH_PREFIX}/backchannel`,
        challenge: `${OAUTH_PREFIX}/challenge`,
      },
      clients: [
        ...(options.machineClients ?? []).map((c) => ({
          client_id: c.clientId,
          client_secret: c.clientSecret,
          redirect_uris: [],
          response_types: [],
          grant_types: ['client_credentials'],
          token_endpoint_auth_method: 'client_secret_basic',
        })),
        ...(options.staticClients ?? []).map((c) => structuredClone({ ...c }) as Record<string, unknown>),
      ],
      // No offline_access: refresh tokens go to every client allowed the grant (issueRefreshToken).
      scopes: ['openid'],
      claims: { openid: ['sub'] },
      clientDefaults: {
        grant_types: ['authorization_code'],
        response_types: ['code'],
        token_endpoint_auth_method: 'none',
        id_token_signed_response_alg: 'ES256',
      },
      pkce: { required: () => true },
      responseTypes: ['code'],
      // Only a test passes clientMetadataFetch; otherwise oidc-provider's default (global fetch
      // through its SSRF-guarded dispatcher) stays.
      ...(options.clientMetadataFetch === undefined ? {} : { fetch: options.clientMetadataFetch }),
      ttl: {
        AccessToken: options.accessTokenTtlSeconds,
        ClientCredentials: options.accessTokenTtlSeconds,
        AuthorizationCode: 60,
        Interaction: 600,
        Session: options.sessionTtlSeconds,
        Grant: options.refreshTokenTtlSeconds,
        IdToken: options.accessTokenTtlSeconds,
        RefreshToken: options.refreshTokenTtlSeconds,
      },
      issueRefreshToken: async (_ctx: KoaContextWithOIDC, client) => client.grantTypeAllowed('refresh_token'),
      rotateRefreshToken: true,
      // A refresh token outlives the sign-in session that created it (the grant's lifetime bounds it).
      expiresWithSession: async () => false,
      extraClientMetadata: {
        // Called for every client read or registered: the redirect URI policy.
        properties: ['gateway_redirect_policy'],
        validator: (_ctx: unknown, key: string, _value: unknown, metadata: Record<string, unknown>) => {
          if (key !== 'gateway_redirect_policy') return;
          // MCP clients register with the scopes a 401 or the protected-resource metadata named
          // (`mcp:server:...`, MCP authorization "Scope selection strategy"). Those belong to a
          // resource, not to this server's own list, and oidc-provider refuses a registration
          // naming a scope it does not list. RFC 7591 section 2 lets the server replace the
          // requested scope: it keeps the others; resource scopes are asked for per resource at
          // /authorize, where getResourceServerInfo knows them (a client's registered scope
          // only limits the server's own scopes there). This runs before oidc-provider's checks.
          if (typeof metadata['scope'] === 'string') {
            const kept = metadata['scope'].split(' ').filter((scope) => scope !== '' && !scope.startsWith('mcp:'));
            if (kept.length > 0) metadata['scope'] = kept.join(' ');
            else delete metadata['scope'];
          }
          for (const uri of (metadata['redirect_uris'] as string[] | undefined) ?? []) {
            const problem = redirectUriProblem(uri, options.redirectSchemes);
            if (problem) throw Object.assign(new errors.InvalidRedirectUri(), { error_description: problem });
          }
        },
      },
      features: {
        devInteractions: { enabled: false },
        clientCredentials: { enabled: true },
        // An https URL as client_id, its metadata fetched by oidc-provider: https only, 2.5 s,
        // 5 KB (fetchResponseBodyLimits), and its SSRF guard refuses loopback, private and other
        // special-use addresses when the socket connects (so DNS rebinding is caught too). The
        // document's redirect URIs go through the same rule as registrations (extraClientMetadata).
        clientIdMetadataDocument: {
          enabled: options.clientMetadataDocuments === true,
          ack: 'draft-02',
          allowFetch: async (_ctx: KoaContextWithOIDC, clientId: string) => URL.parse(clientId)?.protocol === 'https:',
          cacheDuration: { min: 60, max: 3600 },
        },
        registration: { enabled: true, initialAccessToken: false, issueRegistrationAccessToken: false },
        revocation: { enabled: true },
        userinfo: { enabled: false },
        resourceIndicators: {
          enabled: true,
          // A client that names no resource gets no access token for any server.
          defaultResource: async (_ctx: KoaContextWithOIDC, _client, oneOf?: string | string[]) => oneOf as string,
          useGrantedResource: async () => true,
          getResourceServerInfo: async (_ctx: KoaContextWithOIDC, resource: string) => {
            const server = serverOfResource(publicUrl, resource);
            if (server === undefined || options.catalog.get(server) === undefined) throw new errors.InvalidTarget('not an MCP server of this gateway');
            return {
              scope: [GATEWAY_SCOPE, ...serverScopeNames(server, options.catalog)].join(' '),
              audience: resource,
              accessTokenFormat: 'jwt',
              accessTokenTTL: options.accessTokenTtlSeconds,
              jwt: { sign: { alg: 'ES256' } },
            };
          },
        },
      },
      formats: {
        customizers: {
          // The token's scope: what the grant holds for this server (narrowed at consent by the
          // request's scope), intersected with what the person's groups grant under the current
          // mapping. Plus the person's user name for the check's X-Username.
          jwt: async (ctx: KoaContextWithOIDC, token, jwt) => {
            const aud = jwt.payload['aud'];
            const server = typeof aud === 'string' ? serverOfResource(publicUrl, aud) : undefined;
            const accountId = (token as unknown as { accountId?: string }).accountId;
            const grantId = (token as unknown as { grantId?: string }).grantId;
            if (server !== undefined && accountId === undefined && token.kind === 'ClientCredentials') {
              // A machine client: the mapping's scopes for it on this server, narrowed by its request.
              const clientId = String(jwt.payload['client_id']);
              const held = serverScopes(options.machineScopes?.(clientId) ?? [], server);
              const requested = String((token as unknown as { scope?: string }).scope ?? '').split(' ');
              jwt.payload['scope'] = narrowScopes(held, requested, server).granted.join(' ');
              (token as unknown as { scope: string }).scope = String(jwt.payload['scope']);
              return;
            }
            if (server === undefined || accountId === undefined || grantId === undefined) {
              jwt.payload['scope'] = '';
              return;
            }
            const grant = ctx.oidc.entities.Grant?.jti === grantId ? ctx.oidc.entities.Grant : await provider.Grant.find(grantId);
            const account = await accountOf(accountId);
            const held = account ? heldOn(account, server) : [];
            const consented = (grant?.getResourceScope(aud as string) ?? '').split(' ').filter(Boolean);
            jwt.payload['scope'] = consented.filter((s) => hasScope(held, s)).join(' ');
            // The token response's `scope` says the same as the token.
            (token as unknown as { scope: string }).scope = String(jwt.payload['scope']);
            if (account) jwt.payload['username'] = account.username;
          },
        },
      },
      interactions: { policy, url: (_ctx: KoaContextWithOIDC, interaction) => `${INTERACTION_PREFIX}${interaction.uid}` },
      // Called before a code or refresh token is used (and before a refresh token rotates): where
      // the person's groups are re-checked, so a refused re-check leaves the client's token unspent.
      findAccount: async (_ctx: KoaContextWithOIDC, sub: string, token?: { kind?: string; grantId?: string }) => {
        const account = await accountOf(sub);
        if (!account) return undefined;
        if (token?.kind === 'RefreshToken' || token?.kind === 'AuthorizationCode') await freshen(sub, account, token.grantId);
        return { accountId: sub, claims: () => ({ sub }) };
      },
      // A client the person already consented to gets further servers without a consent page:
      // the grant is extended by the scopes the person holds there (consent is per client).
      loadExistingGrant: async (ctx: KoaContextWithOIDC) => {
        const oidc = ctx.oidc;
        const grantId = oidc.result?.['consent']?.grantId ?? oidc.session?.grantIdFor(oidc.client!.clientId);
        if (!grantId) return undefined;
        const grant = await oidc.provider.Grant.find(grantId);
        if (!grant || !oidc.session?.accountId || grant.accountId !== oidc.session.accountId) return grant;
        const account = await accountOf(oidc.session.accountId);
        if (!account) return grant;
        let changed = false;
        for (const resource of requestedResources(oidc.params as Record<string, unknown>)) {
          const server = serverOfResource(publicUrl, resource);
          if (server === undefined || grant.getResourceScopeEncountered(resource).trim() !== '') continue;
          const { granted, rejected } = narrowScopes(heldOn(account, server), [...oidc.requestParamScopes], server);
          if (granted.length === 0) continue;
          grant.addResourceScope(resource, [GATEWAY_SCOPE, ...granted].join(' '));
          if (rejected.length > 0) grant.rejectResourceScope(resource, rejected.join(' '));
          changed = true;
        }
        if (changed) await grant.save();
        return grant;
      },
      renderError: (ctx: KoaContextWithOIDC, out: { error: string; error_description?: string | undefined }) => {
        ctx.type = 'html';
        ctx.body = `<!doctype html><title>Authorization error</title><h1>Authorization error</h1><p id="error">${escapeHtml(out.error)}</p><p>${escapeHtml(out.error_description ?? '')}</p><p><a href="/">Back to the registry</a></p>`;
      },
    } as Configuration;
  }

  const callback = provider.callback();
  const router = express.Router();
  const registrations = new WindowCounter(3600_000);
  router.post(`${OAUTH_PREFIX}/register`, (req, res, next) => {
    // req.ip is the client's address as nginx saw it (trust proxy: loopback).
    if (registrations.hit(req.ip ?? '') <= (options.registrationsPerHour ?? 30)) return next();
    log.info({ ip: req.ip }, 'dynamic registration refused: too many from this address');
    res
      .status(429)
      .set('Retry-After', String(Math.ceil(registrations.resetsIn(req.ip ?? '') / 1000)))
      .json({ error: 'too_many_requests', error_description: 'too many client registrations from this address; try again later' });
  });
  router.use((req, res, next) => {
    const path = req.path;
    if (path === OAUTH_DISCOVERY) req.url = OPENID_DISCOVERY + req.url.slice(OAUTH_DISCOVERY.length);
    else if (path === `${OAUTH_PREFIX}/authorize` && req.method === 'GET') req.url = withGatewayScope(req.url);
    else if (path !== OPENID_DISCOVERY && !(path.startsWith(`${OAUTH_PREFIX}/`) && !path.startsWith(INTERACTION_PREFIX))) return next();
    pinPublicOrigin(req, publicUrl);
    callback(req, res);
  });

  async function view(req: Request, res: Response, scopesOf: (account: GatewayAccount) => readonly string[]): Promise<InteractionView> {
    const details = await provider.interactionDetails(req, res);
    const client = await provider.Client.find(String(details.params['client_id']));
    if (!client) throw new errors.InvalidClient('the client is no longer registered');
    const redirectUri = String(details.params['redirect_uri'] ?? client.redirectUris?.[0] ?? '');
    const accountId = details.session?.accountId;
    const account = accountId === undefined ? undefined : await accountOf(accountId);
    const requested = String(details.params['scope'] ?? '')
      .split(' ')
      .filter(Boolean);
    const servers = requestedResources(details.params).flatMap((resource) => {
      const server = serverOfResource(publicUrl, resource);
      if (server === undefined) return [];
      const held = account ? serverScopes(scopesOf(account), server) : [];
      return [{ resource, server, scopes: narrowScopes(held, requested, server).granted }];
    });
    return {
      uid: details.uid,
      prompt: details.prompt.name === 'login' ? 'login' : 'consent',
      accountId,
      clientId: client.clientId,
      clientName: typeof client.clientName === 'string' ? client.clientName : undefined,
      redirectHost: URL.parse(redirectUri)?.host || redirectUri,
      redirectSource: cspSource(redirectUri),
      servers,
    };
  }

  return {
    issuer,
    sessionCookies: [SESSION_COOKIE, `${SESSION_COOKIE}.sig`],
    router,
    verifier,
    accountIdOf,
    interaction: view,
    async finishLogin(req, res, account, freshness) {
      const accountId = accountIdOf(account);
      await accounts.upsert(accountId, accountPayload(account, freshness), options.refreshTokenTtlSeconds);
      return provider.interactionResult(req, res, { login: { accountId } }, { mergeWithLastSubmission: false });
    },
    async finishConsent(req, res, account, freshness) {
      const details = await provider.interactionDetails(req, res);
      const accountId = accountIdOf(account);
      if (details.session?.accountId !== accountId) throw new errors.AccessDenied('signed in as someone else');
      await accounts.upsert(accountId, accountPayload(account, freshness), options.refreshTokenTtlSeconds);
      const clientId = String(details.params['client_id']);
      const grant = (details.grantId ? await provider.Grant.find(details.grantId) : undefined) ?? new provider.Grant({ accountId, clientId });
      const requested = String(details.params['scope'] ?? '')
        .split(' ')
        .filter(Boolean);
      if (requested.includes('openid')) grant.addOIDCScope('openid');
      for (const resource of requestedResources(details.params)) {
        const server = serverOfResource(publicUrl, resource);
        if (server === undefined) continue;
        const { granted, rejected } = narrowScopes(heldOn(account, server), requested, server);
        if (granted.length === 0) throw new errors.AccessDenied(`${account.username} has no access to ${server}`);
        grant.addResourceScope(resource, [GATEWAY_SCOPE, ...granted].join(' '));
        if (rejected.length > 0) grant.rejectResourceScope(resource, rejected.join(' '));
      }
      const grantId = await grant.save();
      return provider.interactionResult(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
    },
    async deny(req, res) {
      return provider.interactionResult(
        req,
        res,
        { error: 'access_denied', error_description: 'the person refused access to this client' },
        { mergeWithLastSubmission: false },
      );
    },
  };
}

/**
 * What a `GatewayAccount:<id>` record holds: the account, when its groups were read from the IdP
 * (now when the caller does not know) and the upstream tokens to read them again (group-recheck.ts).
 */
function accountPayload(account: GatewayAccount, freshness: AccountFreshness | undefined): Record<string, unknown> {
  return {
    account: { sub: account.sub, username: account.username, provider: account.provider, groups: [...account.groups] },
    groupsReadAt: freshness?.groupsReadAt ?? Date.now(),
    ...(freshness?.upstream?.sealedRefreshToken === undefined ? {} : { upstream: { ...freshness.upstream } }),
  };
}

/** Every scope name a token for `server` may carry: oidc-provider's resource-server scope set. */
function serverScopeNames(server: string, catalog: Pick<Catalog, 'get'>): string[] {
  const tools = catalog.get(server)?.tools ?? [];
  const names = [serverScope(server, 'read'), serverScope(server, 'execute'), resourcesScope(server), promptsScope(server)];
  for (const tool of tools) {
    try {
      names.push(toolScope(server, tool.name));
    } catch {
      // a tool name that cannot be a scope cannot be granted either
    }
  }
  return names;
}

/** An authorization request URL with {@link GATEWAY_SCOPE} added to its `scope` when it names a resource. */
function withGatewayScope(url: string): string {
  const parsed = new URL(url, 'http://x');
  if (!parsed.searchParams.has('resource')) return url;
  const scopes = (parsed.searchParams.get('scope') ?? '').split(' ').filter(Boolean);
  if (scopes.includes(GATEWAY_SCOPE)) return url;
  parsed.searchParams.set('scope', [...scopes, GATEWAY_SCOPE].join(' '));
  return `${parsed.pathname}${parsed.search}`;
}

/** Counts hits per key in fixed windows; bounded (a flood of keys resets it rather than grow without limit). */
class WindowCounter {
  readonly #windowMs: number;
  readonly #hits = new Map<string, { count: number; start: number }>();

  constructor(windowMs: number) {
    this.#windowMs = windowMs;
  }

  /** Counts one hit for `key`; returns the hits in its current window, this one included. */
  hit(key: string, now = Date.now()): number {
    let entry = this.#hits.get(key);
    if (entry === undefined || now - entry.start >= this.#windowMs) {
      if (this.#hits.size >= 10_000) this.#hits.clear();
      entry = { count: 0, start: now };
      this.#hits.set(key, entry);
    }
    return ++entry.count;
  }

  resetsIn(key: string, now = Date.now()): number {
    const entry = this.#hits.get(key);
    return entry === undefined ? 0 : Math.max(0, entry.start + this.#windowMs - now);
  }
}

/** A redirect URI as a Content-Security-Policy source expression: its origin, or `scheme:` for a custom scheme. */
function cspSource(uri: string): string {
  const parsed = URL.parse(uri);
  if (!parsed) return "'none'";
  if (parsed.protocol === 'http:' || parsed.protocol === 'https:') return parsed.origin;
  return /^[a-z][a-z0-9+.-]*:$/.test(parsed.protocol) ? parsed.protocol : "'none'";
}

/**
 * Replaces the host and scheme the client claimed with GATEWAY_PUBLIC_URL's before oidc-provider
 * builds any URL from them (as the dev IdP does, identity/dev.ts).
 */
function pinPublicOrigin(req: Request, publicUrl: string): void {
  const { host, protocol } = new URL(publicUrl);
  req.headers.host = host;
  req.headers['x-forwarded-host'] = host;
  req.headers['x-forwarded-proto'] = protocol.slice(0, -1);
  delete req.headers['forwarded'];
}

function derive(secret: string, purpose: string): string {
  return createHmac('sha256', secret).update(purpose).digest('base64url');
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
