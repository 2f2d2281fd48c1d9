import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEV_MACHINE_CLIENT_ID } from '../../src/identity/dev.ts';
import { RedisServer } from '../redis-server.ts';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { startProtectedBackend, type ProtectedBackend } from '../fixtures/protected-backend.ts';
import { ApiClient, machineToken } from './api-client.ts';
import { connectOverHttp } from './backend-connect.ts';
import { ADMIN_PASSWORD, eventually, freePort, startTestGateway, TEST_SECRET_KEY, type TestGateway } from './harness.ts';
import { login } from './login.ts';
import { openRawSession, rawCall } from './raw-mcp.ts';

/**
 * Two gateways (own ports, own STATE_DIRs) sharing one Redis (REDIS_URL) and SECRET_KEY: what
 * one replica does, the other honours at the next request; a Redis outage fails closed with 503
 * STORE_UNAVAILABLE and heals by itself; the check costs no Redis command.
 */
const dataDir = mkdtempSync(join(tmpdir(), 'mcpgw-redis-'));
const redis = new RedisServer({ dataDir });
let one: TestGateway;
let two: TestGateway;
/** A backend behind its own OAuth server, for per-user connections across replicas (4 s tokens). */
let protectedBackend: ProtectedBackend;
const TOKEN_TTL = 4;

before(async () => {
  await redis.start();
  protectedBackend = await startProtectedBackend({ accessTokenTtlSeconds: TOKEN_TTL });
  // Replicas behind one load balancer: one public URL (issuer), one SECRET_KEY, one Redis.
  const port = await freePort();
  const env = { REDIS_URL: redis.url, GATEWAY_PUBLIC_URL: `http://127.0.0.1:${port}`, BACKEND_TOKEN_REFRESH_SECONDS: '1' };
  const mapping = `clients:\n  ${JSON.stringify(DEV_MACHINE_CLIENT_ID)}: ["mcp:registry:admin"]\n`;
  one = await startTestGateway({ port, env, mapping });
  two = await startTestGateway({ env, mapping, catalogDir: one.catalogDir });
});

after(async () => {
  await one?.[Symbol.asyncDispose]();
  await two?.[Symbol.asyncDispose]();
  await protectedBackend?.close();
  await redis.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

const initialize = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
});

const mcp = (gw: TestGateway, headers: Record<string, string>) =>
  fetch(`${gw.url}/api/streamable/currenttime`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
    body: initialize,
  });

const page = (gw: TestGateway, cookie: string) => fetch(`${gw.url}/`, { headers: { cookie } });

/** The CSRF token of the signed-in page on `gw`. */
async function csrfOn(gw: TestGateway, cookie: string): Promise<string> {
  const text = await (await page(gw, cookie)).text();
  const token = /name="_csrf" value="([^"]+)"/.exec(text)?.[1];
  assert.ok(token, `no CSRF token on ${gw.url}`);
  return token;
}

/** Calls per command from `INFO commandstats`. */
async function commandStats(): Promise<Map<string, number>> {
  const text = await redis.command('INFO', 'commandstats');
  const calls = new Map<string, number>();
  for (const match of text.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) calls.set(match[1]!, Number(match[2]));
  return calls;
}

describe('two gateways on one Redis', () => {
  test('signed in on gateway 1: the cookie opens gateway 2 page and MCP; signed out on 2: refused on 1 at the next request', async () => {
    const { cookie } = await login(one.url, 'user', 'demo');
    assert.equal((await mcp(one, { cookie })).status, 200);
    const there = await page(two, cookie);
    assert.equal(there.status, 200);
    assert.doesNotMatch(await there.text(), /id="sign-in"/, 'signed in on gateway 2');
    assert.equal((await mcp(two, { cookie })).status, 200);

    const out = await fetch(`${two.url}/logout`, {
      method: 'POST',
      headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ _csrf: await csrfOn(two, cookie) }).toString(),
      redirect: 'manual',
    });
    assert.equal(out.status, 302);
    assert.equal((await mcp(one, { cookie })).status, 401, 'the next request on gateway 1 is refused');
    assert.match(await (await page(one, cookie)).text(), /id="sign-in"/);
  });

  test('a personal access token created on gateway 1 works on gateway 2; revoked on 2, it is refused on 1 at the next request', async () => {
    const { cookie } = await login(one.url, 'user', 'demo');
    const api1 = new ApiClient(one.url);
    const api2 = new ApiClient(two.url);
    const created = await api1.call('createToken', {
      as: { cookie, csrf: await csrfOn(one, cookie) },
      body: { name: 'replicas', servers: ['currenttime'], lifetimeDays: 1 },
    });
    assert.equal(created.status, 201, created.text);
    const authorization = `Bearer ${created.body.token as string}`;
    assert.equal((await mcp(two, { authorization })).status, 200);
    assert.equal((await mcp(one, { authorization })).status, 200);
    const revoked = await api2.call('revokeToken', { as: { cookie, csrf: await csrfOn(two, cookie) }, params: { id: created.body.tokenInfo.id as string } });
    assert.equal(revoked.status, 200, revoked.text);
    assert.equal((await mcp(one, { authorization })).status, 401, 'the next request on gateway 1 is refused');
  });

  test('cached allows on gateway 2 (CHECK_CACHE_SECONDS): a toggle and a sign-out on gateway 1 bite on gateway 2 as soon as it hears them', async () => {
    const api1 = new ApiClient(one.url);
    const admin = { bearer: await machineToken(one.url, TEST_SECRET_KEY) };
    const { cookie } = await login(one.url, 'user', 'demo');
    const url = `${two.url}/api/streamable/currenttime`;
    const headers = await openRawSession(url, { cookie });
    const cachedOnTwo = async () =>
      (await two.gateway.audit.recent({ event: 'access', user: 'user', limit: 500 })).filter((e) => e.event === 'access' && e.answeredBy === 'cache').length;
    const cachedBefore = await cachedOnTwo();
    for (let i = 0; i < 3; i++) assert.equal((await rawCall(url, headers)).status, 200);
    await eventually(async () => (await cachedOnTwo()) > cachedBefore, 5000);

    assert.equal((await api1.call('toggleServer', { as: admin, params: { name: 'currenttime' }, body: { enabled: false } })).status, 200);
    try {
      const took = await eventually(async () => (await rawCall(url, headers)).status === 503, 2000);
      assert.ok(took < 1000, `gateway 2 served the disabled server for ${took} ms`);
    } finally {
      assert.equal((await api1.call('toggleServer', { as: admin, params: { name: 'currenttime' }, body: { enabled: true } })).status, 200);
    }
    await eventually(async () => (await rawCall(url, headers)).status === 200, 2000);
    assert.equal((await rawCall(url, headers)).status, 200);

    const out = await fetch(`${one.url}/logout`, {
      method: 'POST',
      headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ _csrf: await csrfOn(one, cookie) }).toString(),
      redirect: 'manual',
    });
    assert.equal(out.status, 302);
    const took = await eventually(async () => (await rawCall(url, headers)).status === 401, 2000);
    assert.ok(took < 1000, `gateway 2 let the signed-out session through for ${took} ms`);
  });

  test('a backend secret put through gateway 1 is read from memory on gateway 2 (the key derived from the shared SECRET_KEY); Redis holds it sealed', async () => {
    const secret = `backend-secret-${Date.now()}`;
    await one.gateway.vault.put('currenttime:api-key', secret);
    await eventually(async () => two.gateway.vault.peek('currenttime:api-key') === secret);
    assert.deepEqual(
      two.gateway.vault.list().map(({ id, keyId }) => ({ id, keyId })),
      [{ id: 'currenttime:api-key', keyId: 'sk' }],
    );
    const stored = await redis.command('HGET', 'mcpgw:{credentials}:r:currenttime:api-key', 'value');
    assert.match(stored, /v1\.sk\./);
    assert.ok(!stored.includes(secret), 'Redis holds the plaintext');
    assert.equal(await two.gateway.vault.delete('currenttime:api-key'), true);
    await eventually(async () => one.gateway.vault.peek('currenttime:api-key') === undefined);
  });

  test("a token one replica's IdP signed verifies on the other: keys come from SECRET_KEY, not from the process", async () => {
    const token = await machineToken(one.url, TEST_SECRET_KEY);
    assert.equal((await mcp(two, { authorization: `Bearer ${token}` })).status, 200);
    assert.equal((await mcp(one, { authorization: `Bearer ${token}` })).status, 200);
  });

  test('the check costs no Redis command: INFO commandstats around 200 MCP requests (a session cookie, then a personal access token)', async (t) => {
    const { cookie } = await login(one.url, 'user', 'demo');
    assert.equal((await mcp(one, { cookie })).status, 200);
    const created = await new ApiClient(one.url).call('createToken', {
      as: { cookie, csrf: await csrfOn(one, cookie) },
      body: { name: 'count', servers: ['currenttime'], lifetimeDays: 1 },
    });
    const authorization = `Bearer ${created.body.token as string}`;
    assert.equal((await mcp(one, { authorization })).status, 200);
    const N = 200;
    const before = await commandStats();
    const started = Date.now();
    for (let i = 0; i < N; i++) assert.equal((await mcp(one, i % 2 ? { authorization } : { cookie })).status, 200);
    const elapsed = Date.now() - started;
    const afterStats = await commandStats();
    const delta = new Map<string, number>();
    for (const [command, calls] of afterStats) {
      const grew = calls - (before.get(command) ?? 0) - (command === 'info' ? 1 : 0);
      if (grew > 0) delta.set(command, grew);
    }
    // Not the check's: each mirror's heartbeat (PUBLISH, 1/s per store and replica), the leases
    // (EVAL to renew, SET NX to contend, every 5 s) and the shared audit stream (XADD, one per
    // batch of decisions, audit-log.ts). The check itself reads only memory.
    const BACKGROUND = new Set(['publish', 'eval', 'set', 'xadd']);
    const perRequest = [...delta].filter(([command]) => !BACKGROUND.has(command));
    const total = [...delta.values()].reduce((a, b) => a + b, 0);
    t.diagnostic(
      `${N} MCP requests in ${elapsed} ms: ${total} Redis commands in all (${JSON.stringify(Object.fromEntries(delta))}), ${perRequest.reduce((a, [, n]) => a + n, 0) / N} per request from the check`,
    );
    assert.deepEqual(perRequest, [], 'no Redis command on the request path');
  });

  test("a person's backend account connected through gateway 2 (callback on gateway 1) serves them on both; one replica refreshes it, so the rotating refresh token is never spent twice", async () => {
    const mcpUrl = new URL(protectedBackend.mcpUrl);
    const token = await machineToken(one.url, TEST_SECRET_KEY);
    const api = new ApiClient(one.url);
    const registered = await api.call('registerServer', {
      as: { bearer: token },
      body: {
        name: 'protected',
        description: 'behind its own OAuth server',
        url: mcpUrl.origin,
        transports: { 'streamable-http': mcpUrl.pathname },
        enabled: true,
        backendAuth: { type: 'user_oauth' },
      },
    });
    assert.equal(registered.status, 201, registered.text);
    const trace = await login(two.url, 'admin', ADMIN_PASSWORD);
    await eventually(async () => (await fetch(`${two.url}/servers/protected`, { headers: { cookie: trace.cookie } })).status === 200, 5000);
    // Started on gateway 2; the authorization server sends the browser to the public URL (gateway 1).
    assert.match(await connectOverHttp(trace.jar, two.url, 'protected', 'alice', 'alice-pw'), /Connected to protected as alice/);
    const whoami = async (gw: TestGateway) => {
      const client = new Client({ name: 'replica-test', version: '1.0.0' });
      await client.connect(
        new StreamableHTTPClientTransport(new URL(`${gw.url}/api/streamable/protected`), { requestInit: { headers: { cookie: trace.cookie } } }),
      );
      try {
        const result = await client.callTool({ name: 'whoami', arguments: {} });
        return JSON.parse((result.content as { text: string }[])[0]!.text) as Record<string, unknown>;
      } finally {
        await client.close();
      }
    };
    assert.equal((await whoami(one))['sub'], 'alice');
    assert.equal((await whoami(two))['sub'], 'alice');
    // Three token lifetimes: each replica sweeps every second, the lease holder alone refreshes.
    // oidc-provider revokes the whole grant when a rotated refresh token is used twice, so a
    // double refresh would break the connection.
    const before = protectedBackend.tokenRequests;
    await new Promise((r) => setTimeout(r, TOKEN_TTL * 3 * 1000));
    const refreshes = protectedBackend.tokenRequests - before;
    assert.ok(refreshes >= 3 && refreshes <= 8, `${refreshes} refreshes in ${TOKEN_TTL * 3} s`);
    const status = (await new ApiClient(two.url).call('getMyConnection', { params: { name: 'protected' }, as: { cookie: trace.cookie } })).body;
    assert.equal(status.state, 'connected', JSON.stringify(status));
    assert.equal((await whoami(one))['sub'], 'alice');
    assert.equal((await whoami(two))['sub'], 'alice');
    assert.equal((await api.call('deleteServer', { params: { name: 'protected' }, as: { bearer: token } })).status, 200);
  });

  test('Redis stops: MCP answers 503 STORE_UNAVAILABLE, /readyz names the stores, the page says the store is unreachable; Redis back: everything works again, the session survived', async (t) => {
    const { cookie } = await login(one.url, 'user', 'demo');
    assert.equal((await mcp(one, { cookie })).status, 200);
    const readyz = async () => {
      const res = await fetch(`${one.gateway.registryUrl}/readyz`);
      return { status: res.status, body: (await res.json()) as { status: string; notReady?: string[] } };
    };
    assert.equal((await readyz()).status, 200);
    await redis.stop();
    const refusedAfter = await eventually(async () => (await mcp(one, { cookie })).status === 503, 5000);
    const notReady = await readyz();
    assert.equal(notReady.status, 503);
    assert.ok(notReady.body.notReady?.includes('store:sessions'), JSON.stringify(notReady.body));
    const refused = await mcp(one, { cookie });
    assert.equal(refused.status, 503);
    assert.equal(((await refused.json()) as { error: string }).error, 'STORE_UNAVAILABLE');
    await eventually(async () => (await mcp(two, { cookie })).status === 503, 5000);
    const down = await page(one, cookie);
    assert.equal(down.status, 503);
    assert.match(await down.text(), /state store \(Redis\) cannot be reached/);

    await redis.start(); // the same port and data folder (append-only file): the session is still there
    const servedAfter = await eventually(async () => (await mcp(one, { cookie })).status === 200, 10_000);
    t.diagnostic(`Redis killed: first 503 within ${refusedAfter} ms; Redis started again: first 200 within ${servedAfter} ms (polled every 25 ms)`);
    await eventually(async () => (await mcp(two, { cookie })).status === 200, 10_000);
    // Every store reconnects and resyncs by itself, each on its own connections: ready once all are.
    await eventually(async () => (await readyz()).status === 200, 10_000);
    const back = await page(one, cookie);
    assert.equal(back.status, 200);
    assert.doesNotMatch(await back.text(), /id="sign-in"/, 'still signed in');
  });
});
