import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { login } from '../registry/test/integration/login.ts';
import {
  FULL_USER,
  gatewayMachineToken,
  machineToken,
  nginxReloads,
  startCatalogChurn,
  startGateway,
  TOOL_USER,
  type RunningGateway,
} from './bench/gateway.ts';
import { jsonRpcMessage, measure, openMcpSession, TOOL_CALL_BODY, type LoadOptions, type Target } from './bench/load.ts';
import { freePort, Processes, startDirectNginx, waitForHttp } from './bench/processes.ts';
import { startReplicas, type RunningReplicas } from './bench/replicas.ts';
import { coresUsed, sampleCpu } from './bench/cpu.ts';
import { compareWithDirect, summary, writeResults, type Row } from './bench/report.ts';
import {
  backendMachineToken,
  connectPerson,
  OAUTH_SERVER,
  oauthDefinition,
  startOAuthBackend,
  WHOAMI_BODY,
  type RunningOAuthBackend,
} from './bench/user-oauth.ts';

/**
 * `npm run bench`: the gateway's per-request cost, measured against plain nginx on this
 * machine. Starts the fininfo MCP server, a plain nginx and the registry (with its nginx) as
 * separate processes on 127.0.0.1, drives each row with the same autocannon load, prints a
 * table and writes bench/results/<time>.json. See docs/performance.md.
 *
 * BENCH_CONNECTIONS (16), BENCH_DURATION (10 s), BENCH_WARMUP (3 s) and BENCH_ROWS (a,b,c,d,e,f,g,h,i,j)
 * change the load and the rows; the defaults are what docs/performance.md reports.
 */
const root = join(import.meta.dirname, '..');
const load: LoadOptions = {
  connections: intFromEnv('BENCH_CONNECTIONS', 16),
  duration: intFromEnv('BENCH_DURATION', 10),
  warmup: intFromEnv('BENCH_WARMUP', 3),
};
/** The rows to run, in this order. */
const selected = (process.env['BENCH_ROWS'] ?? 'a,b,c,d,e,f,g,h,i,j').split(',').map((r) => r.trim());
if (selected.some((r) => !/^[a-j]$/.test(r))) throw new Error('BENCH_ROWS: a comma-separated list of the rows a, b, c, d, e, f, g, h, i, j');
/**
 * The whole run is bounded: start-up, 10 s of backend warm-up and ten rows of 13 s (row (j)
 * twice: its direct reference too) take about 3 minutes.
 */
const DEADLINE_MS = 5 * 60 * 1000;

interface Setup {
  readonly backendUrl: string;
  readonly directUrl: string;
  readonly gateway: RunningGateway;
  readonly fullCookie: string;
  readonly toolCookie: string;
  readonly bearer: string;
  /** A token the gateway itself issued (client credentials at /oauth2/token, audience fininfo). */
  readonly gatewayBearer: string;
  /** Row (h): two replicas on Redis behind a balancer, and the full user's cookie signed in through it. */
  readonly replicas?: { readonly running: RunningReplicas; readonly cookie: string };
  /**
   * Row (j): the OAuth-protected backend (the full user has connected to it as alice) and a
   * plain nginx to it, for the direct reference with a token of the backend's own machine client.
   */
  readonly oauth?: { readonly backend: RunningOAuthBackend; readonly directUrl: string; readonly machineToken: string };
}

function intFromEnv(name: string, fallback: number): number {
  const value = Number(process.env[name] ?? fallback);
  if (!Number.isInteger(value) || value <= 0) throw new Error(`${name} must be a positive integer`);
  return value;
}

async function startBackend(procs: Processes, dir: string): Promise<string> {
  const port = await freePort();
  const child = procs.start('fininfo', process.execPath, [join(root, 'servers', 'fininfo', 'server.ts')], {
    cwd: root,
    logFile: join(dir, 'fininfo.log'),
    env: { HOST: '127.0.0.1', PORT: String(port) },
  });
  await waitForHttp(`http://127.0.0.1:${port}/healthz`, child, 15_000);
  return `http://127.0.0.1:${port}`;
}

async function setUp(procs: Processes, dir: string): Promise<Setup> {
  step('starting the fininfo MCP server');
  const backendUrl = await startBackend(procs, dir);
  step('starting the plain nginx for row (a)');
  const directUrl = await startDirectNginx(procs, join(dir, 'direct-nginx'), Number(new URL(backendUrl).port));
  let oauthBackend: RunningOAuthBackend | undefined;
  if (selected.includes('j')) {
    step('row (j): starting the OAuth-protected backend (authorization server + MCP server)');
    oauthBackend = await startOAuthBackend(procs, root, dir);
  }
  step('starting the registry and its nginx');
  const gateway = await startGateway(procs, root, dir, backendUrl, { definitions: oauthBackend ? [oauthDefinition(oauthBackend.mcpUrl)] : [] });
  step('signing in through the login form, getting a machine token');
  const fullLogin = await login(gateway.url, FULL_USER.username, FULL_USER.password);
  const fullCookie = fullLogin.cookie;
  const toolCookie = (await login(gateway.url, TOOL_USER.username, TOOL_USER.password)).cookie;
  const bearer = await machineToken(gateway);
  const gatewayBearer = await gatewayMachineToken(gateway);
  let replicas: Setup['replicas'];
  if (selected.includes('h')) {
    step('row (h): starting redis-server, two replicas on it and a load balancer');
    const running = await startReplicas(procs, root, join(dir, 'replicas'), backendUrl);
    replicas = { running, cookie: (await login(running.url, FULL_USER.username, FULL_USER.password)).cookie };
  }
  let oauth: Setup['oauth'];
  if (oauthBackend) {
    step(`row (j): connecting ${FULL_USER.username} to ${OAUTH_SERVER} (the connect flow, signing in at its authorization server)`);
    await connectPerson(gateway.url, fullLogin.jar);
    const port = Number(new URL(oauthBackend.mcpUrl).port);
    const oauthDirectUrl = await startDirectNginx(procs, join(dir, 'direct-nginx-oauth'), port, 'direct-nginx-oauth');
    oauth = { backend: oauthBackend, directUrl: oauthDirectUrl, machineToken: await backendMachineToken(oauthBackend) };
  }
  return { backendUrl, directUrl, gateway, fullCookie, toolCookie, bearer, gatewayBearer, ...(replicas ? { replicas } : {}), ...(oauth ? { oauth } : {}) };
}

/** A `tools/call` target on an MCP path, with a session opened through that same path. */
async function toolCall(url: string, auth: Record<string, string>, body = TOOL_CALL_BODY): Promise<Target> {
  return { url, method: 'POST', headers: await openMcpSession(url, auth, body), body };
}

/**
 * Row (j)'s target, after checking that the person's calls reach the backend with their own
 * token: one `whoami` through the gateway must answer alice's claims for the backend's MCP URL,
 * and the backend must have counted it.
 */
async function perUserTarget(s: Setup): Promise<Target> {
  const { backend } = s.oauth!;
  const before = (await backend.status()).receivedWithBearer;
  const target = await toolCall(`${s.gateway.url}/api/streamable/${OAUTH_SERVER}`, { cookie: s.fullCookie }, WHOAMI_BODY);
  const res = await fetch(target.url, { method: 'POST', headers: target.headers, body: WHOAMI_BODY.replace('[<id>]', 'whoami') });
  const answer = jsonRpcMessage(await res.text()) as { result?: { content?: { text?: string }[] } };
  const claims = JSON.parse(answer.result?.content?.[0]?.text ?? '{}') as { sub?: string; aud?: string };
  if (res.status !== 200 || claims.sub !== 'alice' || claims.aud !== backend.mcpUrl)
    throw new Error(`whoami through the gateway answered ${res.status}: ${JSON.stringify(answer).slice(0, 300)}`);
  const reached = (await backend.status()).receivedWithBearer - before;
  if (reached < 4) throw new Error(`${reached} of the 4 checking requests reached the backend with a bearer token`);
  return target;
}

/** Row (e): the check nginx asks on each MCP request, sent straight to the registry's loopback port. */
async function validateTarget(s: Setup): Promise<Target> {
  const target: Target = {
    url: `${s.gateway.registryUrl}/auth/validate`,
    method: 'GET',
    headers: {
      'x-mcp-server': 'fininfo',
      'x-mcp-transport': 'streamable-http',
      'x-mcp-messages': 'tools/call get_stock_aggregates',
      'x-original-method': 'POST',
      cookie: s.fullCookie,
    },
  };
  const res = await fetch(target.url, { headers: target.headers });
  await res.arrayBuffer();
  if (res.status !== 200) throw new Error(`/auth/validate answered ${res.status}`);
  return target;
}

async function runRows(s: Setup, procs: Processes): Promise<Row[]> {
  const gw = `${s.gateway.url}/api/streamable/fininfo`;
  const rows: {
    row: string;
    what: string;
    gateway: boolean;
    target: () => Promise<Target>;
    toggle?: boolean;
    /** Count Redis commands around the measured run (row h). */
    redis?: boolean;
    /** Count the requests that reached the OAuth-protected backend with a bearer token, and measure it direct (row j). */
    oauth?: boolean;
  }[] = [
    { row: 'a', what: 'direct: plain nginx -> fininfo, no auth', gateway: false, target: () => toolCall(`${s.directUrl}/mcp`, {}) },
    { row: 'b', what: 'gateway, cookie, server scope', gateway: true, target: () => toolCall(gw, { cookie: s.fullCookie }) },
    { row: 'c', what: 'gateway, cookie, tool scope', gateway: true, target: () => toolCall(gw, { cookie: s.toolCookie }) },
    { row: 'd', what: 'gateway, bearer token', gateway: true, target: () => toolCall(gw, { authorization: `Bearer ${s.bearer}` }) },
    { row: 'e', what: '/auth/validate alone (checks/s)', gateway: false, target: () => validateTarget(s) },
    { row: 'f', what: '(b) while the catalog changes every 1 s', gateway: true, target: () => toolCall(gw, { cookie: s.fullCookie }), toggle: true },
    { row: 'g', what: "gateway, the gateway's own token", gateway: true, target: () => toolCall(gw, { authorization: `Bearer ${s.gatewayBearer}` }) },
    {
      row: 'i',
      what: '(b) to a backend behind a static secret',
      gateway: true,
      target: () => toolCall(`${s.gateway.url}/api/streamable/fininfo-keyed`, { cookie: s.fullCookie }),
    },
    {
      row: 'j',
      what: '(b) to a backend behind per-user OAuth',
      gateway: true,
      target: () => perUserTarget(s),
      oauth: true,
    },
    {
      row: 'h',
      what: '(b) through a balancer to two replicas on Redis',
      gateway: true,
      target: () => toolCall(`${s.replicas!.running.url}/api/streamable/fininfo`, { cookie: s.replicas!.cookie }),
      redis: true,
    },
  ];
  if (selected.some((r) => r !== 'e')) await warmUpBackend(s);
  const results: Row[] = [];
  for (const spec of selected.map((id) => rows.find((r) => r.row === id))) {
    if (!spec) continue;
    step(`row (${spec.row}) ${spec.what}: ${load.warmup} s warm-up, ${load.duration} s measured, ${load.connections} connections`);
    const target = await spec.target();
    const notes: Record<string, number> = {};
    let cpu: Record<string, number> = {};
    const measured = await measure(target, load, async () => {
      // Only around the measured run: CPU per process, row (f)'s catalog changes, row (j)'s backend count.
      const oauthBefore = spec.oauth ? await s.oauth!.backend.status() : undefined;
      const started = performance.now();
      const before = sampleCpu(procs.groups());
      const reloadsBefore = nginxReloads(s.gateway);
      const stopToggler = spec.toggle ? toggleDuring(s, notes) : undefined;
      const redisBefore = spec.redis ? s.replicas!.running.commands() : 0;
      return async () => {
        stopToggler?.();
        if (spec.redis) notes['redisCommands'] = s.replicas!.running.commands() - redisBefore;
        if (spec.toggle) notes['nginxReloads'] = nginxReloads(s.gateway) - reloadsBefore;
        cpu = coresUsed(before, sampleCpu(procs.groups()), (performance.now() - started) / 1000);
        if (oauthBefore) {
          const after = await s.oauth!.backend.status();
          notes['backendReceivedWithBearer'] = after.receivedWithBearer - oauthBefore.receivedWithBearer;
          notes['backendTokenRequests'] = after.tokenRequests - oauthBefore.tokenRequests;
        }
      };
    });
    if (spec.redis) notes['redisCommandsPerRequest'] = Math.round(((notes['redisCommands'] ?? 0) / Math.max(1, measured.requests)) * 1000) / 1000;
    if (spec.oauth) Object.assign(notes, await oauthDirectReference(s));
    results.push({ row: spec.row, what: spec.what, gateway: spec.gateway, ...measured, cpu, ...(spec.toggle || spec.redis || spec.oauth ? { notes } : {}) });
    if (measured.non2xx + measured.errors > 0) {
      process.stderr.write(`  row (${spec.row}): status codes ${JSON.stringify(measured.statusCodes)}, errors ${JSON.stringify(measured.errorCodes)}\n`);
    }
  }
  return results;
}

/**
 * Once, before the rows: (a)'s load for 10 s, discarded. A fresh backend's first seconds are
 * slower (its JIT is still compiling), which made (a), the first row and the baseline of every
 * ratio, come out 10-20% low even after its own warm-up.
 */
async function warmUpBackend(s: Setup): Promise<void> {
  step("warming up the backend: 10 s of row (a)'s load, not counted");
  await measure(await toolCall(`${s.directUrl}/mcp`, {}), { ...load, warmup: 0, duration: 10 });
}

/**
 * Row (j)'s reference: (a)'s path (plain nginx, no auth at the proxy) to the OAuth-protected
 * backend, with a token of its own machine client. That backend verifies an ES256 JWT on every
 * request and is not fininfo, so this is what its row would be without the gateway.
 */
async function oauthDirectReference(s: Setup): Promise<Record<string, number>> {
  const { directUrl, machineToken } = s.oauth!;
  step('row (j) reference: plain nginx -> the OAuth-protected backend, its own token');
  const direct = await measure(await toolCall(`${directUrl}/mcp`, { authorization: `Bearer ${machineToken}` }, WHOAMI_BODY), load);
  return { directRps: direct.rps, directP50: direct.p50, directFailed: direct.non2xx + direct.errors };
}

/** Starts row (f)'s catalog churn; the function it returns stops it and records what it changed. */
function toggleDuring(s: Setup, notes: Record<string, number>): () => void {
  const churn = startCatalogChurn(s.gateway, s.backendUrl);
  return () => {
    const counts = churn.stop();
    notes['catalogChanges'] = counts.changes;
    notes['serversAdded'] = counts.added;
    notes['serversEdited'] = counts.edited;
    notes['serversToggled'] = counts.toggled;
    notes['serversDeleted'] = counts.deleted;
  };
}

function step(message: string): void {
  process.stderr.write(`bench: ${message}\n`);
}

async function main(): Promise<number> {
  const startedAt = new Date();
  const dir = mkdtempSync(join(tmpdir(), 'mcpgw-bench-'));
  const procs = new Processes();
  let failed = false;
  const abort = (why: string, code: number) => {
    process.stderr.write(`bench: ${why}; stopping everything it started\n`);
    void procs.stopAll().finally(() => {
      rmSync(dir, { recursive: true, force: true });
      process.exit(code);
    });
  };
  process.once('SIGINT', () => abort('interrupted', 130));
  process.once('SIGTERM', () => abort('terminated', 143));
  process.on('exit', () => procs.killAllNow());
  setTimeout(() => abort(`still running after ${DEADLINE_MS / 1000} s`, 1), DEADLINE_MS).unref();

  try {
    const setup = await setUp(procs, dir);
    const rows = await runRows(setup, procs);
    compareWithDirect(rows);
    process.stdout.write(summary(root, load, rows));
    process.stdout.write(`\nwritten to ${writeResults(root, load, rows, startedAt)}\n`);
    // Row (f)'s requirement (issue 12): catalog changes under load lose no request and reload nothing.
    const churn = rows.find((r) => r.row === 'f');
    if (churn && (churn.non2xx + churn.errors > 0 || (churn.notes?.['nginxReloads'] ?? 0) > 0)) {
      process.stderr.write('bench: row (f) failed requests or reloaded nginx during catalog changes (target: 0 and 0)\n');
      return 1;
    }
    // Row (j) measures the per-user token only if every request got a 200 from the backend itself.
    const perUser = rows.find((r) => r.row === 'j');
    if (perUser && (perUser.non2xx + perUser.errors > 0 || (perUser.notes?.['backendReceivedWithBearer'] ?? 0) < perUser.requests)) {
      process.stderr.write(
        `bench: row (j) failed requests or did not reach the backend: ${perUser.non2xx + perUser.errors} failed, ` +
          `${perUser.notes?.['backendReceivedWithBearer'] ?? 0} of ${perUser.requests} reached it with a bearer token (target: 0, all)\n`,
      );
      return 1;
    }
  } catch (err) {
    failed = true;
    process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
    for (const name of ['fininfo', 'direct-nginx', 'registry', 'protected-backend']) {
      const tail = procs.tail(name);
      if (tail) process.stderr.write(`--- last lines of ${name}:\n${tail}\n`);
    }
    process.stderr.write(`logs kept in ${dir}\n`);
  } finally {
    await procs.stopAll();
    if (!failed) rmSync(dir, { recursive: true, force: true });
  }
  return failed ? 1 : 0;
}

process.exitCode = await main();
