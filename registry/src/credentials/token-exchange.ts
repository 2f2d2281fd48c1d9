/**
 * Token exchange (RFC 8693, issue 13, `backendAuth.type: token_exchange`): the person's own
 * identity-provider token (the subject token, credentials/idp-tokens.ts) is exchanged at the
 * definition's token endpoint for a token scoped to the backend. The exchanged token is cached in
 * memory per person and server until shortly before it expires; the check reads the cache, and
 * only a miss (none yet, expired, a new subject token, a changed definition) makes a request,
 * one per person and server however many requests wait for it.
 */
import * as client from 'openid-client';
import { exchangeClientSecretId, type TokenExchangeAuth } from '../catalog/backend-auth.ts';
import type { ServerDefinition } from '../catalog/server-definition.ts';
import type { Logger } from '../log.ts';
import { bearerAnswer, type CredentialAnswer, type PersonalCredentialSource } from './answer.ts';
import type { IdpTokenRecord } from './idp-tokens.ts';
import {
  describeTokenError,
  rawExpiresIn,
  redact,
  schedule,
  tokenClientConfiguration,
  tokenEndpointMetadata,
  type TokenClientOptions,
} from './token-endpoint.ts';
import type { SecretVault } from './types.ts';
import type { Person } from './uploaded-tokens.ts';

/** RFC 8693 §2.1 grant type and §3 token type identifiers. */
export const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const TOKEN_TYPE = {
  access_token: 'urn:ietf:params:oauth:token-type:access_token',
  id_token: 'urn:ietf:params:oauth:token-type:id_token',
  jwt: 'urn:ietf:params:oauth:token-type:jwt',
} as const;
/**
 * The issued token types the gateway sends as a bearer access token: the one it asks for, and a
 * JWT (RFC 8693 §3: an access token in JWT form may be typed so). An ID token, a refresh token or
 * a SAML assertion is not an access token for the backend, so it is refused.
 */
const USABLE_ISSUED_TYPES: readonly string[] = [TOKEN_TYPE.access_token, TOKEN_TYPE.jwt];

/** One exchange, as the default (openid-client) or a test's exchanger gets it. */
export interface ExchangeRequest {
  readonly server: string;
  readonly auth: TokenExchangeAuth;
  readonly subjectToken: string;
  readonly clientSecret: string;
}
/** The exchanged token and its `expires_in` (seconds), when the AS gave one. */
export interface ExchangeResult {
  readonly accessToken: string;
  readonly expiresIn: number | undefined;
}
/** Rejects with an Error whose message says what failed, in words without secrets or tokens. */
export type Exchanger = (request: ExchangeRequest) => Promise<ExchangeResult>;

export interface TokenExchangeOptions {
  /** The person's current IdP tokens (memory only: the vault's peek). */
  readonly subjects: { peek(person: Person): IdpTokenRecord | undefined };
  /** The client secrets of `clientSecretFrom: "vault"` (exchangeClientSecretId). */
  readonly vault: SecretVault | undefined;
  /** The environment values definitions may read (`clientSecretFrom: { env }`). */
  readonly env: Readonly<Record<string, string>>;
  /** GATEWAY_PUBLIC_URL: a person without a usable IdP token is sent to its /login. */
  readonly publicUrl: string;
  readonly log: Logger;
  /** Default: RFC 8693 through openid-client. */
  readonly exchange?: Exchanger;
  readonly now?: () => number;
  /** Most cached tokens (people × servers); the oldest goes first. Default 10 000. */
  readonly maxEntries?: number;
  /** How long a refused exchange is answered from the cache before it is tried again, ms. Default 10 s. */
  readonly retryMs?: number;
  /** Lifetime assumed when neither the AS nor the subject token tells one, seconds. Default 60. */
  readonly defaultLifetimeSeconds?: number;
}

interface Cached {
  readonly auth: TokenExchangeAuth;
  /** The subject token this was exchanged from: another one (a new sign-in, a refresh) misses. */
  readonly subject: string;
  readonly answer: CredentialAnswer;
  /** Until when the answer is handed out (ms since epoch). */
  readonly until: number;
}

interface Pending {
  readonly auth: TokenExchangeAuth;
  readonly subject: string;
  readonly answer: Promise<CredentialAnswer>;
}

/** A subject token is not used in its last seconds: the exchange and the backend call take time. */
const SUBJECT_MARGIN_MS = 5_000;

export class TokenExchangeSource implements PersonalCredentialSource<TokenExchangeAuth> {
  readonly #o: TokenExchangeOptions;
  readonly #now: () => number;
  readonly #exchange: Exchanger;
  /** `server\nprovider\nsub` → the last answer (a token, or a refusal for retryMs). */
  readonly #cache = new Map<string, Cached>();
  readonly #pending = new Map<string, Pending>();
  /** Per token endpoint and client: its metadata, discovered once (forgotten when discovery fails). */
  readonly #metadata = new Map<string, Promise<client.ServerMetadata>>();
  /** Per server: the failure last logged, so a failing server logs once per reason, not per request. */
  readonly #logged = new Map<string, string>();

  constructor(options: TokenExchangeOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
    this.#exchange = options.exchange ?? ((request) => this.#rfc8693(request));
  }

  /**
   * The person's exchanged token for the server: memory only while one is cached; a promise only
   * when an exchange must be made. A person without a usable IdP token is sent to sign in again.
   */
  forCheck(def: ServerDefinition, auth: TokenExchangeAuth, person: Person): CredentialAnswer | Promise<CredentialAnswer> {
    const now = this.#now();
    const subject = this.#subject(auth, person, now);
    if ('reason' in subject) return { ok: false, reason: subject.reason, connect: this.#loginUrl() };
    const key = `${def.name}\n${person.provider}\n${person.sub}`;
    const cached = this.#cache.get(key);
    if (cached !== undefined && cached.auth === auth && cached.subject === subject.token && now < cached.until) return cached.answer;
    const pending = this.#pending.get(key);
    if (pending !== undefined && pending.auth === auth && pending.subject === subject.token) return pending.answer;
    const answer = this.#fetch(def.name, auth, subject, key).finally(() => {
      if (this.#pending.get(key)?.answer === answer) this.#pending.delete(key);
    });
    this.#pending.set(key, { auth, subject: subject.token, answer });
    return answer;
  }

  /** Forgets the cached tokens of a server (deleted, or its client secret changed). Nothing is sealed. */
  forgetServer(server: string): Promise<number> {
    let forgotten = 0;
    for (const key of [...this.#cache.keys()])
      if (key.startsWith(`${server}\n`)) {
        this.#cache.delete(key);
        forgotten++;
      }
    for (const key of [...this.#pending.keys()]) if (key.startsWith(`${server}\n`)) this.#pending.delete(key);
    this.#logged.delete(server);
    return Promise.resolve(forgotten);
  }

  /** How many people have an exchanged token for the server cached now (never whose). */
  count(server: string): number {
    const now = this.#now();
    let n = 0;
    for (const [key, cached] of this.#cache) if (key.startsWith(`${server}\n`) && cached.answer.ok && now < cached.until) n++;
    return n;
  }

  #loginUrl(): string {
    return `${this.#o.publicUrl}/login`;
  }

  /** The subject token the definition asks for, while it is valid; otherwise why there is none. */
  #subject(auth: TokenExchangeAuth, person: Person, now: number): { token: string; expiresAt: number | undefined } | { reason: string } {
    const record = this.#o.subjects.peek(person);
    const again = `sign in again at ${this.#loginUrl()}`;
    const kind = auth.subjectTokenType === 'id_token' ? 'ID token' : 'access token';
    if (record === undefined) return { reason: `the gateway holds no identity-provider token of yours to exchange: ${again}` };
    const token = auth.subjectTokenType === 'id_token' ? record.idToken : record.accessToken;
    const expiresAt = auth.subjectTokenType === 'id_token' ? record.idTokenExpiresAt : record.expiresAt;
    if (token === undefined) return { reason: `the identity provider gave the gateway no ${kind} of yours to exchange: ${again}` };
    if (expiresAt !== undefined && expiresAt - SUBJECT_MARGIN_MS <= now)
      return { reason: `your ${kind} from the identity provider expired at ${new Date(expiresAt).toISOString()}: ${again}` };
    return { token, expiresAt };
  }

  async #fetch(server: string, auth: TokenExchangeAuth, subject: { token: string; expiresAt: number | undefined }, key: string): Promise<CredentialAnswer> {
    const secret = auth.clientSecretFrom === 'vault' ? this.#o.vault?.peek(exchangeClientSecretId(server)) : this.#o.env[auth.clientSecretFrom.env];
    // Not the AS's refusal: not cached, so the request right after the secret is stored succeeds.
    if (!secret)
      return this.#failed(server, {
        ok: false,
        reason:
          auth.clientSecretFrom === 'vault'
            ? `no client secret is stored for ${server}'s token exchange (set it on the server's page or with PUT .../credentials)`
            : `the environment variable ${auth.clientSecretFrom.env} for ${server}'s token exchange client secret is not set`,
      });
    // expires_in counts from when the AS issued the token (RFC 6749 §5.1): no earlier than this.
    const sentAt = this.#now();
    let answer: CredentialAnswer;
    let until: number;
    try {
      const result = await this.#exchange({ server, auth, subjectToken: subject.token, clientSecret: secret });
      answer = bearerAnswer(result.accessToken);
      // Without expires_in, the exchanged token is taken to live as long as the subject token.
      const lifetimeMs =
        result.expiresIn !== undefined
          ? result.expiresIn * 1000
          : subject.expiresAt !== undefined && subject.expiresAt > sentAt
            ? subject.expiresAt - sentAt
            : (this.#o.defaultLifetimeSeconds ?? 60) * 1000;
      until = schedule(sentAt, lifetimeMs).staleAt;
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      answer = { ok: false, reason: redact(`token exchange for ${server} failed: ${why}`, secret, subject.token) };
      until = this.#now() + (this.#o.retryMs ?? 10_000);
    }
    // The definition or the person's subject token changed meanwhile: answer this caller, cache nothing.
    if (this.#pending.get(key)?.subject === subject.token && this.#pending.get(key)?.auth === auth)
      this.#remember(key, { auth, subject: subject.token, answer, until });
    return answer.ok ? this.#recovered(server, answer) : this.#failed(server, answer);
  }

  #remember(key: string, cached: Cached): void {
    this.#cache.delete(key);
    if (this.#cache.size >= (this.#o.maxEntries ?? 10_000)) this.#cache.delete(this.#cache.keys().next().value as string);
    this.#cache.set(key, cached);
  }

  #failed(server: string, answer: CredentialAnswer & { ok: false }): CredentialAnswer {
    if (this.#logged.get(server) !== answer.reason) {
      this.#logged.set(server, answer.reason);
      this.#o.log.warn({ server, problem: answer.reason }, 'token exchange failed: MCP requests of this person answer 502 BACKEND_CREDENTIAL_FAILED');
    }
    return answer;
  }

  #recovered(server: string, answer: CredentialAnswer): CredentialAnswer {
    if (this.#logged.delete(server)) this.#o.log.info({ server }, 'token exchange works again');
    return answer;
  }

  /** RFC 8693 §2.1 request and §2.2 response checks, through openid-client. */
  async #rfc8693({ auth, subjectToken, clientSecret }: ExchangeRequest): Promise<ExchangeResult> {
    const endpoint = auth.issuer !== undefined ? { issuer: auth.issuer } : { tokenEndpoint: auth.tokenUrl as string };
    // Plain http only where the definition schema allows it: loopback.
    const options: TokenClientOptions = { clientId: auth.clientId, allowInsecureHttp: (auth.issuer ?? auth.tokenUrl ?? '').startsWith('http:') };
    const metadataKey = `${auth.issuer ?? auth.tokenUrl}\n${auth.clientId}`;
    let metadata = this.#metadata.get(metadataKey);
    if (metadata === undefined) {
      metadata = tokenEndpointMetadata(endpoint, options).catch((err: unknown) => {
        this.#metadata.delete(metadataKey);
        throw err;
      });
      this.#metadata.set(metadataKey, metadata);
    }
    const tokenEndpoint = (await metadata).token_endpoint ?? 'the token endpoint';
    const parameters = new URLSearchParams({
      subject_token: subjectToken,
      subject_token_type: TOKEN_TYPE[auth.subjectTokenType],
      requested_token_type: TOKEN_TYPE.access_token,
    });
    if (auth.audience !== undefined) parameters.set('audience', auth.audience);
    if (auth.resource !== undefined) parameters.set('resource', auth.resource);
    if (auth.scopes.length > 0) parameters.set('scope', auth.scopes.join(' '));
    let tokens: client.TokenEndpointResponse;
    try {
      // openid-client accepts token_type Bearer (or DPoP) only: N_A (§2.2.1, not an access token) is refused there.
      tokens = await client.genericGrantRequest(tokenClientConfiguration(await metadata, clientSecret, options), TOKEN_EXCHANGE_GRANT, parameters);
    } catch (err) {
      throw new Error(`${tokenEndpoint} answered ${describeTokenError(err)}`);
    }
    if (tokens.token_type.toLowerCase() !== 'bearer') throw new Error(`${tokenEndpoint} issued a "${tokens.token_type}" token, not a Bearer token`);
    const issued = tokens['issued_token_type'];
    if (typeof issued !== 'string') throw new Error(`${tokenEndpoint} did not say which token it issued (issued_token_type, RFC 8693 §2.2.1)`);
    if (!USABLE_ISSUED_TYPES.includes(issued)) throw new Error(`${tokenEndpoint} issued a ${issued} token, not an access token`);
    return { accessToken: tokens.access_token, expiresIn: rawExpiresIn(tokens) };
  }
}
