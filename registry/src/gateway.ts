import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { createAuthorizationServer, type ClientMetadataFetch } from './authserver/authorization-server.ts';
import { Connections } from './authserver/grants.ts';
import { refusingRevoked } from './authserver/revocations.ts';
import { PersonalTokens, type PersonalTokenRecord } from './authserver/personal-tokens.ts';
import { AccountActions } from './web/account-actions.ts';
import { GroupRecheck } from './authserver/group-recheck.ts';
import { createAuditLog, type AuditLog, type SharedAuditSink } from './audit/audit-log.ts';
import { Catalog, type CatalogRecord, type CatalogStore, type DefinitionPolicy } from './catalog/catalog.ts';
import type { ServerDefinition } from './catalog/server-definition.ts';
import type { Config } from './config/load.ts';
import { KeyRing } from './credentials/key-ring.ts';
import { CREDENTIALS_NAMESPACE, Vault, type CredentialRecord } from './credentials/vault.ts';
import { GatewayError } from './errors.ts';
import { createIdentityProvider } from './identity/create-provider.ts';
import { DEV_MACHINE_CLIENT_ID, devMachineSecret } from './identity/dev.ts';
import { ScopeMappingSource } from './identity/scope-mapping-source.ts';
import type { OidcStoreEntry } from './identity/oidc-adapter.ts';
import type { IdentityProvider } from './identity/provider.ts';
import type { Logger } from './log.ts';
import { BackendMonitor, type BackendHealthStore, type Lease } from './mcp/backend-monitor.ts';
import { metricsRoute } from './metrics/access.ts';
import { GatewayMetrics } from './metrics/metrics.ts';
import { readiness } from './metrics/readiness.ts';
import { StoreHealth } from './metrics/stores.ts';
import { findNginx, NginxController } from './nginx/apply.ts';
import { CHECK_GENERATION_FILE, MCP_AUDIT_LOG, renderNginxConfig, type NginxRenderInput } from './nginx/render.ts';
import { RouteTable, type BackendUpstream } from './nginx/route.ts';
import { NginxSync } from './nginx/sync.ts';
import { LoginSessions } from './sessions/login-sessions.ts';
import { SessionRefresher } from './sessions/refresh.ts';
import { createSealer } from './sessions/seal.ts';
import type { SessionValue } from './sessions/session-record.ts';
import type { StoreHealth as RecordStoreHealth } from './store/index.ts';
import { Stores } from './store/open.ts';
import { RedisAuditSink } from './audit/redis-audit-sink.ts';
import type { SharedBackendSnapshot } from './mcp/shared-health.ts';
import { createBearerVerifier } from './authz/bearer.ts';
import type { BearerContext } from './authz/credentials.ts';
import { BEARER_REALM, SERVER_HEADER } from './authz/paths.ts';
import { createValidateRoute } from './authz/validate-route.ts';
import { createApp } from './web/app.ts';
import { BackendCredentials, backendAuthProblems, type TokenSourceFactory } from './credentials/backend-credentials.ts';
import { ClientCredentialsSource } from './credentials/client-credentials.ts';
import { UserOAuth } from './credentials/user-oauth.ts';
import { discoverBackendAuth, DISCOVERY_TIMEOUT_MS } from './mcp/discover-auth.ts';
import { IdpTokens } from './credentials/idp-tokens.ts';
import { TokenExchangeSource } from './credentials/token-exchange.ts';
import { AuditTail } from './nginx/audit-tail.ts';
import { cacheDirProblem, checkCacheHome, prepareCacheDir, removeCacheHome } from './nginx/check-cache-dir.ts';
import { CacheDirWatch, CheckGeneration, invalidateOnChanges } from './nginx/check-generation.ts';

export interface RunningGateway {
  /** What people and MCP clients use: nginx. */
  readonly url: string;
  /** The registry on loopback, behind nginx. */
  readonly registryUrl: string;
  readonly catalog: Catalog;
  readonly nginx: NginxSync;
  readonly runtimeDir: string;
  /** Where nginx keeps cached decisions and where the generation is (CHECK_CACHE_SECONDS 0: undefined). */
  readonly checkCache: { readonly dir: string; readonly generationFile: string } | undefined;
  readonly audit: AuditLog;
  readonly auditFile: string;
  /** Background MCP health checks and tool discovery of every backend. */
  readonly monitor: BackendMonitor;
  /** Prometheus metrics (/metrics). */
  readonly metrics: GatewayMetrics;
  /** The gateway's own credentials for backends (issue 13): what the check adds, per server. */
  readonly credentials: BackendCredentials;
  /** People's own OAuth connections to user_oauth backends (refreshDue runs the refresher once). */
  readonly userOAuth: UserOAuth;
  /**
   * The stores /readyz and `mcp_gateway_store_up` report, one probe per record store (files:
   * always up; Redis: connected and, for a mirror, its copy in sync: `isUp()` of store/open.ts).
   */
  readonly stores: StoreHealth;
  /**
   * The backend-secret vault (STATE_DIR/credentials or the Redis namespace `credentials`), sealed
   * under CREDENTIAL_KEYS. `vault.reseal()` after a key rotation; `vault.keyUsage()` tells when an
   * old key seals nothing more (docs/backend-credentials.md).
   */
  readonly vault: Vault;
  /**
   * One pass of the session refresher as if the clock read `now`: every session whose IdP access
   * token is due by then is refreshed at once (the background pass runs every 2 s on the real clock).
   */
  refreshSessions(now?: number): Promise<void>;
  stop(): Promise<void>;
}

/** The njs code nginx loads: the repository's nginx/njs folder. */
const NJS_DIR = join(import.meta.dirname, '..', '..', 'nginx', 'njs');

/** The catalog → nginx config function for this configuration. */
export function nginxRenderer(
  config: Config,
  runtimeDir: string,
  registryPort: number,
  njsModule: string,
  checkCache?: NginxRenderInput['checkCache'],
): (upstreams: readonly BackendUpstream[]) => string {
  return (upstreams) =>
    renderNginxConfig({
      listen: { host: config.gateway.host, port: config.gateway.port },
      runtimeDir,
      registry: { port: registryPort },
      njsModulePath: njsModule,
      njsDir: NJS_DIR,
      // As root, nginx workers drop to nobody; otherwise they run as whoever started us.
      ...(process.getuid?.() === 0 ? { workerUser: 'nobody nogroup' } : {}),
      maxBodySize: config.nginx.maxBodySize,
      corsOrigins: config.corsAllowedOrigins,
      backendCredentialHeaders: config.backendCredentials.headerSlots,
      ...(checkCache ? { checkCache } : {}),
      publicScheme: config.gateway.publicUrl.startsWith('https:') ? 'https' : 'http',
      upstreams,
    });
}

/**
 * The token source of a client_credentials backend (openid-client: discovery or a token URL,
 * cached, one request for concurrent callers). Plain http is allowed only where the definition
 * schema allows it: loopback.
 */
const clientCredentialsSource: TokenSourceFactory = (spec) =>
  new ClientCredentialsSource({
    server: spec.server,
    endpoint: spec.issuer !== undefined ? { issuer: spec.issuer } : { tokenEndpoint: spec.tokenUrl as string },
    clientId: spec.clientId,
    secret: spec.clientSecret,
    ...(spec.scopes.length > 0 ? { scope: spec.scopes.join(' ') } : {}),
    ...(spec.resource !== undefined ? { resource: spec.resource } : {}),
    ...(spec.audience !== undefined ? { audience: spec.audience } : {}),
    allowInsecureHttp: (spec.issuer ?? spec.tokenUrl ?? '').startsWith('http:'),
  });

/** A definition whose backend credential this configuration cannot carry (a header without an nginx slot) is refused. */
export function definitionPolicy(config: Config): DefinitionPolicy {
  return (def) => {
    const problems = backendAuthProblems(def, config.backendCredentials);
    return problems.length ? problems.map((p) => `${p.field}: ${p.message}`).join('; ') : undefined;
  };
}

/**
 * Builds and starts everything in order: sessions → catalog → identity provider → app on
 * loopback → nginx in front. `stop()` undoes it in reverse. Used by main.ts and the tests.
 */
/**
 * What only a test passes to startGateway, never set from configuration or the environment.
 */
export interface GatewayTestHooks {
  /**
   * Fetches Client ID Metadata Documents instead of oidc-provider's SSRF-guarded fetch, so a test
   * can serve a document from a loopback https server it started (the guard refuses loopback).
   * Production never sets it.
   */
  readonly clientMetadataFetch?: ClientMetadataFetch;
}

/**
 * What the replicas of one gateway share (issue 12). With REDIS_URL, startGateway opens each one
 * the caller did not pass (Redis mirrors in namespaces `catalog` and `health`, a RedisLease
 * `backend-monitor`, RedisAuditSink) and closes what it opened at stop(); what the caller passes
 * (tests: a file store standing in for Redis) the caller closes. Without REDIS_URL each one absent
 * keeps that part per process, as with one replica.
 */
export interface SharedState {
  /** The catalog (namespace 'catalog'); CATALOG_DIR then only seeds it. */
  readonly catalog?: CatalogStore;
  /** Where every replica's audit entries meet. */
  readonly audit?: SharedAuditSink;
  /** Backend checks run on the lease holder only; results are published to the store (namespace 'health'). */
  readonly health?: { readonly store: BackendHealthStore; readonly lease: Lease };
}

export async function startGateway(config: Config, log: Logger, testHooks: GatewayTestHooks = {}, shared: SharedState = {}): Promise<RunningGateway> {
  const nginxFound = findNginx(config.nginx.bin, config.nginx.njsModule);
  if ('missing' in nginxFound) throw new GatewayError('NGINX_UNAVAILABLE', nginxFound.missing);

  // Everything that can refuse the configuration runs before anything is opened or started.
  const mapping = new ScopeMappingSource(config.identity.mappingFile, log.child({ module: 'scope-mapping' }));
  // Where state lives: folders under STATE_DIR, or Redis (REDIS_URL) shared with the other replicas.
  const state = new Stores({ stateDir: config.stateDir, redis: config.redis, log });
  let opened: Awaited<ReturnType<typeof openStores>>;
  let catalog: Catalog;
  const policy = definitionPolicy(config);
  try {
    opened = await openStores(state, config, shared, log);
    // A shared catalog (the argument, or Redis's with REDIS_URL): CATALOG_DIR then only seeds it.
    const sharedCatalog = opened.replicas.catalog;
    catalog = sharedCatalog
      ? await Catalog.openShared({ dir: config.catalogDir, store: sharedCatalog, log: log.child({ module: 'catalog' }), policy })
      : await Catalog.open(config.catalogDir, log.child({ module: 'catalog' }), policy);
  } catch (err) {
    await state.close();
    throw err;
  }
  const { sessionRecords, authRecords, tokenRecords, idpRecords, credentialRecords, replicas, ownAuditSink } = opened;
  const audit = createAuditLog(config.auditLogFile, replicas.audit ? { shared: replicas.audit, log: log.child({ module: 'audit' }) } : {});
  const closeState = async () => {
    await ownAuditSink?.close();
    await state.close();
  };
  const sessions = new LoginSessions({
    records: sessionRecords,
    limits: { idleMs: config.sessionTtlSeconds * 1000, maxLifetimeMs: config.sessionMaxLifetimeSeconds * 1000 },
    log: log.child({ module: 'sessions' }),
  });
  // Secrets the gateway keeps for backends, sealed at rest; the check peeks them from memory.
  const vault = new Vault({ store: credentialRecords, keys: new KeyRing(config.credentialKeys.keys), log: log.child({ module: 'vault' }) });
  const keyUsage = vault.keyUsage();
  log.info({ keys: keyUsage, from: config.credentialKeys.from }, 'backend secrets: key ring (CREDENTIAL_KEYS), secrets per key');
  for (const { keyId, secrets } of keyUsage.filter((usage) => !usage.inRing))
    log.error({ keyId, secrets }, 'backend secrets are sealed under a key that is not in CREDENTIAL_KEYS: they cannot be opened until it is put back');
  let registryUrl = '';
  const sealer = createSealer(config.secretKey);
  const provider: IdentityProvider = createIdentityProvider(config, {
    sealer,
    internalUrl: () => registryUrl,
    machineClients: () => mapping.machineClients(),
    log: log.child({ module: 'identity' }),
    ...(idpRecords === undefined ? {} : { devRecords: idpRecords }),
  });
  // Each person's IdP tokens, the subject tokens of token exchange: sealed in the vault, and only
  // while some server uses token_exchange (least exposure).
  const idpTokens = new IdpTokens({
    vault,
    wanted: () => catalog.list().some((def) => def.backendAuth?.type === 'token_exchange'),
    log: log.child({ module: 'idp-tokens' }),
  });
  // When the last token_exchange server goes (or none is there at start), nobody's IdP token may stay.
  const purgeIdpTokens = (definitions: readonly ServerDefinition[]) => {
    if (!definitions.some((def) => def.backendAuth?.type === 'token_exchange')) void idpTokens.purge().catch(() => undefined);
  };
  catalog.on('changed', purgeIdpTokens);
  purgeIdpTokens(catalog.list());
  const refresher = new SessionRefresher({
    idpTokens,
    store: sessions,
    provider,
    scopesFor: (groups) => mapping.scopesFor(groups),
    sealer,
    log: log.child({ module: 'refresh' }),
    // With replicas, one of them refreshes (rotating refresh tokens must not be spent twice).
    lease: state.lease('session-refresher'),
  });

  // Per-user OAuth to backends: people's own tokens, sealed in the vault, refreshed by the one
  // replica holding the lease (a rotating refresh token must not be spent twice).
  const oauthLease = state.lease('backend-token-refresher');
  const userOAuth = new UserOAuth({
    vault,
    publicUrl: config.gateway.publicUrl,
    catalog,
    env: config.backendCredentials.env,
    discover: (mcpUrl, resourceMetadataUrl) =>
      discoverBackendAuth(
        mcpUrl,
        resourceMetadataUrl ? `Bearer resource_metadata="${resourceMetadataUrl}"` : undefined,
        AbortSignal.timeout(DISCOVERY_TIMEOUT_MS),
      ),
    mayRefresh: () => oauthLease.held(),
    refreshEveryMs: config.backendCredentials.refreshEveryMs,
    log: log.child({ module: 'backend-oauth' }),
  });
  // The gateway's own credentials for backends: the vault's secrets, allowed environment values,
  // and a token source per client_credentials server (issue 13).
  const credentials = new BackendCredentials({
    catalog,
    vault,
    env: config.backendCredentials.env,
    envAllowed: config.backendCredentials.envAllowed,
    headerSlots: config.backendCredentials.headerSlots,
    tokenSources: clientCredentialsSource,
    personal: {
      user_oauth: userOAuth,
      token_exchange: new TokenExchangeSource({
        subjects: idpTokens,
        vault,
        env: config.backendCredentials.env,
        publicUrl: config.gateway.publicUrl,
        log: log.child({ module: 'token-exchange' }),
      }),
    },
    publicUrl: config.gateway.publicUrl,
    log: log.child({ module: 'backend-credentials' }),
  });
  credentials.start();
  // eslint-disable-next-line prefer-const -- assigned once nginx's port is known; the app's closures below read it before that
  let sync: NginxSync | undefined;
  const monitor = new BackendMonitor({
    catalog,
    credentials: (def) => credentials.forBackend(def),
    ...(replicas.health ? { lease: replicas.health.lease, shared: replicas.health.store } : {}),
    intervalMs: config.healthCheck.intervalMs,
    timeoutMs: config.healthCheck.timeoutMs,
    log: log.child({ module: 'health' }),
  });
  // Every store /readyz and store_up report: files are always up, Redis stores while they can answer.
  const stores = new StoreHealth();
  for (const [name, store] of opened.health) stores.watch(name, () => store.isUp());
  const metrics = new GatewayMetrics({
    isKnownServer: (name) => catalog.get(name) !== undefined,
    backends: () => catalog.list().map((d) => ({ server: d.name, state: monitor.snapshot(d.name).health.status })),
    loginSessions: () => {
      let count = 0;
      for (const _ of sessions.signedIn()) count++;
      return count;
    },
    stores,
  });
  // The gateway as the MCP clients' authorization server (issuer = GATEWAY_PUBLIC_URL).
  const authServer = createAuthorizationServer({
    publicUrl: config.gateway.publicUrl,
    secretKey: config.secretKey,
    records: authRecords,
    catalog,
    scopesFor: (groups) => mapping.scopesFor(groups),
    liveGroups: (account) => {
      for (const { identity } of sessions.signedIn()) if (identity.provider === account.provider && identity.sub === account.sub) return identity.groups;
      return undefined;
    },
    liveSession: (account) => {
      for (const { identity, tokens, signedInAt } of sessions.signedIn())
        if (identity.provider === account.provider && identity.sub === account.sub)
          return {
            groups: identity.groups,
            readAt: tokens?.issuedAt ?? signedInAt ?? Date.now(),
            upstream: tokens === undefined ? undefined : { sealedRefreshToken: tokens.sealedRefreshToken, expiresAt: tokens.expiresAt },
          };
      return undefined;
    },
    // Without a live page session, groups older than OAUTH_GROUPS_MAX_AGE_SECONDS are read again at the IdP.
    recheck: new GroupRecheck({
      idpTokens,
      records: authRecords,
      provider,
      sealer,
      maxAgeMs: config.oauth.groupsMaxAgeSeconds * 1000,
      log: log.child({ module: 'authserver' }),
    }),
    accessTokenTtlSeconds: config.oauth.accessTokenTtlSeconds,
    refreshTokenTtlSeconds: config.oauth.refreshTokenTtlSeconds,
    clientTtlSeconds: config.oauth.clientTtlSeconds,
    clientMetadataDocuments: config.oauth.clientMetadataDocuments,
    ...(testHooks.clientMetadataFetch === undefined ? {} : { clientMetadataFetch: testHooks.clientMetadataFetch }),
    registrationsPerHour: config.oauth.registrationsPerHour,
    // Its sign-in lasts no longer than a page login would (idle lifetime, capped by the absolute one).
    sessionTtlSeconds: Math.min(config.sessionTtlSeconds, config.sessionMaxLifetimeSeconds),
    redirectSchemes: config.oauth.redirectSchemes,
    // The dev provider's demo machine client gets client-credentials tokens here too, with the same secret.
    machineClients: config.providerType === 'dev' ? [{ clientId: DEV_MACHINE_CLIENT_ID, clientSecret: devMachineSecret(config.secretKey) }] : [],
    machineScopes: (clientId) => mapping.machineScopes(clientId),
    // OAUTH_CLIENTS_FILE: people's and machine clients an operator registered, with every provider.
    staticClients: config.oauth.clients,
    log: log.child({ module: 'authserver' }),
  });
  // Personal access tokens (STATE_DIR/tokens, held in memory too: the check reads them with no I/O).
  const personalTokens = new PersonalTokens({
    records: tokenRecords,
    maxLifetimeDays: config.oauth.patMaxLifetimeDays,
    scopesFor: (groups) => mapping.scopesFor(groups),
    liveGroups: (owner) => {
      for (const { identity } of sessions.signedIn()) if (identity.provider === owner.provider && identity.sub === owner.sub) return identity.groups;
      return undefined;
    },
  });
  const account = new AccountActions({
    catalog,
    publicUrl: config.gateway.publicUrl,
    tokens: personalTokens,
    connections: new Connections({ records: authRecords, publicUrl: config.gateway.publicUrl, accessTokenTtlSeconds: config.oauth.accessTokenTtlSeconds }),
  });
  // Credentials: cookies through the session store, bearer tokens through the provider's rules.
  const bearer: BearerContext = {
    verify: provider.bearer ? createBearerVerifier(provider.bearer) : undefined,
    provider: provider.name,
    scopesFor: (groups) => mapping.scopesFor(groups),
    machineScopes: (clientId) => mapping.machineScopes(clientId),
  };
  // Where each MCP request goes: the check answers it, from the catalog in memory (no reloads).
  const routes = new RouteTable({ catalog, log: log.child({ module: 'route' }) });
  // The check nginx asks on every MCP request, timed and counted by outcome and server.
  const check = createValidateRoute({
    catalog,
    route: routes.lookup,
    sessions,
    secret: config.secretKey,
    authEnabled: config.authEnabled,
    realm: BEARER_REALM,
    publicUrl: config.gateway.publicUrl,
    bearer,
    // Access tokens of a client its person disconnected are refused at once (from the store's memory).
    gatewayTokens: refusingRevoked(authServer.verifier, authRecords, config.oauth.accessTokenTtlSeconds),
    personalTokens,
    backendCredentials: credentials,
    cacheSeconds: config.nginx.checkCache.seconds,
    audit,
    log: log.child({ module: 'authz' }),
  });
  const validate = metrics.timeCheck(check, SERVER_HEADER);
  const app = createApp({
    publicUrl: config.gateway.publicUrl,
    secretKey: config.secretKey,
    cookieSecure: config.cookieSecure,
    sessionTtlSeconds: config.sessionTtlSeconds,
    validate,
    bearer: provider.bearer ? bearer : undefined,
    catalog,
    sessions,
    provider,
    nginxStatus: () => sync?.status() ?? {},
    nginxSettled: async () => sync?.settled(),
    monitor,
    mapping,
    sealer,
    idpTokens: {
      remember: (person, result) => idpTokens.remember(person, result),
      // Dropped at the person's last page sign-out; MCP clients they authorized get it back at their next group re-check.
      signedOut: async (person) => {
        for (const { identity } of sessions.signedIn()) if (identity.provider === person.provider && identity.sub === person.sub) return;
        await idpTokens.forget(person).catch(() => undefined);
      },
    },
    audit,
    authServer,
    account,
    credentials,
    userOAuth,
    vaultKeys: vault,
    log,
    readiness: () => readiness(sync?.status().lastAppliedAt !== undefined, stores.list()),
    metrics: metricsRoute(metrics, config.metricsToken),
  });
  const server = createServer({ keepAliveTimeout: 65_000 }, app).listen(config.registryPort, '127.0.0.1');
  try {
    await new Promise<void>((resolve, reject) => server.once('listening', resolve).once('error', reject));
  } catch (err) {
    credentials.close();
    await catalog.close();
    await audit.close();
    await closeState();
    throw err;
  }
  registryUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const runtimeDir = config.nginx.runtimeDir;
  // Cached decisions (docs/performance.md): the folder checked and the generation written before
  // nginx starts; nginx's audit lines of the requests the check never sees, read into the audit.
  let generation: CheckGeneration | undefined;
  let stopInvalidation = () => {};
  let cacheHome: { home: string; removeOnStop: boolean } | undefined;
  let cacheDirWatch: CacheDirWatch | undefined;
  let checkCache: NginxRenderInput['checkCache'];
  const auditTail = new AuditTail({
    file: join(runtimeDir, MCP_AUDIT_LOG),
    audit,
    onCached: (name, status) => metrics.recordCachedDecision(name, status),
    log: log.child({ module: 'nginx-audit' }),
  });
  /** A later step of the start failed: undo what the start did so far, then rethrow. */
  const abortStart = async (err: unknown): Promise<never> => {
    server.close();
    cacheDirWatch?.stop();
    await auditTail.stop();
    if (cacheHome?.removeOnStop) removeCacheHome(cacheHome.home);
    credentials.close();
    await catalog.close();
    await audit.close();
    await closeState();
    throw err;
  };
  try {
    mkdirSync(runtimeDir, { recursive: true });
    if (config.nginx.checkCache.seconds > 0) {
      cacheHome = checkCacheHome(runtimeDir);
      checkCache = {
        dir: config.nginx.checkCache.dir ?? join(cacheHome.home, 'check-cache'),
        generationFile: join(cacheHome.home, CHECK_GENERATION_FILE),
        seconds: config.nginx.checkCache.seconds,
      };
      prepareCacheDir(checkCache.dir);
      generation = new CheckGeneration(checkCache.generationFile);
      const dir = checkCache.dir;
      cacheDirWatch = new CacheDirWatch({ generation, problem: () => cacheDirProblem(dir), log: log.child({ module: 'check-cache' }) });
    }
    await auditTail.start();
  } catch (err) {
    await abortStart(err);
  }
  sync = new NginxSync({
    controller: new NginxController({
      nginxBin: nginxFound.bin,
      runtimeDir,
      log: log.child({ module: 'nginx' }),
      onApply: (outcome) => metrics.nginxApply(outcome),
    }),
    render: nginxRenderer(config, runtimeDir, (server.address() as AddressInfo).port, nginxFound.njsModule, checkCache),
    routes,
    log: log.child({ module: 'nginx' }),
  });
  try {
    await sync.start();
  } catch (err) {
    await abortStart(err);
  }
  // After the route table's own listener (sync.start): a bump follows every change the check sees.
  // Then one bump: nginx served while this subscribed, and a change in between bumped nothing.
  if (generation) {
    stopInvalidation = invalidateOnChanges(generation, {
      catalog,
      sessions: sessionRecords,
      authserver: authRecords,
      tokens: tokenRecords,
      mapping,
    });
    generation.bump();
  }
  catalog.watch();
  mapping.watch();
  refresher.start();
  userOAuth.start();
  // Health never feeds nginx: the monitor only records what it sees, for the page and the API.
  monitor.start();

  const url = `http://${config.gateway.host === '0.0.0.0' ? '127.0.0.1' : config.gateway.host}:${config.gateway.port}`;
  return {
    url,
    registryUrl,
    catalog,
    nginx: sync,
    runtimeDir,
    checkCache: checkCache && { dir: checkCache.dir, generationFile: checkCache.generationFile },
    audit,
    auditFile: config.auditLogFile,
    monitor,
    metrics,
    credentials,
    userOAuth,
    stores,
    vault,
    refreshSessions: (now) => refresher.runOnce(now),
    async stop() {
      await refresher.stop();
      await userOAuth.close();
      await monitor.stop();
      credentials.close();
      await mapping.close();
      await catalog.close();
      stopInvalidation();
      cacheDirWatch?.stop();
      await sync.stop();
      // nginx flushed its log buffers on the way out: the last lines reach the audit.
      await auditTail.stop();
      if (cacheHome?.removeOnStop) removeCacheHome(cacheHome.home);
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await provider.close?.();
      await audit.close();
      vault.close();
      // Sessions, the authorization server's records, tokens, backend secrets, the dev IdP's storage, the leases,
      // and with REDIS_URL the catalog, health results and audit stream.
      await closeState();
    },
  };
}

/**
 * Opens every record store the gateway keeps (one kind of record each: `STATE_DIR/<kind>` or the
 * Redis namespace `<kind>`). Mirrored in memory where the check peeks or a page snapshots:
 * sessions, the authorization server's records (revocations), personal tokens, backend secrets; the dev IdP's
 * storage is only read and written through. With REDIS_URL, what the replicas share besides
 * (`SharedState`: the catalog, the backend checks' results and their lease, the audit stream) is
 * opened here too, unless the caller passed it.
 */
async function openStores(state: Stores, config: Config, shared: SharedState, log: Logger) {
  const sessionRecords = await state.watched<SessionValue>('sessions');
  const authRecords = await state.watched<OidcStoreEntry>('authserver');
  const tokenRecords = await state.watched<PersonalTokenRecord>('tokens');
  const idpRecords = config.providerType === 'dev' ? await state.plain<OidcStoreEntry>('idp') : undefined;
  // Backend secrets (sealed): mirrored, since the check peeks them on every MCP request.
  const credentialRecords = await state.watched<CredentialRecord>(CREDENTIALS_NAMESPACE);
  const health: [string, RecordStoreHealth][] = [
    ['sessions', sessionRecords],
    ['authserver', authRecords],
    ['tokens', tokenRecords],
    [CREDENTIALS_NAMESPACE, credentialRecords],
  ];
  if (idpRecords) health.push(['idp', idpRecords]);
  const replicas: { -readonly [K in keyof SharedState]: SharedState[K] } = { ...shared };
  let ownAuditSink: RedisAuditSink | undefined;
  if (config.redis) {
    if (!replicas.catalog) {
      const catalog = await state.watched<CatalogRecord>('catalog');
      health.push(['catalog', catalog]);
      replicas.catalog = catalog;
    }
    if (!replicas.health) {
      const results = await state.watched<SharedBackendSnapshot>('health');
      health.push(['health', results]);
      replicas.health = { store: results, lease: state.lease('backend-monitor') };
    }
    if (!replicas.audit) replicas.audit = ownAuditSink = await RedisAuditSink.open({ url: config.redis.url, log: log.child({ module: 'audit' }) });
  }
  return { sessionRecords, authRecords, tokenRecords, idpRecords, credentialRecords, health, replicas: replicas as SharedState, ownAuditSink };
}
