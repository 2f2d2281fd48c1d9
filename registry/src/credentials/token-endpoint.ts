/**
 * What the gateway's token requests share (client credentials and token exchange, issue 13):
 * finding the token endpoint (discovery or the URL itself), the openid-client configuration with
 * the client's secret, and error messages that name what failed without any secret.
 */
import * as client from 'openid-client';

/** How the gateway finds the token endpoint: discovery under an issuer, or the URL itself. */
export type TokenEndpointSpec =
  /** OIDC discovery (`oidc`, the default) or RFC 8414 AS metadata (`oauth2`) under this issuer. */
  | { readonly issuer: string; readonly discovery?: 'oidc' | 'oauth2' }
  /** The token endpoint, without discovery. */
  | { readonly tokenEndpoint: string };

export interface TokenClientOptions {
  readonly clientId: string;
  /**
   * RFC 6749 §2.3.1: Basic is the method every AS must support, so it is the default; with
   * discovery, post is chosen when the AS lists only client_secret_post.
   */
  readonly authMethod?: 'client_secret_basic' | 'client_secret_post' | undefined;
  /** Plain-http AS (loopback tests, development only). */
  readonly allowInsecureHttp?: boolean | undefined;
  /** Per-request timeout, seconds. Default 10. */
  readonly timeoutSeconds?: number | undefined;
}

/**
 * The AS metadata: discovered (openid-client checks the document's issuer is the one asked for,
 * RFC 8414 §3.3, OIDC Discovery §4.3), or just the token endpoint. Callers cache the promise and
 * forget it when it rejects, so the next request tries again.
 * @throws Error naming the issuer and why (no secret: discovery sends none).
 */
export async function tokenEndpointMetadata(endpoint: TokenEndpointSpec, options: TokenClientOptions): Promise<client.ServerMetadata> {
  if ('tokenEndpoint' in endpoint) {
    // No discovery: openid-client wants an issuer; it is only compared with ID tokens and
    // JWT responses, which these grants never get.
    return { issuer: new URL(endpoint.tokenEndpoint).origin, token_endpoint: endpoint.tokenEndpoint };
  }
  try {
    const configuration = await client.discovery(new URL(endpoint.issuer), options.clientId, undefined, undefined, {
      algorithm: endpoint.discovery ?? 'oidc',
      timeout: options.timeoutSeconds ?? 10,
      ...(options.allowInsecureHttp ? { execute: [client.allowInsecureRequests] } : {}),
    });
    return configuration.serverMetadata();
  } catch (err) {
    throw new Error(`discovery at ${endpoint.issuer} failed (${describeTokenError(err)})`);
  }
}

/** The client's configuration with its secret: built at each request, as the secret may have changed since the last one. */
export function tokenClientConfiguration(metadata: client.ServerMetadata, secret: string, options: TokenClientOptions): client.Configuration {
  const method = options.authMethod ?? (onlyPost(metadata) ? 'client_secret_post' : 'client_secret_basic');
  // Both encode per RFC 6749 §2.3.1 (Basic form-urlencodes id and secret before base64).
  const auth = method === 'client_secret_post' ? client.ClientSecretPost(secret) : client.ClientSecretBasic(secret);
  const configuration = new client.Configuration(metadata, options.clientId, undefined, auth);
  configuration.timeout = options.timeoutSeconds ?? 10;
  if (options.allowInsecureHttp) client.allowInsecureRequests(configuration);
  return configuration;
}

/** The server takes the client secret in the body only (client_secret_post, not Basic). */
export function onlyPost(metadata: client.ServerMetadata): boolean {
  const methods = metadata.token_endpoint_auth_methods_supported;
  return !!methods && methods.includes('client_secret_post') && !methods.includes('client_secret_basic');
}

/** The raw expires_in, seconds: not openid-client's expiresIn(), which floors the time left after receipt. */
export function rawExpiresIn(tokens: client.TokenEndpointResponse): number | undefined {
  return typeof tokens.expires_in === 'number' && tokens.expires_in > 0 ? tokens.expires_in : undefined;
}

/**
 * When a token fetched at `sentAt` with `lifetimeMs` stops being handed out, and when its
 * successor is fetched. The margin, 10 % of the lifetime between 1 s and 60 s, covers the
 * request in flight to the backend, clock drift, and expires_in's whole seconds (an AS that
 * floors its clock issues tokens whose `exp` is up to 1 s before sentAt + expires_in). The
 * refresh starts half a margin earlier still, so a cached token is there while it runs.
 */
export function schedule(sentAt: number, lifetimeMs: number): { staleAt: number; refreshAt: number } {
  const margin = Math.min(60_000, Math.max(1000, lifetimeMs / 10));
  const staleAt = sentAt + lifetimeMs - margin;
  return { staleAt, refreshAt: staleAt - margin / 2 };
}

/**
 * What went wrong, from the AS's answer: its HTTP status and OAuth error code (RFC 6749 §5.2),
 * never a request detail. error_description is left out: it is the AS's free text.
 */
export function describeTokenError(err: unknown): string {
  if (err instanceof client.ResponseBodyError) return `${err.status} ${err.error}`;
  if (err instanceof client.WWWAuthenticateChallengeError) {
    const code = err.cause[0]?.parameters.error;
    return `${err.status}${code ? ` ${code}` : ''}`;
  }
  if (err instanceof Error && err.cause instanceof Response) return `HTTP ${err.cause.status}`;
  if (err instanceof Error && err.name === 'TimeoutError') return 'timed out';
  if (err instanceof Error) {
    const cause = err.cause instanceof Error ? ` (${(err.cause as NodeJS.ErrnoException).code ?? err.cause.message})` : '';
    return `${err.message}${cause}`;
  }
  return String(err);
}

/** Belt and braces: a message never carries a secret, whatever an error echoed. */
export function redact(message: string, ...secrets: readonly (string | undefined)[]): string {
  let out = message;
  for (const secret of secrets)
    if (secret !== undefined && secret.length >= 4) out = out.replaceAll(secret, '[redacted]').replaceAll(encodeURIComponent(secret), '[redacted]');
  return out;
}
