/**
 * The gateway's credential for each backend (issue 13), from its definition's `backendAuth`:
 * resolved per request for the check (memory only: the vault's `peek`, values of the
 * environment read at start, a token source's cached token), per health check for the monitor,
 * and described (never shown) for the page and API. Token sources are built per server from
 * its definition, rebuilt when the definition changes and closed when the server leaves.
 */
import type { Catalog } from '../catalog/catalog.ts';
import {
  clientSecretId,
  exchangeClientSecretId,
  headerSecretId,
  oauthClientSecretId,
  serverSecretPrefix,
  type BackendAuth,
  type ClientCredentialsAuth,
  type HeadersAuth,
  isPersonal,
  serviceClientSecretId,
  type PersonalAuth,
  type SecretSource,
  type TokenExchangeAuth,
  type UserOAuthAuth,
} from '../catalog/backend-auth.ts';
import type { ServerDefinition } from '../catalog/server-definition.ts';
import { GatewayError, type FieldProblem } from '../errors.ts';
import type { Logger } from '../log.ts';
import { credentialValueProblem, MAX_CREDENTIAL_TOTAL_CHARS } from './header-value.ts';
import type { SecretVault, TokenSource } from './types.ts';
import {
  BACKEND_CREDENTIAL_HEADER,
  BACKEND_SLOT_HEADER_PREFIX,
  bearerAnswer,
  headerSlotMap,
  type CredentialAnswer,
  type PersonalCredentialSource,
} from './answer.ts';
import { UploadedTokens, type UploadedTokenStatus } from './uploaded-credential.ts';
import type { Person } from './uploaded-tokens.ts';

/** What a token source for one server's client credentials needs (B's ClientCredentialsSource). */
export interface ClientCredentialsSpec {
  readonly server: string;
  /** Discovery (RFC 8414 / OIDC) from this issuer, or `tokenUrl` directly: exactly one is set. */
  readonly issuer: string | undefined;
  readonly tokenUrl: string | undefined;
  readonly clientId: string;
  /** Read at each token request, so a rotated secret is used from the next fetch. */
  readonly clientSecret: () => string | undefined;
  readonly scopes: readonly string[];
  readonly resource: string | undefined;
  readonly audience: string | undefined;
  readonly log: Logger;
}

/** What a token source may tell the page besides its token (optional: `TokenSource` does not require it). */
export interface TokenSourceStatus {
  /** ms since epoch: until when the cached token is used. */
  readonly expiresAt?: number;
}
export type StatusTokenSource = TokenSource & { status?(): TokenSourceStatus };
/** Builds the token source of one server; the composition root passes it in (B's ClientCredentialsSource). */
export type TokenSourceFactory = (spec: ClientCredentialsSpec) => StatusTokenSource;

/** One secret of a server as the page and API show it: never its value. */
export interface SecretStatus {
  /** The header name, or `client secret`. */
  readonly name: string;
  readonly source: 'vault' | 'env';
  readonly id?: string;
  readonly env?: string;
  readonly set: boolean;
  readonly updatedAt?: string;
  readonly keyId?: string;
}

export interface CredentialStatus {
  readonly server: string;
  readonly type: BackendAuth['type'];
  readonly secrets: readonly SecretStatus[];
  /** client_credentials only. */
  readonly token?: { readonly cachedUntil?: string; readonly lastError?: string; readonly lastFetchedAt?: string };
  /** uploaded only: how many people have uploaded a token (never whose, never a token). */
  readonly uploadedTokens?: number;
  /** user_oauth only: how many people have connected their account (never whose). */
  readonly connections?: number;
  /** token_exchange only: how many people have an exchanged token cached now (never whose, never a token). */
  readonly exchangedTokens?: number;
  /** Why the check cannot build the credential now (e.g. a header without a slot); undefined when it can. */
  readonly problem?: string;
}

export interface BackendCredentialsOptions {
  readonly catalog: Pick<Catalog, 'list' | 'get' | 'on' | 'off'>;
  /** Sealed secrets; absent until a vault is configured (then vault references are unset). */
  readonly vault: SecretVault | undefined;
  /** Values of the environment variables definitions may read (config: MCP_BACKEND_*, BACKEND_CREDENTIAL_ENV). */
  readonly env: Readonly<Record<string, string>>;
  /** Names of the variables BACKEND_CREDENTIAL_ENV allows besides MCP_BACKEND_*. */
  readonly envAllowed: readonly string[];
  /** BACKEND_CREDENTIAL_HEADERS: the header names nginx has slot h1.. for, in order. */
  readonly headerSlots: readonly string[];
  /** Token sources for client_credentials; absent: such servers answer BACKEND_CREDENTIAL_FAILED. */
  readonly tokenSources?: TokenSourceFactory;
  /** The per-person modes besides `uploaded`; a server of a mode without one answers BACKEND_CREDENTIAL_FAILED. */
  readonly personal?: {
    readonly user_oauth?: PersonalCredentialSource<UserOAuthAuth>;
    readonly token_exchange?: PersonalCredentialSource<TokenExchangeAuth>;
  };
  /** GATEWAY_PUBLIC_URL: the upload page an `uploaded` refusal names is built from it (never from a request's Host). */
  readonly publicUrl?: string;
  readonly now?: () => number;
  readonly log: Logger;
}

interface HeaderPart {
  readonly name: string;
  /** `authorization` or `h<N>`; undefined when nginx has no slot for this name. */
  readonly slot: string | undefined;
  readonly prefix: string;
  readonly source: SecretSource;
  readonly id: string;
  raw: string | undefined;
}

interface Entry {
  /** The definition's backendAuth this entry was built from (frozen: identity is a change test). */
  readonly auth: BackendAuth;
  readonly parts: HeaderPart[];
  readonly source?: StatusTokenSource;
  answer?: CredentialAnswer;
  /** client_credentials: the token the answer was built from. */
  token?: string;
  lastError?: string;
  lastFetchedAt?: number;
  /** The failure last logged, so a failing server logs once, not per request. */
  logged?: string;
}

/** How the page and API name a per-person server's service client secret. */
export const SERVICE_CLIENT_SECRET = 'service client secret';

/** The entries map's key prefix of a per-person server's service credential. */
const SERVICE_KEY = 'service\n';

/** Where a secret of `source` is read from now: the vault or the environment. */
type Reader = (id: string, source: SecretSource) => string | undefined;

/**
 * Problems of a definition that depend on this gateway's configuration: a header without an
 * nginx slot (BACKEND_CREDENTIAL_HEADERS), or an environment variable definitions may not read
 * (MCP_BACKEND_* and BACKEND_CREDENTIAL_ENV). Empty when none. The catalog refuses files with
 * these problems, and the page and API refuse such definitions.
 */
export function backendAuthProblems(
  def: Pick<ServerDefinition, 'backendAuth'>,
  config: { readonly headerSlots: readonly string[]; readonly envAllowed: readonly string[] },
): FieldProblem[] {
  const auth = def.backendAuth;
  const problems: FieldProblem[] = [];
  const env = (source: SecretSource, field: string) => {
    if (source !== 'vault' && !source.env.startsWith('MCP_BACKEND_') && !config.envAllowed.includes(source.env))
      problems.push({
        field,
        message: `${source.env} is not an environment variable definitions may read: name it MCP_BACKEND_..., or list it in BACKEND_CREDENTIAL_ENV`,
      });
  };
  if (auth?.type === 'headers') {
    const slots = new Set(['authorization', ...config.headerSlots.map((h) => h.toLowerCase())]);
    auth.headers.forEach((h, i) => {
      if (!slots.has(h.name.toLowerCase()))
        problems.push({
          field: `backendAuth.headers.${i}.name`,
          message: `${h.name} has no slot in nginx: use Authorization or one of BACKEND_CREDENTIAL_HEADERS (${config.headerSlots.join(', ') || 'none'}), or add it there and restart the gateway`,
        });
      env(h.from, `backendAuth.headers.${i}.from`);
    });
  } else if (auth?.type === 'client_credentials' || auth?.type === 'token_exchange') {
    env(auth.clientSecretFrom, 'backendAuth.clientSecretFrom');
  } else if (auth?.type === 'uploaded') {
    const slots = new Set(['authorization', ...config.headerSlots.map((h) => h.toLowerCase())]);
    if (!slots.has(auth.header.toLowerCase()))
      problems.push({
        field: 'backendAuth.header',
        message: `${auth.header} has no slot in nginx: use Authorization or one of BACKEND_CREDENTIAL_HEADERS (${config.headerSlots.join(', ') || 'none'}), or add it there and restart the gateway`,
      });
  }
  return problems;
}

export class BackendCredentials {
  readonly #o: BackendCredentialsOptions;
  readonly #entries = new Map<string, Entry>();
  readonly #slots: ReadonlyMap<string, string>;
  readonly #read: Reader;
  /** vault id → one person's opened token (uploaded mode); dropped when the vault has none. */
  readonly #uploaded: UploadedTokens;

  constructor(options: BackendCredentialsOptions) {
    this.#o = options;
    this.#slots = headerSlotMap(options.headerSlots);
    this.#uploaded = new UploadedTokens({
      vault: options.vault,
      headerSlots: options.headerSlots,
      publicUrl: options.publicUrl,
      ...(options.now ? { now: options.now } : {}),
    });
    this.#read = (id, source) => (source === 'vault' ? this.#o.vault?.peek(id) : this.#o.env[source.env]);
  }

  /** Follows the catalog: warms token sources of new servers, closes those of removed ones. */
  start(): void {
    this.#o.catalog.on('changed', this.#onChanged);
    this.#onChanged(this.#o.catalog.list());
  }

  close(): void {
    this.#o.catalog.off('changed', this.#onChanged);
    for (const entry of this.#entries.values()) entry.source?.close();
    this.#entries.clear();
  }

  readonly #onChanged = (definitions: readonly ServerDefinition[]): void => {
    const names = new Set<string>();
    for (const def of definitions) {
      names.add(def.name);
      if (def.backendAuth?.type === 'client_credentials') this.#entry(def, def.backendAuth);
    }
    for (const [key, entry] of this.#entries) {
      if (names.has(key.startsWith(SERVICE_KEY) ? key.slice(SERVICE_KEY.length) : key)) continue;
      entry.source?.close();
      this.#entries.delete(key);
    }
  };

  /**
   * The check's answer for a server it allows (hot path: memory only, and for a static secret a
   * map lookup and one comparison once the answer is built). undefined: no credential to add.
   * A failure logs once per server and reason; a missing token kicks a fetch in the background.
   * `person` is the caller (a personal access token's owner), undefined for a machine client:
   * an `uploaded` server sends that person's own token.
   * @throws GatewayError STORE_UNAVAILABLE from the vault (the check fails closed with 503).
   */
  forCheck(def: ServerDefinition, person?: Person): CredentialAnswer | Promise<CredentialAnswer> | undefined {
    const auth = def.backendAuth;
    if (auth === undefined || auth.type === 'none') return undefined;
    // Per person: a refusal is about this caller, not the server, so it is not logged as the server's.
    if (isPersonal(auth)) return this.#personalAnswer(def, auth, person);
    const entry = this.#entry(def, auth);
    if (auth.type === 'headers') {
      let changed = entry.answer === undefined;
      for (const part of entry.parts) {
        const raw = this.#read(part.id, part.source);
        if (raw !== part.raw) {
          part.raw = raw;
          changed = true;
        }
      }
      if (changed) entry.answer = this.#headersAnswer(def.name, entry);
    } else {
      const token = entry.source?.current();
      if (token === undefined) {
        this.#fetchSoon(entry);
        entry.answer = {
          ok: false,
          reason: entry.source
            ? `no valid token from the token endpoint${entry.lastError ? ` (${entry.lastError})` : ' yet'}`
            : 'client credentials are not available in this gateway',
        };
        entry.token = undefined;
      } else if (token !== entry.token || entry.answer === undefined) {
        entry.token = token;
        entry.answer = this.#tokenAnswer(token);
      }
    }
    const answer = entry.answer as CredentialAnswer;
    if (!answer.ok && entry.logged !== answer.reason) {
      entry.logged = answer.reason;
      this.#o.log.warn(
        { server: def.name, problem: answer.reason },
        'backend credential unavailable: MCP requests to this server answer 502 BACKEND_CREDENTIAL_FAILED',
      );
    } else if (answer.ok && entry.logged !== undefined) {
      entry.logged = undefined;
      this.#o.log.info({ server: def.name }, 'backend credential available again');
    }
    return answer;
  }

  /**
   * The headers a health check or tool discovery sends to the backend (real header names).
   * Fetches a token when none is cached.
   * @throws GatewayError BACKEND_CREDENTIAL_FAILED naming what failed, never a secret.
   */
  async forBackend(def: ServerDefinition): Promise<Record<string, string>> {
    const auth = def.backendAuth;
    if (auth === undefined || auth.type === 'none') return {};
    if (isPersonal(auth)) {
      if (auth.service === undefined)
        throw new GatewayError(
          'BACKEND_CREDENTIAL_FAILED',
          "this server takes each person's own credential, and its definition names no service credential (backendAuth.service) for the gateway's own calls",
        );
      return this.#forBackend(def, auth.service, true);
    }
    return this.#forBackend(def, auth, false);
  }

  async #forBackend(def: ServerDefinition, auth: HeadersAuth | ClientCredentialsAuth, service: boolean): Promise<Record<string, string>> {
    const entry = this.#entry(def, auth, service);
    if (auth.type === 'headers') {
      const out: Record<string, string> = {};
      for (const part of entry.parts) {
        const raw = this.#read(part.id, part.source);
        const value = this.#value(part, raw);
        if (!value.ok) throw new GatewayError('BACKEND_CREDENTIAL_FAILED', value.reason);
        out[part.name] = value.value;
      }
      return out;
    }
    if (!entry.source) throw new GatewayError('BACKEND_CREDENTIAL_FAILED', 'client credentials are not available in this gateway');
    const token = await this.#ensure(entry);
    const problem = credentialValueProblem(`Bearer ${token}`);
    if (problem) throw new GatewayError('BACKEND_CREDENTIAL_FAILED', `the token endpoint's access token cannot be sent: ${problem}`);
    return { Authorization: `Bearer ${token}` };
  }

  /** Problems of a definition that depend on this gateway's configuration (backendAuthProblems). */
  policy(def: Pick<ServerDefinition, 'backendAuth'>): FieldProblem[] {
    return backendAuthProblems(def, this.#o);
  }

  /**
   * What is set for a server, from where and when: never a value. A per-person server's service
   * credential (backendAuth.service) is listed after the mode's own secrets.
   */
  status(def: ServerDefinition): CredentialStatus {
    const own = this.#ownStatus(def);
    const auth = def.backendAuth;
    if (!isPersonal(auth) || auth.service === undefined) return own;
    const service = auth.service;
    const describe = this.#describer(def.name);
    const secrets =
      service.type === 'headers'
        ? service.headers.map((h) => describe(h.name, headerSecretId(def.name, h.name), h.from))
        : [describe(SERVICE_CLIENT_SECRET, serviceClientSecretId(def.name), service.clientSecretFrom)];
    return { ...own, secrets: [...own.secrets, ...secrets] };
  }

  /** Describes one secret of a server: where it comes from, whether and when it was set. */
  #describer(server: string): (name: string, id: string, source: SecretSource) => SecretStatus {
    const infos = new Map((this.#o.vault?.list() ?? []).filter((i) => i.id.startsWith(serverSecretPrefix(server))).map((i) => [i.id, i]));
    return (name, id, source) => {
      if (source !== 'vault') return { name, source: 'env', env: source.env, set: this.#o.env[source.env] !== undefined };
      const info = infos.get(id);
      return info
        ? { name, source: 'vault', id, set: true, updatedAt: new Date(info.updatedAt).toISOString(), keyId: info.keyId }
        : { name, source: 'vault', id, set: false };
    };
  }

  #ownStatus(def: ServerDefinition): CredentialStatus {
    const auth = def.backendAuth ?? { type: 'none' as const };
    const describe = this.#describer(def.name);
    const problems = this.policy(def);
    const base = { server: def.name, type: auth.type, ...(problems.length ? { problem: problems.map((p) => p.message).join('; ') } : {}) };
    if (auth.type === 'headers') return { ...base, secrets: auth.headers.map((h) => describe(h.name, headerSecretId(def.name, h.name), h.from)) };
    if (auth.type === 'client_credentials') {
      const entry = this.#entries.get(def.name);
      const expiresAt = entry?.source?.status?.().expiresAt;
      const token = {
        ...(expiresAt !== undefined && entry?.source?.current() !== undefined ? { cachedUntil: new Date(expiresAt).toISOString() } : {}),
        ...(entry?.lastError ? { lastError: entry.lastError } : {}),
        ...(entry?.lastFetchedAt ? { lastFetchedAt: new Date(entry.lastFetchedAt).toISOString() } : {}),
      };
      return { ...base, secrets: [describe('client secret', clientSecretId(def.name), auth.clientSecretFrom)], token };
    }
    if (auth.type === 'uploaded') return { ...base, secrets: [], uploadedTokens: this.#uploaded.count(def.name) };
    if (auth.type === 'user_oauth')
      return {
        ...base,
        secrets:
          typeof auth.client === 'object' && auth.client.clientSecretFrom !== undefined
            ? [describe('client secret', oauthClientSecretId(def.name), auth.client.clientSecretFrom)]
            : [],
        connections: this.#o.personal?.user_oauth?.count?.(def.name) ?? 0,
      };
    if (auth.type === 'token_exchange') {
      const count = this.#o.personal?.token_exchange?.count?.(def.name);
      return {
        ...base,
        secrets: [describe('client secret', exchangeClientSecretId(def.name), auth.clientSecretFrom)],
        ...(count === undefined ? {} : { exchangedTokens: count }),
      };
    }
    return { ...base, secrets: [] };
  }

  /**
   * Stores secrets of a server in the vault (write-only). `headers` by header name (any case);
   * a value that starts with the header's prefix has it removed (the prefix is added when sent).
   * @throws GatewayError REQUEST_INVALID naming the field (never the value), STORE_UNAVAILABLE without a vault.
   */
  async setSecrets(
    def: ServerDefinition,
    input: { headers?: Readonly<Record<string, string>>; clientSecret?: string; serviceClientSecret?: string },
  ): Promise<string[]> {
    const auth = def.backendAuth;
    const service = isPersonal(auth) ? auth.service : undefined;
    // A per-person server's service headers are set like the headers mode's (same vault ids).
    const headersAuth = auth?.type === 'headers' ? auth : service?.type === 'headers' ? service : undefined;
    const writes: [string, string][] = [];
    const problems: FieldProblem[] = [];
    for (const [name, given] of Object.entries(input.headers ?? {})) {
      const header = headersAuth?.headers.find((h) => h.name.toLowerCase() === name.toLowerCase());
      if (!header || header.from !== 'vault') {
        problems.push({ field: `headers.${name}`, message: `${name} is not a header of ${def.name}'s backendAuth that reads from the vault` });
        continue;
      }
      const prefix = header.prefix ?? '';
      const secret = prefix && given.toLowerCase().startsWith(prefix.toLowerCase()) ? given.slice(prefix.length) : given;
      const problem = credentialValueProblem(prefix + secret) ?? credentialValueProblem(secret);
      if (problem) problems.push({ field: `headers.${name}`, message: `the value cannot be sent as a header: ${problem}` });
      else writes.push([headerSecretId(def.name, header.name), secret]);
    }
    if (input.clientSecret !== undefined) {
      const id =
        (auth?.type === 'client_credentials' || auth?.type === 'token_exchange') && auth.clientSecretFrom === 'vault'
          ? auth.type === 'token_exchange'
            ? exchangeClientSecretId(def.name)
            : clientSecretId(def.name)
          : auth?.type === 'user_oauth' && typeof auth.client === 'object' && auth.client.clientSecretFrom === 'vault'
            ? oauthClientSecretId(def.name)
            : undefined;
      if (id === undefined) problems.push({ field: 'clientSecret', message: `${def.name}'s backendAuth takes no client secret from the vault` });
      else if (!/^[\x20-\x7e]{1,4096}$/.test(input.clientSecret))
        problems.push({ field: 'clientSecret', message: 'a client secret is 1-4096 printable ASCII characters' });
      else writes.push([id, input.clientSecret]);
    }
    if (input.serviceClientSecret !== undefined) {
      if (service?.type !== 'client_credentials' || service.clientSecretFrom !== 'vault')
        problems.push({ field: 'serviceClientSecret', message: `${def.name}'s backendAuth has no service client credentials that read from the vault` });
      else if (!/^[\x20-\x7e]{1,4096}$/.test(input.serviceClientSecret))
        problems.push({ field: 'serviceClientSecret', message: 'a client secret is 1-4096 printable ASCII characters' });
      else writes.push([serviceClientSecretId(def.name), input.serviceClientSecret]);
    }
    if (problems.length)
      throw new GatewayError('REQUEST_INVALID', `The credentials are not valid: ${problems.map((p) => `${p.field}: ${p.message}`).join('; ')}`, {
        fields: problems,
      });
    if (writes.length === 0)
      throw new GatewayError('REQUEST_INVALID', 'Name at least one secret: headers, clientSecret or serviceClientSecret.', {
        fields: [{ field: '(body)', message: 'empty' }],
      });
    const vault = this.#vault();
    for (const [id, value] of writes) await vault.put(id, value);
    this.#renew(def.name);
    return writes.map(([id]) => id);
  }

  /**
   * Removes every secret of a server from the vault; returns how many there were. `people`: the
   * tokens people uploaded for it too (when the server is deleted).
   */
  async clearSecrets(name: string, options: { people?: boolean } = {}): Promise<number> {
    const vault = this.#o.vault;
    if (!vault) return 0;
    let removed = 0;
    for (const info of vault.list()) if (info.id.startsWith(serverSecretPrefix(name)) && (await vault.delete(info.id))) removed++;
    if (options.people === true) {
      removed += await this.#uploaded.forgetServer(name);
      removed += (await this.#o.personal?.user_oauth?.forgetServer?.(name)) ?? 0;
      await this.#o.personal?.token_exchange?.forgetServer?.(name); // memory only: nothing sealed to count
    }
    this.#renew(name);
    return removed;
  }

  /** The upload page of a server, from GATEWAY_PUBLIC_URL. */
  uploadUrl(server: string): string {
    return this.#uploaded.uploadUrl(server);
  }

  /** A person's own token for an `uploaded` server: whether it is set, when, until when. Never the token. */
  myToken(def: ServerDefinition, person: Person): UploadedTokenStatus {
    return this.#uploaded.myToken(def, person);
  }

  /** Stores a person's token for an `uploaded` server, sealed, replacing theirs (UploadedTokens.setMyToken). */
  setMyToken(def: ServerDefinition, person: Person, input: { token: string; expiresAt?: string | undefined }): Promise<UploadedTokenStatus> {
    return this.#uploaded.setMyToken(def, person, input);
  }

  /** Removes a person's token for a server; true when there was one. */
  clearMyToken(def: ServerDefinition, person: Person): Promise<boolean> {
    return this.#uploaded.clearMyToken(def, person);
  }

  #personalAnswer(def: ServerDefinition, auth: PersonalAuth, person: Person | undefined): CredentialAnswer | Promise<CredentialAnswer> {
    if (person === undefined)
      return {
        ok: false,
        reason: `${def.name} uses each person's own credential, and a machine client has none: call it as a person (signed in, or with their personal access token)`,
      };
    if (auth.type === 'uploaded') return this.#uploaded.forCheck(def, auth, person);
    if (auth.type === 'user_oauth') {
      const source = this.#o.personal?.user_oauth;
      return source ? source.forCheck(def, auth, person) : { ok: false, reason: 'per-user OAuth is not available in this gateway' };
    }
    const source = this.#o.personal?.token_exchange;
    return source ? source.forCheck(def, auth, person) : { ok: false, reason: 'token exchange is not available in this gateway' };
  }

  #vault(): SecretVault {
    if (!this.#o.vault) throw new GatewayError('STORE_UNAVAILABLE', 'no secret vault is configured in this gateway');
    return this.#o.vault;
  }

  /** After a secret changed: the next request rebuilds the answer; a token source starts afresh with the new secret. */
  #renew(name: string): void {
    for (const key of [name, `${SERVICE_KEY}${name}`]) {
      this.#entries.get(key)?.source?.close();
      this.#entries.delete(key);
    }
    const auth = this.#o.catalog.get(name)?.backendAuth;
    const def = this.#o.catalog.get(name);
    if (def && auth?.type === 'client_credentials') this.#entry(def, auth);
    // Exchanged tokens hold nothing sealed: forgotten, so a refusal under the old secret is not served on.
    if (auth?.type === 'token_exchange') void this.#o.personal?.token_exchange?.forgetServer?.(name);
  }

  /**
   * The entry of a server, built again when its backendAuth changed (closing the old token
   * source). `service`: a per-person server's service credential (its own entry and client secret id).
   */
  #entry(def: ServerDefinition, auth: HeadersAuth | ClientCredentialsAuth, service = false): Entry {
    const key = service ? `${SERVICE_KEY}${def.name}` : def.name;
    const found = this.#entries.get(key);
    if (found !== undefined && found.auth === auth) return found;
    found?.source?.close();
    const entry: Entry =
      auth.type === 'headers'
        ? {
            auth,
            parts: auth.headers.map((h) => ({
              name: h.name,
              slot: this.#slots.get(h.name.toLowerCase()),
              prefix: h.prefix ?? '',
              source: h.from,
              id: headerSecretId(def.name, h.name),
              raw: undefined,
            })),
          }
        : auth.type === 'client_credentials'
          ? { auth, parts: [], ...this.#source(def.name, auth, service ? serviceClientSecretId(def.name) : clientSecretId(def.name)) }
          : { auth, parts: [] };
    this.#entries.set(key, entry);
    if (entry.source) this.#fetchSoon(entry);
    return entry;
  }

  #source(server: string, auth: ClientCredentialsAuth, id: string): { source?: StatusTokenSource } {
    const factory = this.#o.tokenSources;
    if (!factory) return {};
    const from = auth.clientSecretFrom;
    return {
      source: factory({
        server,
        issuer: auth.issuer,
        tokenUrl: auth.tokenUrl,
        clientId: auth.clientId,
        clientSecret: () => this.#read(id, from),
        scopes: auth.scopes,
        resource: auth.resource,
        audience: auth.audience,
        log: this.#o.log.child({ server }),
      }),
    };
  }

  /** Starts a token fetch in the background (the source shares one fetch among callers). */
  #fetchSoon(entry: Entry): void {
    this.#ensure(entry).catch(() => undefined);
  }

  async #ensure(entry: Entry): Promise<string> {
    const source = entry.source as StatusTokenSource;
    try {
      const token = await source.ensure();
      entry.lastError = undefined;
      entry.lastFetchedAt = Date.now();
      return token;
    } catch (err) {
      entry.lastError = err instanceof GatewayError ? err.message : 'the token request failed';
      throw err instanceof GatewayError ? err : new GatewayError('BACKEND_CREDENTIAL_FAILED', entry.lastError, { cause: err });
    }
  }

  #headersAnswer(server: string, entry: Entry): CredentialAnswer {
    const headers: Record<string, string> = {};
    const slots: string[] = [];
    let total = 0;
    for (const part of entry.parts) {
      if (part.slot === undefined) return { ok: false, reason: `${part.name} has no slot in nginx (BACKEND_CREDENTIAL_HEADERS)` };
      const value = this.#value(part, part.raw);
      if (!value.ok) return value;
      total += value.value.length;
      slots.push(part.slot);
      headers[BACKEND_SLOT_HEADER_PREFIX + part.slot] = value.value;
    }
    if (total > MAX_CREDENTIAL_TOTAL_CHARS)
      return { ok: false, reason: `the credential headers of ${server} are longer than ${MAX_CREDENTIAL_TOTAL_CHARS} characters together` };
    headers[BACKEND_CREDENTIAL_HEADER] = slots.join(' ');
    return Object.freeze({ ok: true, headers: Object.freeze(headers) });
  }

  #tokenAnswer(token: string): CredentialAnswer {
    return bearerAnswer(token);
  }

  /** The header value of one part, or why there is none. */
  #value(part: HeaderPart, raw: string | undefined): { ok: true; value: string } | { ok: false; reason: string } {
    if (raw === undefined)
      return {
        ok: false,
        reason:
          part.source === 'vault'
            ? `no secret is set for the header ${part.name} (set it on the server's page or with PUT .../credentials)`
            : `the environment variable ${part.source.env} for the header ${part.name} is not set`,
      };
    const value = part.prefix + raw;
    const problem = credentialValueProblem(value);
    if (problem) return { ok: false, reason: `the secret for the header ${part.name} cannot be sent: ${problem}` };
    return { ok: true, value };
  }
}
