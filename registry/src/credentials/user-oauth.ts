/**
 * Per-user OAuth to a backend (issue 13, backendAuth `user_oauth`): each person connects their
 * own account at the backend's authorization server once, from the server's page (authorization
 * code + PKCE, RFC 6749 §4.1 / RFC 7636 / OAuth 2.1), and the gateway sends their access token
 * with their MCP requests to that backend, never anyone else's.
 *
 * - Settings: the authorization server and resource are the definition's, else discovered as an
 *   MCP client does (protected resource metadata, RFC 9728; then RFC 8414 / OIDC Discovery).
 * - The client: a Client ID Metadata Document the gateway serves, dynamic client registration
 *   (RFC 7591, one registration per server, sealed in the vault), or a configured client.
 * - Tokens are sealed per (person, server) in the vault (`user:<person hash>:oauth:<server>`),
 *   refreshed in the background before they expire by the one replica holding the lease; a
 *   refresh the authorization server refuses (`invalid_grant`) marks the connection broken.
 * - Disconnecting revokes the tokens where the server supports it (RFC 7009) and deletes them.
 *
 * The check reads only memory (the vault's peek, an answer built once per stored value); it
 * waits on the network only when the person's token is past its refresh time and this replica
 * may refresh it (the refresher was late).
 */
import * as client from 'openid-client';
import type { UserOAuthAuth } from '../catalog/backend-auth.ts';
import type { ServerDefinition } from '../catalog/server-definition.ts';
import { GatewayError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { BackendConnectPending } from '../sessions/session-data.ts';
import type { BACKEND_CREDENTIAL_HEADER, CredentialAnswer, PersonalCredentialSource } from './answer.ts';
import { credentialValueProblem } from './header-value.ts';
import { describeTokenError as describe, redact } from './token-endpoint.ts';
import type { SecretVault } from './types.ts';
import { cachedPersonHash, MAX_UPLOADED_TOKEN_CHARS, type Person } from './uploaded-tokens.ts';
import { BackendOAuthClients, failed, stripSlash, type DiscoverResource } from './user-oauth-client.ts';
import {
  accountOf,
  connectionId,
  connectionSchedule,
  decodeConnection,
  encodeConnection,
  parseConnectionId,
  unverifiedClaims,
  type ConnectionRecord,
} from './user-oauth-record.ts';

/** Where the authorization server sends people back (one URL for every server: what DCR and CIMD register). */
export const CONNECT_CALLBACK_PATH = '/oauth/backend/callback';
/** The gateway's Client ID Metadata Document (its URL is the client_id). */
export const CLIENT_METADATA_PATH = '/oauth/backend/client.json';
const DEFAULT_REFRESH_EVERY_MS = 15_000;
/** How long a started connect may take (the person signs in at the authorization server). */
export const PENDING_TTL_MS = 10 * 60 * 1000;

type Headers = Readonly<Record<string, string>>;
const SLOT_HEADER: typeof BACKEND_CREDENTIAL_HEADER = 'x-mcp-backend-credential';

export interface UserOAuthOptions {
  readonly vault: SecretVault;
  /** GATEWAY_PUBLIC_URL: the callback, the client metadata document and the connect page are built from it. */
  readonly publicUrl: string;
  readonly catalog: { get(name: string): ServerDefinition | undefined };
  /** Values of the environment variables definitions may read (a configured client's secret). */
  readonly env: Readonly<Record<string, string>>;
  readonly discover: DiscoverResource;
  /** The name of the gateway at authorization servers (DCR and CIMD `client_name`). */
  readonly clientName?: string;
  /** True while this replica may refresh tokens (the lease); default always. */
  readonly mayRefresh?: () => boolean;
  /** How often the refresher looks for tokens due, ms. Default 15 s. */
  readonly refreshEveryMs?: number;
  /** Per-request timeout at the authorization server, seconds. Default 10. */
  readonly timeoutSeconds?: number;
  readonly now?: () => number;
  readonly log: Logger;
}

/** A person's connection to a server as the page and API show it: never a token. */
export interface ConnectionStatus {
  readonly server: string;
  readonly provider: string;
  readonly state: 'none' | 'connected' | 'expired' | 'broken';
  readonly account?: string;
  /** ISO 8601 */
  readonly connectedAt?: string;
  readonly refreshedAt?: string;
  readonly expiresAt?: string;
  readonly scope?: string;
  readonly refreshable?: boolean;
  readonly problem?: string;
  /** The page where the person connects (GATEWAY_PUBLIC_URL/servers/<name>/connect). */
  readonly connectUrl: string;
}

/**
 * What the person's browser session keeps between the redirect and the callback (never a
 * token): the session's own type (sessions/session-data.ts), so what is stored is what is read.
 */
export type PendingConnect = BackendConnectPending;

interface Opened {
  readonly raw: string;
  /** The definition's backendAuth it was built for (frozen: identity is a change test). */
  readonly auth: UserOAuthAuth;
  readonly record: ConnectionRecord | undefined;
  /** The answer while the token is fresh. */
  readonly answer: CredentialAnswer;
  /** After this the token is not handed out (ms since epoch); Infinity when its life is unknown. */
  readonly staleAt: number;
  readonly refreshAt: number;
}

export class UserOAuth implements PersonalCredentialSource<UserOAuthAuth> {
  readonly #o: UserOAuthOptions;
  readonly #now: () => number;
  /** vault id → the answer built from its value. */
  readonly #opened = new Map<string, Opened>();
  /** vault id → the refresh in flight (one per connection, however many requests wait). */
  readonly #refreshing = new Map<string, Promise<void>>();
  readonly #clients: BackendOAuthClients;
  readonly #hash = cachedPersonHash();
  #timer: NodeJS.Timeout | undefined;
  #sweeping: Promise<unknown> | undefined;

  constructor(options: UserOAuthOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
    this.#clients = new BackendOAuthClients({
      vault: options.vault,
      publicUrl: options.publicUrl,
      callbackUrl: this.callbackUrl,
      clientMetadataUrl: this.clientMetadataUrl,
      ...(options.clientName !== undefined ? { clientName: options.clientName } : {}),
      env: options.env,
      discover: options.discover,
      ...(options.timeoutSeconds !== undefined ? { timeoutSeconds: options.timeoutSeconds } : {}),
      log: options.log,
    });
  }

  get callbackUrl(): string {
    return `${this.#o.publicUrl}${CONNECT_CALLBACK_PATH}`;
  }

  get clientMetadataUrl(): string {
    return `${this.#o.publicUrl}${CLIENT_METADATA_PATH}`;
  }

  /** The page a person connects at. */
  connectUrl(server: string): string {
    return `${this.#o.publicUrl}/servers/${server}/connect`;
  }

  /**
   * The Client ID Metadata Document (draft-ietf-oauth-client-id-metadata-document; MCP
   * 2025-11-25 Authorization, "Client ID Metadata Documents"): a public client using PKCE whose
   * client_id is this document's URL and whose only redirect URI is the gateway's callback.
   */
  clientMetadata(): Record<string, unknown> {
    return {
      client_id: this.clientMetadataUrl,
      client_name: this.#o.clientName ?? 'MCP Gateway',
      client_uri: this.#o.publicUrl,
      redirect_uris: [this.callbackUrl],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  }

  /** Starts the background refresher. */
  start(): void {
    const every = this.#o.refreshEveryMs ?? DEFAULT_REFRESH_EVERY_MS;
    const tick = () => {
      this.#sweeping ??= this.refreshDue()
        .catch((err: unknown) => this.#o.log.warn({ err: describe(err) }, 'backend connection refresher failed'))
        .finally(() => {
          this.#sweeping = undefined;
        });
    };
    this.#timer = setInterval(tick, every);
    this.#timer.unref();
  }

  async close(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#sweeping;
    await Promise.allSettled(this.#refreshing.values());
  }

  // ---- the check ----

  forCheck(def: ServerDefinition, auth: UserOAuthAuth, person: Person): CredentialAnswer | Promise<CredentialAnswer> {
    const id = connectionId(this.#hash(person), def.name);
    const raw = this.#o.vault.peek(id);
    if (raw === undefined) {
      this.#opened.delete(id);
      return this.#connectRequired(def, auth, `you have not connected your ${this.#provider(def, auth)} account for ${def.name}`);
    }
    let opened = this.#opened.get(id);
    // Built again when the stored value or the definition changed (its authorization server, its name for people).
    if (opened?.raw !== raw || opened.auth !== auth) {
      opened = this.#open(def, auth, raw);
      this.#opened.set(id, opened);
    }
    if (!opened.answer.ok || this.#now() < opened.staleAt) return opened.answer;
    // Past its refresh: the refresher was late (or this replica does not refresh). Refresh now
    // when this replica may, and answer with the outcome; else say it is being refreshed.
    const record = opened.record!;
    if (record.refreshToken === undefined)
      return this.#connectRequired(def, auth, `your ${this.#provider(def, auth)} token for ${def.name} expired and cannot be refreshed`);
    if (!(this.#o.mayRefresh?.() ?? true))
      return { ok: false, reason: `your ${this.#provider(def, auth)} token for ${def.name} is being refreshed: try again in a moment` };
    return this.#refresh(id, def, auth).then(() => {
      const now = this.#o.vault.peek(id);
      if (now === undefined) return this.#connectRequired(def, auth, `you have not connected your ${this.#provider(def, auth)} account for ${def.name}`);
      const again = this.#open(def, auth, now);
      this.#opened.set(id, again);
      if (again.answer.ok && this.#now() >= again.staleAt)
        return { ok: false, reason: `your ${this.#provider(def, auth)} token for ${def.name} could not be refreshed: try again in a moment` };
      return again.answer;
    });
  }

  /** Forgets every connection to a server (it was deleted): returns how many. */
  async forgetServer(server: string): Promise<number> {
    let removed = 0;
    for (const info of this.#o.vault.list()) {
      const parsed = parseConnectionId(info.id);
      if (parsed?.server !== server) continue;
      this.#opened.delete(info.id);
      if (await this.#o.vault.delete(info.id)) removed++;
    }
    this.#clients.forget(server);
    return removed;
  }

  /** How many people have connected to a server (never who). */
  count(server: string): number {
    return this.#o.vault.list().filter((i) => parseConnectionId(i.id)?.server === server).length;
  }

  // ---- the person's page and API ----

  status(def: ServerDefinition, person: Person): ConnectionStatus {
    const auth = userOAuthOf(def);
    const base = { server: def.name, provider: this.#provider(def, auth), connectUrl: this.connectUrl(def.name) };
    const raw = this.#o.vault.peek(connectionId(this.#hash(person), def.name));
    const record = raw === undefined ? undefined : decodeConnection(raw);
    if (!record) return { ...base, state: 'none' };
    const state =
      record.state === 'broken'
        ? 'broken'
        : record.expiresAt !== undefined && record.expiresAt <= this.#now() && !record.refreshToken
          ? 'expired'
          : 'connected';
    return {
      ...base,
      state,
      ...(record.account !== undefined ? { account: record.account } : {}),
      connectedAt: new Date(record.connectedAt).toISOString(),
      ...(record.refreshedAt !== undefined ? { refreshedAt: new Date(record.refreshedAt).toISOString() } : {}),
      ...(record.expiresAt !== undefined ? { expiresAt: new Date(record.expiresAt).toISOString() } : {}),
      ...(record.scope !== undefined ? { scope: record.scope } : {}),
      refreshable: record.refreshToken !== undefined,
      ...(record.problem !== undefined ? { problem: record.problem } : {}),
    };
  }

  /**
   * Starts a connect: the authorization URL to send the person's browser to, and what their
   * session keeps until the callback. Discovers and registers the client first when needed.
   * @throws GatewayError BACKEND_CREDENTIAL_FAILED naming what failed (never a secret).
   */
  async begin(def: ServerDefinition, person: Person): Promise<{ url: string; pending: PendingConnect }> {
    const auth = userOAuthOf(def);
    const settings = await this.#clients.settingsOf(def, auth);
    const config = await this.#clients.configuration(def, auth, settings);
    const codeVerifier = client.randomPKCECodeVerifier();
    const state = client.randomState();
    // OpenID Connect only where the server is one (it offers `openid` and publishes the keys its
    // ID tokens are checked with): its ID token says who connected.
    const oidc = (settings.metadata.scopes_supported ?? []).includes('openid') && settings.metadata.jwks_uri !== undefined;
    const nonce = oidc ? client.randomNonce() : undefined;
    const scope = [...(oidc ? ['openid'] : []), ...settings.scopes.filter((s) => s !== 'openid')].join(' ');
    // PKCE S256 is required of every MCP client (2025-06-18 Authorization §Authorization Code
    // Protection); the server's metadata may omit code_challenge_methods_supported (RFC 8414 §2).
    const methods = settings.metadata.code_challenge_methods_supported;
    if (methods !== undefined && !methods.includes('S256')) throw failed(`${settings.issuer} does not support PKCE with S256, which the gateway requires`);
    const parameters: Record<string, string> = {
      redirect_uri: this.callbackUrl,
      code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
      code_challenge_method: 'S256',
      state,
      ...(scope ? { scope } : {}),
      ...(nonce ? { nonce } : {}),
      // RFC 8707 §2.1: the token is for this backend only (MCP 2025-06-18 Authorization §Resource Parameter).
      ...(settings.resource ? { resource: settings.resource } : {}),
    };
    const url = client.buildAuthorizationUrl(config, parameters).href;
    return {
      url,
      pending: Object.freeze({
        server: def.name,
        state,
        codeVerifier,
        ...(nonce ? { nonce } : {}),
        issuer: settings.issuer,
        clientId: config.clientMetadata().client_id,
        ...(settings.resource ? { resource: settings.resource } : {}),
        personHash: this.#hash(person),
        createdAt: this.#now(),
      }),
    };
  }

  /**
   * Finishes a connect at the callback: checks state, the issuer (RFC 9207) and PKCE through
   * openid-client, exchanges the code and seals the tokens for the person.
   * @throws GatewayError LOGIN_STATE_INVALID for a callback that is not this person's pending
   * connect, BACKEND_CREDENTIAL_FAILED when the server refuses (its error code only).
   */
  async finish(query: URLSearchParams, pending: PendingConnect, person: Person): Promise<ConnectionStatus> {
    // The URL the server redirected to, from configuration (never the request's Host): its
    // origin and path are the redirect_uri openid-client sends with the code (RFC 6749 §4.1.3).
    const callbackUrl = new URL(`${this.callbackUrl}?${query.toString()}`);
    if (pending.personHash !== this.#hash(person) || this.#now() - pending.createdAt > PENDING_TTL_MS)
      throw new GatewayError('LOGIN_STATE_INVALID', 'This connect attempt expired or belongs to another sign-in: start again from the server page.');
    const def = this.#o.catalog.get(pending.server);
    if (!def || def.backendAuth?.type !== 'user_oauth') throw failed(`${pending.server} no longer takes per-user OAuth`);
    const auth = def.backendAuth;
    const error = callbackUrl.searchParams.get('error');
    if (error !== null)
      throw failed(
        error === 'access_denied'
          ? `${this.#provider(def, auth)} did not grant access (access_denied)`
          : `${this.#provider(def, auth)} answered ${/^[\x20-\x7e]{1,64}$/.test(error) ? error : 'an error'}`,
      );
    const settings = await this.#clients.settingsOf(def, auth);
    if (settings.issuer !== pending.issuer) throw failed(`${def.name}'s authorization server changed during the connect: start again`);
    const config = await this.#clients.configuration(def, auth, settings);
    if (config.clientMetadata().client_id !== pending.clientId) throw failed(`${def.name}'s client changed during the connect: start again`);
    const issuedAt = this.#now();
    let tokens: client.TokenEndpointResponse & client.TokenEndpointResponseHelpers;
    try {
      tokens = await client.authorizationCodeGrant(
        config,
        callbackUrl,
        {
          pkceCodeVerifier: pending.codeVerifier,
          expectedState: pending.state,
          ...(pending.nonce ? { expectedNonce: pending.nonce } : {}),
          idTokenExpected: false,
        },
        pending.resource ? { resource: pending.resource } : undefined,
      );
    } catch (err) {
      if (err instanceof client.ClientError && /state/i.test(err.message))
        throw new GatewayError('LOGIN_STATE_INVALID', 'This connect attempt does not match the one started: start again from the server page.');
      await this.#clients.forgetRegistrationIfRefused(def, auth, err);
      throw failed(redact(`the code exchange at ${settings.issuer} failed: ${describe(err)}`, pending.codeVerifier));
    }
    const record = this.#recordFrom(tokens, issuedAt, {
      issuer: settings.issuer,
      clientId: pending.clientId,
      ...(pending.resource ? { resource: pending.resource } : {}),
      connectedAt: issuedAt,
    });
    await this.#o.vault.put(connectionId(pending.personHash, def.name), encodeConnection(record));
    this.#o.log.info({ server: def.name, account: record.account }, 'backend account connected');
    return this.status(def, person);
  }

  /**
   * Removes a person's connection, revoking its tokens first where the server supports it
   * (RFC 7009: the refresh token, which revokes its access tokens, then the access token).
   */
  async disconnect(def: ServerDefinition, person: Person): Promise<{ removed: boolean; revoked: 'revoked' | 'unsupported' | 'failed' | 'nothing' }> {
    const auth = userOAuthOf(def);
    const id = connectionId(this.#hash(person), def.name);
    const raw = this.#o.vault.peek(id);
    const record = raw === undefined ? undefined : decodeConnection(raw);
    let revoked: 'revoked' | 'unsupported' | 'failed' | 'nothing' = 'nothing';
    const tokens = [record?.refreshToken, record?.accessToken].filter((t): t is string => t !== undefined);
    if (record && tokens.length > 0) {
      try {
        const settings = await this.#clients.settingsOf(def, auth);
        if (settings.metadata.revocation_endpoint === undefined) revoked = 'unsupported';
        else {
          const config = await this.#clients.configuration(def, auth, settings);
          if (record.refreshToken) await client.tokenRevocation(config, record.refreshToken, { token_type_hint: 'refresh_token' });
          // RFC 7009 §2.2.1: a server may not revoke access tokens (self-contained JWTs):
          // unsupported_token_type then; the refresh token, revoked above, ended the grant.
          if (record.accessToken)
            await client.tokenRevocation(config, record.accessToken, { token_type_hint: 'access_token' }).catch((err: unknown) => {
              if (!(err instanceof client.ResponseBodyError && err.error === 'unsupported_token_type' && record.refreshToken)) throw err;
            });
          revoked = 'revoked';
        }
      } catch (err) {
        revoked = 'failed';
        this.#o.log.warn({ server: def.name, problem: redact(describe(err), ...tokens) }, 'backend token revocation failed; the tokens are deleted anyway');
      }
    }
    this.#opened.delete(id);
    const removed = await this.#o.vault.delete(id);
    if (removed) this.#o.log.info({ server: def.name, revoked }, 'backend account disconnected');
    return { removed, revoked };
  }

  /** Refreshes every connection whose token is due (the lease holder's job). Returns how many were refreshed. */
  async refreshDue(): Promise<number> {
    if (!(this.#o.mayRefresh?.() ?? true)) return 0;
    let refreshed = 0;
    for (const info of this.#o.vault.list()) {
      const parsed = parseConnectionId(info.id);
      if (!parsed) continue;
      const def = this.#o.catalog.get(parsed.server);
      if (def?.backendAuth?.type !== 'user_oauth') continue;
      const raw = this.#o.vault.peek(info.id);
      const record = raw === undefined ? undefined : decodeConnection(raw);
      if (record?.state !== 'connected' || record.refreshToken === undefined) continue;
      // Due before the next sweep would come: a token whose margin is shorter than the sweep
      // period is refreshed one sweep early rather than served stale.
      if (this.#now() + (this.#o.refreshEveryMs ?? DEFAULT_REFRESH_EVERY_MS) < connectionSchedule(record).refreshAt) continue;
      await this.#refresh(info.id, def, def.backendAuth);
      refreshed++;
    }
    return refreshed;
  }

  // ---- inside ----

  /** One refresh per connection at a time; the outcome is in the vault (refreshed, or broken). */
  #refresh(id: string, def: ServerDefinition, auth: UserOAuthAuth): Promise<void> {
    let running = this.#refreshing.get(id);
    if (running) return running;
    running = this.#refreshOnce(id, def, auth).finally(() => this.#refreshing.delete(id));
    this.#refreshing.set(id, running);
    return running;
  }

  async #refreshOnce(id: string, def: ServerDefinition, auth: UserOAuthAuth): Promise<void> {
    const raw = this.#o.vault.peek(id);
    const record = raw === undefined ? undefined : decodeConnection(raw);
    if (record?.state !== 'connected' || record.refreshToken === undefined) return;
    const refreshToken = record.refreshToken;
    const issuedAt = this.#now();
    let tokens: client.TokenEndpointResponse & client.TokenEndpointResponseHelpers;
    try {
      const settings = await this.#clients.settingsOf(def, auth);
      const config = await this.#clients.configuration(def, auth, settings);
      tokens = await client.refreshTokenGrant(config, refreshToken, record.resource ? { resource: record.resource } : undefined);
    } catch (err) {
      // invalid_client: the server no longer knows the gateway's client (a registration it expired):
      // the next connect registers again.
      const refused = err instanceof client.ResponseBodyError && ['invalid_grant', 'unauthorized_client', 'invalid_client'].includes(err.error);
      await this.#clients.forgetRegistrationIfRefused(def, auth, err);
      const reason = redact(describe(err), refreshToken, record.accessToken);
      if (!refused) {
        // Transient (network, 5xx): keep the tokens and try again at the next sweep or request.
        this.#o.log.warn({ server: def.name, problem: reason }, 'backend token refresh failed; retrying later');
        return;
      }
      // RFC 6749 §5.2 invalid_grant: the refresh token is dead (revoked, expired, reused). The
      // person must connect again; the tokens are dropped.
      const broken: ConnectionRecord = {
        v: 1,
        issuer: record.issuer,
        clientId: record.clientId,
        ...(record.resource ? { resource: record.resource } : {}),
        issuedAt: record.issuedAt,
        ...(record.account !== undefined ? { account: record.account } : {}),
        connectedAt: record.connectedAt,
        ...(record.refreshedAt !== undefined ? { refreshedAt: record.refreshedAt } : {}),
        state: 'broken',
        problem: `${this.#provider(def, auth)} refused the refresh (${reason}) on ${new Date(issuedAt).toISOString()}: connect again`,
      };
      // Only if nobody changed it meanwhile (a new connect, a disconnect).
      if (this.#o.vault.peek(id) === raw) await this.#o.vault.put(id, encodeConnection(broken));
      this.#o.log.warn({ server: def.name, problem: reason }, 'backend connection broken: its authorization server refused the refresh');
      return;
    }
    const next = this.#recordFrom(tokens, issuedAt, record);
    // A rotating server (OAuth 2.1 §4.3.1) sent a new refresh token; keep the old one otherwise.
    const merged: ConnectionRecord = next.refreshToken === undefined ? { ...next, refreshToken } : next;
    if (this.#o.vault.peek(id) !== raw) return; // disconnected or reconnected meanwhile: theirs wins
    await this.#o.vault.put(id, encodeConnection({ ...merged, refreshedAt: issuedAt }));
  }

  #recordFrom(
    tokens: client.TokenEndpointResponse & client.TokenEndpointResponseHelpers,
    issuedAt: number,
    base: Pick<ConnectionRecord, 'issuer' | 'clientId' | 'resource' | 'connectedAt' | 'account'>,
  ): ConnectionRecord {
    // RFC 6749 §7.1 / RFC 6750: only bearer tokens can be sent as `Authorization: Bearer`.
    if (tokens.token_type.toLowerCase() !== 'bearer') throw failed(`${base.issuer} issued a "${tokens.token_type}" token, not a Bearer token`);
    const problem = credentialValueProblem(`Bearer ${tokens.access_token}`, MAX_UPLOADED_TOKEN_CHARS);
    if (problem) throw failed(`${base.issuer}'s access token cannot be sent: ${problem}`);
    const expiresIn = typeof tokens.expires_in === 'number' && tokens.expires_in > 0 ? tokens.expires_in : undefined;
    const account = accountOf(tokens.id_token ? tokens.claims() : undefined) ?? accountOf(unverifiedClaims(tokens.access_token)) ?? base.account;
    return {
      v: 1,
      issuer: base.issuer,
      clientId: base.clientId,
      ...(base.resource ? { resource: base.resource } : {}),
      accessToken: tokens.access_token,
      ...(tokens.refresh_token ? { refreshToken: tokens.refresh_token } : {}),
      ...(expiresIn !== undefined ? { expiresAt: issuedAt + expiresIn * 1000 } : {}),
      issuedAt,
      ...(typeof tokens.scope === 'string' ? { scope: tokens.scope } : {}),
      ...(account !== undefined ? { account } : {}),
      connectedAt: base.connectedAt,
      state: 'connected',
    };
  }

  #open(def: ServerDefinition, auth: UserOAuthAuth, raw: string): Opened {
    const record = decodeConnection(raw);
    const refused = (why: string): Opened => ({ raw, auth, record, staleAt: Infinity, refreshAt: Infinity, answer: this.#connectRequired(def, auth, why) });
    if (!record) return refused(`your connection to ${def.name} cannot be read`);
    if (record.state === 'broken') return refused(`your ${this.#provider(def, auth)} connection for ${def.name} is broken`);
    // The operator moved the server to another authorization server: the old one's tokens are not sent.
    if (auth.authorizationServer !== undefined && stripSlash(auth.authorizationServer) !== stripSlash(record.issuer))
      return refused(`${def.name} now uses another ${this.#provider(def, auth)} authorization server`);
    const headers: Headers = Object.freeze({ [SLOT_HEADER]: 'authorization', 'x-mcp-backend-authorization': `Bearer ${record.accessToken!}` });
    return { raw, auth, record, ...connectionSchedule(record), answer: Object.freeze({ ok: true, headers }) };
  }

  #connectRequired(def: ServerDefinition, auth: UserOAuthAuth, why: string): CredentialAnswer {
    const url = this.connectUrl(def.name);
    return { ok: false, reason: `${why}: connect at ${url}`, connect: url };
  }

  #provider(def: ServerDefinition, auth: UserOAuthAuth): string {
    return auth.provider ?? def.name;
  }
}

/** The user_oauth settings of a definition, or a clear refusal. */
function userOAuthOf(def: ServerDefinition): UserOAuthAuth {
  if (def.backendAuth?.type !== 'user_oauth')
    throw new GatewayError('REQUEST_INVALID', `${def.name} does not connect people's own accounts (its backendAuth is not "user_oauth")`, {
      fields: [{ field: '(server)', message: 'not user_oauth' }],
    });
  return def.backendAuth;
}
