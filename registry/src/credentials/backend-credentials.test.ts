import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { describe, test } from 'node:test';
import { serverDefinitionSchema, freezeDefinition, type ServerDefinition } from '../catalog/server-definition.ts';
import { GatewayError } from '../errors.ts';
import { createLogger } from '../log.ts';
import { BackendCredentials, type ClientCredentialsSpec, type StatusTokenSource } from './backend-credentials.ts';
import { testVault } from './test-vault.ts';

const def = (name: string, backendAuth?: unknown): ServerDefinition =>
  freezeDefinition(
    serverDefinitionSchema.parse({ name, url: 'http://127.0.0.1:1', transports: { 'streamable-http': '/mcp' }, ...(backendAuth ? { backendAuth } : {}) }),
  );

function setup(defs: ServerDefinition[], factory?: (spec: ClientCredentialsSpec) => StatusTokenSource) {
  const catalog = Object.assign(new EventEmitter(), { list: () => defs, get: (n: string) => defs.find((d) => d.name === n) });
  const vault = testVault();
  const credentials = new BackendCredentials({
    catalog: catalog as never,
    vault,
    env: { MCP_BACKEND_KEY: 'env-key' },
    envAllowed: [],
    headerSlots: ['X-API-Key', 'X-Tenant'],
    ...(factory ? { tokenSources: factory } : {}),
    log: createLogger('silent'),
  });
  credentials.start();
  return { credentials, vault, catalog };
}

describe('the credential the check adds', () => {
  test('nothing for a server without backendAuth, or with none', async () => {
    const { credentials, vault } = setup([]);
    assert.equal(await credentials.forCheck(def('a')), undefined);
    assert.equal(await credentials.forCheck(def('b', { type: 'none' })), undefined);
    assert.equal(vault.peeks, 0);
  });

  test('static headers: one answer object per secret value (built once), the slots named in order, the prefix added', async () => {
    const server = def('s', {
      type: 'headers',
      headers: [
        { name: 'Authorization', prefix: 'Bearer ', from: 'vault' },
        { name: 'x-tenant', from: { env: 'MCP_BACKEND_KEY' } },
      ],
    });
    const { credentials, vault } = setup([server]);
    assert.deepEqual(await credentials.forCheck(server), {
      ok: false,
      reason: "no secret is set for the header Authorization (set it on the server's page or with PUT .../credentials)",
    });
    await vault.put('server:s:header:authorization', 't1');
    const first = await credentials.forCheck(server);
    assert.deepEqual(first, {
      ok: true,
      headers: { 'x-mcp-backend-authorization': 'Bearer t1', 'x-mcp-backend-h2': 'env-key', 'x-mcp-backend-credential': 'authorization h2' },
    });
    assert.equal(await credentials.forCheck(server), first, 'the same answer while the secret is the same');
    await vault.put('server:s:header:authorization', 't2');
    assert.equal(
      ((await credentials.forCheck(server)) as { headers: Record<string, string> }).headers['x-mcp-backend-authorization'],
      'Bearer t2',
      'rotation: the next request',
    );
    await vault.put('server:s:header:authorization', 't3\r\nX-Injected: 1');
    const bad = await credentials.forCheck(server);
    assert.equal(bad?.ok, false);
    assert.ok(bad && !bad.ok && !bad.reason.includes('t3'), 'the reason names no secret');
    assert.deepEqual(await credentials.forBackend(def('s', { type: 'headers', headers: [{ name: 'X-API-Key', from: { env: 'MCP_BACKEND_KEY' } }] })), {
      'X-API-Key': 'env-key',
    });
  });

  test('client credentials: the cached token as Bearer; without one, BACKEND_CREDENTIAL_FAILED and a fetch in the background', async () => {
    const issued: { token?: string } = {};
    let ensures = 0;
    let closed = 0;
    const specs: ClientCredentialsSpec[] = [];
    const factory = (spec: ClientCredentialsSpec): StatusTokenSource => {
      specs.push(spec);
      return {
        current: () => issued.token,
        ensure: async () => {
          ensures++;
          if (issued.token === undefined) throw new GatewayError('BACKEND_CREDENTIAL_FAILED', 'the token endpoint answered 401');
          return issued.token;
        },
        close: () => void closed++,
        status: () => ({ expiresAt: Date.UTC(2030, 0, 1) }),
      };
    };
    const server = def('cc', { type: 'client_credentials', tokenUrl: 'https://idp.example.com/token', clientId: 'gw', scopes: ['a'] });
    const { credentials, vault } = setup([server], factory);
    assert.equal(specs.length, 1, 'built when the server appears, and a first fetch started');
    assert.equal(specs[0]?.clientId, 'gw');
    await vault.put('server:cc:client-secret', 'cs');
    assert.equal(specs[0]?.clientSecret(), 'cs', 'the secret is read at each fetch');
    await new Promise((r) => setImmediate(r));
    const failed = await credentials.forCheck(server);
    assert.equal(failed?.ok, false);
    assert.match((failed as { reason: string }).reason, /no valid token from the token endpoint \(the token endpoint answered 401\)/);
    assert.ok(ensures >= 2, 'a request without a token kicks a fetch');
    assert.match(credentials.status(server).token?.lastError ?? '', /401/);
    issued.token = 'tok';
    assert.deepEqual(await credentials.forCheck(server), {
      ok: true,
      headers: { 'x-mcp-backend-credential': 'authorization', 'x-mcp-backend-authorization': 'Bearer tok' },
    });
    assert.deepEqual(await credentials.forBackend(server), { Authorization: 'Bearer tok' });
    assert.equal(credentials.status(server).token?.cachedUntil, '2030-01-01T00:00:00.000Z');
    // A new secret: the source starts afresh (the old one is closed).
    await credentials.setSecrets(server, { clientSecret: 'cs2' });
    assert.equal(closed, 1);
    assert.equal(specs.length, 2);
    credentials.close();
    assert.equal(closed, 2);
  });

  test('setSecrets refuses a header the definition does not read from the vault, or an unsafe value, naming fields only', async () => {
    const server = def('s', {
      type: 'headers',
      headers: [
        { name: 'X-API-Key', from: 'vault' },
        { name: 'X-Tenant', from: { env: 'MCP_BACKEND_KEY' } },
      ],
    });
    const { credentials, vault } = setup([server]);
    await assert.rejects(credentials.setSecrets(server, { headers: { 'X-Tenant': 'x', 'X-API-Key': 'a\nb' } }), (err: unknown) => {
      assert.ok(err instanceof GatewayError && err.code === 'REQUEST_INVALID');
      assert.deepEqual(
        err.fields?.map((f) => f.field),
        ['headers.X-Tenant', 'headers.X-API-Key'],
      );
      return true;
    });
    assert.equal(vault.list().length, 0);
    assert.deepEqual(await credentials.setSecrets(server, { headers: { 'x-api-key': 'k1' } }), ['server:s:header:x-api-key']);
    assert.equal(await credentials.clearSecrets('s'), 1);
  });

  test('policy: a header without an nginx slot, or an environment variable definitions may not read', () => {
    const { credentials } = setup([]);
    assert.deepEqual(credentials.policy(def('p', { type: 'headers', headers: [{ name: 'X-API-Key', from: 'vault' }] })), []);
    const problems = credentials.policy(def('p', { type: 'headers', headers: [{ name: 'X-Other', from: { env: 'HOME' } }] }));
    assert.deepEqual(
      problems.map((p) => p.field),
      ['backendAuth.headers.0.name', 'backendAuth.headers.0.from'],
    );
    assert.match(problems[0]?.message ?? '', /BACKEND_CREDENTIAL_HEADERS \(X-API-Key, X-Tenant\)/);
    assert.match(problems[1]?.message ?? '', /HOME is not an environment variable definitions may read/);
  });

  test('token_exchange: the client secret is set write-only under its own vault id, described (never shown), and a machine client is refused', async () => {
    const server = def('tx', { type: 'token_exchange', tokenUrl: 'https://as.example/token', clientId: 'gw' });
    const { credentials, vault } = setup([server]);
    assert.deepEqual(credentials.status(server).secrets, [{ name: 'client secret', source: 'vault', id: 'server:tx:exchange-client-secret', set: false }]);
    assert.deepEqual(await credentials.setSecrets(server, { clientSecret: 'tx-secret' }), ['server:tx:exchange-client-secret']);
    assert.equal(vault.peek('server:tx:exchange-client-secret'), 'tx-secret');
    const status = credentials.status(server);
    assert.equal(status.secrets[0]?.set, true);
    assert.ok(!JSON.stringify(status).includes('tx-secret'));
    const machine = await credentials.forCheck(server);
    assert.match(machine?.ok === false ? machine.reason : '', /a machine client has none/);
    const person = await credentials.forCheck(server, { provider: 'dev', sub: 'alice' });
    assert.match(person?.ok === false ? person.reason : '', /token exchange is not available in this gateway/);
    const envServer = def('tx2', { type: 'token_exchange', tokenUrl: 'https://as.example/token', clientId: 'gw', clientSecretFrom: { env: 'HOME' } });
    assert.deepEqual(
      credentials.policy(envServer).map((p) => p.field),
      ['backendAuth.clientSecretFrom'],
    );
  });

  test("a per-person server's service credential: listed after the mode's own secrets, set write-only, used for the gateway's own calls only", async () => {
    const server = def('svc', {
      type: 'user_oauth',
      client: { clientId: 'gw', clientSecretFrom: 'vault' },
      service: { type: 'client_credentials', tokenUrl: 'https://as.example/token', clientId: 'svc-client' },
    });
    const { credentials, vault } = setup([server]);
    assert.deepEqual(
      credentials.status(server).secrets.map((s) => [s.name, s.id, s.set]),
      [
        ['client secret', 'server:svc:oauth-client-secret', false],
        ['service client secret', 'server:svc:service-client-secret', false],
      ],
    );
    assert.deepEqual(await credentials.setSecrets(server, { clientSecret: 'app-secret', serviceClientSecret: 'svc-secret' }), [
      'server:svc:oauth-client-secret',
      'server:svc:service-client-secret',
    ]);
    assert.equal(vault.peek('server:svc:service-client-secret'), 'svc-secret');
    assert.ok(!JSON.stringify(credentials.status(server)).includes('svc-secret'));
    await assert.rejects(credentials.setSecrets(def('plain', { type: 'user_oauth' }), { serviceClientSecret: 'x' }), /no service client credentials/);
    const person = await credentials.forCheck(server, { provider: 'dev', sub: 'alice' });
    assert.match(person?.ok === false ? person.reason : '', /per-user OAuth is not available/, 'never the service credential for a person');
  });
});
