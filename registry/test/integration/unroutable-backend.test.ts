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
 * nginx resolves `upstream { server host:port; }` when it loads a config, so one definition
 * whose backend host does not resolve made `nginx -t` fail for the whole config: every later
 * change failed to route while the API still answered 201 (security review, issue 10). Now the
 * refused definition is left out and reported for that server, and the others keep routing.
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
  assert.match(res.body.server.routeError, /not routed: host not found in upstream "no-such-host\.invalid:9000"/);
  assert.match(res.body.nginx.refused?.[name] ?? '', /host not found/);
  assert.equal(res.body.nginx.lastError, undefined, 'the rest of the config was applied');
}

describe('a definition nginx refuses is reported and left out; it never blocks the other servers', () => {
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

  test("registering an unresolvable backend answers 201 with routed: false and nginx's reason; a server next to it routes", async () => {
    const good = await api.call('registerServer', { as: { bearer: token }, body: definition('good-one', fininfo.url) });
    assert.equal(good.status, 201, good.text);
    assert.equal(good.body.server.routed, true);
    const bad = await api.call('registerServer', { as: { bearer: token }, body: definition('broken', UNRESOLVABLE) });
    assert.equal(bad.status, 201, bad.text);
    assertNotRouted(bad, 'broken');
    assert.equal(await routes('good-one'), true, 'the good server still routes');
    assert.equal(await routes('broken'), false);
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
    assert.match(gw.gateway.nginx.status().refused?.['broken'] ?? '', /host not found in upstream/);
  });

  test("the server's status and the page say it is not routed, and why", async () => {
    const got = await api.call('getServer', { as: { bearer: token }, params: { name: 'broken' } });
    assert.equal(got.status, 200);
    assert.equal(got.body.routed, false);
    assert.match(got.body.routeError, /host not found in upstream "no-such-host\.invalid:9000"/);
    const list = await api.call('listServers', { as: { bearer: token } });
    const routed = Object.fromEntries((list.body.servers as { name: string; routed: boolean }[]).map((s) => [s.name, s.routed]));
    assert.deepEqual(routed, { broken: false, currenttime: true, 'good-one': true, 'good-two': true, offline: true });
    const admin = await login(gw.url, 'admin', ADMIN_PASSWORD);
    const page = await (await jarFetch(admin.jar, `${gw.url}/servers/broken`)).text();
    assert.match(page, /id="not-routed"[\s\S]*host not found in upstream/);
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

  test('a refused definition already on disk at start does not stop nginx from starting with the others', async () => {
    gw.writeDefinition('broken-on-disk', definition('broken-on-disk', UNRESOLVABLE));
    await gw.restart();
    token = await machineToken(gw.url, TEST_SECRET_KEY); // the dev IdP's key is new after a restart
    assert.match(gw.gateway.nginx.status().refused?.['broken-on-disk'] ?? '', /host not found in upstream/);
    assert.equal(await routes('good-two'), true);
    assert.equal(await routes('broken'), true);
  });
});
