import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createRemoteJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify, type JWTPayload, type JWTVerifyOptions } from 'jose';
import * as client from 'openid-client';
import { CookieJar, jarFetch } from '../integration/cookie-jar.ts';
import { forgeTokens } from './forged-tokens.ts';
import { startTestIdp, type IdpProfile, type TestIdp } from './test-idp.ts';

const USERS = [
  { username: 'alice', password: 'alice-password', groups: ['mcp-user', 'mcp-server-currenttime'] },
  { username: 'bob', password: 'bob-password', groups: [] },
];
const TTL_SECONDS = 120;
const VERIFY = { algorithms: ['RS256', 'ES256', 'PS256'], clockTolerance: 60 } as const;

/**
 * Forged tokens that jose's jwtVerify (issuer, audience where the IdP has one, algorithms,
 * times) cannot tell from real ones: each needs a rule of the profile, which a gateway must
 * apply after jwtVerify. profileRule below is that rule.
 */
const NEEDS_PROFILE_RULE: Record<IdpProfile, readonly string[]> = {
  // Cognito access tokens have no aud: the client must be checked, and ID tokens carry token_use: id.
  cognito: ['wrong-client-id', 'id-token', 'other-application'],
  // Every application of an Okta org can get a token for the same audience: the cid decides.
  okta: ['other-application'],
  // The gateway's Keycloak client id is the API audience (mcp-gateway), so its ID token has
  // aud mcp-gateway too: only typ (Bearer vs ID) or nonce tells them apart.
  generic: ['id-token'],
};

/** The post-jwtVerify rule a gateway needs for each profile; undefined = acceptable. */
function profileRule(idp: TestIdp, p: JWTPayload): string | undefined {
  const ours = [idp.clientId, idp.m2mClientId];
  switch (idp.profile) {
    case 'cognito':
      if (p['token_use'] !== 'access') return 'token_use is not access';
      return ours.includes(String(p['client_id'])) ? undefined : 'client_id is not ours';
    case 'okta':
      return ours.includes(String(p['cid'])) ? undefined : 'cid is not ours';
    case 'generic':
      return p['typ'] === 'Bearer' && p['nonce'] === undefined ? undefined : 'not an access token';
  }
}

const EXPECTED_CLAIMS: Record<IdpProfile, { access: string[]; id: string[]; m2m: string[] }> = {
  cognito: {
    access: [
      'sub',
      'cognito:groups',
      'iss',
      'version',
      'client_id',
      'origin_jti',
      'event_id',
      'token_use',
      'scope',
      'auth_time',
      'exp',
      'iat',
      'jti',
      'username',
    ],
    id: [
      'sub',
      'cognito:groups',
      'cognito:username',
      'token_use',
      'origin_jti',
      'event_id',
      'email',
      'email_verified',
      'auth_time',
      'nonce',
      'aud',
      'exp',
      'iat',
      'iss',
    ],
    m2m: ['sub', 'token_use', 'scope', 'auth_time', 'iss', 'exp', 'iat', 'version', 'jti', 'client_id'],
  },
  okta: {
    access: ['ver', 'jti', 'iss', 'aud', 'iat', 'exp', 'cid', 'uid', 'scp', 'auth_time', 'sub', 'groups'],
    id: ['sub', 'ver', 'idp', 'amr', 'groups', 'name', 'preferred_username', 'email', 'email_verified', 'auth_time', 'nonce', 'aud', 'exp', 'iat', 'iss'],
    m2m: ['ver', 'jti', 'iss', 'aud', 'iat', 'exp', 'cid', 'scp', 'sub'],
  },
  generic: {
    access: [
      'exp',
      'iat',
      'auth_time',
      'jti',
      'iss',
      'aud',
      'sub',
      'typ',
      'azp',
      'sid',
      'acr',
      'realm_access',
      'resource_access',
      'scope',
      'email_verified',
      'name',
      'preferred_username',
      'email',
      'groups',
    ],
    id: ['sub', 'typ', 'azp', 'groups', 'name', 'preferred_username', 'email', 'email_verified', 'auth_time', 'nonce', 'aud', 'exp', 'iat', 'iss'],
    m2m: [
      'exp',
      'iat',
      'jti',
      'iss',
      'aud',
      'sub',
      'typ',
      'azp',
      'acr',
      'realm_access',
      'resource_access',
      'scope',
      'clientHost',
      'email_verified',
      'preferred_username',
      'clientAddress',
      'client_id',
    ],
  },
};

/** Why jwtVerify refuses each forged token: the stated reason and nothing earlier. */
const EXPECTED_FAILURE: Record<string, string> = {
  expired: 'ERR_JWT_EXPIRED:exp',
  'not-yet-valid': 'ERR_JWT_CLAIM_VALIDATION_FAILED:nbf',
  'wrong-issuer': 'ERR_JWT_CLAIM_VALIDATION_FAILED:iss',
  'wrong-audience': 'ERR_JWT_CLAIM_VALIDATION_FAILED:aud',
  'alg-none': 'ERR_JOSE_ALG_NOT_ALLOWED',
  'hs256-public-key': 'ERR_JOSE_ALG_NOT_ALLOWED',
  'unknown-kid': 'ERR_JWKS_NO_MATCHING_KEY',
  'tampered-payload': 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED',
  'other-idp': 'ERR_JWKS_NO_MATCHING_KEY', // a key the JWKS does not have (its issuer is wrong too)
  'id-token': 'ERR_JWT_CLAIM_VALIDATION_FAILED:aud', // okta: aud is the client id, not api://default
};

const groupsClaim = (profile: IdpProfile) => (profile === 'cognito' ? 'cognito:groups' : 'groups');
const sorted = (keys: readonly string[]) => [...keys].sort();

for (const profile of ['cognito', 'okta', 'generic'] as const) {
  describe(`test IdP: ${profile}`, () => {
    let idp: TestIdp;
    let other: TestIdp;
    let verifyOptions: JWTVerifyOptions;
    let keys: ReturnType<typeof createRemoteJWKSet>;
    const verify = (token: string) => jwtVerify(token, keys, verifyOptions);

    before(async () => {
      idp = await startTestIdp(profile, { redirectUri: 'http://127.0.0.1:1/cb', users: USERS, accessTokenTtlSeconds: TTL_SECONDS });
      other = await startTestIdp(profile, { redirectUri: 'http://127.0.0.1:1/cb', users: USERS });
      keys = createRemoteJWKSet(new URL(idp.endpoints.jwks));
      verifyOptions = { issuer: idp.issuer, ...(idp.audience === undefined ? {} : { audience: idp.audience }), ...VERIFY, algorithms: [...VERIFY.algorithms] };
    });
    after(async () => {
      await idp?.close();
      await other?.close();
    });

    test('serves the real IdP URL layout', async () => {
      const { origin, issuer, endpoints } = idp;
      const layout = {
        cognito: {
          issuer: `${origin}/us-east-1_TestPool1`,
          authorization: `${origin}/oauth2/authorize`,
          token: `${origin}/oauth2/token`,
          jwks: `${issuer}/.well-known/jwks.json`,
          userinfo: `${origin}/oauth2/userInfo`,
        },
        okta: {
          issuer: `${origin}/oauth2/default`,
          authorization: `${issuer}/v1/authorize`,
          token: `${issuer}/v1/token`,
          jwks: `${issuer}/v1/keys`,
          userinfo: `${issuer}/v1/userinfo`,
        },
        generic: {
          issuer: `${origin}/realms/test`,
          authorization: `${issuer}/protocol/openid-connect/auth`,
          token: `${issuer}/protocol/openid-connect/token`,
          jwks: `${issuer}/protocol/openid-connect/certs`,
          userinfo: `${issuer}/protocol/openid-connect/userinfo`,
        },
      }[profile];
      assert.deepEqual({ issuer, ...endpoints }, layout);
      assert.equal((await fetch(`${origin}/.well-known/openid-configuration`)).status, 404, 'no discovery at the origin root');
      const discovery = await fetch(`${issuer}/.well-known/openid-configuration`);
      const discover = () => client.discovery(new URL(issuer), idp.clientId, idp.clientSecret, undefined, { execute: [client.allowInsecureRequests] });
      if (profile === 'generic') {
        assert.equal(discovery.status, 404, 'generic: the gateway must be given the endpoints');
        assert.equal((await fetch(`${issuer}/.well-known/oauth-authorization-server`)).status, 404);
        await assert.rejects(discover());
        return;
      }
      assert.equal((await discover()).serverMetadata().jwks_uri, layout.jwks, 'openid-client discovery, as the gateway does it');
      assert.equal(discovery.status, 200);
      const doc = (await discovery.json()) as Record<string, unknown>;
      assert.deepEqual(
        {
          issuer: doc['issuer'],
          authorization: doc['authorization_endpoint'],
          token: doc['token_endpoint'],
          jwks: doc['jwks_uri'],
          userinfo: doc['userinfo_endpoint'],
        },
        layout,
      );
      assert.deepEqual(doc['code_challenge_methods_supported'], ['S256']);
      const oauthMetadata = await fetch(`${issuer}/.well-known/oauth-authorization-server`);
      assert.equal(oauthMetadata.status, profile === 'okta' ? 200 : 404);
    });

    test('user access and ID tokens verify and have exactly the profile claims', async () => {
      const tokens = await idp.userTokens('alice');
      const { payload, protectedHeader } = await verify(tokens.accessToken);
      assert.deepEqual(sorted(Object.keys(payload)), sorted(EXPECTED_CLAIMS[profile].access));
      assert.deepEqual(payload[groupsClaim(profile)], ['mcp-user', 'mcp-server-currenttime']);
      assert.equal((payload.exp ?? 0) - (payload.iat ?? 0), TTL_SECONDS);
      assert.equal(profileRule(idp, payload), undefined);
      if (profile === 'cognito') {
        assert.equal(payload.aud, undefined, 'Cognito access tokens have no aud');
        assert.equal(payload['token_use'], 'access');
        assert.equal(payload['client_id'], idp.clientId);
        assert.equal(payload['username'], 'alice');
        assert.equal(payload['scope'], 'openid profile email');
        assert.equal(protectedHeader.typ, undefined);
      } else if (profile === 'okta') {
        assert.equal(payload.aud, 'api://default');
        assert.equal(payload['cid'], idp.clientId);
        assert.match(String(payload['uid']), /^00u[A-Za-z0-9]{17}$/);
        assert.equal(payload.sub, 'alice@example.test');
        assert.deepEqual(payload['scp'], ['openid', 'offline_access', 'profile', 'email', 'groups']);
        assert.equal(protectedHeader.typ, undefined);
      } else {
        assert.deepEqual(payload.aud, ['mcp-gateway', 'account']);
        assert.equal(payload['azp'], idp.clientId);
        assert.equal(payload['typ'], 'Bearer');
        assert.equal(payload['preferred_username'], 'alice');
        assert.equal(protectedHeader.typ, 'JWT');
      }

      const id = (await jwtVerify(tokens.idToken, keys, { issuer: idp.issuer, audience: idp.clientId, ...VERIFY, algorithms: [...VERIFY.algorithms] })).payload;
      assert.deepEqual(sorted(Object.keys(id)), sorted(EXPECTED_CLAIMS[profile].id));
      assert.deepEqual(id[groupsClaim(profile)], ['mcp-user', 'mcp-server-currenttime']);
      assert.equal(id['token_use'], profile === 'cognito' ? 'id' : undefined);
      assert.equal(id['typ'], profile === 'generic' ? 'ID' : undefined);
      assert.ok(tokens.refreshToken, 'a refresh token for the gateway client');
    });

    test('Cognito leaves cognito:groups out for a user in no group; others send []', async () => {
      const { payload } = await verify((await idp.userTokens('bob')).accessToken);
      assert.deepEqual(payload[groupsClaim(profile)], profile === 'cognito' ? undefined : []);
    });

    test('client-credentials token verifies and names the m2m client', async () => {
      const token = await idp.clientCredentialsToken();
      const { payload } = await verify(token);
      assert.deepEqual(sorted(Object.keys(payload)), sorted(EXPECTED_CLAIMS[profile].m2m));
      assert.equal(profileRule(idp, payload), undefined);
      const clientClaim = { cognito: 'client_id', okta: 'cid', generic: 'azp' }[profile];
      assert.equal(payload[clientClaim], idp.m2mClientId);
      if (profile === 'generic') assert.equal(payload['preferred_username'], `service-account-${idp.m2mClientId}`);
      else assert.equal(payload.sub, idp.m2mClientId);
      assert.equal(payload[groupsClaim(profile)], undefined);
      if (profile === 'cognito') assert.equal(payload.aud, undefined);
    });

    test('refresh (openid-client refreshTokenGrant) picks up setGroups', async (t) => {
      const tokens = await idp.userTokens('alice');
      t.after(() => idp.setGroups('alice', USERS[0]!.groups));
      idp.setGroups('alice', ['mcp-user']);
      const configuration = new client.Configuration(
        { issuer: idp.issuer, token_endpoint: idp.endpoints.token, jwks_uri: idp.endpoints.jwks },
        idp.clientId,
        idp.clientSecret,
      );
      client.allowInsecureRequests(configuration);
      const refreshed = await client.refreshTokenGrant(configuration, tokens.refreshToken ?? assert.fail('no refresh token'));
      const { payload } = await verify(refreshed.access_token);
      assert.deepEqual(payload[groupsClaim(profile)], ['mcp-user']);
      assert.deepEqual(decodeJwt(refreshed.id_token ?? '')[groupsClaim(profile)], ['mcp-user']);
      // Cognito does not rotate refresh tokens (by default); Okta and Keycloak hand out a new one.
      if (profile === 'cognito') assert.equal(refreshed.refresh_token, tokens.refreshToken);
      else assert.notEqual(refreshed.refresh_token, tokens.refreshToken);
    });

    test('userinfo answers for a user access token only', async () => {
      const { accessToken } = await idp.userTokens('alice');
      const answer = await fetch(idp.endpoints.userinfo, { headers: { authorization: `Bearer ${accessToken}` } });
      assert.equal(answer.status, 200);
      const info = (await answer.json()) as Record<string, unknown>;
      // Real Cognito's userInfo returns attributes only: group membership is not one.
      assert.deepEqual(info[groupsClaim(profile)], profile === 'cognito' ? undefined : ['mcp-user', 'mcp-server-currenttime']);
      assert.equal(info['sub'], decodeJwt(accessToken)[profile === 'okta' ? 'uid' : 'sub']);
      const m2m = await fetch(idp.endpoints.userinfo, { headers: { authorization: `Bearer ${await idp.clientCredentialsToken()}` } });
      assert.equal(m2m.status, 401);
      assert.equal((await fetch(idp.endpoints.userinfo)).status, 401);
    });

    test('the login form: username and password fields, posted back to its own URL', async () => {
      const configuration = new client.Configuration(
        { issuer: idp.issuer, authorization_endpoint: idp.endpoints.authorization },
        idp.clientId,
        idp.clientSecret,
      );
      client.allowInsecureRequests(configuration);
      const start = client.buildAuthorizationUrl(configuration, {
        redirect_uri: 'http://127.0.0.1:1/cb',
        scope: 'openid',
        code_challenge: await client.calculatePKCECodeChallenge(client.randomPKCECodeVerifier()),
        code_challenge_method: 'S256',
      });
      const jar = new CookieJar();
      const toLogin = await jarFetch(jar, start.href);
      assert.equal(toLogin.status, 303);
      const page = await jarFetch(jar, new URL(toLogin.headers.get('location') ?? '', idp.origin).href);
      const html = await page.text();
      assert.equal(page.status, 200);
      assert.match(html, /<input name="username"/);
      assert.match(html, /<input name="password" type="password"/);
      const action = /<form method="post" action="([^"]+)"/.exec(html)?.[1] ?? assert.fail('no form');
      assert.equal(new URL(action, idp.origin).href, page.url);
      const wrong = await jarFetch(jar, new URL(action, idp.origin).href, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ username: 'alice', password: 'not-her-password' }).toString(),
      });
      assert.equal(wrong.status, 401);
      assert.match(await wrong.text(), /Incorrect username or password/);
    });

    test('PKCE with S256 is required', async () => {
      const base = { client_id: idp.clientId, redirect_uri: 'http://127.0.0.1:1/cb', response_type: 'code', scope: 'openid', state: 's' };
      const attempts: Record<string, string>[] = [{}, { code_challenge: 'x'.repeat(43), code_challenge_method: 'plain' }];
      for (const pkce of attempts) {
        const response = await fetch(`${idp.endpoints.authorization}?${new URLSearchParams({ ...base, ...pkce })}`, { redirect: 'manual' });
        const location = new URL(response.headers.get('location') ?? '', idp.origin);
        assert.equal(location.searchParams.get('error'), 'invalid_request', JSON.stringify(pkce));
      }
    });

    test('every forged token fails jwtVerify, or the profile rule where jose cannot tell', async () => {
      const forged = await forgeTokens(idp, other, 'alice');
      const audienceCase = profile === 'cognito' ? 'wrong-client-id' : 'wrong-audience';
      assert.deepEqual(
        forged.map((f) => f.name),
        [
          'expired',
          'not-yet-valid',
          'wrong-issuer',
          audienceCase,
          'alg-none',
          'hs256-public-key',
          'unknown-kid',
          'tampered-payload',
          'other-idp',
          'id-token',
          ...(profile === 'generic' ? [] : ['other-application']),
        ],
      );
      for (const { name, token } of forged) {
        if (NEEDS_PROFILE_RULE[profile].includes(name)) {
          const { payload } = await verify(token); // jose alone accepts it ...
          assert.ok(profileRule(idp, payload), `${name}: the ${profile} rule must refuse it`); // ... the rule must not
        } else {
          const failure = await verify(token).then(
            () => assert.fail(`${name}: jwtVerify accepted it`),
            (err: Error & { code?: string; claim?: string }) => [err.code, err.claim].filter(Boolean).join(':'),
          );
          assert.equal(failure, EXPECTED_FAILURE[name], name);
        }
      }
      const header = decodeProtectedHeader(forged.find((f) => f.name === 'alg-none')!.token);
      assert.equal(header.alg, 'none');
    });
  });
}
