/**
 * Cached decisions of the check (docs/performance.md, "Cached decisions"), through the real
 * nginx + njs + registry + currenttime backend. CHECK_CACHE_SECONDS is 30 here: any change that
 * is meant to bite on the next request but were served from the cache would show for 30 s.
 * - each invalidation right after a cached allow: a toggle, a sign-out, a revoked personal
 *   token, a revoked client (gateway token), a changed scope mapping, a session's end;
 * - every request of a burst of cached hits audited exactly once, with its own request id;
 * - the tools/list filter applied on a cached answer;
 * - no credential in the cache folder; a cache folder with wrong permissions stops the start.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TimedAuditEntry } from '../../src/audit/audit-log.ts';
import { ApiClient } from './api-client.ts';
import { jarFetch } from './cookie-jar.ts';
import { ADMIN_PASSWORD, eventually, startTestGateway, type TestGateway } from './harness.ts';
import { csrfFrom, login } from './login.ts';
import { connectClientOverHttp } from './oauth-flow.ts';
import { MCP_HEADERS, openRawSession, rawCall, rpc, TIME_CALL as CALL_BODY } from './raw-mcp.ts';

const SESSION_LIFETIME_S = 12;
const USERS = [
  { username: 'burst', password: 'pw-burst', groups: ['mcp-server-currenttime'] },
  { username: 'toolonly', password: 'pw-tool', groups: ['mcp-server-currenttime-tool-current_time_by_timezone'] },
  { username: 'mapped', password: 'pw-mapped', groups: ['Time Keepers'] },
  { username: 'short', password: 'pw-short', groups: ['mcp-server-currenttime'] },
];
const MAPPING = 'groups:\n  Time Keepers: ["mcp:server:currenttime:execute"]\n';

let gw: TestGateway;
let api: ApiClient;

before(async () => {
  gw = await startTestGateway({
    users: USERS,
    mapping: MAPPING,
    env: { CHECK_CACHE_SECONDS: '30', SESSION_MAX_LIFETIME_SECONDS: String(SESSION_LIFETIME_S) },
  });
  api = new ApiClient(gw.url);
});
after(async () => {
  if (process.exitCode) process.stderr.write(`nginx error.log:\n${gw?.errorLog()}\n`);
  await gw?.[Symbol.asyncDispose]();
});

const STREAMABLE = '/api/streamable/currenttime';
/** How many tools/call requests the backend received. */
const backendCalls = () => gw.received.filter((r) => (r.body as { method?: string } | undefined)?.method === 'tools/call').length;
const openSession = (who: Record<string, string>) => openRawSession(`${gw.url}${STREAMABLE}`, who);
const call = (headers: Record<string, string>, body?: string) => rawCall(`${gw.url}${STREAMABLE}`, headers, body);

async function entriesOf(user: string): Promise<TimedAuditEntry[]> {
  return (await gw.gateway.audit.recent({ event: 'access', user, limit: 1000 })).filter((e) => e.event === 'access');
}

/**
 * A cached allow: the same call again until one is answered by nginx from the cache (its audit
 * line comes from nginx's log, within about a second). Another test's change may invalidate the
 * cache in between (a scope-mapping reload lands late), so it keeps calling. Returns the session's headers.
 */
async function cachedAllow(who: Record<string, string>, user: string): Promise<Record<string, string>> {
  const headers = await openSession(who);
  const cached = async () => (await entriesOf(user)).filter((e) => e.event === 'access' && e.answeredBy === 'cache').length;
  const before = await cached();
  const deadline = Date.now() + 10_000;
  for (;;) {
    assert.equal((await call(headers)).status, 200);
    if ((await cached()) > before) return headers;
    assert.ok(Date.now() < deadline, 'no call was answered from the cache within 10 s');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function signIn(username: string, password: string): Promise<{ cookie: string; jar: Parameters<typeof csrfFrom>[1] }> {
  const trace = await login(gw.url, username, password);
  return { cookie: trace.cookie, jar: trace.jar };
}

describe('invalidation: the next request after the change is decided afresh', () => {
  test('a server toggled off right after a cached allow answers 503 at once, and 200 once it is on again', async () => {
    const admin = await signIn('admin', ADMIN_PASSWORD);
    const headers = await cachedAllow({ cookie: admin.cookie }, 'admin');
    const csrf = await csrfFrom(gw.url, admin.jar);
    const off = await api.call('toggleServer', { as: { cookie: admin.cookie, csrf }, params: { name: 'currenttime' }, body: { enabled: false } });
    assert.equal(off.status, 200, off.text);
    assert.equal((await call(headers)).status, 503);
    const on = await api.call('toggleServer', { as: { cookie: admin.cookie, csrf }, params: { name: 'currenttime' }, body: { enabled: true } });
    assert.equal(on.status, 200, on.text);
    assert.equal((await call(headers)).status, 200);
  });

  test('a sign-out right after a cached allow: the next request is 401', async () => {
    const user = await signIn('user', 'demo');
    const headers = await cachedAllow({ cookie: user.cookie }, 'user');
    const out = await jarFetch(user.jar, `${gw.url}/logout`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ _csrf: await csrfFrom(gw.url, user.jar) }).toString(),
    });
    assert.equal(out.status, 302);
    assert.equal((await call(headers)).status, 401);
  });

  test('a personal access token revoked right after a cached allow: the next request is 401', async () => {
    const user = await signIn('user', 'demo');
    const as = { cookie: user.cookie, csrf: await csrfFrom(gw.url, user.jar) };
    const created = await api.call('createToken', { as, body: { name: 'cached', servers: ['currenttime'], lifetimeDays: 1 } });
    assert.equal(created.status, 201, created.text);
    const headers = await cachedAllow({ authorization: `Bearer ${created.body.token as string}` }, 'user');
    assert.equal((await api.call('revokeToken', { as, params: { id: created.body.tokenInfo.id as string } })).status, 200);
    assert.equal((await call(headers)).status, 401);
  });

  test("a client disconnected right after a cached allow: its gateway token's next request is 401", async () => {
    const user = await signIn('user', 'demo');
    const flow = await connectClientOverHttp(gw.url, user.jar, { clientName: 'cached client', server: 'currenttime' });
    const headers = await cachedAllow({ authorization: `Bearer ${flow.accessToken}` }, 'user');
    const as = { cookie: user.cookie, csrf: await csrfFrom(gw.url, user.jar) };
    const grant = (await api.call('listConnections', { as })).body.connections.find((c: { clientId: string }) => c.clientId === flow.clientId);
    assert.ok(grant);
    assert.equal((await api.call('revokeConnection', { as, params: { id: grant.id } })).status, 200);
    assert.equal((await call(headers)).status, 401);
  });

  test("a scope mapping that no longer grants the group: a personal token's next request after the file is read again is refused", async () => {
    // A personal token's scopes come from the mapping on every check (a page session keeps the scopes of its sign-in).
    const mapped = await signIn('mapped', 'pw-mapped');
    const as = { cookie: mapped.cookie, csrf: await csrfFrom(gw.url, mapped.jar) };
    const created = await api.call('createToken', { as, body: { name: 'mapped', servers: ['currenttime'], lifetimeDays: 1 } });
    assert.equal(created.status, 201, created.text);
    const headers = await cachedAllow({ authorization: `Bearer ${created.body.token as string}` }, 'mapped');
    writeFileSync(gw.mappingFile, 'groups:\n  Time Keepers: []\n');
    try {
      // The file is read again by a watcher (well within a second); the cache goes with it.
      await eventually(async () => (await call(headers)).status === 403, 5000);
    } finally {
      writeFileSync(gw.mappingFile, MAPPING);
    }
  });

  test("a session's end: a cached allow never outlives the session (SESSION_MAX_LIFETIME_SECONDS), though answers may be kept 30 s", async () => {
    const short = await signIn('short', 'pw-short');
    const signedInAt = Date.now();
    const headers = await cachedAllow({ cookie: short.cookie }, 'short');
    let status = 200;
    while (status === 200) {
      status = (await call(headers)).status;
      if (status === 200) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const endedAfter = Date.now() - signedInAt;
    assert.equal(status, 401);
    assert.ok(endedAfter >= SESSION_LIFETIME_S * 1000 - 1500, `refused after ${endedAfter} ms, before the session's end`);
    assert.ok(endedAfter <= SESSION_LIFETIME_S * 1000 + 1500, `still allowed ${endedAfter} ms after sign-in: the cache outlived the session`);
  });
});

describe('the audit of cached answers', () => {
  test('a burst of cached hits: every request answered by the backend and audited exactly once, most of them by nginx from the cache', async () => {
    const burst = await signIn('burst', 'pw-burst');
    const headers = await openSession({ cookie: burst.cookie });
    const backendBefore = backendCalls();
    const N = 300;
    for (let i = 0; i < N; i += 30) {
      const answers = await Promise.all(Array.from({ length: 30 }, () => call(headers)));
      for (const answer of answers) assert.equal(answer.status, 200, answer.text);
    }
    await eventually(async () => (await entriesOf('burst')).filter((e) => e.event === 'access' && e.method === 'tools/call').length >= N, 5000);
    // nginx flushes its log every second: wait past one more flush, then nothing may be counted twice.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const calls = (await entriesOf('burst')).filter((e) => e.event === 'access' && e.method === 'tools/call');
    assert.equal(calls.length, N, 'one audit line per request');
    assert.equal(new Set(calls.map((e) => e.event === 'access' && e.requestId)).size, N, 'each with its own request id');
    const cached = calls.filter((e) => e.event === 'access' && e.answeredBy === 'cache');
    assert.ok(cached.length >= N * 0.8, `${cached.length} of ${N} answered from the cache`);
    for (const e of cached) {
      assert.equal(e.event === 'access' && e.decision, 'allow');
      assert.equal(e.event === 'access' && e.status, 200);
      assert.equal(e.event === 'access' && e.tool, 'current_time_by_timezone');
      assert.equal(e.event === 'access' && e.server, 'currenttime');
      assert.equal(e.event === 'access' && e.transport, 'streamable-http');
    }
    assert.equal(backendCalls() - backendBefore, N, 'every request reached the backend');
    // The metrics count them too.
    const metrics = await (await fetch(`${gw.url}/metrics`)).text();
    assert.match(metrics, /check_cache_hits_total\{server="currenttime",outcome="allow"\} \d+/);
  });

  test('a request njs refuses before asking the check (a malformed body) is audited too', async () => {
    const burst = await signIn('burst', 'pw-burst');
    const res = await fetch(`${gw.url}${STREAMABLE}`, { method: 'POST', headers: { ...MCP_HEADERS, cookie: burst.cookie }, body: '{"jsonrpc":"2.0",' });
    assert.equal(res.status, 400);
    await eventually(
      async () =>
        (await gw.gateway.audit.recent({ event: 'access', limit: 50 })).some(
          (e) => e.event === 'access' && e.answeredBy === 'nginx' && e.status === 400 && e.reason === 'MCP_REQUEST_INVALID',
        ),
      5000,
    );
  });
});

test('the tools/list filter applies to a cached answer: a tool-limited person sees only their tool, every time', async () => {
  const tool = await signIn('toolonly', 'pw-tool');
  const headers = await openSession({ cookie: tool.cookie });
  for (let i = 0; i < 5; i++) {
    const listed = await call(headers, rpc(10 + i, 'tools/list'));
    assert.equal(listed.status, 200);
    const names = [...listed.text.matchAll(/"name":"([^"]+)"/g)].map((m) => m[1]);
    assert.deepEqual(names, ['current_time_by_timezone'], listed.text);
  }
  await eventually(async () => (await entriesOf('toolonly')).some((e) => e.event === 'access' && e.method === 'tools/list' && e.answeredBy === 'cache'), 5000);
});

test("responses in a session carry the client's own sealed id, whether the check or the cache answered", async () => {
  const { cookie } = await signIn('burst', 'pw-burst');
  const headers = await openSession({ cookie });
  for (let i = 0; i < 3; i++) {
    const res = await fetch(`${gw.url}${STREAMABLE}`, { method: 'POST', headers, body: CALL_BODY });
    assert.equal(res.status, 200);
    await res.text();
    assert.equal(res.headers.get('mcp-session-id'), headers['mcp-session-id']);
  }
});

test('the cache folder holds cached answers, never a cookie, a session id or a token', async () => {
  const dir = gw.gateway.checkCache?.dir;
  assert.ok(dir);
  const user = await signIn('user', 'demo');
  const as = { cookie: user.cookie, csrf: await csrfFrom(gw.url, user.jar) };
  const pat = (await api.call('createToken', { as, body: { name: 'at-rest', servers: ['currenttime'], lifetimeDays: 1 } })).body.token as string;
  const flow = await connectClientOverHttp(gw.url, user.jar, { clientName: 'at rest', server: 'currenttime' });
  const secrets = [user.cookie.split('=')[1]!, decodeURIComponent(user.cookie.split('=')[1]!), pat, flow.accessToken];
  const callers: Record<string, string>[] = [{ cookie: user.cookie }, { authorization: `Bearer ${pat}` }, { authorization: `Bearer ${flow.accessToken}` }];
  for (const who of callers) await cachedAllow(who, 'user');
  // The signed session id inside the cookie, too.
  secrets.push(decodeURIComponent(user.cookie.split('=')[1]!).replace(/^s:/, '').split('.')[0]!);
  const files: string[] = [];
  const walk = (d: string) => {
    for (const entry of readdirSync(d, { withFileTypes: true })) (entry.isDirectory() ? walk : (f: string) => files.push(f))(join(d, entry.name));
  };
  walk(dir);
  assert.ok(files.length >= 3, `${files.length} cached answers`);
  for (const file of files) {
    const bytes = readFileSync(file, 'latin1');
    for (const secret of secrets) assert.ok(!bytes.includes(secret), `${file} holds a credential`);
    assert.doesNotMatch(bytes, /x-mcp-session-key|x-mcp-backend-credential/i, `${file} holds a sealing key or a backend credential`);
  }
  assert.equal(statSync(dir).mode & 0o077, 0, 'the folder is open to no one else');
});

test('a cache folder made unusable while running: caching is suspended (every request asks the check, none fails) and resumes once it is fixed', async () => {
  const dir = gw.gateway.checkCache?.dir;
  const file = gw.gateway.checkCache?.generationFile;
  assert.ok(dir && file);
  const { cookie } = await signIn('burst', 'pw-burst');
  const headers = await cachedAllow({ cookie }, 'burst');
  const mode = statSync(dir).mode & 0o777;
  chmodSync(dir, 0o500);
  try {
    await eventually(async () => readFileSync(file, 'utf8') === '-', 5000);
    // The cached calls' audit lines are still in nginx's buffer for up to a second: let them land first.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const before = (await entriesOf('burst')).length;
    for (let i = 0; i < 20; i++) assert.equal((await call(headers)).status, 200);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const latest = (await entriesOf('burst')).slice(0, (await entriesOf('burst')).length - before);
    assert.equal(latest.length, 20, 'each request audited once');
    assert.ok(
      latest.every((e) => e.event === 'access' && e.answeredBy === undefined),
      'all decided by the check',
    );
  } finally {
    chmodSync(dir, mode);
  }
  await eventually(async () => readFileSync(file, 'utf8') !== '-', 5000);
  await cachedAllow({ cookie }, 'burst');
});

describe('a cache folder nginx could not use safely stops the start, with the fix', () => {
  const root = mkdtempSync(join(tmpdir(), 'mcpgw-cache-dir-'));
  chmodSync(root, 0o755);
  after(() => rmSync(root, { recursive: true, force: true }));

  for (const [what, mode, pattern] of [
    ['open to everyone (others could plant an answer)', 0o777, /has mode 777.*chmod 700/],
    ['readable by its group', 0o750, /has mode 750.*chmod 700/],
  ] as const) {
    test(what, async () => {
      const dir = join(root, `mode-${mode.toString(8)}`);
      mkdirSync(dir);
      chmodSync(dir, mode);
      await assert.rejects(startTestGateway({ env: { CHECK_CACHE_DIR: dir } }), (err: Error) => {
        assert.match(err.message, new RegExp(`CHECK_CACHE_DIR ${dir}`));
        assert.match(err.message, pattern);
        return true;
      });
    });
  }

  test('a file, not a folder', async () => {
    const file = join(root, 'a-file');
    writeFileSync(file, '');
    await assert.rejects(startTestGateway({ env: { CHECK_CACHE_DIR: file } }), /is not a folder/);
  });

  test('0 turns the cache off: no folder is needed or made', async () => {
    const main = gw;
    const dir = join(root, 'never-made');
    await using off = await startTestGateway({ env: { CHECK_CACHE_SECONDS: '0', CHECK_CACHE_DIR: dir } });
    assert.equal(off.gateway.checkCache, undefined);
    const { cookie } = await login(off.url, 'user', 'demo');
    gw = off;
    try {
      const headers = await openSession({ cookie });
      assert.equal((await call(headers)).status, 200);
      assert.equal((await call(headers)).status, 200);
    } finally {
      gw = main;
    }
    // Every request was decided by the check itself.
    assert.ok((await off.gateway.audit.recent({ event: 'access', limit: 50 })).every((e) => e.event === 'access' && e.answeredBy === undefined));
    assert.throws(() => statSync(dir));
  });
});
