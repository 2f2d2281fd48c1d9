/**
 * What operators watch (docs/operations.md), through the real nginx: /healthz, /readyz, /metrics
 * (loopback or METRICS_TOKEN, with the client's address as nginx saw it), and W3C trace context
 * passing through to the backend untouched.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { eventually, startTestGateway, type TestGateway } from './harness.ts';
import { login } from './login.ts';

const METRICS_TOKEN = 'scrape-token-for-the-observability-test';
/** An address of this machine that is not loopback: nginx then sees a remote client. */
const REMOTE_ADDRESS = Object.values(networkInterfaces())
  .flat()
  .find((i) => i !== undefined && i.family === 'IPv4' && !i.internal)?.address;

let gw: TestGateway;
let cookie: string;
let remoteUrl: string;

before(async () => {
  // 0.0.0.0 so the test can also reach nginx on a non-loopback address of this machine.
  gw = await startTestGateway({ env: { GATEWAY_HOST: '0.0.0.0', METRICS_TOKEN } });
  remoteUrl = `http://${REMOTE_ADDRESS}:${new URL(gw.url).port}`;
  cookie = (await login(gw.url, 'user', 'demo')).cookie;
});
after(async () => {
  if (process.exitCode) process.stderr.write(`nginx error.log:\n${gw?.errorLog()}\n`);
  await gw?.[Symbol.asyncDispose]();
});

const STREAMABLE = '/api/streamable/currenttime';
const INITIALIZE = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
});
const MCP_HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };

async function scrape(headers: Record<string, string> = {}): Promise<string> {
  const res = await fetch(`${gw.url}/metrics`, { headers });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  return res.text();
}

describe('probes', () => {
  test('/healthz answers 200 {"status":"ok"} through nginx, without a session', async () => {
    const res = await fetch(`${gw.url}/healthz`);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { status: 'ok' });
  });

  test('/readyz answers 200 once nginx has its config and every store is up, 503 naming a store that is down', async () => {
    const ready = await fetch(`${gw.url}/readyz`);
    assert.equal(ready.status, 200);
    assert.deepEqual(await ready.json(), { status: 'ready' });

    gw.gateway.stores.set('redis', false);
    try {
      const down = await fetch(`${gw.url}/readyz`);
      assert.equal(down.status, 503);
      assert.deepEqual(await down.json(), { status: 'not-ready', notReady: ['store:redis'] });
      assert.match(await scrape(), /^mcp_gateway_store_up\{store="redis"\} 0$/m);
    } finally {
      gw.gateway.stores.set('redis', true);
    }
    assert.equal((await fetch(`${gw.url}/readyz`)).status, 200);
  });
});

describe('/metrics', () => {
  test('counts the decision of an MCP request by server, outcome and status, and its latency', async () => {
    const allowed = await fetch(`${gw.url}${STREAMABLE}`, { method: 'POST', headers: { ...MCP_HEADERS, cookie }, body: INITIALIZE });
    assert.equal(allowed.status, 200);
    await allowed.body?.cancel();
    const refused = await fetch(`${gw.url}${STREAMABLE}`, { method: 'POST', headers: MCP_HEADERS, body: INITIALIZE });
    assert.equal(refused.status, 401);
    const disabled = await fetch(`${gw.url}/api/streamable/offline`, { method: 'POST', headers: { ...MCP_HEADERS, cookie }, body: INITIALIZE });
    assert.equal(disabled.status, 503);

    const text = await scrape();
    assert.match(text, /^mcp_gateway_check_decisions_total\{server="currenttime",outcome="allow",status="200"\} 1$/m);
    assert.match(text, /^mcp_gateway_check_decisions_total\{server="currenttime",outcome="unauthenticated",status="401"\} 1$/m);
    assert.match(text, /^mcp_gateway_check_decisions_total\{server="offline",outcome="disabled",status="503"\} 1$/m);
    assert.match(text, /^mcp_gateway_check_duration_seconds_count\{outcome="allow"\} 1$/m);
    assert.match(text, /^mcp_gateway_login_sessions [1-9]\d*$/m);
    assert.match(text, /^mcp_gateway_store_up\{store="sessions"\} 1$/m);
    assert.match(text, /^mcp_gateway_process_resident_memory_bytes \d+/m);
    // Never a user, a cookie or a token in a label.
    assert.doesNotMatch(text, /demo|user"|mcp_gateway_session|scrape-token/);
  });

  test('reports backend health from the monitor, and counts no nginx reload for a catalog change (issue 12)', async () => {
    await eventually(async () => /^mcp_gateway_backend_health\{server="currenttime",state="healthy"\} 1$/m.test(await scrape()), 10_000);
    gw.writeDefinition('another', { name: 'another', url: gw.backend.url, transports: { 'streamable-http': '/mcp' }, enabled: true });
    await eventually(async () => gw.gateway.catalog.get('another') !== undefined, 10_000);
    await gw.gateway.nginx.settled();
    const metrics = await scrape();
    assert.match(metrics, /^mcp_gateway_nginx_reloads_total 0$/m, 'routed by the check, never reloaded');
    assert.match(metrics, /^mcp_gateway_nginx_reload_failures_total 0$/m);
  });

  test('off loopback: 401 without the token or with a forged client-address header, 200 with METRICS_TOKEN', async () => {
    // Never skipped: a machine without one cannot show that off-loopback scrapes are refused.
    assert.ok(REMOTE_ADDRESS, 'this test needs a non-loopback IPv4 address on the machine to reach nginx from off loopback');
    const cases: Array<[Record<string, string>, number]> = [
      [{}, 401],
      [{ 'x-gateway-client-address': '127.0.0.1' }, 401],
      [{ 'x-forwarded-for': '127.0.0.1', 'x-real-ip': '127.0.0.1' }, 401],
      [{ authorization: 'Bearer not-the-token-but-long-enough' }, 401],
      [{ authorization: `Bearer ${METRICS_TOKEN}` }, 200],
    ];
    for (const path of ['/metrics', '/metrics/', '/METRICS', '/metrics?x=1']) {
      for (const [headers, status] of cases) {
        const res = await fetch(`${remoteUrl}${path}`, { headers });
        const body = await res.text();
        assert.equal(res.status, status, `${path} ${JSON.stringify(headers)}: ${body.slice(0, 80)}`);
        if (status === 200) assert.match(body, /^mcp_gateway_check_decisions_total/m);
        else assert.doesNotMatch(body, /mcp_gateway_/);
      }
    }
  });
});

describe('trace context', () => {
  test('a backend receives exactly the traceparent and tracestate the client sent on an MCP POST', async () => {
    const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    const tracestate = 'congo=t61rcWkgMzE,rojo=00f067aa0ba902b7';
    const seen = gw.received.length;
    const res = await fetch(`${gw.url}${STREAMABLE}`, { method: 'POST', headers: { ...MCP_HEADERS, cookie, traceparent, tracestate }, body: INITIALIZE });
    assert.equal(res.status, 200);
    await res.body?.cancel();
    const posts = gw.received.slice(seen).filter((r) => r.method === 'POST' && r.path === '/mcp');
    assert.equal(posts.length, 1);
    assert.equal(posts[0]?.headers['traceparent'], traceparent);
    assert.equal(posts[0]?.headers['tracestate'], tracestate);
    // The audit line of that decision carries the trace id.
    await eventually(async () =>
      readFileSync(gw.gateway.auditFile, 'utf8')
        .split('\n')
        .some((line) => line.includes('"traceId":"4bf92f3577b34da6a3ce929d0e0e4736"') && line.includes('"decision":"allow"')),
    );
  });
});
