import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ServerDefinition } from '../catalog/server-definition.ts';
import { createLogger } from '../log.ts';
import { testVault } from './test-vault.ts';
import { UserOAuth } from './user-oauth.ts';
import {
  accountOf,
  connectionId,
  connectionSchedule,
  decodeConnection,
  encodeConnection,
  parseConnectionId,
  type ConnectionRecord,
} from './user-oauth-record.ts';
import { isUploadedTokenOf } from './uploaded-tokens.ts';

const record: ConnectionRecord = {
  v: 1,
  issuer: 'https://as.example.com',
  clientId: 'c1',
  accessToken: 'at',
  refreshToken: 'rt',
  expiresAt: 1_000_000 + 3_600_000,
  issuedAt: 1_000_000,
  connectedAt: 1_000_000,
  state: 'connected',
};

describe('per-user OAuth records', () => {
  test("a connection's vault id names the person's hash and the server, and is never an uploaded token's", () => {
    const id = connectionId('h4sh', 'github');
    assert.deepEqual(parseConnectionId(id), { hash: 'h4sh', server: 'github' });
    assert.equal(parseConnectionId('user:h4sh:server:github'), undefined);
    assert.equal(parseConnectionId('server:github:client-secret'), undefined);
    assert.equal(isUploadedTokenOf(id, 'github'), false);
  });

  test('a record survives its encoding; anything else is no record', () => {
    assert.deepEqual(decodeConnection(encodeConnection(record)), record);
    assert.equal(decodeConnection('not json'), undefined);
    assert.equal(decodeConnection(JSON.stringify({ ...record, v: 2 })), undefined);
    assert.equal(decodeConnection(JSON.stringify({ ...record, accessToken: undefined })), undefined, 'connected without a token');
    const { accessToken: _a, refreshToken: _r, ...rest } = record;
    assert.deepEqual(decodeConnection(JSON.stringify({ ...rest, state: 'broken', problem: 'refused' }))?.state, 'broken');
  });

  test('a token is refreshed before it goes stale, and stale before it expires; without a lifetime, never', () => {
    const { staleAt, refreshAt } = connectionSchedule(record);
    assert.equal(staleAt, record.expiresAt! - 60_000, 'an hour-long token: a minute of margin');
    assert.ok(refreshAt < staleAt);
    const short = connectionSchedule({ issuedAt: 0, expiresAt: 8000 });
    assert.deepEqual(short, { staleAt: 7000, refreshAt: 6500 });
    assert.deepEqual(connectionSchedule({ issuedAt: 0 }), { staleAt: Infinity, refreshAt: Infinity });
  });

  test('who connected: a name claim before the subject, nothing unprintable', () => {
    assert.equal(accountOf({ sub: '42', preferred_username: 'alice' }), 'alice');
    assert.equal(accountOf({ sub: '42', email: 'a@example.com' }), 'a@example.com');
    assert.equal(accountOf({ sub: '42' }), '42');
    assert.equal(accountOf({ sub: 'a\nb' }), undefined);
    assert.equal(accountOf(undefined), undefined);
  });
});

describe('which client the gateway is at an authorization server (begin)', () => {
  // A stand-in authorization server that only publishes its metadata: begin() reads it and
  // builds the authorization URL; no request goes further.
  let as: Server;
  let issuer = '';
  let metadata: Record<string, unknown> = {};
  before(async () => {
    as = createServer((req, res) => {
      if (req.url === '/.well-known/oauth-authorization-server')
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ issuer, ...metadata }));
      else res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => as.listen(0, '127.0.0.1', resolve));
    issuer = `http://127.0.0.1:${(as.address() as AddressInfo).port}`;
  });
  after(() => as.close());

  const base = () => ({
    authorization_endpoint: `${issuer}/authorize`,
    token_endpoint: `${issuer}/token`,
    code_challenge_methods_supported: ['S256'],
    response_types_supported: ['code'],
  });
  const def = (client: unknown): ServerDefinition =>
    ({
      name: 'backend',
      description: '',
      url: 'http://127.0.0.1:9/',
      transports: { 'streamable-http': '/mcp' },
      enabled: true,
      tags: [],
      tools: [],
      backendAuth: { type: 'user_oauth', authorizationServer: issuer, resource: 'http://127.0.0.1:9/mcp', scopes: ['read'], client },
    }) as unknown as ServerDefinition;
  const oauth = () =>
    new UserOAuth({
      vault: testVault(),
      publicUrl: 'https://gw.example.com',
      catalog: { get: () => undefined },
      env: {},
      discover: () => Promise.reject(new Error('not used: everything is configured')),
      log: createLogger('silent'),
    });
  const alice = { provider: 'dev', sub: 'alice' };

  test('auto: the Client ID Metadata Document where the server advertises it, with PKCE S256, state and the resource', async () => {
    metadata = { ...base(), client_id_metadata_document_supported: true, registration_endpoint: `${issuer}/register` };
    const { url, pending } = await oauth().begin(def('auto'), alice);
    const u = new URL(url);
    assert.equal(u.origin + u.pathname, `${issuer}/authorize`);
    assert.equal(u.searchParams.get('client_id'), 'https://gw.example.com/oauth/backend/client.json');
    assert.equal(u.searchParams.get('redirect_uri'), 'https://gw.example.com/oauth/backend/callback');
    assert.equal(u.searchParams.get('code_challenge_method'), 'S256');
    assert.equal(u.searchParams.get('resource'), 'http://127.0.0.1:9/mcp');
    assert.equal(u.searchParams.get('scope'), 'read');
    assert.equal(u.searchParams.get('state'), pending.state);
    assert.equal(pending.clientId, 'https://gw.example.com/oauth/backend/client.json');
    assert.ok(!url.includes(pending.codeVerifier), 'the verifier stays with the gateway');
  });

  test('a configured client is used as configured; a missing secret is named', async () => {
    metadata = { ...base(), client_id_metadata_document_supported: true };
    const { url } = await oauth().begin(def({ clientId: 'Iv1.abc' }), alice);
    assert.equal(new URL(url).searchParams.get('client_id'), 'Iv1.abc');
    await assert.rejects(oauth().begin(def({ clientId: 'Iv1.abc', clientSecretFrom: 'vault' }), alice), /client secret is not set/);
  });

  test('a server that takes neither approach, or not the forced one, is named with what to configure', async () => {
    metadata = base();
    await assert.rejects(
      oauth().begin(def('auto'), alice),
      /supports neither dynamic client registration nor Client ID Metadata Documents: configure a client/,
    );
    await assert.rejects(oauth().begin(def('metadata_document'), alice), /does not support Client ID Metadata Documents/);
    metadata = { ...base(), code_challenge_methods_supported: ['plain'], client_id_metadata_document_supported: true };
    await assert.rejects(oauth().begin(def('auto'), alice), /PKCE with S256/);
  });
});
