/**
 * Two gateway replicas on one Redis behind a round-robin load balancer with no affinity
 * (issue 12): everything a person, a machine and an operator do must work whichever replica
 * a request lands on, and the failure drills (a replica SIGKILLed under load, Redis restarted,
 * Redis down) must lose nothing and fail closed. Real processes throughout: redis-server, the
 * registry (`registry/src/main.ts`) with its nginx per replica, a plain nginx balancer, and the
 * currenttime MCP server with the SDK's clients.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { buildServer } from '../../../servers/currenttime/server.ts';
import { serveMcp, type RunningMcpServer } from '../../../servers/shared/serve-mcp.ts';
import { jarFetch } from '../integration/cookie-jar.ts';
import { eventually } from '../integration/harness.ts';
import { csrfFrom, login } from '../integration/login.ts';
import { authorizeOverHttp, initializeWithBearer, registerPublicClient, tokenRequest } from '../integration/oauth-http.ts';
import { commandCounts, freePort, Processes, RedisServer, Replica, startLoadBalancer } from './cluster.ts';

const ADMIN_PASSWORD = 'scale-admin-password';
const TOOL_CALL = { name: 'current_time_by_timezone', arguments: { tz_name: 'Europe/Paris' } };

let root = '';
let redis: RedisServer;
let backend: RunningMcpServer;
let replicas: Replica[] = [];
let lb = '';
const procs = new Processes();

before(async () => {
  root = mkdtempSync(join(tmpdir(), 'mcpgw-scale-'));
  mkdirSync(join(root, 'redis'));
  redis = new RedisServer({ dataDir: join(root, 'redis') });
  await redis.start();
  backend = await serveMcp(buildServer, { port: 0 });
  const catalogDir = join(root, 'servers');
  mkdirSync(catalogDir);
  const definition = (name: string, enabled = true) => ({
    name,
    description: `the currenttime server as ${name}`,
    url: backend.url,
    transports: { 'streamable-http': '/mcp', sse: '/sse' },
    enabled,
    tools: [{ name: 'current_time_by_timezone', description: 'time' }],
  });
  writeFileSync(join(catalogDir, 'currenttime.json'), JSON.stringify(definition('currenttime'), null, 2));
  const usersFile = join(root, 'users.json');
  writeFileSync(usersFile, '[]');
  const lbPort = await freePort();
  const publicUrl = `http://127.0.0.1:${lbPort}`;
  const spec = { redisUrl: redis.url, publicUrl, secretKey: randomBytes(32).toString('hex'), adminPassword: ADMIN_PASSWORD, catalogDir, usersFile };
  replicas = [new Replica('replica-1', await freePort(), join(root, 'r1'), spec), new Replica('replica-2', await freePort(), join(root, 'r2'), spec)];
  // One after the other: both seed the same catalog files into Redis, the second finds them applied.
  for (const replica of replicas) await replica.start();
  lb = await startLoadBalancer(procs, join(root, 'lb'), lbPort, [replicas[0]!.port, replicas[1]!.port]);
});

after(async () => {
  for (const replica of replicas) await replica.stop();
  await procs.stopAll();
  await redis?.stop();
  await backend?.close();
  if (root) rmSync(root, { recursive: true, force: true });
});

const [r1, r2] = [() => replicas[0]!, () => replicas[1]!];

/** One Streamable HTTP MCP POST (no SDK): the status and the parsed JSON-RPC answer if any. */
async function mcpPost(base: string, server: string, headers: Record<string, string>, body: unknown): Promise<{ status: number; text: string }> {
  const res = await fetch(`${base}/api/streamable/${server}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
    body: JSON.stringify(body),
  });
  return { status: res.status, text: await res.text() };
}

const initialize = {
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'scale', version: '1' } },
};

async function signIn(base: string, username: string, password: string) {
  const trace = await login(base, username, password);
  const csrf = await csrfFrom(base, trace.jar);
  return { ...trace, csrf };
}

async function api(base: string, method: string, path: string, who: { cookie: string; csrf: string }, body?: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(`${base}/api/registry${path}`, {
    method,
    headers: {
      accept: 'application/json',
      cookie: who.cookie,
      ...(method === 'GET' ? {} : { 'x-csrf-token': who.csrf }),
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      ...headers,
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, etag: res.headers.get('etag'), body: text ? (JSON.parse(text) as Record<string, unknown>) : undefined, text };
}

function requestsServedBy(replica: Replica, path: string): number {
  return replica
    .accessLog()
    .split('\n')
    .filter((line) => line.includes(` ${path} `)).length;
}

describe('two replicas on one Redis behind a load balancer without affinity', () => {
  test('a person signs in through the balancer (each hop may land on either replica) and the session works on both replicas', async () => {
    const user = await signIn(lb, 'user', 'demo');
    for (const replica of replicas) {
      const page = await fetch(`${replica.url}/`, { headers: { cookie: user.cookie } });
      const html = await page.text();
      assert.equal(page.status, 200, replica.name);
      assert.doesNotMatch(html, /id="sign-in"/, `${replica.name} knows the session`);
      const mcp = await mcpPost(replica.url, 'currenttime', { cookie: user.cookie }, initialize);
      assert.equal(mcp.status, 200, `${replica.name}: ${mcp.text}`);
    }
  });

  test('an MCP session opened through one replica continues through the other, on Streamable HTTP and on the legacy SSE transport', async () => {
    const user = await signIn(lb, 'user', 'demo');
    const before = replicas.map((r) => requestsServedBy(r, '/api/streamable/currenttime'));
    const client = new Client({ name: 'scale-streamable', version: '1' });
    await client.connect(new StreamableHTTPClientTransport(new URL(`${lb}/api/streamable/currenttime`), { requestInit: { headers: { cookie: user.cookie } } }));
    for (let i = 0; i < 6; i++) {
      const result = await client.callTool(TOOL_CALL);
      assert.notEqual(result.isError, true, JSON.stringify(result));
    }
    await client.close();
    // nginx flushes its access log every second.
    await eventually(async () => replicas.every((r, i) => requestsServedBy(r, '/api/streamable/currenttime') > before[i]!), 3000);

    const sse = new Client({ name: 'scale-sse', version: '1' });
    await sse.connect(new SSEClientTransport(new URL(`${lb}/api/execute/currenttime/sse`), { requestInit: { headers: { cookie: user.cookie } } }));
    for (let i = 0; i < 4; i++) {
      const result = await sse.callTool(TOOL_CALL);
      assert.notEqual(result.isError, true, JSON.stringify(result));
    }
    await sse.close();
    await eventually(async () => replicas.every((r) => requestsServedBy(r, '/api/execute/currenttime/messages') > 0), 3000);
  });

  test('an OAuth MCP client registers, authorizes and refreshes through the balancer (each step on either replica); its token works on both; disconnecting it on one replica refuses it on the other', async () => {
    const redirectUri = 'http://127.0.0.1:9/cb';
    const resource = `${lb}/api/streamable/currenttime`;
    const clientId = await registerPublicClient(lb, redirectUri, 'scale client');
    const user = await signIn(lb, 'user', 'demo');
    const issued = await authorizeOverHttp(lb, user.jar, { clientId, redirectUri }, resource);
    assert.equal(issued.status, 200, JSON.stringify(issued.body));
    const accessToken = String(issued.body['access_token']);
    for (const replica of replicas) {
      const res = await initializeWithBearer(`${replica.url}/api/streamable/currenttime`, accessToken);
      assert.equal(res.status, 200, `${replica.name}: ${await res.text()}`);
    }
    // Refresh on replica 2 a token issued wherever the balancer sent the code exchange.
    const refresh = String(issued.body['refresh_token']);
    const refreshed = await tokenRequest(r2().url, { grant_type: 'refresh_token', refresh_token: refresh, client_id: clientId });
    assert.equal(refreshed.status, 200, JSON.stringify(refreshed.body));
    // Disconnect on replica 1: replica 2 refuses the client's access token at its next request,
    // and its refresh tokens, old and new, are refused by every replica.
    const listed = await api(r1().url, 'GET', '/connections', user);
    const connection = (listed.body?.['connections'] as { id: string; clientId: string }[] | undefined)?.find((c) => c.clientId === clientId);
    assert.ok(connection, listed.text);
    assert.equal((await api(r1().url, 'DELETE', `/connections/${encodeURIComponent(connection.id)}`, user)).status, 200);
    const after = await initializeWithBearer(`${r2().url}/api/streamable/currenttime`, String(refreshed.body['access_token']));
    for (const token of [refresh, String(refreshed.body['refresh_token'])]) {
      const spent = await tokenRequest(r1().url, { grant_type: 'refresh_token', refresh_token: token, client_id: clientId });
      assert.equal(spent.body['error'], 'invalid_grant', 'no refresh after the disconnect, on any replica');
    }
    assert.equal(after.status, 401, 'replica 2 refuses the disconnected client');
  });

  test('signing out on one replica ends the session on the other at its next request', async () => {
    const user = await signIn(r1().url, 'user', 'demo');
    assert.equal((await mcpPost(r2().url, 'currenttime', { cookie: user.cookie }, initialize)).status, 200);
    const out = await jarFetch(user.jar, `${r2().url}/logout`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ _csrf: await csrfFrom(r2().url, user.jar) }).toString(),
    });
    assert.equal(out.status, 302);
    assert.equal((await mcpPost(r1().url, 'currenttime', { cookie: user.cookie }, initialize)).status, 401, 'replica 1 refuses the signed-out cookie');
  });

  test('a toggle, a registration and a deletion on one replica are served by the other within a second', async () => {
    const admin = await signIn(r1().url, 'admin', ADMIN_PASSWORD);
    const user = await signIn(r2().url, 'user', 'demo');
    const toggled = await api(r1().url, 'POST', '/servers/currenttime/toggle', admin, { enabled: false });
    assert.equal(toggled.status, 200, toggled.text);
    const start = Date.now();
    const disabledAfter = await eventually(async () => (await mcpPost(r2().url, 'currenttime', { cookie: user.cookie }, initialize)).status === 503, 1000);
    assert.equal((await api(r1().url, 'POST', '/servers/currenttime/toggle', admin, { enabled: true })).status, 200);
    const enabledAfter = await eventually(async () => (await mcpPost(r2().url, 'currenttime', { cookie: user.cookie }, initialize)).status === 200, 1000);

    const registered = await api(r1().url, 'POST', '/servers', admin, {
      name: 'clock',
      description: 'registered on replica 1',
      url: backend.url,
      transports: { 'streamable-http': '/mcp' },
      enabled: true,
    });
    assert.equal(registered.status, 201, registered.text);
    const servedAfter = await eventually(async () => (await mcpPost(r2().url, 'clock', { cookie: admin.cookie }, initialize)).status === 200, 1000);
    const deleted = await api(r2().url, 'DELETE', '/servers/clock', admin);
    assert.equal(deleted.status, 200, deleted.text);
    const goneAfter = await eventually(async () => (await mcpPost(r1().url, 'clock', { cookie: admin.cookie }, initialize)).status === 404, 1000);
    console.log(
      `# catalog changes across replicas: disable ${disabledAfter} ms, enable ${enabledAfter} ms, register ${servedAfter} ms, delete ${goneAfter} ms (total ${Date.now() - start} ms)`,
    );
  });

  test('open streams of one server survive catalog changes made on the other replica (both transports), and nginx never reloads', async () => {
    const admin = await signIn(lb, 'admin', ADMIN_PASSWORD);
    const user = await signIn(lb, 'user', 'demo');
    const reloads = () => replicas.map((r) => (r.errorLog().match(/signal 1 \(SIGHUP\) received/g) ?? []).length);
    const reloadsBefore = reloads();
    // Both streams go through replica 1; the changes are made on replica 2.
    const streamable = new Client({ name: 'scale-stream', version: '1' });
    const streamableTransport = new StreamableHTTPClientTransport(new URL(`${r1().url}/api/streamable/currenttime`), {
      requestInit: { headers: { cookie: user.cookie } },
    });
    await streamable.connect(streamableTransport);
    const sse = new Client({ name: 'scale-sse-stream', version: '1' });
    let sseClosed = false;
    const sseTransport = new SSEClientTransport(new URL(`${r1().url}/api/execute/currenttime/sse`), { requestInit: { headers: { cookie: user.cookie } } });
    await sse.connect(sseTransport);
    sse.onclose = () => (sseClosed = true);
    for (let i = 0; i < 3; i++) {
      const name = `churn-${i}`;
      const port = 20000 + i; // a backend origin no replica has seen: routed at once all the same
      assert.equal(
        (
          await api(r2().url, 'POST', '/servers', admin, {
            name,
            url: `http://127.0.0.1:${port}`,
            transports: { 'streamable-http': '/mcp', sse: '/sse' },
            enabled: true,
          })
        ).status,
        201,
      );
      const read = await api(r2().url, 'GET', `/servers/${name}`, admin);
      const definition = read.body?.['definition'] as Record<string, unknown>;
      assert.equal(
        (await api(r2().url, 'PUT', `/servers/${name}`, admin, { ...definition, url: backend.url }, { 'if-match': read.etag ?? '' })).status,
        200,
        're-pointed',
      );
      await eventually(async () => (await mcpPost(r1().url, name, { cookie: admin.cookie }, initialize)).status === 200, 1000);
      assert.equal((await api(r2().url, 'DELETE', `/servers/${name}`, admin)).status, 200);
    }
    // The SSE stream carries the answers of the legacy transport: a call that answers proves it open.
    const viaSse = await sse.callTool(TOOL_CALL);
    assert.notEqual(viaSse.isError, true);
    assert.equal(sseClosed, false, 'the legacy stream was never cut');
    const viaStreamable = await streamable.callTool(TOOL_CALL);
    assert.notEqual(viaStreamable.isError, true);
    assert.deepEqual(reloads(), reloadsBefore, 'no replica reloaded nginx for catalog changes');
    await sse.close();
    await streamable.close();
  });

  test('concurrent edits of one definition on two replicas: exactly one wins, the other gets 412, and both replicas then show the winner', async () => {
    const admin = await signIn(lb, 'admin', ADMIN_PASSWORD);
    for (let round = 0; round < 5; round++) {
      const current = await api(r1().url, 'GET', '/servers/currenttime', admin);
      assert.equal(current.status, 200, current.text);
      const etag = current.etag;
      assert.ok(etag);
      const definition = current.body?.['definition'] as Record<string, unknown> | undefined;
      assert.ok(definition, 'an admin reads the definition');
      const edit = (replica: Replica, description: string) =>
        api(replica.url, 'PUT', '/servers/currenttime', admin, { ...definition, description }, { 'if-match': etag });
      const [a, b] = await Promise.all([edit(r1(), `edited on replica 1, round ${round}`), edit(r2(), `edited on replica 2, round ${round}`)]);
      assert.deepEqual([a.status, b.status].sort(), [200, 412], `round ${round}: ${a.text} / ${b.text}`);
      const winner = a.status === 200 ? `edited on replica 1, round ${round}` : `edited on replica 2, round ${round}`;
      for (const replica of replicas) {
        await eventually(async () => JSON.stringify((await api(replica.url, 'GET', '/servers/currenttime', admin)).body).includes(winner), 1000);
      }
    }
  });

  test('the audit view of either replica shows the decisions of both', async () => {
    const nobody = await signIn(r1().url, 'no-groups', 'demo');
    const admin = await signIn(r2().url, 'admin', ADMIN_PASSWORD);
    // A refusal that only replica 1 saw: no-groups may not use currenttime.
    const refused = await mcpPost(r1().url, 'currenttime', { cookie: nobody.cookie }, initialize);
    assert.equal(refused.status, 403, refused.text);
    await eventually(async () => {
      const audit = await api(r2().url, 'GET', '/audit?server=currenttime&decision=deny', admin);
      return audit.status === 200 && JSON.stringify(audit.body).includes('no-groups');
    }, 3000);
  });

  test('the per-request check makes no Redis round trip: commands per MCP request, from INFO commandstats', async () => {
    const user = await signIn(r1().url, 'user', 'demo');
    const init = await fetch(`${r1().url}/api/streamable/currenttime`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', cookie: user.cookie },
      body: JSON.stringify(initialize),
    });
    const session = init.headers.get('mcp-session-id') ?? '';
    await init.text();
    const total = (counts: Map<string, number>) => [...counts.values()].reduce((a, b) => a + b, 0);
    const requests = 300;
    const before = await commandCounts(redis);
    for (let i = 0; i < requests; i++) {
      const res = await mcpPost(
        r1().url,
        'currenttime',
        { cookie: user.cookie, 'mcp-session-id': session },
        { jsonrpc: '2.0', id: i + 10, method: 'tools/call', params: TOOL_CALL },
      );
      assert.equal(res.status, 200, res.text);
    }
    const after = await commandCounts(redis);
    const delta = new Map([...after].map(([name, calls]) => [name, calls - (before.get(name) ?? 0)] as const).filter(([, n]) => n > 0));
    const perRequest = (total(after) - total(before)) / requests;
    console.log(`# Redis commands during ${requests} MCP requests: ${JSON.stringify(Object.fromEntries(delta))} = ${perRequest.toFixed(3)} per request`);
    // Background work (lease renewals, batched audit writes) runs meanwhile; the check itself adds none.
    assert.ok(perRequest < 0.25, `${perRequest} Redis commands per MCP request`);
  });

  test('SIGKILL of a replica under load: clients that retry through the balancer carry on, and nothing written before is lost', async () => {
    const admin = await signIn(lb, 'admin', ADMIN_PASSWORD);
    const user = await signIn(lb, 'user', 'demo');
    assert.equal(
      (await api(lb, 'POST', '/servers', admin, { name: 'survivor', url: backend.url, transports: { 'streamable-http': '/mcp' }, enabled: true })).status,
      201,
    );
    let stop = false;
    let calls = 0;
    let retried = 0;
    const failures: string[] = [];
    const worker = async () => {
      const client = new Client({ name: 'scale-load', version: '1' });
      await client.connect(
        new StreamableHTTPClientTransport(new URL(`${lb}/api/streamable/currenttime`), { requestInit: { headers: { cookie: user.cookie } } }),
      );
      while (!stop) {
        try {
          await client.callTool(TOOL_CALL);
        } catch {
          retried++;
          try {
            await client.callTool(TOOL_CALL);
          } catch (err) {
            failures.push((err as Error).message);
          }
        }
        calls++;
      }
      await client.close();
    };
    const workers = Array.from({ length: 4 }, worker);
    await eventually(async () => calls > 40, 10_000);
    await r1().kill();
    const atKill = calls;
    await eventually(async () => calls > atKill + 100, 15_000);
    stop = true;
    await Promise.all(workers);
    console.log(`# SIGKILL under load: ${calls} tool calls, ${retried} retried once, ${failures.length} failed after the retry`);
    assert.deepEqual(failures, []);
    // What replica 1 wrote before it died is on replica 2, and the session still works there.
    assert.equal((await mcpPost(r2().url, 'survivor', { cookie: admin.cookie }, initialize)).status, 200);
    assert.equal((await mcpPost(r2().url, 'currenttime', { cookie: user.cookie }, initialize)).status, 200);
    await r1().start();
    assert.equal(
      (await mcpPost(r1().url, 'survivor', { cookie: user.cookie }, initialize)).status,
      403,
      'user has no scope on survivor: the restarted replica knows it and the session',
    );
    assert.equal((await api(lb, 'DELETE', '/servers/survivor', admin)).status, 200);
  });

  test('Redis killed and started again: the replicas reconnect and lose nothing Redis acknowledged', async () => {
    const user = await signIn(lb, 'user', 'demo');
    await redis.stop();
    await redis.start();
    for (const replica of replicas) {
      await eventually(async () => (await fetch(`${replica.url}/readyz`)).status === 200, 10_000);
      assert.equal((await mcpPost(replica.url, 'currenttime', { cookie: user.cookie }, initialize)).status, 200, `${replica.name} after the restart`);
    }
  });

  test('Redis down: MCP fails closed with 503 STORE_UNAVAILABLE, the page says why, /readyz is 503; all recovers when Redis is back', async () => {
    const user = await signIn(lb, 'user', 'demo');
    await redis.stop();
    try {
      for (const replica of replicas) {
        await eventually(async () => (await mcpPost(replica.url, 'currenttime', { cookie: user.cookie }, initialize)).status === 503, 5000);
        const mcp = await mcpPost(replica.url, 'currenttime', { cookie: user.cookie }, initialize);
        assert.match(mcp.text, /STORE_UNAVAILABLE/, `${replica.name}: ${mcp.text}`);
        const page = await fetch(`${replica.url}/`, { headers: { cookie: user.cookie } });
        assert.equal(page.status, 503, replica.name);
        assert.match(await page.text(), /store/i, `${replica.name}: the page names the state store`);
        assert.equal((await fetch(`${replica.url}/readyz`)).status, 503, `${replica.name} is not ready`);
      }
    } finally {
      await redis.start();
    }
    for (const replica of replicas) {
      await eventually(async () => (await mcpPost(replica.url, 'currenttime', { cookie: user.cookie }, initialize)).status === 200, 10_000);
      // Each store reconnects and resyncs on its own: ready once the last one is back.
      await eventually(async () => (await fetch(`${replica.url}/readyz`)).status === 200, 10_000);
    }
  });
});
