import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { GatewayMetrics, outcomeOf, type BackendHealthState } from './metrics.ts';
import { StoreHealth } from './stores.ts';

function build(overrides: { backends?: { server: string; state: BackendHealthState }[]; sessions?: number } = {}) {
  const stores = new StoreHealth();
  const metrics = new GatewayMetrics({
    isKnownServer: (name) => name === 'github' || name === 'fininfo',
    backends: () => overrides.backends ?? [],
    loginSessions: () => overrides.sessions ?? 0,
    stores,
    processMetrics: false,
  });
  return { metrics, stores };
}

/** The sample lines of one metric, without HELP/TYPE. */
async function samples(metrics: GatewayMetrics, name: string): Promise<string[]> {
  return (await metrics.render()).split('\n').filter((line) => line.startsWith(`${name}{`) || line.startsWith(`${name} `));
}

describe('GatewayMetrics', () => {
  it('maps every status the check answers to an outcome', () => {
    assert.deepEqual([200, 401, 403, 404, 503, 500, 418].map(outcomeOf), ['allow', 'unauthenticated', 'forbidden', 'not_found', 'disabled', 'error', 'other']);
  });

  it('counts decisions by server, outcome and status, and labels a server outside the catalog unknown', async () => {
    const { metrics } = build();
    metrics.recordDecision('github', 200, 0.0002);
    metrics.recordDecision('github', 200, 0.0003);
    metrics.recordDecision('github', 403, 0.0004);
    metrics.recordDecision('not-in-catalog', 404, 0.0001);
    metrics.recordDecision(undefined, 500, 0.0001);
    assert.deepEqual((await samples(metrics, 'mcp_gateway_check_decisions_total')).sort(), [
      'mcp_gateway_check_decisions_total{server="github",outcome="allow",status="200"} 2',
      'mcp_gateway_check_decisions_total{server="github",outcome="forbidden",status="403"} 1',
      'mcp_gateway_check_decisions_total{server="unknown",outcome="error",status="500"} 1',
      'mcp_gateway_check_decisions_total{server="unknown",outcome="not_found",status="404"} 1',
    ]);
  });

  it('observes check latency in seconds, by outcome, in sub-millisecond buckets', async () => {
    const { metrics } = build();
    metrics.recordDecision('github', 200, 0.0002);
    metrics.recordDecision('github', 200, 0.03);
    const lines = await samples(metrics, 'mcp_gateway_check_duration_seconds_bucket');
    assert.ok(lines.includes('mcp_gateway_check_duration_seconds_bucket{le="0.00025",outcome="allow"} 1'), lines.join('\n'));
    assert.ok(lines.includes('mcp_gateway_check_duration_seconds_bucket{le="0.05",outcome="allow"} 2'));
    assert.ok(lines.includes('mcp_gateway_check_duration_seconds_bucket{le="+Inf",outcome="allow"} 2'));
    assert.deepEqual(await samples(metrics, 'mcp_gateway_check_duration_seconds_count'), ['mcp_gateway_check_duration_seconds_count{outcome="allow"} 2']);
  });

  it('times a wrapped check and counts the status it wrote under the server nginx named', async () => {
    const { metrics } = build();
    const check = metrics.timeCheck(async (_req, res) => {
      res.statusCode = 403;
    }, 'X-MCP-Server');
    const res = { statusCode: 200 } as Parameters<typeof check>[1];
    await check({ headers: { 'x-mcp-server': 'fininfo' } } as unknown as Parameters<typeof check>[0], res);
    assert.deepEqual(await samples(metrics, 'mcp_gateway_check_decisions_total'), [
      'mcp_gateway_check_decisions_total{server="fininfo",outcome="forbidden",status="403"} 1',
    ]);
  });

  it('counts a check that threw, with the status it had', async () => {
    const { metrics } = build();
    const check = metrics.timeCheck(async () => {
      throw new Error('boom');
    }, 'x-mcp-server');
    await assert.rejects(check({ headers: {} } as never, { statusCode: 500 } as never));
    assert.deepEqual(await samples(metrics, 'mcp_gateway_check_decisions_total'), [
      'mcp_gateway_check_decisions_total{server="unknown",outcome="error",status="500"} 1',
    ]);
  });

  it('reports backend health as one state per catalog server', async () => {
    const backends: { server: string; state: BackendHealthState }[] = [
      { server: 'github', state: 'healthy' },
      { server: 'fininfo', state: 'unknown' },
    ];
    const { metrics } = build({ backends });
    const lines = await samples(metrics, 'mcp_gateway_backend_health');
    assert.ok(lines.includes('mcp_gateway_backend_health{server="github",state="healthy"} 1'));
    assert.ok(lines.includes('mcp_gateway_backend_health{server="github",state="unhealthy"} 0'));
    assert.ok(lines.includes('mcp_gateway_backend_health{server="fininfo",state="unknown"} 1'));
    // A server gone from the catalog is gone from the metric at the next scrape.
    backends.splice(1, 1);
    assert.ok(!(await samples(metrics, 'mcp_gateway_backend_health')).some((l) => l.includes('fininfo')));
  });

  it('counts nginx reloads and refusals, not applies that changed nothing', async () => {
    const { metrics } = build();
    metrics.nginxApply('reloaded');
    metrics.nginxApply('reloaded');
    metrics.nginxApply('unchanged');
    metrics.nginxApply('failed');
    assert.deepEqual(await samples(metrics, 'mcp_gateway_nginx_reloads_total'), ['mcp_gateway_nginx_reloads_total 2']);
    assert.deepEqual(await samples(metrics, 'mcp_gateway_nginx_reload_failures_total'), ['mcp_gateway_nginx_reload_failures_total 1']);
  });

  it('reads login sessions and store state at each scrape', async () => {
    const { metrics, stores } = build({ sessions: 3 });
    let redisReady = false;
    stores.set('sessions', true);
    stores.watch('redis', () => redisReady);
    assert.deepEqual(await samples(metrics, 'mcp_gateway_login_sessions'), ['mcp_gateway_login_sessions 3']);
    assert.deepEqual(await samples(metrics, 'mcp_gateway_store_up'), ['mcp_gateway_store_up{store="sessions"} 1', 'mcp_gateway_store_up{store="redis"} 0']);
    redisReady = true;
    assert.deepEqual(await samples(metrics, 'mcp_gateway_store_up'), ['mcp_gateway_store_up{store="sessions"} 1', 'mcp_gateway_store_up{store="redis"} 1']);
  });

  it('includes process metrics unless told not to', async () => {
    const metrics = new GatewayMetrics({ isKnownServer: () => false, backends: () => [], loginSessions: () => 0, stores: new StoreHealth() });
    assert.match(await metrics.render(), /^mcp_gateway_process_cpu_seconds_total /m);
    assert.match(metrics.contentType, /^text\/plain/);
  });
});

describe('StoreHealth', () => {
  it('counts a probe that throws as down, and refuses names that are not short words', () => {
    const stores = new StoreHealth();
    stores.watch('redis', () => {
      throw new Error('no connection');
    });
    assert.deepEqual(stores.list(), [{ name: 'redis', up: false }]);
    for (const bad of ['', 'Redis', 'a b', 'x'.repeat(33), 'user@example.com']) assert.throws(() => stores.set(bad, true), TypeError);
  });
});
