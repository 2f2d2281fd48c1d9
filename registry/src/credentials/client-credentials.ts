import * as client from 'openid-client';
import { GatewayError } from '../errors.ts';
import {
  describeTokenError,
  rawExpiresIn,
  redact,
  schedule,
  tokenClientConfiguration,
  tokenEndpointMetadata,
  type TokenEndpointSpec,
} from './token-endpoint.ts';
import type { TokenSource } from './types.ts';

export { schedule, type TokenEndpointSpec };

export interface ClientCredentialsOptions {
  /** The backend's name: every error message names it. */
  readonly server: string;
  readonly endpoint: TokenEndpointSpec;
  readonly clientId: string;
  /** The client secret, read at each token request (the vault may rotate it); undefined when none is stored. */
  readonly secret: () => string | undefined;
  /**
   * RFC 6749 §2.3.1: Basic is the method every AS must support, so it is the default; with
   * discovery, post is chosen when the AS lists only client_secret_post.
   */
  readonly authMethod?: 'client_secret_basic' | 'client_secret_post';
  /** RFC 6749 §3.3 / §4.4.2, space-separated. */
  readonly scope?: string;
  /** RFC 8707 §2: the backend's resource indicator(s), absolute URIs. */
  readonly resource?: string | readonly string[];
  /** The non-standard `audience` parameter some ASes (Auth0, Okta custom) want instead of `resource`. */
  readonly audience?: string;
  /** Plain-http AS (loopback tests, development only). */
  readonly allowInsecureHttp?: boolean;
  /** Backoff after a failed token request: first delay and cap, ms. Default 1 s, 60 s. */
  readonly retry?: { readonly initialMs: number; readonly maxMs: number };
  /** Lifetime assumed when the AS sends no `expires_in`, seconds. Default 60. */
  readonly defaultLifetimeSeconds?: number;
  /** Per-request timeout, seconds. Default 10. */
  readonly timeoutSeconds?: number;
}

interface CachedToken {
  readonly value: string;
  /** After this, current() no longer hands it out (ms since epoch). */
  readonly staleAt: number;
  /** When the background refresh starts (ms since epoch). */
  readonly refreshAt: number;
}

/**
 * The gateway's own access token for one backend, from the OAuth 2.0 client credentials grant
 * (RFC 6749 §4.4) through openid-client: cached until shortly before it expires, refreshed in
 * the background while it is used, one token request however many callers wait for it.
 */
export class ClientCredentialsSource implements TokenSource {
  readonly #options: ClientCredentialsOptions;
  #metadata: Promise<client.ServerMetadata> | undefined;
  #token: CachedToken | undefined;
  /** Whether the cached token was handed out since it was fetched: idle backends get no refresh. */
  #used = false;
  #inflight: Promise<string> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #failures = 0;
  #lastError: GatewayError | undefined;
  /** No new token request (but for the scheduled retry) before this, after a failure (ms since epoch). */
  #backoffUntil = 0;
  #closed = false;

  constructor(options: ClientCredentialsOptions) {
    this.#options = options;
  }

  current(): string | undefined {
    const token = this.#token;
    if (!token || Date.now() >= token.staleAt) return undefined;
    this.#used = true;
    return token.value;
  }

  ensure(): Promise<string> {
    const cached = this.current();
    if (cached !== undefined) return Promise.resolve(cached);
    if (this.#inflight) return this.#inflight;
    // Right after a failure, callers get that failure again instead of each retrying the AS.
    if (this.#lastError && Date.now() < this.#backoffUntil) return Promise.reject(this.#lastError);
    return this.#fetch().then((value) => {
      this.#used = true;
      return value;
    });
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** One token request at a time: every caller meanwhile gets this one's outcome. */
  #fetch(): Promise<string> {
    this.#inflight ??= this.#request().finally(() => {
      this.#inflight = undefined;
    });
    return this.#inflight;
  }

  async #request(): Promise<string> {
    const { server } = this.#options;
    const secret = this.#options.secret();
    // Not a failure of the AS: no backoff, so the request right after the secret is stored succeeds.
    if (!secret) throw new GatewayError('BACKEND_CREDENTIAL_FAILED', `backend "${server}": no client secret stored`);
    // The lifetime runs from before the request is sent: expires_in counts from when the AS
    // issued the token (RFC 6749 §5.1), which is no earlier than this.
    const sentAt = Date.now();
    let tokens: client.TokenEndpointResponse;
    let tokenEndpoint = 'the token endpoint';
    try {
      const metadata = await this.#serverMetadata();
      tokenEndpoint = metadata.token_endpoint ?? tokenEndpoint;
      tokens = await client.clientCredentialsGrant(tokenClientConfiguration(metadata, secret, this.#options), this.#parameters());
    } catch (err) {
      throw this.#failed(
        new GatewayError(
          'BACKEND_CREDENTIAL_FAILED',
          redact(`backend "${server}": token request to ${tokenEndpoint} failed: ${describeTokenError(err)}`, secret),
        ),
      );
    }
    // RFC 6749 §5.1: a bearer token, or the client does not know how to use it.
    if (tokens.token_type.toLowerCase() !== 'bearer') {
      throw this.#failed(
        new GatewayError('BACKEND_CREDENTIAL_FAILED', `backend "${server}": ${tokenEndpoint} issued a "${tokens.token_type}" token, not a Bearer token`),
      );
    }
    this.#store(tokens.access_token, rawExpiresIn(tokens), sentAt);
    return tokens.access_token;
  }

  /** Discovered once; a failed discovery is forgotten so the next request tries again. */
  #serverMetadata(): Promise<client.ServerMetadata> {
    this.#metadata ??= tokenEndpointMetadata(this.#options.endpoint, this.#options).catch((err: unknown) => {
      this.#metadata = undefined;
      throw err;
    });
    return this.#metadata;
  }

  /** RFC 6749 §4.4.2 (scope), RFC 8707 §2 (resource, repeatable), and `audience`. */
  #parameters(): URLSearchParams {
    const { scope, resource, audience } = this.#options;
    const parameters = new URLSearchParams();
    if (scope) parameters.set('scope', scope);
    for (const r of typeof resource === 'string' ? [resource] : (resource ?? [])) parameters.append('resource', r);
    if (audience) parameters.set('audience', audience);
    return parameters;
  }

  #store(value: string, expiresIn: number | undefined, sentAt: number): void {
    // expires_in is RECOMMENDED, not required (RFC 6749 §5.1); without it, assume a short life.
    // The token itself is opaque to the client (RFC 6749 §1.4): its `exp` is not read.
    const lifetimeMs = (expiresIn ?? this.#options.defaultLifetimeSeconds ?? 60) * 1000;
    const { staleAt, refreshAt } = schedule(sentAt, lifetimeMs);
    this.#token = { value, staleAt, refreshAt };
    this.#used = false;
    this.#failures = 0;
    this.#lastError = undefined;
    this.#backoffUntil = 0;
    this.#arm(refreshAt - Date.now(), () => this.#refresh());
  }

  /** Shortly before the token goes stale: a new one, if the old one was used. */
  #refresh(): void {
    if (!this.#used) return; // idle: the next ensure() fetches
    this.#fetch().catch(() => {}); // #failed has armed the retry
  }

  #failed(error: GatewayError): GatewayError {
    this.#failures += 1;
    const { initialMs, maxMs } = this.#options.retry ?? { initialMs: 1000, maxMs: 60_000 };
    const delay = Math.min(maxMs, initialMs * 2 ** (this.#failures - 1));
    this.#lastError = error;
    this.#backoffUntil = Date.now() + delay;
    // Retry in the background while the cached token is in use and still served: the backend
    // should get a fresh one before it goes stale. After that, ensure() drives the retries.
    if (this.#token && this.#used && Date.now() < this.#token.staleAt) this.#arm(delay, () => this.#fetch().catch(() => {}));
    return error;
  }

  #arm(delayMs: number, run: () => void): void {
    clearTimeout(this.#timer);
    if (this.#closed) return;
    this.#timer = setTimeout(run, Math.max(0, delayMs));
    this.#timer.unref();
  }
}
