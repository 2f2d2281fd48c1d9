/**
 * The gateway as a client at a `user_oauth` backend's authorization server (issue 13): where the
 * server is (the definition's settings, else discovered from the backend's RFC 9728 metadata and
 * the server's RFC 8414 / OIDC metadata), and which client the gateway is there (a Client ID
 * Metadata Document, a registration it made itself under RFC 7591, or a configured client).
 * The connect, refresh and revocation themselves are credentials/user-oauth.ts.
 */
import { discoverAuthorizationServerMetadata, registerClient } from '@modelcontextprotocol/sdk/client/auth.js';
import type { FetchLike } from '@modelcontextprotocol/sdk/shared/transport.js';
import * as client from 'openid-client';
import { oauthClientSecretId, oauthRegistrationId, type SecretSource, type UserOAuthAuth } from '../catalog/backend-auth.ts';
import type { ServerDefinition } from '../catalog/server-definition.ts';
import { GatewayError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { describeTokenError as describe, onlyPost } from './token-endpoint.ts';
import type { SecretVault } from './types.ts';

/** The backend's protected resource metadata and authorization server, discovered (mcp/discover-auth.ts, passed in). */
export type DiscoverResource = (
  mcpUrl: string,
  resourceMetadataUrl: string | undefined,
) => Promise<{
  readonly discovered?: { readonly resource: string; readonly issuer: string; readonly scopesSupported?: readonly string[] };
  readonly problem?: string;
}>;

export interface BackendOAuthClientsOptions {
  readonly vault: SecretVault;
  /** GATEWAY_PUBLIC_URL */
  readonly publicUrl: string;
  /** Where the authorization server sends people back: what a registration names. */
  readonly callbackUrl: string;
  /** The gateway's Client ID Metadata Document (its URL is the client_id). */
  readonly clientMetadataUrl: string;
  /** The name of the gateway at authorization servers (DCR `client_name`). */
  readonly clientName?: string;
  /** Values of the environment variables definitions may read (a configured client's secret). */
  readonly env: Readonly<Record<string, string>>;
  readonly discover: DiscoverResource;
  /** Per-request timeout at the authorization server, seconds. Default 10. */
  readonly timeoutSeconds?: number;
  readonly log: Logger;
}

/** Where a server's authorization server is, and what it supports. */
export interface Settings {
  readonly issuer: string;
  readonly metadata: client.ServerMetadata;
  readonly resource: string | undefined;
  readonly scopes: readonly string[];
}

/** The client the gateway registered at an authorization server (RFC 7591), sealed in the vault. */
interface Registration {
  readonly issuer: string;
  readonly redirectUri: string;
  readonly clientId: string;
  readonly clientSecret?: string;
  readonly authMethod: string;
}

export class BackendOAuthClients {
  readonly #o: BackendOAuthClientsOptions;
  /** server → its settings (by the definition's backendAuth object: a changed definition discovers again). */
  readonly #settings = new Map<string, { auth: UserOAuthAuth; settings: Promise<Settings> }>();

  constructor(options: BackendOAuthClientsOptions) {
    this.#o = options;
  }

  /** Forgets a server's settings (it was deleted). */
  forget(server: string): void {
    this.#settings.delete(server);
  }

  /** The authorization server and resource: the definition's, else discovered; cached per definition. */
  settingsOf(def: ServerDefinition, auth: UserOAuthAuth): Promise<Settings> {
    const found = this.#settings.get(def.name);
    if (found?.auth === auth) return found.settings;
    const settings = this.#discover(def, auth);
    this.#settings.set(def.name, { auth, settings });
    // A failed discovery is forgotten: the next attempt tries again.
    settings.catch(() => {
      if (this.#settings.get(def.name)?.settings === settings) this.#settings.delete(def.name);
    });
    return settings;
  }

  async #discover(def: ServerDefinition, auth: UserOAuthAuth): Promise<Settings> {
    const base = def.url.replace(/\/+$/, '');
    const mcpUrl = base + (def.transports['streamable-http'] ?? def.transports.sse ?? '');
    let issuer = auth.authorizationServer;
    let resource = auth.resource;
    let scopes: readonly string[] | undefined = auth.scopes;
    if (issuer === undefined || resource === undefined || scopes === undefined || auth.resourceMetadataUrl !== undefined) {
      const finding = await this.#o.discover(mcpUrl, auth.resourceMetadataUrl);
      if (!finding.discovered && issuer === undefined) throw failed(`cannot discover ${def.name}'s authorization server: ${finding.problem ?? 'no metadata'}`);
      issuer ??= finding.discovered?.issuer;
      resource ??= finding.discovered?.resource;
      scopes ??= finding.discovered?.scopesSupported;
    }
    let metadata: client.ServerMetadata | undefined;
    try {
      metadata = (await discoverAuthorizationServerMetadata(issuer!, { fetchFn: timeoutFetch(this.#o.timeoutSeconds ?? 10) })) as
        client.ServerMetadata | undefined;
    } catch (err) {
      throw failed(`cannot read ${issuer!}'s metadata: ${describe(err)}`);
    }
    if (!metadata) throw failed(`${issuer!} publishes no authorization server metadata (RFC 8414 or OpenID Connect)`);
    // RFC 8414 §3.3: the metadata is the issuer's own.
    if (stripSlash(metadata.issuer) !== stripSlash(issuer!)) throw failed(`${issuer!}'s metadata names another issuer (RFC 8414 §3.3)`);
    if (!metadata.authorization_endpoint || !metadata.token_endpoint) throw failed(`${issuer!}'s metadata has no authorization or token endpoint`);
    return Object.freeze({ issuer: metadata.issuer, metadata, resource: resource ?? mcpUrl, scopes: Object.freeze([...(scopes ?? [])]) });
  }

  /** The openid-client configuration of the gateway's client at the server (registering it first when needed). */
  async configuration(def: ServerDefinition, auth: UserOAuthAuth, settings: Settings): Promise<client.Configuration> {
    const { metadata } = settings;
    let clientId: string;
    let secret: string | undefined;
    let method: string;
    if (typeof auth.client === 'object') {
      clientId = auth.client.clientId;
      secret = auth.client.clientSecretFrom === undefined ? undefined : this.#secret(oauthClientSecretId(def.name), auth.client.clientSecretFrom);
      if (auth.client.clientSecretFrom !== undefined && secret === undefined)
        throw failed(`${def.name}'s OAuth client secret is not set (set it on the server page)`);
      method = secret === undefined ? 'none' : onlyPost(metadata) ? 'client_secret_post' : 'client_secret_basic';
    } else {
      const cimd = metadata['client_id_metadata_document_supported'] === true;
      const approach = auth.client === 'auto' ? (cimd ? 'metadata_document' : 'dynamic') : auth.client;
      if (approach === 'metadata_document') {
        if (!cimd) throw failed(`${settings.issuer} does not support Client ID Metadata Documents: configure a client (backendAuth.client)`);
        clientId = this.#o.clientMetadataUrl;
        method = 'none';
      } else {
        const registration = await this.#registration(def, settings);
        clientId = registration.clientId;
        secret = registration.clientSecret;
        method = registration.authMethod;
      }
    }
    const clientAuth =
      method === 'client_secret_post' ? client.ClientSecretPost(secret!) : method === 'client_secret_basic' ? client.ClientSecretBasic(secret!) : client.None();
    const config = new client.Configuration(metadata, clientId, { redirect_uris: [this.#o.callbackUrl] }, clientAuth);
    config.timeout = this.#o.timeoutSeconds ?? 10;
    // The definition allows plain http only to loopback (backend-auth.ts).
    if (new URL(settings.issuer).protocol === 'http:') client.allowInsecureRequests(config);
    return config;
  }

  /** The client registered at this server (RFC 7591), registering once per server and issuer. */
  async #registration(def: ServerDefinition, settings: Settings): Promise<Registration> {
    const id = oauthRegistrationId(def.name);
    const raw = this.#o.vault.peek(id);
    if (raw !== undefined) {
      try {
        const stored = JSON.parse(raw) as Registration;
        if (stored.issuer === settings.issuer && stored.redirectUri === this.#o.callbackUrl) return stored;
      } catch {
        // unreadable: register again
      }
    }
    const endpoint = settings.metadata.registration_endpoint;
    if (!endpoint)
      throw failed(`${settings.issuer} supports neither dynamic client registration nor Client ID Metadata Documents: configure a client (backendAuth.client)`);
    const methods = settings.metadata.token_endpoint_auth_methods_supported;
    // A public client with PKCE, as MCP clients register; a confidential one where the server takes no public clients.
    const authMethod =
      methods === undefined || methods.includes('none') ? 'none' : methods.includes('client_secret_basic') ? 'client_secret_basic' : 'client_secret_post';
    let info;
    try {
      info = await registerClient(settings.issuer, {
        metadata: settings.metadata as Parameters<typeof registerClient>[1]['metadata'],
        clientMetadata: {
          redirect_uris: [this.#o.callbackUrl],
          client_name: this.#o.clientName ?? 'MCP Gateway',
          client_uri: this.#o.publicUrl,
          grant_types: ['authorization_code', 'refresh_token'],
          response_types: ['code'],
          token_endpoint_auth_method: authMethod,
        },
        fetchFn: timeoutFetch(this.#o.timeoutSeconds ?? 10),
      });
    } catch (err) {
      throw failed(`dynamic client registration at ${endpoint} failed: ${describe(err)}`);
    }
    const registration: Registration = {
      issuer: settings.issuer,
      redirectUri: this.#o.callbackUrl,
      clientId: info.client_id,
      ...(info.client_secret ? { clientSecret: info.client_secret } : {}),
      authMethod: info.client_secret ? (info.token_endpoint_auth_method ?? authMethod) : 'none',
    };
    await this.#o.vault.put(id, JSON.stringify(registration));
    this.#o.log.info({ server: def.name, issuer: settings.issuer }, 'registered the gateway as a client at the backend authorization server (RFC 7591)');
    return registration;
  }

  /**
   * After the server refused the gateway's client (`invalid_client`, RFC 6749 §5.2): a
   * registration the gateway made itself is dropped, so the next connect registers afresh
   * rather than fail the same way forever. A configured client is the operator's to fix.
   */
  async forgetRegistrationIfRefused(def: ServerDefinition, auth: UserOAuthAuth, err: unknown): Promise<void> {
    if (!(err instanceof client.ResponseBodyError) || err.error !== 'invalid_client' || typeof auth.client === 'object') return;
    if (await this.#o.vault.delete(oauthRegistrationId(def.name)))
      this.#o.log.warn({ server: def.name }, "the authorization server refused the gateway's registered client; the next connect registers again");
  }

  #secret(id: string, source: SecretSource): string | undefined {
    return source === 'vault' ? this.#o.vault.peek(id) : this.#o.env[source.env];
  }
}

export function stripSlash(url: string): string {
  return url.replace(/\/+$/, '');
}

export function failed(message: string): GatewayError {
  return new GatewayError('BACKEND_CREDENTIAL_FAILED', message);
}

/** fetch with a deadline per request, for the SDK's discovery and registration. */
function timeoutFetch(seconds: number): FetchLike {
  return (url, init) => fetch(url, { ...init, signal: AbortSignal.timeout(seconds * 1000) });
}
