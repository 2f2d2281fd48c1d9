import * as client from 'openid-client';
import type { BearerRules } from './bearer-rules.ts';
import type { IdentityConfig } from '../config/load.ts';
import { OidcLogin } from './oidc-login.ts';
import type { IdentityProvider, LoginChallenge } from './provider.ts';

type ExternalConfig = Exclude<IdentityConfig, { type: 'dev' }>;

/** What makes one external IdP different from another; everything else is shared. */
export interface ProviderSpec {
  readonly name: 'cognito' | 'okta' | 'generic';
  readonly displayName: string;
  /** Server metadata without discovery (generic with explicit URLs); otherwise discovered. */
  readonly metadata?: client.ServerMetadata;
  /** The bearer rules, given the discovered configuration (for jwks_uri). */
  readonly bearer: ((configuration: () => Promise<client.Configuration>) => BearerRules) | undefined;
}

/**
 * An IdentityProvider for a real IdP: discovery (or explicit endpoints) and code + PKCE through
 * openid-client, bearer tokens per the spec's rules. Nothing is fetched until first use, so the
 * gateway starts while the IdP is briefly unreachable.
 */
export function createExternalProvider(config: ExternalConfig, spec: ProviderSpec): IdentityProvider {
  // HTTP Basic: the one method RFC 6749 (2.3.1) requires every server to support, and the
  // default of Cognito app clients, Okta apps and Keycloak clients.
  const clientAuth = config.clientSecret === undefined ? client.None() : client.ClientSecretBasic(config.clientSecret);
  const configure = async (): Promise<client.Configuration> => {
    const insecure = config.allowInsecureHttp ? { execute: [client.allowInsecureRequests] } : {};
    const configuration = spec.metadata
      ? new client.Configuration(spec.metadata, config.clientId, config.clientSecret, clientAuth)
      : await client.discovery(new URL(config.issuer), config.clientId, config.clientSecret, clientAuth, insecure);
    if (config.allowInsecureHttp) client.allowInsecureRequests(configuration);
    // Verify the ID token's signature against the IdP's JWKS, not only its claims: openid-client
    // otherwise relies on TLS to the token endpoint (OIDC Core 3.1.3.7) and skips it.
    client.enableNonRepudiationChecks(configuration);
    return configuration;
  };
  const login = new OidcLogin({ configuration: configure, scope: config.scope, groupsClaim: config.groupsClaim });
  const configuration = () => login.configuration();
  return {
    name: spec.name,
    displayName: spec.displayName,
    redirectUri: config.redirectUri,
    startLogin: (uri: string) => login.startLogin(uri),
    finishLogin: (url: URL, expected: Omit<LoginChallenge, 'url'>, uri: string) => login.finishLogin(url, expected, uri),
    refresh: (token: string) => login.refresh(token),
    bearer: spec.bearer?.(configuration),
  };
}

/** The discovered (or configured) JWKS URL. */
export async function jwksUriOf(configuration: () => Promise<client.Configuration>): Promise<string> {
  const uri = (await configuration()).serverMetadata().jwks_uri;
  if (!uri) throw new Error('the identity provider publishes no jwks_uri');
  return uri;
}
