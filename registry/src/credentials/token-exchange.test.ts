import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { serverDefinitionSchema, freezeDefinition, type ServerDefinition } from '../catalog/server-definition.ts';
import type { TokenExchangeAuth } from '../catalog/backend-auth.ts';
import { createLogger } from '../log.ts';
import type { CredentialAnswer } from './answer.ts';
import type { IdpTokenRecord } from './idp-tokens.ts';
import { TOKEN_EXCHANGE_GRANT, TokenExchangeSource, type ExchangeRequest, type ExchangeResult, type TokenExchangeOptions } from './token-exchange.ts';

const ALICE = { provider: 'dev', sub: 'alice' };
const BOB = { provider: 'dev', sub: 'bob' };
const SECRET = 'exchange-client-secret-0123456789';

const def = (name: string, extra: Record<string, unknown> = {}): ServerDefinition =>
  freezeDefinition(
    serverDefinitionSchema.parse({
      name,
      url: 'http://127.0.0.1:1',
      transports: { 'streamable-http': '/mcp' },
      backendAuth: { type: 'token_exchange', tokenUrl: 'http://127.0.0.1:1/token', clientId: 'gw', clientSecretFrom: { env: 'MCP_BACKEND_TX' }, ...extra },
    }),
  );
const authOf = (d: ServerDefinition) => d.backendAuth as TokenExchangeAuth;

/** A clock, people's subject tokens, and an exchanger that counts and can be held or refuse. */
function setup(options: Partial<TokenExchangeOptions> = {}) {
  const clock = { now: 1_000_000 };
  const subjects = new Map<string, IdpTokenRecord>([
    ['alice', { accessToken: 'subject-alice-1', idToken: 'id-alice-1', expiresAt: clock.now + 3600_000, storedAt: clock.now }],
    ['bob', { accessToken: 'subject-bob-1', storedAt: clock.now }],
  ]);
  const calls: ExchangeRequest[] = [];
  const control = { expiresIn: 300 as number | undefined, fail: undefined as string | undefined, hold: undefined as Promise<void> | undefined };
  const source = new TokenExchangeSource({
    subjects: { peek: (p) => subjects.get(p.sub) },
    vault: undefined,
    env: { MCP_BACKEND_TX: SECRET },
    publicUrl: 'https://gw.example',
    log: createLogger('silent'),
    now: () => clock.now,
    exchange: async (request): Promise<ExchangeResult> => {
      calls.push(request);
      await control.hold;
      if (control.fail) throw new Error(control.fail);
      return { accessToken: `exchanged-${request.subjectToken}-${calls.length}`, expiresIn: control.expiresIn };
    },
    ...options,
  });
  return { source, clock, subjects, calls, control };
}

const token = (answer: CredentialAnswer) => (answer.ok ? answer.headers['x-mcp-backend-authorization'] : `refused: ${answer.reason}`);

describe('token exchange: the cache the check reads', () => {
  test('a miss exchanges once (a promise); later calls answer from memory (no promise) with the same token', async () => {
    const { source, calls } = setup();
    const server = def('s');
    const first = source.forCheck(server, authOf(server), ALICE);
    assert.ok(first instanceof Promise);
    assert.equal(token(await first), 'Bearer exchanged-subject-alice-1-1');
    for (let i = 0; i < 5; i++) {
      const again = source.forCheck(server, authOf(server), ALICE);
      assert.ok(!(again instanceof Promise));
      assert.equal(token(again), 'Bearer exchanged-subject-alice-1-1');
    }
    assert.equal(calls.length, 1);
    assert.equal(calls[0]?.clientSecret, SECRET);
    assert.equal(source.count('s'), 1);
  });

  test('concurrent callers for one person and server share one exchange; another person gets their own', async () => {
    const { source, calls, control } = setup();
    let release!: () => void;
    control.hold = new Promise((r) => (release = r));
    const server = def('s');
    const waiting = Array.from({ length: 10 }, () => source.forCheck(server, authOf(server), ALICE));
    const bob = source.forCheck(server, authOf(server), BOB);
    release();
    const answers = await Promise.all(waiting);
    assert.equal(new Set(answers.map(token)).size, 1);
    assert.equal(token(await bob), 'Bearer exchanged-subject-bob-1-2');
    assert.equal(calls.length, 2);
  });

  test('used until shortly before expires_in runs out, then exchanged again', async () => {
    const { source, calls, clock } = setup();
    const server = def('s');
    await source.forCheck(server, authOf(server), ALICE);
    clock.now += 300_000 - 31_000; // margin: 10 % of 300 s
    assert.ok(!(source.forCheck(server, authOf(server), ALICE) instanceof Promise));
    clock.now += 2_000;
    assert.equal(token(await source.forCheck(server, authOf(server), ALICE)), 'Bearer exchanged-subject-alice-1-2');
    assert.equal(calls.length, 2);
  });

  test('without expires_in, the exchanged token lives as long as the subject token; without either, the default', async () => {
    const { source, calls, clock, control } = setup({ defaultLifetimeSeconds: 20 });
    control.expiresIn = undefined;
    const server = def('s');
    await source.forCheck(server, authOf(server), ALICE); // subject expires in an hour
    clock.now += 3000_000;
    assert.ok(!(source.forCheck(server, authOf(server), ALICE) instanceof Promise));
    await source.forCheck(server, authOf(server), BOB); // bob's subject has no expiry: 20 s
    clock.now += 19_500;
    assert.ok(source.forCheck(server, authOf(server), BOB) instanceof Promise);
    assert.equal(calls.length, 3);
  });

  test('a new subject token (sign-in, refresh) and a changed definition each miss the cache', async () => {
    const { source, calls, subjects, clock } = setup();
    const server = def('s');
    await source.forCheck(server, authOf(server), ALICE);
    subjects.set('alice', { accessToken: 'subject-alice-2', expiresAt: clock.now + 3600_000, storedAt: clock.now });
    assert.equal(token(await source.forCheck(server, authOf(server), ALICE)), 'Bearer exchanged-subject-alice-2-2');
    const changed = def('s', { scopes: ['more'] });
    assert.equal(token(await source.forCheck(changed, authOf(changed), ALICE)), 'Bearer exchanged-subject-alice-2-3');
    assert.equal(calls.length, 3);
  });

  test('the subject token type picks the ID token; a person without one, or with an expired one, is sent to sign in', async () => {
    const { source, calls, clock, subjects } = setup();
    const server = def('s', { subjectTokenType: 'id_token' });
    await source.forCheck(server, authOf(server), ALICE);
    assert.equal(calls[0]?.subjectToken, 'id-alice-1');
    const bob = await source.forCheck(server, authOf(server), BOB);
    assert.equal(bob.ok, false);
    assert.match(!bob.ok ? bob.reason : '', /no ID token of yours.*sign in again at https:\/\/gw\.example\/login/);
    assert.equal(!bob.ok && bob.connect, 'https://gw.example/login');
    const plain = def('p');
    subjects.set('alice', { accessToken: 'old', expiresAt: clock.now + 1000, storedAt: clock.now });
    const expired = await source.forCheck(plain, authOf(plain), ALICE);
    assert.match(!expired.ok ? expired.reason : '', /access token from the identity provider expired/);
    const nobody = await source.forCheck(plain, authOf(plain), { provider: 'dev', sub: 'carol' });
    assert.match(!nobody.ok ? nobody.reason : '', /holds no identity-provider token of yours/);
    assert.equal(calls.length, 1);
  });

  test('a refusal is answered from the cache for retryMs, then tried again; its reason carries no secret or token', async () => {
    const { source, calls, clock, control } = setup({ retryMs: 5_000 });
    control.fail = `400 invalid_grant (${SECRET} subject-alice-1)`;
    const server = def('s');
    const refused = await source.forCheck(server, authOf(server), ALICE);
    assert.equal(refused.ok, false);
    const reason = !refused.ok ? refused.reason : '';
    assert.match(reason, /token exchange for s failed: 400 invalid_grant/);
    assert.ok(!reason.includes(SECRET) && !reason.includes('subject-alice-1'));
    assert.ok(!(source.forCheck(server, authOf(server), ALICE) instanceof Promise));
    control.fail = undefined;
    clock.now += 5_001;
    assert.equal((await source.forCheck(server, authOf(server), ALICE)).ok, true);
    assert.equal(calls.length, 2);
  });

  test('no client secret: refused without an exchange, and not cached (the next call after it is set exchanges)', async () => {
    const env: Record<string, string> = {};
    const { source, calls } = setup({ env });
    const server = def('s');
    const refused = await source.forCheck(server, authOf(server), ALICE);
    assert.match(!refused.ok ? refused.reason : '', /MCP_BACKEND_TX .* is not set/);
    env['MCP_BACKEND_TX'] = SECRET;
    assert.equal((await source.forCheck(server, authOf(server), ALICE)).ok, true);
    assert.equal(calls.length, 1);
  });

  test('bounded: past maxEntries the oldest goes; forgetServer drops a server', async () => {
    const { source, calls } = setup({ maxEntries: 2 });
    const [a, b, c] = [def('a'), def('b'), def('c')];
    for (const d of [a, b, c]) await source.forCheck(d, authOf(d), ALICE);
    assert.ok(source.forCheck(a, authOf(a), ALICE) instanceof Promise, 'a was evicted');
    await Promise.resolve();
    assert.equal(await source.forgetServer('c'), 1);
    assert.equal(source.count('c'), 0);
    assert.ok(calls.length >= 4);
  });
});

describe('token exchange: the RFC 8693 request and response checks (openid-client against a loopback token endpoint)', () => {
  let server: Server;
  let url = '';
  let reply: Record<string, unknown> = {};
  let status = 200;
  const seen: { body: URLSearchParams; authorization: string | undefined }[] = [];
  before(async () => {
    server = createServer((req: IncomingMessage, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        seen.push({ body: new URLSearchParams(body), authorization: req.headers.authorization });
        res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(reply));
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/token`;
  });
  after(() => new Promise<void>((r) => server.close(() => r())));

  const exchange = (auth: Record<string, unknown> = {}) => {
    const d = freezeDefinition(
      serverDefinitionSchema.parse({
        name: 'real',
        url: 'http://127.0.0.1:1',
        transports: { 'streamable-http': '/mcp' },
        backendAuth: { type: 'token_exchange', tokenUrl: url, clientId: 'gw', clientSecretFrom: { env: 'MCP_BACKEND_TX' }, ...auth },
      }),
    );
    const source = new TokenExchangeSource({
      subjects: { peek: () => ({ accessToken: 'the-subject', storedAt: 0 }) },
      vault: undefined,
      env: { MCP_BACKEND_TX: SECRET },
      publicUrl: 'https://gw.example',
      log: createLogger('silent'),
    });
    return source.forCheck(d, authOf(d), ALICE);
  };
  const ok = { access_token: 'issued', token_type: 'Bearer', issued_token_type: 'urn:ietf:params:oauth:token-type:access_token', expires_in: 60 };

  test('sends the §2.1 parameters with the client authenticated, and takes a Bearer access token', async () => {
    [status, reply] = [200, ok];
    const answer = await exchange({ audience: 'api://backend', resource: 'https://backend.example/mcp', scopes: ['read', 'write'] });
    assert.equal(token(answer), 'Bearer issued');
    const { body, authorization } = seen.at(-1)!;
    assert.equal(body.get('grant_type'), TOKEN_EXCHANGE_GRANT);
    assert.equal(body.get('subject_token'), 'the-subject');
    assert.equal(body.get('subject_token_type'), 'urn:ietf:params:oauth:token-type:access_token');
    assert.equal(body.get('requested_token_type'), 'urn:ietf:params:oauth:token-type:access_token');
    assert.equal(body.get('audience'), 'api://backend');
    assert.equal(body.get('resource'), 'https://backend.example/mcp');
    assert.equal(body.get('scope'), 'read write');
    // RFC 6749 §2.3.1: id and secret form-urlencoded, then base64.
    const [id, secret] = Buffer.from((authorization ?? '').replace(/^Basic /, ''), 'base64')
      .toString()
      .split(':');
    assert.deepEqual([id, decodeURIComponent(secret ?? '')], ['gw', SECRET]);
  });

  const refusals: [string, number, Record<string, unknown>, RegExp][] = [
    ['an OAuth error (§2.2.2)', 400, { error: 'invalid_target' }, /answered 400 invalid_target/],
    ['token_type N_A (§2.2.1: not an access token)', 200, { ...ok, token_type: 'N_A' }, /failed/],
    ['no issued_token_type', 200, { access_token: 'x', token_type: 'Bearer' }, /issued_token_type/],
    ['an ID token issued', 200, { ...ok, issued_token_type: 'urn:ietf:params:oauth:token-type:id_token' }, /not an access token/],
  ];
  for (const [what, s, body, reason] of refusals)
    test(`refuses ${what}, naming it without the secret or subject token`, async () => {
      [status, reply] = [s, body];
      const answer = await exchange();
      assert.equal(answer.ok, false);
      const text = !answer.ok ? answer.reason : '';
      assert.match(text, reason);
      assert.ok(!text.includes(SECRET) && !text.includes('the-subject'));
    });
});
