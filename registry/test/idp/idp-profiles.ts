import { createHash, randomUUID } from 'node:crypto';

/**
 * What makes each test identity provider look like the real one: URL layout, client ids,
 * scopes, and the exact claim shapes of its ID tokens, access tokens, client-credentials tokens
 * and userinfo answers. Pure data and pure functions; test-idp.ts wires them into oidc-provider.
 */
export type IdpProfile = 'cognito' | 'okta' | 'generic';

export interface UserRecord {
  readonly accountId: string;
  readonly username: string;
  readonly password: string;
  groups: readonly string[];
  /** Epoch seconds of the last password login (auth_time). */
  authTime: number;
}

/** The parts of an access token oidc-provider decided (ids, times); the profile shapes the rest. */
export interface AccessTokenInput {
  readonly jti: string;
  readonly iat: number;
  readonly exp: number;
  readonly iss: string;
  readonly clientId: string;
  readonly scope: string;
  /** Undefined for a client-credentials token. */
  readonly user: UserRecord | undefined;
  readonly sessionId: string | undefined;
}

export interface ShapedJwt {
  /** Merged over oidc-provider's header; `typ: undefined` removes its `at+jwt`. */
  readonly header: Record<string, unknown>;
  readonly payload: Record<string, unknown>;
}

export interface ProfileDefinition {
  /** The issuer is origin + issuerPath. */
  readonly issuerPath: string;
  /** oidc-provider routes: absolute paths on the origin (the provider is mounted at /). */
  readonly routes: {
    readonly authorization: string;
    readonly token: string;
    readonly userinfo: string;
    readonly jwks: string;
    readonly revocation: string;
    readonly end_session: string;
    readonly introspection: string;
  };
  /** Discovery documents served under the issuer path ([] = none: the gateway must be told the endpoints). */
  readonly discoveryPaths: readonly string[];
  /** Where the login form lives: <loginPath>/<interaction uid>. */
  readonly loginPath: string;
  readonly gatewayClientId: string;
  readonly m2mClientId: string;
  /** Another application of the same IdP (authorization code), neither the gateway nor in the mapping. */
  readonly otherAppClientId: string;
  /** The `aud` of access tokens; undefined where the real IdP puts none (Cognito). */
  readonly audience: string | undefined;
  /** Scopes userTokens asks for (what a correctly configured gateway asks for). */
  readonly userScope: string;
  /** Scopes clientCredentialsToken asks for. */
  readonly m2mScope: string;
  /** Static OIDC scopes the IdP knows. */
  readonly oidcScopes: readonly string[];
  /** oidc-provider `claims`: which account claims each scope releases (into the ID token too). */
  readonly claimsByScope: Record<string, string[]>;
  /** Okta issues refresh tokens only when `offline_access` was requested. */
  readonly refreshNeedsOfflineAccess: boolean;
  /** Cognito does not rotate refresh tokens by default; Okta and Keycloak return a new one. */
  readonly rotateRefreshToken: boolean;
  accountIdFor(username: string): string;
  /** Every claim the account could release; oidc-provider keeps those the scopes allow. */
  accountClaims(user: UserRecord, clientId: string | undefined): Record<string, unknown> & { sub: string };
  accessToken(input: AccessTokenInput, audience: string | undefined): ShapedJwt;
  /** The accountId a verified access token speaks for, if it is a user's access token. */
  accountIdOf(payload: Record<string, unknown>): string | undefined;
  userinfo(user: UserRecord): Record<string, unknown>;
}

export const PROFILES: Readonly<Record<IdpProfile, ProfileDefinition>> = {
  cognito: cognitoProfile(),
  okta: oktaProfile(),
  generic: genericProfile(),
};

/**
 * Amazon Cognito user pool (us-east-1_TestPool1). Issuer <origin>/<poolId>; the hosted-UI
 * endpoints (/oauth2/authorize, /oauth2/token, /oauth2/userInfo) are on the origin, not under
 * the issuer; the JWKS is <issuer>/.well-known/jwks.json. Access tokens carry no `aud`;
 * `cognito:groups` is absent (not empty) when the user is in no group.
 */
function cognitoProfile(): ProfileDefinition {
  const pool = 'us-east-1_TestPool1';
  const groups = (user: UserRecord) => (user.groups.length > 0 ? { 'cognito:groups': [...user.groups] } : {});
  return {
    issuerPath: `/${pool}`,
    routes: {
      authorization: '/oauth2/authorize',
      token: '/oauth2/token',
      userinfo: '/oauth2/userInfo',
      jwks: `/${pool}/.well-known/jwks.json`,
      revocation: '/oauth2/revoke',
      end_session: '/logout',
      introspection: '/oauth2/introspect',
    },
    discoveryPaths: ['/.well-known/openid-configuration'],
    loginPath: '/login',
    gatewayClientId: '4gatewaytestclient0000000a',
    m2mClientId: '7machinetestclient0000000b',
    otherAppClientId: '2otherapptestclient00000c',
    audience: undefined,
    userScope: 'openid email profile',
    m2mScope: 'mcp-gateway/invoke',
    oidcScopes: ['openid', 'offline_access', 'profile', 'email'],
    claimsByScope: {
      openid: ['sub', 'cognito:groups', 'cognito:username', 'token_use', 'origin_jti', 'event_id'],
      email: ['email', 'email_verified'],
      profile: [],
    },
    refreshNeedsOfflineAccess: false,
    rotateRefreshToken: false,
    accountIdFor: (username) => uuidFrom(`cognito:${username}`),
    accountClaims: (user) => ({
      sub: user.accountId,
      ...groups(user),
      email_verified: true,
      'cognito:username': user.username,
      origin_jti: randomUUID(),
      event_id: randomUUID(),
      token_use: 'id',
      email: emailOf(user.username),
    }),
    accessToken: ({ jti, iat, exp, iss, clientId, scope, user }) => ({
      header: { typ: undefined },
      payload: user
        ? {
            sub: user.accountId,
            ...groups(user),
            iss,
            version: 2,
            client_id: clientId,
            origin_jti: randomUUID(),
            event_id: randomUUID(),
            token_use: 'access',
            scope,
            auth_time: user.authTime,
            exp,
            iat,
            jti,
            username: user.username,
          }
        : { sub: clientId, token_use: 'access', scope, auth_time: iat, iss, exp, iat, version: 2, jti, client_id: clientId },
    }),
    accountIdOf: (p) => (p['token_use'] === 'access' && typeof p['username'] === 'string' && typeof p.sub === 'string' ? p.sub : undefined),
    // Cognito's userInfo returns user attributes; group membership is not an attribute.
    userinfo: (user) => ({ sub: user.accountId, email_verified: 'true', email: emailOf(user.username), username: user.username }),
  };
}

/**
 * Okta custom authorization server "default": issuer <origin>/oauth2/default, endpoints under
 * <issuer>/v1/. ID token `sub` is the user id (00u...); the access token's `sub` is the login
 * (an email), the user id is `uid`, the client `cid`, scopes an array `scp`. No refresh token
 * unless `offline_access` is requested.
 */
function oktaProfile(): ProfileDefinition {
  const base = '/oauth2/default';
  return {
    issuerPath: base,
    routes: {
      authorization: `${base}/v1/authorize`,
      token: `${base}/v1/token`,
      userinfo: `${base}/v1/userinfo`,
      jwks: `${base}/v1/keys`,
      revocation: `${base}/v1/revoke`,
      end_session: `${base}/v1/logout`,
      introspection: `${base}/v1/introspect`,
    },
    discoveryPaths: ['/.well-known/openid-configuration', '/.well-known/oauth-authorization-server'],
    loginPath: '/signin',
    gatewayClientId: '0oa1gatewaytest001d7',
    m2mClientId: '0oa1machinetest002d7',
    otherAppClientId: '0oa1otherapptest03d7',
    audience: 'api://default',
    userScope: 'openid profile email groups offline_access',
    m2mScope: 'mcp:invoke',
    oidcScopes: ['openid', 'offline_access', 'profile', 'email', 'groups'],
    claimsByScope: {
      openid: ['sub', 'ver', 'idp', 'amr', 'groups'],
      profile: ['name', 'preferred_username'],
      email: ['email', 'email_verified'],
      groups: [],
    },
    refreshNeedsOfflineAccess: true,
    rotateRefreshToken: true,
    accountIdFor: (username) => `00u${hashChars(`okta:${username}`, 17)}`,
    accountClaims: (user) => ({
      sub: user.accountId,
      name: user.username,
      email: emailOf(user.username),
      email_verified: true,
      ver: 1,
      idp: '00o1testorgidpx001d7',
      preferred_username: emailOf(user.username),
      groups: [...user.groups],
    }),
    accessToken: ({ jti, iat, exp, iss, clientId, scope, user }, audience) => ({
      header: { typ: undefined },
      payload: user
        ? {
            ver: 1,
            jti,
            iss,
            aud: audience,
            iat,
            exp,
            cid: clientId,
            uid: user.accountId,
            scp: scope.split(' ').filter(Boolean),
            auth_time: user.authTime,
            sub: emailOf(user.username),
            groups: [...user.groups],
          }
        : { ver: 1, jti, iss, aud: audience, iat, exp, cid: clientId, scp: scope.split(' ').filter(Boolean), sub: clientId },
    }),
    accountIdOf: (p) => (typeof p['uid'] === 'string' ? p['uid'] : undefined),
    userinfo: (user) => ({
      sub: user.accountId,
      name: user.username,
      preferred_username: emailOf(user.username),
      email: emailOf(user.username),
      email_verified: true,
      groups: [...user.groups],
    }),
  };
}

/**
 * Keycloak realm "test": issuer <origin>/realms/test, endpoints under
 * <issuer>/protocol/openid-connect/; discovery is not served (the gateway is given the
 * endpoints). Access tokens: header `typ: JWT` (Keycloak's, not RFC 9068's at+jwt), payload
 * `typ: Bearer`, `aud: [mcp-gateway, account]` (an audience mapper plus Keycloak's own
 * `account`), `azp` the client. ID tokens say `typ: ID`, and their `aud` is the gateway's client
 * id, which here equals the API audience `mcp-gateway` - as when the gateway's Keycloak client
 * also names the API.
 */
function genericProfile(): ProfileDefinition {
  const base = '/realms/test/protocol/openid-connect';
  const realmRoles = {
    realm_access: { roles: ['offline_access', 'uma_authorization', 'default-roles-test'] },
    resource_access: { account: { roles: ['manage-account', 'view-profile'] } },
  };
  const m2mClientId = 'mcp-m2m';
  return {
    issuerPath: '/realms/test',
    routes: {
      authorization: `${base}/auth`,
      token: `${base}/token`,
      userinfo: `${base}/userinfo`,
      jwks: `${base}/certs`,
      revocation: `${base}/revoke`,
      end_session: `${base}/logout`,
      introspection: `${base}/token/introspect`,
    },
    discoveryPaths: [],
    loginPath: '/realms/test/login-actions/authenticate',
    gatewayClientId: 'mcp-gateway',
    m2mClientId,
    otherAppClientId: 'other-app',
    audience: 'mcp-gateway',
    userScope: 'openid profile email',
    m2mScope: 'profile email',
    oidcScopes: ['openid', 'offline_access', 'profile', 'email', 'groups'],
    claimsByScope: {
      openid: ['sub', 'typ', 'azp', 'groups'],
      profile: ['name', 'preferred_username'],
      email: ['email', 'email_verified'],
      groups: [],
    },
    refreshNeedsOfflineAccess: false,
    rotateRefreshToken: true,
    accountIdFor: (username) => uuidFrom(`keycloak:${username}`),
    accountClaims: (user, clientId) => ({
      sub: user.accountId,
      typ: 'ID',
      ...(clientId === undefined ? {} : { azp: clientId }),
      email_verified: true,
      name: user.username,
      preferred_username: user.username,
      email: emailOf(user.username),
      groups: [...user.groups],
    }),
    accessToken: ({ jti, iat, exp, iss, clientId, scope, user, sessionId }, audience) => ({
      header: { typ: 'JWT' },
      payload: user
        ? {
            exp,
            iat,
            auth_time: user.authTime,
            jti,
            iss,
            aud: [audience, 'account'],
            sub: user.accountId,
            typ: 'Bearer',
            azp: clientId,
            sid: sessionId,
            acr: '1',
            ...realmRoles,
            scope,
            email_verified: true,
            name: user.username,
            preferred_username: user.username,
            email: emailOf(user.username),
            groups: [...user.groups],
          }
        : {
            exp,
            iat,
            jti,
            iss,
            aud: [audience, 'account'],
            sub: uuidFrom(`keycloak:service-account-${clientId}`),
            typ: 'Bearer',
            azp: clientId,
            acr: '1',
            ...realmRoles,
            scope,
            clientHost: '127.0.0.1',
            email_verified: false,
            preferred_username: `service-account-${clientId}`,
            clientAddress: '127.0.0.1',
            client_id: clientId,
          },
    }),
    accountIdOf: (p) => (p['typ'] === 'Bearer' && p['client_id'] === undefined && typeof p.sub === 'string' ? p.sub : undefined),
    userinfo: (user) => ({
      sub: user.accountId,
      email_verified: true,
      name: user.username,
      preferred_username: user.username,
      email: emailOf(user.username),
      groups: [...user.groups],
    }),
  };
}

function emailOf(username: string): string {
  return username.includes('@') ? username : `${username}@example.test`;
}

/** A stable UUID (version 4 layout) derived from a seed, so ids survive an IdP restart. */
function uuidFrom(seed: string): string {
  const h = createHash('sha256').update(seed).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

function hashChars(seed: string, length: number): string {
  return createHash('sha256').update(seed).digest('base64url').replace(/[-_]/g, 'x').slice(0, length);
}
