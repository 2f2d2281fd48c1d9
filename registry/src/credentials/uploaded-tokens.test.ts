import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { describe, test } from 'node:test';
import { UnsecuredJWT, SignJWT } from 'jose';
import { serverDefinitionSchema, freezeDefinition, type ServerDefinition } from '../catalog/server-definition.ts';
import { GatewayError } from '../errors.ts';
import { createLogger } from '../log.ts';
import { BackendCredentials } from './backend-credentials.ts';
import { testVault } from './test-vault.ts';
import { givenExpiry, isUploadedTokenOf, jwtExpiry, personHash, uploadedTokenId } from './uploaded-tokens.ts';

const b64 = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

describe("reading a JWT's exp (display and refusal only, never trust)", () => {
  test('a signed JWT and an unsecured one: exp in ms', async () => {
    const exp = Math.floor(Date.now() / 1000) + 3600;
    const signed = await new SignJWT({ sub: 'a' })
      .setProtectedHeader({ alg: 'HS256' })
      .setExpirationTime(exp)
      .sign(new TextEncoder().encode('k'.repeat(32)));
    assert.equal(jwtExpiry(signed), exp * 1000);
    const unsecured = new UnsecuredJWT({ sub: 'a' }).setExpirationTime(exp).encode();
    assert.ok(unsecured.endsWith('.'));
    assert.equal(jwtExpiry(unsecured), exp * 1000);
    // The signature is not checked: a forged one still shows its exp (it is the backend's token).
    assert.equal(jwtExpiry(`${signed.split('.').slice(0, 2).join('.')}.AAAA`), exp * 1000);
  });

  test('not a JWT, malformed, or without a usable exp: unknown', () => {
    for (const token of [
      'ghp_abcdef0123456789',
      'a.b',
      'a.b.c.d',
      `${b64({ alg: 'none' })}.${b64('not json')}.`,
      `${b64({ alg: 'none' })}.${b64([1, 2])}.`,
      `${b64('x')}.${b64({ exp: 2e9 })}.`,
      `${b64({ alg: 'none' })}.${b64({ sub: 'no exp' })}.`,
      `${b64({ alg: 'none' })}.${b64({ exp: '2000000000' })}.`,
      `${b64({ alg: 'none' })}.${b64({ exp: -1 })}.`,
      `${b64({ alg: 'none' })}.${b64({ exp: 1e20 })}.`,
      `${b64({ alg: 'none' })}.${b64({ exp: 2e9 })}.sig+with/base64`,
      `${b64({ alg: 'none' })}..`,
    ])
      assert.equal(jwtExpiry(token), undefined, token);
    assert.equal(jwtExpiry(`${b64({ alg: 'none' })}.${b64({ exp: 2e9 })}.`), 2e12);
    assert.equal(jwtExpiry(`${b64({ alg: 'none' })}.${b64({ exp: 2000000000.5 })}.sig`), 2000000000500);
  });

  test('a typed expiry: a date runs through that day UTC; a date and time needs a zone', () => {
    assert.equal(givenExpiry(undefined), undefined);
    assert.equal(givenExpiry(' '), undefined);
    assert.equal(givenExpiry('2026-12-31'), Date.parse('2027-01-01T00:00:00Z'));
    assert.equal(givenExpiry('2026-12-31T18:00:00Z'), Date.parse('2026-12-31T18:00:00Z'));
    assert.equal(givenExpiry('2026-12-31T18:00+02:00'), Date.parse('2026-12-31T16:00:00Z'));
    for (const bad of ['tomorrow', '2026-13-45', '2026-12-31T18:00:00', '31/12/2026']) assert.ok(Number.isNaN(givenExpiry(bad)), bad);
  });

  test("vault ids name a hash of the person, never who; a server's tokens are found by their suffix", () => {
    const hash = personHash({ provider: 'dev', sub: 'alice@example.com' });
    const id = uploadedTokenId(hash, 'github');
    assert.ok(!id.includes('alice'));
    assert.match(id, /^user:[A-Za-z0-9_-]{43}:server:github$/);
    assert.notEqual(hash, personHash({ provider: 'okta', sub: 'alice@example.com' }));
    assert.ok(isUploadedTokenOf(id, 'github'));
    assert.ok(!isUploadedTokenOf(id, 'hub'));
    assert.ok(!isUploadedTokenOf('server:github:header:authorization', 'github'));
  });
});

describe('uploaded tokens in the check', () => {
  const def = (name: string, backendAuth: unknown): ServerDefinition =>
    freezeDefinition(serverDefinitionSchema.parse({ name, url: 'http://127.0.0.1:1', transports: { 'streamable-http': '/mcp' }, backendAuth }));
  let clock = Date.parse('2026-11-30T12:00:00Z');
  const setup = (defs: ServerDefinition[]) => {
    const catalog = Object.assign(new EventEmitter(), { list: () => defs, get: (n: string) => defs.find((d) => d.name === n) });
    const vault = testVault();
    const credentials = new BackendCredentials({
      catalog: catalog as never,
      vault,
      env: {},
      envAllowed: [],
      headerSlots: ['X-API-Key'],
      publicUrl: 'https://mcp.example.com',
      now: () => clock,
      log: createLogger('silent'),
    });
    credentials.start();
    return { credentials, vault };
  };
  const alice = { provider: 'dev', sub: 'alice' };
  const bob = { provider: 'dev', sub: 'bob' };

  test("each person gets their own token, a machine client none, and a person without one the upload page's URL", async () => {
    const gh = def('gh', { type: 'uploaded', instructions: 'Settings > Tokens' });
    const { credentials, vault } = setup([gh]);
    assert.deepEqual(await credentials.forCheck(gh, alice), {
      ok: false,
      reason: 'no token uploaded for gh: upload one at https://mcp.example.com/servers/gh/token',
      connect: 'https://mcp.example.com/servers/gh/token',
    });
    assert.match(((await credentials.forCheck(gh, undefined)) as { reason: string }).reason, /machine client has none/);
    await credentials.setMyToken(gh, alice, { token: 'Bearer tok-alice' });
    await credentials.setMyToken(gh, bob, { token: 'tok-bob' });
    const a = await credentials.forCheck(gh, alice);
    assert.deepEqual(a, { ok: true, headers: { 'x-mcp-backend-credential': 'authorization', 'x-mcp-backend-authorization': 'Bearer tok-alice' } });
    assert.equal(await credentials.forCheck(gh, alice), a, 'built once per stored value');
    assert.deepEqual(((await credentials.forCheck(gh, bob)) as { headers: Record<string, string> }).headers['x-mcp-backend-authorization'], 'Bearer tok-bob');
    for (const { id } of vault.list()) assert.ok(!vault.peek(id)?.includes('Bearer'), 'stored without the prefix');
    const status = credentials.myToken(gh, alice);
    assert.equal(status.set, true);
    assert.equal(status.expired, false);
    assert.equal(status.expiresAt, undefined);
    assert.equal(status.instructions, 'Settings > Tokens');
    assert.ok(!JSON.stringify(status).includes('tok-alice'));
    assert.equal(credentials.status(gh).uploadedTokens, 2);
    assert.equal(await credentials.clearMyToken(gh, alice), true);
    assert.equal((await credentials.forCheck(gh, alice))?.ok, false);
    assert.equal((await credentials.forCheck(gh, bob))?.ok, true);
    assert.equal(await credentials.clearSecrets('gh'), 0, "an editor's clear leaves people's tokens");
    assert.equal(await credentials.clearSecrets('gh', { people: true }), 1, 'deleting the server removes them');
  });

  test('expiry: a JWT exp, else a given date; an expired token is refused at upload and at the check', async () => {
    const gh = def('gh', { type: 'uploaded', header: 'X-API-Key' });
    const { credentials } = setup([gh]);
    const exp = Math.floor(clock / 1000) + 60;
    const jwt = new UnsecuredJWT({}).setExpirationTime(exp).encode();
    const status = await credentials.setMyToken(gh, alice, { token: jwt, expiresAt: '2030-01-01' });
    assert.equal(status.expiresAt, new Date(exp * 1000).toISOString());
    assert.equal(status.expirySource, 'jwt');
    assert.deepEqual(await credentials.forCheck(gh, alice), { ok: true, headers: { 'x-mcp-backend-credential': 'h1', 'x-mcp-backend-h1': jwt } });
    clock += 61_000;
    assert.deepEqual(await credentials.forCheck(gh, alice), {
      ok: false,
      reason: `your token for gh expired at ${new Date(exp * 1000).toISOString()}: upload a new one at https://mcp.example.com/servers/gh/token`,
      connect: 'https://mcp.example.com/servers/gh/token',
    });
    assert.equal(credentials.myToken(gh, alice).expired, true);
    const expired = new UnsecuredJWT({}).setExpirationTime(Math.floor(clock / 1000) - 1).encode();
    await assert.rejects(
      credentials.setMyToken(gh, alice, { token: expired }),
      (e: GatewayError) => e.code === 'REQUEST_INVALID' && /expired at .*upload a new one/.test(e.message),
    );
    const given = await credentials.setMyToken(gh, alice, { token: 'opaque', expiresAt: '2030-01-01' });
    assert.equal(given.expiresAt, '2030-01-02T00:00:00.000Z');
    assert.equal(given.expirySource, 'given');
    assert.equal((await credentials.forCheck(gh, alice))?.ok, true);
    await assert.rejects(credentials.setMyToken(gh, alice, { token: 'opaque', expiresAt: 'soon' }), /give the expiry as a date/);
  });

  test('a token that could split a header, or is too long, is refused without echoing it', async () => {
    const gh = def('gh', { type: 'uploaded' });
    const { credentials } = setup([gh]);
    for (const token of ['a\r\nX-Injected: 1', 'a\u0000b', 'x'.repeat(8200), 'é']) {
      await assert.rejects(credentials.setMyToken(gh, alice, { token }), (e: GatewayError) => e.code === 'REQUEST_INVALID' && !e.message.includes('Injected'));
    }
    await credentials.setMyToken(gh, alice, { token: 'x'.repeat(8000) });
    assert.equal((await credentials.forCheck(gh, alice))?.ok, true);
    const other = def('other', { type: 'headers', headers: [{ name: 'X-API-Key', from: 'vault' }] });
    await assert.rejects(credentials.setMyToken(other, alice, { token: 't' }), /does not take tokens people upload/);
  });

  test('health checks and tool discovery have no person: a clear failure, no token', async () => {
    const gh = def('gh', { type: 'uploaded' });
    const { credentials } = setup([gh]);
    await credentials.setMyToken(gh, alice, { token: 't' });
    await assert.rejects(credentials.forBackend(gh), /each person's own credential, and its definition names no service credential/);
  });
});
