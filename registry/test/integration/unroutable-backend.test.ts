import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { buildServer as buildFininfo } from '../../../servers/fininfo/server.ts';
import { serveMcp, type RunningMcpServer } from '../../../servers/shared/serve-mcp.ts';
import { DEV_MACHINE_CLIENT_ID } from '../../src/identity/dev.ts';
import { ApiClient, machineToken, type ApiResponse } from './api-client.ts';
import { ADMIN_PASSWORD, startTestGateway, TEST_SECRET_KEY, type TestGateway } from './harness.ts';
import { jarFetch } from './cookie-jar.ts';
import { login } from './login.ts';

/*
 * One definition whose backend cannot be reached must never take down the others (security
 * review, issue 10: an unresolvable host once made `nginx -t` fail for the whole config).
 * Routing is now the check's (nginx/route.ts, issue 12): nginx's config does not follow the
 * catalog, and a backend host the registry cannot resolve makes that server alone answer 502
 * BACKEND_UNAVAILABLE; it is reported for that server, and the others keep routing.
 */

const UNRESOLVABLE = 'http://no-such-host.invalid:9000';

let gw: TestGateway;
let fininfo: RunningMcpServer;
let api: ApiClient;
let token = '';

const definition = (name: string, url: string, description = `${name} (unroutable-backend test)`) => ({
  name,
  description,
  url,
  transports: { 'streamable-http': '/mcp' },
  enabled: true,
});

/** An MCP session through nginx: tools/list and one tools/call. */
async function routes(name: string): Promise<boolean> {
  const client = new Client({ name: 'unroutable-test', version: '1' });
  try {
    await client.connect(
      new StreamableHTTPClientTransport(new URL(`${gw.url}/api/streamable/${name}`), { requestInit: { headers: { authorization: `Bearer ${token}` } } }),
    );
    assert.equal((await client.listTools()).tools.length, 4);
    await client.callTool({ name: 'print_stuff', arguments: { stuff: 'x' } });
    return true;
  } catch {
    return false;
  } finally {
    await client.close().catch(() => undefined);
  }
}

function assertNotRouted(res: ApiResponse, name: string): void {
  assert.equal(res.body.server.name, name);
  assert.equal(res.body.server.routed, false, JSON.stringify(res.body));
  assert.match(res.body.server.routeError, /not routed: host not found: "no-such-host\.invalid:9000"/);
  assert.match(res.body.nginx.refused?.[name] ?? '', /host not found/);
  assert.equal(res.body.nginx.lastError, undefined, 'nginx itself is untouched');
}

/** The raw answer of an MCP POST for a server whose backend cannot be reached. */
async function unavailable(name: string): Promise<void> {
  const res = await fetch(`${gw.url}/api/streamable/${name}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' }),
  });
  assert.equal(res.status, 502);
  assert.equal(((await res.json()) as { error: string }).error, 'BACKEND_UNAVAILABLE');
}

describe('a server whose backend cannot be reached is reported and answers 502; it never blocks the other servers', () => {
  before(async () => {
    fininfo = await serveMcp(buildFininfo, { port: 0 });
    gw = await startTestGateway({ mapping: `clients:\n  ${JSON.stringify(DEV_MACHINE_CLIENT_ID)}: ["mcp:registry:admin"]\n` });
    api = new ApiClient(gw.url);
    token = await machineToken(gw.url, TEST_SECRET_KEY);
  });
  after(async () => {
    if (process.exitCode) process.stderr.write(`nginx error.log:\n${gw?.errorLog()}\n`);
    await gw?.[Symbol.asyncDispose]();
    await fininfo?.close();
  });

  test('registering an unresolvable backend answers 201 with routed: false and the reason; a server next to it routes', async () => {
    const good = await api.call('registerServer', { as: { bearer: token }, body: definition('good-one', fininfo.url) });
    assert.equal(good.status, 201, good.text);
    assert.equal(good.body.server.routed, true);
    const bad = await api.call('registerServer', { as: { bearer: token }, body: definition('broken', UNRESOLVABLE) });
    assert.equal(bad.status, 201, bad.text);
    assertNotRouted(bad, 'broken');
    assert.equal(await routes('good-one'), true, 'the good server still routes');
    assert.equal(await routes('broken'), false);
    await unavailable('broken');
  });

  test('later registrations and edits of other servers route (before, every change after the bad one failed)', async () => {
    const second = await api.call('registerServer', { as: { bearer: token }, body: definition('good-two', fininfo.url) });
    assert.equal(second.status, 201, second.text);
    assert.equal(second.body.server.routed, true);
    assert.deepEqual(Object.keys(second.body.nginx.refused ?? {}), ['broken'], 'still reported');
    assert.equal(await routes('good-two'), true);
    const edited = await api.call('updateServer', {
      as: { bearer: token },
      params: { name: 'good-one' },
      body: definition('good-one', fininfo.url, 'edited next to a broken one'),
    });
    assert.equal(edited.status, 200, edited.text);
    assert.equal(edited.body.server.routed, true);
    assert.equal(await routes('good-one'), true);
    assert.match(gw.gateway.nginx.status().refused?.['broken'] ?? '', /host not found/);
  });

  test("the server's status and the page say it is not routed, and why", async () => {
    const got = await api.call('getServer', { as: { bearer: token }, params: { name: 'broken' } });
    assert.equal(got.status, 200);
    assert.equal(got.body.routed, false);
    assert.match(got.body.routeError, /host not found: "no-such-host\.invalid:9000"/);
    const list = await api.call('listServers', { as: { bearer: token } });
    const routed = Object.fromEntries((list.body.servers as { name: string; routed: boolean }[]).map((s) => [s.name, s.routed]));
    assert.deepEqual(routed, { broken: false, currenttime: true, 'good-one': true, 'good-two': true, offline: true });
    const admin = await login(gw.url, 'admin', ADMIN_PASSWORD);
    const page = await (await jarFetch(admin.jar, `${gw.url}/servers/broken`)).text();
    assert.match(page, /id="not-routed"[\s\S]*host not found/);
    const index = await (await jarFetch(admin.jar, `${gw.url}/`)).text();
    assert.match(index, /data-server="broken"[\s\S]*?data-not-routed/);
  });

  test('fixing the URL routes it', async () => {
    const fixed = await api.call('updateServer', { as: { bearer: token }, params: { name: 'broken' }, body: definition('broken', fininfo.url) });
    assert.equal(fixed.status, 200, fixed.text);
    assert.equal(fixed.body.server.routed, true);
    assert.equal(fixed.body.nginx.refused, undefined);
    assert.equal(await routes('broken'), true);
  });

  test('an unresolvable definition already on disk at start does not stop nginx from starting with the others', async () => {
    gw.writeDefinition('broken-on-disk', definition('broken-on-disk', UNRESOLVABLE));
    await gw.restart();
    token = await machineToken(gw.url, TEST_SECRET_KEY); // the dev IdP's key is new after a restart
    assert.match(gw.gateway.nginx.status().refused?.['broken-on-disk'] ?? '', /host not found/);
    assert.doesNotMatch(readFileSync(join(gw.gateway.runtimeDir, 'nginx.conf'), 'utf8'), /no-such-host/, 'no upstream block nginx would refuse');
    await unavailable('broken-on-disk');
    assert.equal(await routes('good-two'), true);
    assert.equal(await routes('broken'), true);
  });
});
