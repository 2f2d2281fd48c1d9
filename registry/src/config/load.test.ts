import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from './load.ts';

const root = () => mkdtempSync(join(tmpdir(), 'mcpgw-config-'));

test('applies the embedded defaults when nothing is set', () => {
  const result = loadConfig({}, root());
  assert.ok(result.ok);
  const c = result.config;
  assert.equal(c.gateway.port, 8080);
  assert.equal(c.gateway.host, '127.0.0.1');
  assert.equal(c.gateway.publicUrl, 'http://localhost:8080');
  assert.equal(c.providerType, 'dev');
  assert.equal(c.authEnabled, true);
  assert.equal(c.cookieSecure, false);
  assert.ok(Object.isFrozen(c) && Object.isFrozen(c.gateway));
});

test('generates SECRET_KEY once into the state folder with mode 0600 and reuses it', () => {
  const dir = root();
  const first = loadConfig({}, dir);
  const second = loadConfig({}, dir);
  assert.ok(first.ok && second.ok);
  assert.equal(first.config.secretKey, second.config.secretKey);
  assert.ok(first.config.secretKey.length >= 32);
  const file = join(dir, '.state', 'secret_key');
  assert.equal(readFileSync(file, 'utf8').trim(), first.config.secretKey);
  assert.equal(statSync(file).mode & 0o777, 0o600);
  assert.ok(first.config.warnings.some((w) => w.includes('SECRET_KEY')));
});

test('reports every bad value at once, one line each naming the variable', () => {
  const result = loadConfig(
    {
      GATEWAY_PORT: 'eighty',
      MCP_AUTH_ENABLED: 'maybe',
      MCP_AUTH_PROVIDER_TYPE: 'okt',
      SECRET_KEY: 'short',
      LOGGING_LEVEL: 'LOUD',
      SESSION_TTL_SECONDS: '5',
      GATEWAY_PUBLIC_URL: 'ftp://x',
    },
    root(),
  );
  assert.equal(result.ok, false);
  assert.ok(!result.ok);
  const names = ['GATEWAY_PORT', 'MCP_AUTH_ENABLED', 'MCP_AUTH_PROVIDER_TYPE', 'SECRET_KEY', 'LOGGING_LEVEL', 'SESSION_TTL_SECONDS', 'GATEWAY_PUBLIC_URL'];
  assert.equal(result.errors.length, names.length, result.errors.join('\n'));
  for (const name of names)
    assert.ok(
      result.errors.some((e) => e.includes(name)),
      `no line names ${name}:\n${result.errors.join('\n')}`,
    );
  assert.ok(result.errors.some((e) => e.includes('"okt" is not one of')));
});

test('accepts the Python gateway spellings (LOGGING_LEVEL=INFO, MCP_AUTH_ENABLED=False)', () => {
  const result = loadConfig({ LOGGING_LEVEL: 'INFO', MCP_AUTH_ENABLED: 'False' }, root());
  assert.ok(result.ok);
  assert.equal(result.config.logLevel, 'info');
  assert.equal(result.config.authEnabled, false);
});

test('warns about unknown MCP_AUTH_* names and makes cookies Secure behind https', () => {
  const result = loadConfig({ MCP_AUTH_PROVIDR_TYPE: 'dev', GATEWAY_PUBLIC_URL: 'https://mcp.example.com/' }, root());
  assert.ok(result.ok);
  assert.ok(result.config.warnings.some((w) => w.startsWith('MCP_AUTH_PROVIDR_TYPE')));
  assert.equal(result.config.cookieSecure, true);
  assert.equal(result.config.gateway.publicUrl, 'https://mcp.example.com');
});

test('each provider names the variables it is missing, one line each', () => {
  const cases: Array<[Record<string, string>, string[]]> = [
    [{ MCP_AUTH_PROVIDER_TYPE: 'cognito' }, ['MCP_AUTH_COGNITO_USER_POOL_ID', 'MCP_AUTH_COGNITO_CLIENT_ID', 'MCP_AUTH_COGNITO_REGION']],
    [{ MCP_AUTH_PROVIDER_TYPE: 'okta' }, ['MCP_AUTH_OKTA_TENANT_URL', 'MCP_AUTH_OKTA_CLIENT_ID', 'MCP_AUTH_AUDIENCE']],
    [{ MCP_AUTH_PROVIDER_TYPE: 'generic' }, ['MCP_AUTH_ISSUER', 'MCP_AUTH_CLIENT_ID']],
    [
      {
        MCP_AUTH_PROVIDER_TYPE: 'generic',
        MCP_AUTH_ISSUER: 'https://sso.example.com',
        MCP_AUTH_CLIENT_ID: 'x',
        MCP_AUTH_AUTHORIZE_URL: 'https://sso.example.com/auth',
      },
      ['MCP_AUTH_TOKEN_URL', 'MCP_AUTH_JWKS_URL'],
    ],
  ];
  for (const [env, names] of cases) {
    const result = loadConfig(env, root());
    assert.ok(!result.ok, JSON.stringify(env));
    assert.equal(result.errors.length, names.length, result.errors.join('\n'));
    for (const name of names)
      assert.ok(
        result.errors.some((e) => e.startsWith(name) && e.includes('missing')),
        `${name}: ${result.errors.join('\n')}`,
      );
  }
});

test('identity provider URLs must be https unless MCP_AUTH_ALLOW_INSECURE_HTTP=true, and callbacks must use the served path', () => {
  const okta = { MCP_AUTH_PROVIDER_TYPE: 'okta', MCP_AUTH_OKTA_TENANT_URL: 'http://127.0.0.1:9', MCP_AUTH_OKTA_CLIENT_ID: 'c', MCP_AUTH_AUDIENCE: 'api://mcp' };
  const refused = loadConfig(okta, root());
  assert.ok(!refused.ok && refused.errors.some((e) => e.startsWith('MCP_AUTH_OKTA_TENANT_URL must be https')));
  const allowed = loadConfig({ ...okta, MCP_AUTH_ALLOW_INSECURE_HTTP: 'true' }, root());
  assert.ok(allowed.ok && allowed.config.warnings.some((w) => w.includes('MCP_AUTH_ALLOW_INSECURE_HTTP')));
  assert.equal(allowed.ok && allowed.config.identity.type === 'okta' && allowed.config.identity.issuer, 'http://127.0.0.1:9/oauth2/default');
  const badCallback = loadConfig({ ...okta, MCP_AUTH_ALLOW_INSECURE_HTTP: 'true', MCP_AUTH_OKTA_CALLBACK_URI: 'https://x/callback' }, root());
  assert.ok(!badCallback.ok && badCallback.errors.some((e) => e.includes('must end in /oauth/callback/okta')));
});

test("okta has no default audience (api://default is every application's): a missing MCP_AUTH_AUDIENCE stops the start with one line; more clients may be allowed", () => {
  const okta = { MCP_AUTH_PROVIDER_TYPE: 'okta', MCP_AUTH_OKTA_TENANT_URL: 'https://dev-1.okta.com', MCP_AUTH_OKTA_CLIENT_ID: '0oagateway' };
  const missing = loadConfig(okta, root());
  assert.ok(!missing.ok);
  assert.equal(missing.errors.length, 1, missing.errors.join('\n'));
  assert.match(missing.errors[0]!, /^MCP_AUTH_AUDIENCE is missing \(needed when MCP_AUTH_PROVIDER_TYPE=okta/);
  const set = loadConfig({ ...okta, MCP_AUTH_AUDIENCE: 'api://mcp-gateway', MCP_AUTH_OKTA_ALLOWED_CLIENT_IDS: '0oacli1, 0oacli2' }, root());
  assert.ok(set.ok && set.config.identity.type === 'okta');
  assert.equal(set.config.identity.audience, 'api://mcp-gateway');
  assert.deepEqual(set.config.identity.allowedClientIds, ['0oacli1', '0oacli2']);
  const bad = loadConfig({ ...okta, MCP_AUTH_AUDIENCE: 'api://x', MCP_AUTH_OKTA_ALLOWED_CLIENT_IDS: 'a b' }, root());
  assert.ok(!bad.ok && bad.errors.some((e) => e.startsWith('MCP_AUTH_OKTA_ALLOWED_CLIENT_IDS must be')));
});

test('cognito builds the issuer from region and pool, and reads groups from cognito:groups; oidc is an alias of generic', () => {
  const cognito = loadConfig(
    {
      MCP_AUTH_PROVIDER_TYPE: 'cognito',
      MCP_AUTH_COGNITO_USER_POOL_ID: 'eu-west-1_AbC123',
      MCP_AUTH_COGNITO_CLIENT_ID: 'c',
      MCP_AUTH_COGNITO_REGION: 'eu-west-1',
    },
    root(),
  );
  assert.ok(cognito.ok && cognito.config.identity.type === 'cognito');
  assert.equal(cognito.config.identity.issuer, 'https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123');
  assert.equal(cognito.config.identity.groupsClaim, 'cognito:groups');
  assert.equal(cognito.config.identity.redirectUri, 'http://localhost:8080/oauth/callback/cognito');
  const generic = loadConfig({ MCP_AUTH_PROVIDER_TYPE: 'oidc', MCP_AUTH_ISSUER: 'https://sso.example.com/', MCP_AUTH_CLIENT_ID: 'c' }, root());
  assert.ok(generic.ok && generic.config.identity.type === 'generic');
  assert.equal(generic.config.identity.issuer, 'https://sso.example.com/', 'the issuer is kept exactly');
  assert.ok(generic.config.warnings.some((w) => w.includes('set MCP_AUTH_AUDIENCE')));
});

test('health checks: every 60 s and 5 s each by default; 0 switches the schedule off; out-of-range values are named', () => {
  const defaults = loadConfig({}, root());
  assert.ok(defaults.ok);
  assert.deepEqual(defaults.config.healthCheck, { intervalMs: 60_000, timeoutMs: 5_000 });
  const off = loadConfig({ HEALTH_CHECK_INTERVAL_SECONDS: '0', HEALTH_CHECK_TIMEOUT_SECONDS: '10' }, root());
  assert.ok(off.ok);
  assert.deepEqual(off.config.healthCheck, { intervalMs: 0, timeoutMs: 10_000 });
  const bad = loadConfig({ HEALTH_CHECK_INTERVAL_SECONDS: '3', HEALTH_CHECK_TIMEOUT_SECONDS: '1.5' }, root());
  assert.ok(!bad.ok);
  assert.deepEqual(bad.errors, [
    'HEALTH_CHECK_INTERVAL_SECONDS must be 0 (off) or between 5 and 86400',
    'HEALTH_CHECK_TIMEOUT_SECONDS must be a whole number of seconds',
  ]);
});

test('CORS_ALLOWED_ORIGINS: comma-separated exact origins, empty by default; every hostile entry is named on its own line', () => {
  const none = loadConfig({}, root());
  assert.ok(none.ok);
  assert.deepEqual(none.config.corsAllowedOrigins, []);
  const some = loadConfig({ CORS_ALLOWED_ORIGINS: ' https://app.example.com, http://localhost:6274,,https://app.example.com ' }, root());
  assert.ok(some.ok);
  assert.deepEqual(some.config.corsAllowedOrigins, ['https://app.example.com', 'http://localhost:6274']);
  const hostile = readFileSync(new URL('../../test/fixtures/hostile-origins.txt', import.meta.url), 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '' && !line.startsWith('#'))
    .map((line) => JSON.parse(line) as string)
    // Surrounding whitespace is trimmed and empty entries skipped; a comma splits; the rest must be refused.
    .filter((origin) => origin.trim() !== '' && origin === origin.trim() && !origin.includes(','));
  for (const origin of hostile) {
    const result = loadConfig({ CORS_ALLOWED_ORIGINS: `https://ok.example.com,${origin}` }, root());
    assert.ok(!result.ok, JSON.stringify(origin));
    assert.equal(result.errors.length, 1, result.errors.join('\n'));
    assert.match(result.errors[0] ?? '', /^CORS_ALLOWED_ORIGINS/, result.errors.join('\n'));
  }
});

test('REDIS_URL: redis:// or rediss:// only, never echoed in the error (it may hold a password); unset means files', () => {
  const none = loadConfig({}, root());
  assert.ok(none.ok);
  assert.equal(none.config.redis, undefined);
  const set = loadConfig({ REDIS_URL: 'rediss://:s3cret@cache.internal:6380/0', SECRET_KEY: 'k'.repeat(32), REDIS_START_TIMEOUT_SECONDS: '5' }, root());
  assert.ok(set.ok);
  assert.deepEqual(set.config.redis, { url: 'rediss://:s3cret@cache.internal:6380/0', startTimeoutMs: 5000 });
  for (const bad of ['http://:s3cret@cache:6379', 'cache:6379', 'redis://']) {
    const result = loadConfig({ REDIS_URL: bad }, root());
    assert.ok(!result.ok, bad);
    assert.ok(
      result.errors.some((e) => e.startsWith('REDIS_URL')),
      result.errors.join('\n'),
    );
    assert.ok(!result.errors.join('\n').includes('s3cret'), 'the password is not repeated');
  }
  const unshared = loadConfig({ REDIS_URL: 'redis://localhost:6379' }, root());
  assert.ok(unshared.ok);
  assert.ok(unshared.config.warnings.some((w) => w.includes('replicas sharing this Redis must share SECRET_KEY')));
});

test("the dev IdP's generated admin password: one file per STATE_DIR alone; with REDIS_URL and SECRET_KEY the same on every replica, with no file", () => {
  const alone = loadConfig({}, root());
  assert.ok(alone.ok);
  assert.equal(alone.config.admin.passwordFrom, 'file');
  const shared = { REDIS_URL: 'redis://localhost:6379', SECRET_KEY: 'k'.repeat(32) };
  const [one, two] = [root(), root()].map((dir) => ({ dir, result: loadConfig(shared, dir) }));
  assert.ok(one?.result.ok && two?.result.ok);
  assert.equal(one.result.config.admin.passwordFrom, 'secret-key');
  assert.equal(one.result.config.admin.password, two.result.config.admin.password, 'two replicas, one password');
  assert.ok(one.result.config.admin.password.length >= 16);
  assert.throws(() => statSync(join(one.dir, '.state', 'admin_password')), /ENOENT/, 'no file of its own');
  const other = loadConfig({ ...shared, SECRET_KEY: 'z'.repeat(32) }, root());
  assert.ok(other.ok);
  assert.notEqual(other.config.admin.password, one.result.config.admin.password, 'another SECRET_KEY, another password');
  const chosen = loadConfig({ ...shared, ADMIN_PASSWORD: 'chosen-password' }, root());
  assert.ok(chosen.ok);
  assert.deepEqual([chosen.config.admin.password, chosen.config.admin.passwordFrom], ['chosen-password', 'env']);
});
