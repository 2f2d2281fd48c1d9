import { randomBytes, type JsonWebKey } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, importJWK, jwtVerify } from 'jose';
import Provider, { errors, type Configuration as ProviderConfiguration, type KoaContextWithOIDC } from 'oidc-provider';
import * as client from 'openid-client';
import { CookieJar, jarFetch } from '../integration/cookie-jar.ts';
import { PROFILES, type IdpProfile, type ProfileDefinition, type UserRecord } from './idp-profiles.ts';
import { dispatcher, grantEverything, RESOURCE, resourceScopeOf, type Users } from './idp-routes.ts';

export type { IdpProfile } from './idp-profiles.ts';

export interface TestIdpUser {
  username: string;
  password: string;
  groups: string[];
}

export interface TestIdp {
  readonly profile: IdpProfile;
  readonly issuer: string;
  /** Base URL the issuer path hangs off, e.g. http://127.0.0.1:PORT */
  readonly origin: string;
  /** The gateway's confidential client. */
  readonly clientId: string;
  readonly clientSecret: string;
  /** A machine client allowed the client_credentials grant. */
  readonly m2mClientId: string;
  readonly m2mClientSecret: string;
  /** The audience access tokens carry (okta: 'api://default'; generic: 'mcp-gateway'; cognito: none). */
  readonly audience: string | undefined;
  /** Endpoint URLs (for the generic profile, which the gateway is configured with explicitly, without discovery). */
  readonly endpoints: { authorization: string; token: string; jwks: string; userinfo: string };
  setGroups(username: string, groups: string[]): void;
  /** Disables (or enables again) a user: while disabled, the IdP refuses their refresh tokens (invalid_grant) and sign-in. */
  setDisabled(username: string, disabled: boolean): void;
  /** A client-credentials access token for the m2m client (JWT). */
  clientCredentialsToken(): Promise<string>;
  /**
   * A user's tokens from a real authorization-code + PKCE flow, driven over HTTP (login form,
   * cookie jar) as the gateway's client id but with a redirect URI that belongs to the harness,
   * so no gateway is needed and the tokens are exactly what the gateway itself would get.
   */
  userTokens(username: string, options?: { app?: 'gateway' | 'other' }): Promise<{ accessToken: string; idToken: string; refreshToken?: string }>;
  /** Another application of the same IdP (client id), whose users' tokens carry the same issuer and audience. */
  readonly otherAppClientId: string;
  /** The private signing key and its kid, so tests can forge tokens. */
  readonly signingKey: { privateJwk: JsonWebKey & { kid: string }; alg: 'RS256' };
  close(): Promise<void>;
}

/** The harness's own redirect URI (never served: userTokens stops at the redirect). */
const TEST_CALLBACK_PATH = '/test-client/callback';
const M2M_TOKEN_TTL_SECONDS = 3600;

/**
 * Starts an OpenID provider (node-oidc-provider) on 127.0.0.1 and an ephemeral port, shaped
 * like Cognito, Okta or Keycloak (see idp-profiles.ts): same URL layout, client ids, scopes
 * and token claims, so a gateway that gets one of them wrong fails here as it would there.
 */
export async function startTestIdp(
  profile: IdpProfile,
  options: { redirectUri: string; users: TestIdpUser[]; accessTokenTtlSeconds?: number },
): Promise<TestIdp> {
  const def = PROFILES[profile];
  const ttl = options.accessTokenTtlSeconds ?? 300;
  const users = userTable(def, options.users);
  const key = await newSigningKey();
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const issuer = `${origin}${def.issuerPath}`;
  const secrets = { gateway: randomBytes(32).toString('base64url'), m2m: randomBytes(32).toString('base64url'), other: randomBytes(32).toString('base64url') };
  const testRedirectUri = `${origin}${TEST_CALLBACK_PATH}`;
  const provider = new Provider(
    issuer,
    providerConfiguration({ def, ttl, users, privateJwk: key.privateJwk, secrets, redirectUris: [options.redirectUri, testRedirectUri] }),
  );
  const publicKey = await importJWK(publicPart(key.privateJwk), 'RS256');
  const verifyUserAccessToken = (token: string) => jwtVerify(token, publicKey, { issuer, algorithms: ['RS256'] });
  server.on('request', dispatcher({ def, provider, users, verifyUserAccessToken }));

  const endpoints = {
    authorization: `${origin}${def.routes.authorization}`,
    token: `${origin}${def.routes.token}`,
    jwks: `${origin}${def.routes.jwks}`,
    userinfo: `${origin}${def.routes.userinfo}`,
  };
  const metadata: client.ServerMetadata = {
    issuer,
    authorization_endpoint: endpoints.authorization,
    token_endpoint: endpoints.token,
    jwks_uri: endpoints.jwks,
    userinfo_endpoint: endpoints.userinfo,
    authorization_response_iss_parameter_supported: true,
  };
  const configurationFor = (clientId: string, secret: string): client.Configuration => {
    const configuration = new client.Configuration(metadata, clientId, secret);
    client.allowInsecureRequests(configuration); // loopback http, test only
    return configuration;
  };

  return {
    profile,
    issuer,
    origin,
    clientId: def.gatewayClientId,
    clientSecret: secrets.gateway,
    m2mClientId: def.m2mClientId,
    m2mClientSecret: secrets.m2m,
    audience: def.audience,
    endpoints,
    signingKey: key,
    setGroups(username, groups) {
      const user = users.byUsername.get(username);
      if (!user) throw new Error(`test IdP: no user ${username}`);
      user.groups = [...groups];
    },
    setDisabled(username, disabled) {
      const user = users.byUsername.get(username);
      if (!user) throw new Error(`test IdP: no user ${username}`);
      if (disabled) users.byAccountId.delete(user.accountId);
      else users.byAccountId.set(user.accountId, user);
    },
    async clientCredentialsToken() {
      const tokens = await client.clientCredentialsGrant(configurationFor(def.m2mClientId, secrets.m2m), { scope: def.m2mScope });
      return tokens.access_token;
    },
    otherAppClientId: def.otherAppClientId,
    async userTokens(username, options = {}) {
      const user = users.byUsername.get(username);
      if (!user) throw new Error(`test IdP: no user ${username}`);
      const app = options.app === 'other' ? configurationFor(def.otherAppClientId, secrets.other) : configurationFor(def.gatewayClientId, secrets.gateway);
      return signIn(app, def.userScope, testRedirectUri, user);
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

interface ProviderSetup {
  readonly def: ProfileDefinition;
  readonly ttl: number;
  readonly users: Users;
  readonly privateJwk: JsonWebKey & { kid: string };
  readonly secrets: { gateway: string; m2m: string; other: string };
  readonly redirectUris: string[];
}

function providerConfiguration({ def, ttl, users, privateJwk, secrets, redirectUris }: ProviderSetup): ProviderConfiguration {
  const resourceScope = resourceScopeOf(def);
  return {
    clients: [
      {
        client_id: def.gatewayClientId,
        client_secret: secrets.gateway,
        redirect_uris: redirectUris,
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        require_auth_time: true,
      },
      { client_id: def.m2mClientId, client_secret: secrets.m2m, redirect_uris: [], grant_types: ['client_credentials'], response_types: [] },
      // Another application in the same org / pool / realm: its users' tokens have our issuer (and, at Okta, the same api://default audience).
      {
        client_id: def.otherAppClientId,
        client_secret: secrets.other,
        redirect_uris: redirectUris,
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        require_auth_time: true,
      },
    ],
    jwks: { keys: [privateJwk as Record<string, unknown>] } as ProviderConfiguration['jwks'],
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    pkce: { required: () => true }, // oidc-provider 9 supports S256 only
    responseTypes: ['code'],
    ttl: {
      AuthorizationCode: 60,
      Interaction: 600,
      Session: 86_400,
      Grant: 86_400,
      RefreshToken: 86_400,
      IdToken: ttl,
      AccessToken: ttl,
      ClientCredentials: M2M_TOKEN_TTL_SECONDS,
    },
    scopes: [...def.oidcScopes],
    claims: def.claimsByScope,
    conformIdTokenClaims: false, // scope claims (groups) go into the ID token, as all three IdPs do
    routes: { ...def.routes },
    features: {
      devInteractions: { enabled: false },
      pushedAuthorizationRequests: { enabled: false },
      clientCredentials: { enabled: true },
      revocation: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => RESOURCE,
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx: KoaContextWithOIDC, indicator: string, c) => {
          if (indicator !== RESOURCE) throw new errors.InvalidTarget();
          const m2m = c.clientId === def.m2mClientId;
          return {
            scope: resourceScope,
            audience: def.audience ?? RESOURCE,
            accessTokenFormat: 'jwt',
            accessTokenTTL: m2m ? M2M_TOKEN_TTL_SECONDS : ttl,
            jwt: { sign: { alg: 'RS256' } },
          };
        },
      },
    },
    formats: { customizers: { jwt: (_ctx, token, parts) => shapeAccessToken(def, users, token, parts) } },
    interactions: { url: (_ctx: KoaContextWithOIDC, interaction) => `${def.loginPath}/${interaction.uid}` },
    findAccount: (ctx: KoaContextWithOIDC, accountId: string) => {
      const user = users.byAccountId.get(accountId);
      // claims() runs at each issue, so group changes show in the next (refreshed) ID token.
      return user && { accountId, claims: () => def.accountClaims(user, ctx.oidc.client?.clientId) };
    },
    loadExistingGrant: (ctx: KoaContextWithOIDC) => {
      const { result, session, client: c, provider } = ctx.oidc;
      const grantId = result?.consent?.grantId ?? session?.grantIdFor(c!.clientId);
      return grantEverything(provider, def, session!.accountId!, c!.clientId, grantId);
    },
    issueRefreshToken: (_ctx, c, code) => c.grantTypeAllowed('refresh_token') && (!def.refreshNeedsOfflineAccess || code.scopes.has('offline_access')),
    rotateRefreshToken: def.rotateRefreshToken,
  };
}

type Customizer = NonNullable<NonNullable<NonNullable<ProviderConfiguration['formats']>['customizers']>['jwt']>;

/** Rewrites oidc-provider's JWT access token into the profile's shape, groups read live. */
function shapeAccessToken(def: ProfileDefinition, users: Users, token: Parameters<Customizer>[1], parts: Parameters<Customizer>[2]): void {
  const user = token.kind === 'AccessToken' ? users.byAccountId.get(token.accountId) : undefined;
  if (token.kind === 'AccessToken' && !user) throw new Error('test IdP: the account is gone');
  const p = parts.payload;
  const shaped = def.accessToken(
    {
      jti: String(p['jti']),
      iat: Number(p['iat']),
      exp: Number(p['exp']),
      iss: String(p['iss']),
      clientId: String(p['client_id']),
      scope: typeof p['scope'] === 'string' ? p['scope'] : '',
      user,
      sessionId: token.kind === 'AccessToken' ? (token.sid ?? token.sessionUid) : undefined,
    },
    def.audience,
  );
  for (const k of Object.keys(p)) delete p[k];
  for (const [k, v] of Object.entries(shaped.payload)) if (v !== undefined) p[k] = v;
  parts.header = shaped.header;
  if (def.audience === undefined) {
    // oidc-provider refuses to sign a JWT access token without `aud` (it checks after this
    // customizer). Cognito's have none: a non-enumerable placeholder passes that check, and
    // JSON.stringify, which builds the signed payload, skips it. The tests assert `aud` is absent.
    Object.defineProperty(p, 'aud', { value: RESOURCE, enumerable: false, writable: true, configurable: true });
  }
}

/** Walks authorize -> login form -> POST -> redirects -> callback, then redeems the code. */
async function signIn(
  configuration: client.Configuration,
  scope: string,
  redirectUri: string,
  user: UserRecord,
): Promise<{ accessToken: string; idToken: string; refreshToken?: string }> {
  const jar = new CookieJar();
  const pkceCodeVerifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const start = client.buildAuthorizationUrl(configuration, {
    redirect_uri: redirectUri,
    scope,
    code_challenge: await client.calculatePKCECodeChallenge(pkceCodeVerifier),
    code_challenge_method: 'S256',
    state,
    nonce,
  });
  let url = start.href;
  let init: RequestInit = {};
  for (let hop = 0; hop < 12; hop++) {
    const response = await jarFetch(jar, url, init);
    const body = await response.text();
    init = {};
    const location = response.headers.get('location');
    if (response.status >= 300 && response.status < 400 && location) {
      url = new URL(location, url).href;
      if (!url.startsWith(`${redirectUri}?`)) continue;
      const tokens = await client.authorizationCodeGrant(configuration, new URL(url), {
        pkceCodeVerifier,
        expectedState: state,
        expectedNonce: nonce,
        idTokenExpected: true,
      });
      return { accessToken: tokens.access_token, idToken: tokens.id_token ?? '', ...(tokens.refresh_token ? { refreshToken: tokens.refresh_token } : {}) };
    }
    const action = /<form[^>]*action="([^"]+)"/.exec(body)?.[1];
    if (response.status !== 200 || !action) throw new Error(`test IdP sign-in: ${response.status} at ${url}: ${body.slice(0, 300)}`);
    url = new URL(action.replaceAll('&amp;', '&'), url).href;
    init = {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ username: user.username, password: user.password }).toString(),
    };
  }
  throw new Error('test IdP sign-in: too many redirects');
}

function userTable(def: ProfileDefinition, list: readonly TestIdpUser[]): Users {
  const byUsername = new Map<string, UserRecord>();
  const byAccountId = new Map<string, UserRecord>();
  for (const u of list) {
    if (byUsername.has(u.username)) throw new Error(`test IdP: duplicate user ${u.username}`);
    const record: UserRecord = { accountId: def.accountIdFor(u.username), username: u.username, password: u.password, groups: [...u.groups], authTime: 0 };
    byUsername.set(u.username, record);
    byAccountId.set(record.accountId, record);
  }
  return { byUsername, byAccountId };
}

async function newSigningKey(): Promise<TestIdp['signingKey']> {
  const { privateKey } = await generateKeyPair('RS256', { extractable: true, modulusLength: 2048 });
  const kid = randomBytes(15).toString('base64url');
  return { privateJwk: { ...(await exportJWK(privateKey)), kid, alg: 'RS256', use: 'sig' } as JsonWebKey & { kid: string }, alg: 'RS256' };
}

/** The public members of an RSA JWK. */
export function publicPart(jwk: JsonWebKey & { kid: string }): { kty: string; n: string; e: string; kid: string; alg: 'RS256'; use: 'sig' } {
  return { kty: String(jwk.kty), n: String(jwk.n), e: String(jwk.e), kid: jwk.kid, alg: 'RS256', use: 'sig' };
}
