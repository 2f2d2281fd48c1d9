import type { OAuthClientProvider } from '@modelcontextprotocol/sdk/client/auth.js';
import type { OAuthClientInformationMixed, OAuthClientMetadata, OAuthTokens } from '@modelcontextprotocol/sdk/shared/auth.js';

/**
 * The storage half of an OAuthClientProvider as a client application writes one: client
 * information, tokens and the PKCE verifier in memory. Each test supplies the browser step
 * (`redirectToAuthorization`), which is what differs between them.
 */
export abstract class InMemoryOAuthProvider implements OAuthClientProvider {
  #tokens: OAuthTokens | undefined;
  #verifier = '';
  readonly redirectUrl: string;
  readonly clientMetadata: OAuthClientMetadata;
  /** Shareable between providers of one client application: it registers once per authorization server. */
  readonly client: { info?: OAuthClientInformationMixed | undefined };

  constructor(redirectUrl: string, clientMetadata: OAuthClientMetadata, client: { info?: OAuthClientInformationMixed | undefined } = {}) {
    this.redirectUrl = redirectUrl;
    this.clientMetadata = clientMetadata;
    this.client = client;
  }

  abstract redirectToAuthorization(url: URL): Promise<void>;

  /** The client information the SDK registered or was given. */
  get info(): OAuthClientInformationMixed | undefined {
    return this.client.info;
  }
  clientInformation() {
    return this.client.info;
  }
  saveClientInformation(info: OAuthClientInformationMixed) {
    this.client.info = info;
  }
  tokens() {
    return this.#tokens;
  }
  saveTokens(tokens: OAuthTokens) {
    this.#tokens = tokens;
  }
  saveCodeVerifier(verifier: string) {
    this.#verifier = verifier;
  }
  codeVerifier() {
    return this.#verifier;
  }
  /** The resource indicator is the MCP URL itself (RFC 8707), sent even without RFC 9728 metadata. */
  async validateResourceURL(serverUrl: string | URL) {
    return new URL(String(serverUrl));
  }
}

/** The metadata of a public client with a loopback redirect URI (what dynamic registration sends). */
export function publicClientMetadata(name: string, redirectUrl: string): OAuthClientMetadata {
  return {
    client_name: name,
    redirect_uris: [redirectUrl],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'none',
  };
}
