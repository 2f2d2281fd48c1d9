/**
 * What the operators' page and the REST API can do, with the scope checks, in one place: both
 * adapters call these and only translate HTTP. A server the caller may not read does not exist
 * for them (404, never 403), so one server's users never learn the others' names.
 */
import type { AuditLog, AuditQuery, TimedAuditEntry } from '../audit/audit-log.ts';
import type { Principal } from '../authz/credentials.ts';
import { EXECUTE_PREFIX, STREAMABLE_PREFIX } from '../authz/paths.ts';
import { definitionVersion, type Catalog } from '../catalog/catalog.ts';
import { freezeDefinition, serverDefinitionSchema, TRANSPORTS, type ServerDefinition } from '../catalog/server-definition.ts';
import { GatewayError } from '../errors.ts';
import type { BackendMonitor, BackendSnapshot, DiscoveredAuth } from '../mcp/backend-monitor.ts';
import { canEditServer, canReadServer, canToggleServer, decideAccess, hasScope, type McpMessage } from '../scopes/decide.ts';
import { grantsOnServer } from '../scopes/grants.ts';
import { REGISTRY_ADMIN, REGISTRY_READ, serverScope } from '../scopes/scope.ts';
import type { SessionIdentity } from '../sessions/session-data.ts';
import type { AccountActions } from './account-actions.ts';
import type { BackendCredentials, CredentialStatus } from '../credentials/backend-credentials.ts';
import type { UploadedTokenStatus } from '../credentials/uploaded-credential.ts';
import type { KeyUsage, Vault } from '../credentials/vault.ts';
import type { ConnectionStatus, PendingConnect, UserOAuth } from '../credentials/user-oauth.ts';
import {
  fieldProblemsOf,
  type NginxState,
  type ServerDetail,
  type ServerSummary,
  type ToolsResult,
  type ToolView,
  type WhoCanAnswer,
  type WhoCanQuestion,
} from './api/schemas.ts';

export interface RegistryActionsOptions {
  readonly catalog: Catalog;
  readonly monitor: Pick<BackendMonitor, 'snapshot' | 'refresh'>;
  readonly audit: AuditLog;
  readonly publicUrl: string;
  readonly scopesFor: (groups: readonly string[]) => readonly string[];
  /** The identities and scopes of live sessions, for "who can do what" about a signed-in user. */
  readonly signedIn: () => Iterable<{ identity: SessionIdentity; scopes: readonly string[] }>;
  readonly nginxStatus: () => NginxState;
  /** Resolves when nginx has taken the newest catalog (or refused it). */
  readonly nginxSettled: () => Promise<void>;
  /** Connected clients and personal access tokens (account-actions.ts); absent without the authorization server. */
  readonly account?: AccountActions;
  /** The gateway's own credentials for backends (issue 13); absent: definitions' backendAuth is not checked against the configuration. */
  readonly credentials?: Pick<BackendCredentials, 'policy' | 'status' | 'setSecrets' | 'clearSecrets' | 'myToken' | 'setMyToken' | 'clearMyToken'>;
  /** People's own OAuth connections to `user_oauth` backends (issue 13). */
  readonly userOAuth?: Pick<UserOAuth, 'status' | 'begin' | 'finish' | 'disconnect'>;
  /** The vault's key ring: which key seals how many secrets, and resealing after a rotation. */
  readonly vaultKeys?: Pick<Vault, 'keyUsage' | 'reseal'>;
}

export type Change = { server: ServerSummary; nginx: NginxState };

export class RegistryActions {
  readonly #o: RegistryActionsOptions;

  constructor(options: RegistryActionsOptions) {
    this.#o = options;
  }

  /** Connected clients and personal access tokens; NOT_FOUND where the gateway has none. */
  get account(): AccountActions {
    if (!this.#o.account) throw new GatewayError('NOT_FOUND', 'This gateway issues no tokens of its own.');
    return this.#o.account;
  }

  /** Every server the caller may read, by name. */
  list(p: Principal): ServerSummary[] {
    return this.#o.catalog
      .list()
      .filter((def) => canReadServer(p.scopes, def.name))
      .map((def) => this.#summary(p, def));
  }

  get(p: Principal, name: string): ServerDetail {
    const def = this.#readable(p, name);
    const tools = this.#tools(p, def, this.#o.monitor.snapshot(def.name));
    return { ...this.#summary(p, def, tools), tools };
  }

  /** The server's tools as the caller may see them; `refresh` asks the backend first. */
  async tools(p: Principal, name: string, refresh: boolean): Promise<ToolsResult> {
    const def = this.#readable(p, name);
    const snapshot = refresh ? await this.#o.monitor.refresh(def.name) : this.#o.monitor.snapshot(def.name);
    return this.#tools(p, def, snapshot);
  }

  /** Tools of every readable server whose name or description holds every word of `query`. */
  searchTools(p: Principal, query: string): { server: string; tool: ToolView }[] {
    const words = query.toLowerCase().split(/\s+/).filter(Boolean);
    const matches: { server: string; tool: ToolView }[] = [];
    for (const def of this.#o.catalog.list()) {
      if (!canReadServer(p.scopes, def.name)) continue;
      for (const tool of this.#tools(p, def, this.#o.monitor.snapshot(def.name)).tools) {
        const text = `${tool.name} ${tool.title ?? ''} ${tool.description}`.toLowerCase();
        if (words.every((w) => text.includes(w))) matches.push({ server: def.name, tool });
      }
    }
    return matches;
  }

  health(p: Principal): { name: string; enabled: boolean; health: BackendSnapshot['health'] }[] {
    return this.list(p).map((s) => ({ name: s.name, enabled: s.enabled, health: s.health }));
  }

  /** Registers a server: registry admin only. `input` is a whole definition, validated here. */
  async register(p: Principal, user: string, input: unknown): Promise<Change> {
    if (!hasScope(p.scopes, REGISTRY_ADMIN)) throw missing(REGISTRY_ADMIN, 'register servers');
    const def = this.#parse(input);
    await this.#o.catalog.create(def);
    this.#o.audit.record({ event: 'change', user, server: def.name, action: 'register' });
    return this.#changed(p, def.name);
  }

  /** Replaces a definition: edit scope. `version` (optional) must match what the caller read. */
  async update(p: Principal, user: string, name: string, input: unknown, version?: string): Promise<Change> {
    this.#readable(p, name);
    if (!canEditServer(p.scopes, name)) throw missing(serverScope(name, 'edit'), `change ${name}`);
    const def = this.#parse(input);
    await this.#o.catalog.replace(name, def, version);
    this.#o.audit.record({ event: 'change', user, server: name, action: 'update' });
    return this.#changed(p, name);
  }

  async toggle(p: Principal, user: string, name: string, enabled: boolean): Promise<Change> {
    this.#readable(p, name);
    if (!canToggleServer(p.scopes, name)) throw missing(serverScope(name, 'toggle'), `enable or disable ${name}`);
    const before = this.#o.catalog.get(name)?.enabled;
    await this.#o.catalog.setEnabled(name, enabled);
    if (before !== enabled) this.#o.audit.record({ event: 'change', user, server: name, action: enabled ? 'enable' : 'disable' });
    // Enabled state is not in the nginx config (the check answers 503), so nothing to wait for.
    return { server: this.#summary(p, this.#readable(p, name)), nginx: this.#nginx(p) };
  }

  /** Deletes a server: registry admin only. */
  async delete(p: Principal, user: string, name: string, version?: string): Promise<NginxState> {
    this.#readable(p, name);
    if (!hasScope(p.scopes, REGISTRY_ADMIN)) throw missing(REGISTRY_ADMIN, `delete ${name}`);
    await this.#o.catalog.delete(name, version);
    this.#o.audit.record({ event: 'change', user, server: name, action: 'delete' });
    // Its secrets go with it: a server registered later under the name starts without them.
    if ((await this.#o.credentials?.clearSecrets(name, { people: true })) ?? 0)
      this.#o.audit.record({ event: 'change', user, server: name, action: 'credentials' });
    await this.#o.nginxSettled();
    return this.#nginx(p);
  }

  /** What backend credentials a server has, set or not, from where and when (never a value). Edit scope. */
  credentialStatus(p: Principal, name: string): CredentialStatus {
    return this.#credentials().status(this.#editable(p, name, 'see the backend credentials of'));
  }

  /** The status for the server's page: undefined where the gateway keeps no backend credentials. */
  credentialStatusOrNone(p: Principal, name: string): CredentialStatus | undefined {
    return this.#o.credentials ? this.credentialStatus(p, name) : undefined;
  }

  /** Stores secrets of a server (write-only) and audits it, never the value. Edit scope. */
  async setCredentials(
    p: Principal,
    user: string,
    name: string,
    input: { headers?: Record<string, string>; clientSecret?: string; serviceClientSecret?: string },
  ): Promise<CredentialStatus> {
    const def = this.#editable(p, name, 'set the backend credentials of');
    await this.#credentials().setSecrets(def, input);
    this.#o.audit.record({ event: 'change', user, server: name, action: 'credentials' });
    // The health check and tool discovery use the new secret at once.
    void this.#o.monitor.refresh(name).catch(() => undefined);
    return this.#credentials().status(def);
  }

  /** Removes every vault secret of a server. Edit scope. */
  async clearCredentials(p: Principal, user: string, name: string): Promise<CredentialStatus> {
    const def = this.#editable(p, name, 'clear the backend credentials of');
    const removed = await this.#credentials().clearSecrets(name);
    if (removed > 0) this.#o.audit.record({ event: 'change', user, server: name, action: 'credentials' });
    return this.#credentials().status(def);
  }

  /** Which key of CREDENTIAL_KEYS seals how many backend secrets (an old key may go at 0). Registry admin. */
  secretKeys(p: Principal): readonly KeyUsage[] {
    if (!hasScope(p.scopes, REGISTRY_ADMIN)) throw missing(REGISTRY_ADMIN, 'see the key ring of backend secrets');
    return this.#vaultKeys().keyUsage();
  }

  /** Seals every backend secret again under the first key of CREDENTIAL_KEYS, after a rotation. Registry admin. */
  async resealSecrets(p: Principal, user: string): Promise<{ resealed: number; keys: readonly KeyUsage[] }> {
    if (!hasScope(p.scopes, REGISTRY_ADMIN)) throw missing(REGISTRY_ADMIN, 'reseal backend secrets');
    const vault = this.#vaultKeys();
    const resealed = await vault.reseal();
    this.#o.audit.record({ event: 'change', user, server: '*', action: 'reseal' });
    return { resealed, keys: vault.keyUsage() };
  }

  #vaultKeys(): NonNullable<RegistryActionsOptions['vaultKeys']> {
    if (!this.#o.vaultKeys) throw new GatewayError('NOT_FOUND', 'This gateway keeps no backend secrets.');
    return this.#o.vaultKeys;
  }

  /**
   * The caller's own token for an `uploaded` server: set or not, when, until when; never the
   * token. Any scope on the server (the check still decides each MCP request).
   */
  myToken(p: Principal, name: string): UploadedTokenStatus {
    return this.#credentials().myToken(this.#readable(p, name), personOf(p));
  }

  /** The caller's token for an `uploaded` server for the page: undefined for other servers. */
  myTokenOrNone(p: Principal, name: string): UploadedTokenStatus | undefined {
    const def = this.#readable(p, name);
    if (!this.#o.credentials || def.backendAuth?.type !== 'uploaded' || p.machineClient !== undefined) return undefined;
    return this.#o.credentials.myToken(def, personOf(p));
  }

  /** Stores the caller's own token for a server, sealed; audited without the value. */
  async setMyToken(p: Principal, user: string, name: string, input: { token: string; expiresAt?: string | undefined }): Promise<UploadedTokenStatus> {
    const def = this.#readable(p, name);
    const status = await this.#credentials().setMyToken(def, personOf(p), input);
    this.#o.audit.record({ event: 'change', user, server: name, action: 'my-token' });
    return status;
  }

  /** Removes the caller's own token for a server. */
  async clearMyToken(p: Principal, user: string, name: string): Promise<UploadedTokenStatus> {
    const def = this.#readable(p, name);
    if (await this.#credentials().clearMyToken(def, personOf(p))) this.#o.audit.record({ event: 'change', user, server: name, action: 'my-token' });
    return this.#credentials().myToken(def, personOf(p));
  }

  /**
   * The caller's own connection to a `user_oauth` server: connected as whom, until when, last
   * refresh, or broken and why; never a token. Any scope on the server (the check decides each call).
   */
  myConnection(p: Principal, name: string): ConnectionStatus {
    return this.#userOAuth().status(this.#readable(p, name), personOf(p));
  }

  /** The caller's connection for the page: undefined for other servers and machine clients. */
  myConnectionOrNone(p: Principal, name: string): ConnectionStatus | undefined {
    const def = this.#readable(p, name);
    if (!this.#o.userOAuth || def.backendAuth?.type !== 'user_oauth' || p.machineClient !== undefined) return undefined;
    return this.#o.userOAuth.status(def, personOf(p));
  }

  /** Every `user_oauth` server the caller may read, with their connection to it (their /connections page). */
  myConnections(p: Principal): ConnectionStatus[] {
    const userOAuth = this.#o.userOAuth;
    if (!userOAuth || p.machineClient !== undefined) return [];
    return this.#o.catalog
      .list()
      .filter((def) => def.backendAuth?.type === 'user_oauth' && canReadServer(p.scopes, def.name))
      .map((def) => userOAuth.status(def, personOf(p)));
  }

  /** Starts connecting the caller's account: where to send their browser, and what their session keeps. */
  beginConnect(p: Principal, name: string): Promise<{ url: string; pending: PendingConnect }> {
    return this.#userOAuth().begin(this.#readable(p, name), personOf(p));
  }

  /** Finishes connecting at the callback; audited without any token. */
  async finishConnect(p: Principal, user: string, query: URLSearchParams, pending: PendingConnect): Promise<ConnectionStatus> {
    this.#readable(p, pending.server);
    const status = await this.#userOAuth().finish(query, pending, personOf(p));
    this.#o.audit.record({ event: 'change', user, server: pending.server, action: 'connect' });
    return status;
  }

  /** Disconnects the caller's account (revoking its tokens where the server supports it). */
  async disconnect(p: Principal, user: string, name: string): Promise<ConnectionStatus & { revoked: string }> {
    const def = this.#readable(p, name);
    const outcome = await this.#userOAuth().disconnect(def, personOf(p));
    if (outcome.removed) this.#o.audit.record({ event: 'change', user, server: name, action: 'disconnect' });
    return { ...this.#userOAuth().status(def, personOf(p)), revoked: outcome.revoked };
  }

  #userOAuth(): NonNullable<RegistryActionsOptions['userOAuth']> {
    if (!this.#o.userOAuth) throw new GatewayError('NOT_FOUND', 'This gateway keeps no backend connections.');
    return this.#o.userOAuth;
  }

  #credentials(): NonNullable<RegistryActionsOptions['credentials']> {
    if (!this.#o.credentials) throw new GatewayError('NOT_FOUND', 'This gateway keeps no backend credentials.');
    return this.#o.credentials;
  }

  #editable(p: Principal, name: string, what: string): ServerDefinition {
    const def = this.#readable(p, name);
    if (!canEditServer(p.scopes, name)) throw missing(serverScope(name, 'edit'), `${what} ${name}`);
    return def;
  }

  /** A whole definition, validated, including the rules of this gateway's configuration (backendAuth). */
  #parse(input: unknown): ServerDefinition {
    const def = parseDefinition(input);
    const problems = this.#o.credentials?.policy(def) ?? [];
    if (problems.length)
      throw new GatewayError('REQUEST_INVALID', `The server definition is not valid: ${problems.map((f) => `${f.field}: ${f.message}`).join('; ')}`, {
        fields: problems,
      });
    return def;
  }

  /** Signed-in users (one entry per username), for "who can do what". Registry read. */
  signedInUsers(p: Principal): { username: string; groups: string[]; provider: string }[] {
    requireRegistryRead(p);
    const byName = new Map<string, { username: string; groups: string[]; provider: string }>();
    for (const s of this.#o.signedIn())
      byName.set(s.identity.username, { username: s.identity.username, groups: [...s.identity.groups], provider: s.identity.provider });
    return [...byName.values()].sort((a, b) => a.username.localeCompare(b.username));
  }

  /**
   * "Who can do what": the gateway's own decision (decideAccess) for some groups or a signed-in
   * user, one server and a tool or method. Registry read (it reveals the mapping for any group).
   */
  whoCan(p: Principal, q: WhoCanQuestion): WhoCanAnswer {
    requireRegistryRead(p);
    let groups: readonly string[] = q.groups ?? [];
    let scopes: readonly string[];
    if (q.user !== undefined) {
      const session = [...this.#o.signedIn()].find((s) => s.identity.username === q.user);
      if (!session)
        throw new GatewayError('REQUEST_INVALID', `No signed-in user is named ${q.user}.`, { fields: [{ field: 'user', message: 'not signed in now' }] });
      groups = session.identity.groups;
      scopes = session.scopes;
    } else {
      scopes = this.#o.scopesFor(groups);
    }
    const def = this.#o.catalog.get(q.server);
    const method = q.method ?? (q.tool !== undefined ? 'tools/call' : undefined);
    const messages: McpMessage[] = method === undefined ? [] : [{ kind: 'request', method, ...(q.tool !== undefined ? { tool: q.tool } : {}) }];
    const decision = decideAccess({ scopes, server: def && { name: def.name, enabled: def.enabled }, messages });
    const valid = def !== undefined;
    return {
      subject: { groups: [...groups], ...(q.user !== undefined ? { user: q.user } : {}) },
      scopes: [...scopes],
      server: q.server,
      request: { ...(method !== undefined ? { method } : {}), ...(q.tool !== undefined ? { tool: q.tool } : {}) },
      decision: decision.allow ? 'allow' : 'deny',
      status: decision.allow ? 200 : decision.status,
      ...(decision.allow ? {} : { reason: decision.reason }),
      ...(!decision.allow && decision.missingScope ? { missingScope: decision.missingScope } : {}),
      ...(decision.allow && decision.toolFilter ? { toolFilter: [...decision.toolFilter] } : {}),
      explanation: explain(q.server, decision, method, q.tool),
      registry: {
        read: valid && canReadServer(scopes, q.server),
        toggle: valid && canToggleServer(scopes, q.server),
        edit: valid && canEditServer(scopes, q.server),
        delete: valid && hasScope(scopes, REGISTRY_ADMIN),
      },
    };
  }

  /**
   * Recent audit entries: everything for registry read; otherwise the servers the caller
   * operates (toggle or edit). Callers with neither get 403.
   */
  async audit(p: Principal, query: Omit<AuditQuery, 'visibleServer'>): Promise<TimedAuditEntry[]> {
    if (hasScope(p.scopes, REGISTRY_READ)) return this.#o.audit.recent(query);
    const operated = new Set(
      this.#o.catalog
        .list()
        .filter((d) => canToggleServer(p.scopes, d.name) || canEditServer(p.scopes, d.name))
        .map((d) => d.name),
    );
    if (operated.size === 0) throw missing(REGISTRY_READ, 'see the audit log');
    return this.#o.audit.recent({ ...query, visibleServer: (server) => operated.has(server) });
  }

  /** The definition of a server the caller may read; SERVER_UNKNOWN otherwise (existing or not). */
  #readable(p: Principal, name: string): ServerDefinition {
    const def = canReadServer(p.scopes, name) ? this.#o.catalog.get(name) : undefined;
    if (!def) throw new GatewayError('SERVER_UNKNOWN', `There is no server named ${name}.`);
    return def;
  }

  async #changed(p: Principal, name: string): Promise<Change> {
    await this.#o.nginxSettled();
    return { server: this.#summary(p, this.#readable(p, name)), nginx: this.#nginx(p) };
  }

  /** nginx's state, its refused servers narrowed to those whose definitions the caller may see. */
  #nginx(p: Principal): NginxState {
    const { refused, withoutKeepalive, ...rest } = this.#o.nginxStatus();
    // Backend origins name hosts: operators only.
    const state = withoutKeepalive !== undefined && hasScope(p.scopes, REGISTRY_READ) ? { ...rest, withoutKeepalive } : rest;
    const visible = Object.entries(refused ?? {}).filter(([name]) => canEditServer(p.scopes, name));
    return visible.length === 0 ? state : { ...state, refused: Object.fromEntries(visible) };
  }

  /** One server as the caller sees it; `tools` when the caller has them already (one snapshot, one filter). */
  #summary(p: Principal, def: ServerDefinition, tools: ToolsResult = this.#tools(p, def, this.#o.monitor.snapshot(def.name))): ServerSummary {
    const edit = canEditServer(p.scopes, def.name);
    return {
      name: def.name,
      description: def.description,
      tags: [...def.tags],
      enabled: def.enabled,
      transports: TRANSPORTS.filter((t) => def.transports[t] !== undefined),
      endpoints: gatewayEndpoints(def, this.#o.publicUrl),
      health: tools.health,
      toolCount: tools.tools.length,
      ...routing(this.#o.nginxStatus().refused?.[def.name], edit),
      permissions: {
        toggle: canToggleServer(p.scopes, def.name),
        edit,
        delete: hasScope(p.scopes, REGISTRY_ADMIN),
        allTools: seesAllTools(p.scopes, def.name),
      },
      version: definitionVersion(def),
      ...(edit ? { definition: structuredClone(def) as ServerDefinition } : {}),
    };
  }

  /**
   * The tools the caller may see: the backend's list once a check succeeded, else the declared
   * ones. A session limited to tool scopes sees only those tools, as its MCP tools/list does.
   */
  #tools(p: Principal, def: ServerDefinition, snapshot: BackendSnapshot): ToolsResult {
    const fromBackend = snapshot.tools !== undefined;
    const all: ToolView[] = fromBackend
      ? snapshot.tools!.map((t) => ({
          name: t.name,
          ...(t.title !== undefined ? { title: t.title } : {}),
          description: t.description,
          inputSchema: { ...t.inputSchema },
        }))
      : def.tools.map((t) => ({ name: t.name, description: t.description }));
    const allowed = seesAllTools(p.scopes, def.name) ? undefined : new Set(grantsOnServer(p.scopes, def.name).tools);
    return {
      server: def.name,
      source: fromBackend ? 'backend' : 'definition',
      ...(snapshot.toolsFetchedAt ? { fetchedAt: snapshot.toolsFetchedAt } : {}),
      health: healthView(snapshot.health, canEditServer(p.scopes, def.name)),
      tools: allowed ? all.filter((t) => allowed.has(t.name)) : all,
    };
  }
}

type HealthView = ToolsResult['health'];
type AuthSuggestion = NonNullable<NonNullable<HealthView['auth']>['suggestions']>[number];

/**
 * Health as a caller sees it. The 401 finding (issue 13) names the backend's URL and its
 * authorization server: callers with the edit scope only, with ready backendAuth suggestions.
 */
export function healthView(health: BackendSnapshot['health'], edit: boolean): HealthView {
  const { auth, ...rest } = health;
  if (auth === undefined || !edit) return rest;
  const suggestions = auth.discovered ? authSuggestions(auth.discovered) : [];
  // A copy of our own (the snapshot is frozen and shared).
  const finding = structuredClone(auth) as unknown as NonNullable<HealthView['auth']>;
  return { ...rest, auth: { ...finding, ...(suggestions.length > 0 ? { suggestions } : {}) } };
}

/** backendAuth blocks from discovered settings: client credentials, and per-user OAuth. */
export function authSuggestions(d: DiscoveredAuth): AuthSuggestion[] {
  const scopes = d.scopesSupported ? [...d.scopesSupported] : undefined;
  return [
    {
      mode: 'client_credentials',
      available: true,
      note: 'Usable now if the authorization server gave you a confidential client allowed the client_credentials grant: put its client id here, then store its secret on the server page.',
      backendAuth: { type: 'client_credentials', issuer: d.issuer, clientId: '<your client>', resource: d.resource, ...(scopes ? { scopes } : {}) },
    },
    {
      mode: 'user_oauth',
      available: true,
      note: `Each person connects their own account from the server page (authorization code + PKCE)${d.registrationEndpoint ? '; the authorization server supports dynamic client registration, so no client needs configuring' : d.clientIdMetadataDocumentSupported ? "; the authorization server takes the gateway's client metadata document, so no client needs configuring" : ': register a client for the gateway there (redirect URI <gateway>/oauth/backend/callback) and name it in client'}.`,
      backendAuth: { type: 'user_oauth', authorizationServer: d.issuer, resource: d.resource, ...(scopes ? { scopes } : {}) },
    },
  ];
}

/** The gateway URLs an MCP client uses for this server, per transport. */
export function gatewayEndpoints(def: ServerDefinition, publicUrl: string): ServerSummary['endpoints'] {
  return {
    ...(def.transports['streamable-http'] !== undefined ? { 'streamable-http': `${publicUrl}${STREAMABLE_PREFIX}${def.name}` } : {}),
    ...(def.transports.sse !== undefined ? { sse: `${publicUrl}${EXECUTE_PREFIX}${def.name}${def.transports.sse}` } : {}),
  };
}

/** Validates a whole definition; every problem is named by its field, for forms and API clients. */
export function parseDefinition(input: unknown): ServerDefinition {
  const parsed = serverDefinitionSchema.safeParse(input);
  if (!parsed.success) {
    const fields = fieldProblemsOf(parsed.error, '(body)');
    throw new GatewayError('REQUEST_INVALID', `The server definition is not valid: ${fields.map((f) => `${f.field}: ${f.message}`).join('; ')}`, { fields });
  }
  return freezeDefinition(parsed.data);
}

/** A definition the gateway cannot route (nginx/route.ts) is saved but not routed: say so rather than pretend it serves. */
function routing(refusal: string | undefined, edit: boolean): { routed: boolean; routeError?: string } {
  if (refusal === undefined) return { routed: true };
  // The reason names the backend host, which only those who may see the definition see.
  return edit ? { routed: false, routeError: `the gateway cannot route this server, so it is not routed: ${refusal}` } : { routed: false };
}

/** Every tool visible: server read or execute (registry read and admin included), not just tool scopes. */
function seesAllTools(scopes: readonly string[], name: string): boolean {
  return hasScope(scopes, serverScope(name, 'read')) || hasScope(scopes, serverScope(name, 'execute'));
}

/** The person whose token or connection it is; a machine client has none. */
function personOf(p: Principal): { provider: string; sub: string } {
  if (p.machineClient !== undefined)
    throw new GatewayError('REQUEST_INVALID', 'A machine client has no token or account of its own here: people upload tokens and connect accounts.', {
      fields: [{ field: '(caller)', message: 'a machine client' }],
    });
  return p.identity;
}

function requireRegistryRead(p: Principal): void {
  if (!hasScope(p.scopes, REGISTRY_READ)) throw missing(REGISTRY_READ, 'ask who can do what');
}

function missing(scope: string, what: string): GatewayError {
  return new GatewayError('AUTH_SCOPE_MISSING', `You need the scope ${scope} to ${what}.`, { missingScope: scope });
}

function explain(server: string, decision: ReturnType<typeof decideAccess>, method: string | undefined, tool: string | undefined): string {
  const what = tool !== undefined ? `calling ${tool}` : method !== undefined ? `${method}` : 'opening a session';
  if (decision.allow) {
    if (!decision.toolFilter) return `Allowed: ${what} on ${server}. The scopes cover every request to ${server} (execute or registry admin).`;
    const tools = decision.toolFilter.length ? decision.toolFilter.join(', ') : 'none';
    return `Allowed: ${what} on ${server}, through tool, resource or prompt scopes. tools/list shows only: ${tools}.`;
  }
  switch (decision.reason) {
    case 'server-unknown':
      return `Refused (404): there is no server named ${server}.`;
    case 'server-disabled':
      return `Refused (503): ${server} is disabled. Everyone gets 503 until someone with ${serverScope(server, 'toggle')} enables it.`;
    case 'scope-missing':
      return `Refused (403): ${what} on ${server} needs ${decision.missingScope}.`;
  }
}
