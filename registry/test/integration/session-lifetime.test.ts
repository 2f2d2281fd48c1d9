import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEMO_PASSWORD } from '../../src/config/dev-users.ts';
import { createSealer } from '../../src/sessions/seal.ts';
import { startTestGateway, TEST_SECRET_KEY, type TestGateway } from './harness.ts';
import { login } from './login.ts';

/*
 * SESSION_MAX_LIFETIME_SECONDS through the real gateway (nginx, njs, the registry): a page that
 * polls the API every quarter second renews the rolling session each time, and still loses it
 * at the absolute lifetime — on the API and on the MCP path alike.
 */
const LIFETIME_S = 3;
let gw: TestGateway;
before(async () => {
  gw = await startTestGateway({ env: { SESSION_MAX_LIFETIME_SECONDS: String(LIFETIME_S) } });
});
after(async () => {
  if (process.exitCode) process.stderr.write(`nginx error.log:\n${gw?.errorLog()}\n`);
  await gw?.[Symbol.asyncDispose]();
});

const initialize = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
});
const mcp = (cookie: string) =>
  fetch(`${gw.url}/api/streamable/currenttime`, {
    method: 'POST',
    headers: { cookie, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: initialize,
  });
const me = (cookie: string) => fetch(`${gw.url}/api/registry/me`, { headers: { cookie } });

/** The Expires of the session cookie a response sets (express-session renews it on every response: rolling). */
function cookieExpiry(res: Response): number | undefined {
  const line = res.headers.getSetCookie().find((l) => l.startsWith('mcp_gateway_session='));
  const expires = /;\s*expires=([^;]+)/i.exec(line ?? '')?.[1];
  return expires === undefined ? undefined : Date.parse(expires);
}

test('a page polling the API does not keep a session past SESSION_MAX_LIFETIME_SECONDS; the API and MCP turn 401 at it, and the cookie never outlived it', async () => {
  const signedInBefore = Date.now();
  const user = await login(gw.url, 'user', DEMO_PASSWORD);
  const signedInAfter = Date.now();
  assert.equal((await mcp(user.cookie)).status, 200);
  // HTTP dates have whole seconds: allow one.
  const cookieLimit = signedInAfter + LIFETIME_S * 1000 + 1000;

  let lastOk = 0;
  let firstRefused = 0;
  while (Date.now() - signedInBefore < (LIFETIME_S + 3) * 1000) {
    const res = await me(user.cookie);
    await res.arrayBuffer();
    if (res.status === 200) {
      lastOk = Date.now();
      const expires = cookieExpiry(res);
      assert.ok(expires !== undefined && expires <= cookieLimit, `the renewed cookie never outlives the session (expires ${expires}, limit ${cookieLimit})`);
    } else {
      assert.equal(res.status, 401);
      firstRefused = Date.now();
      break;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  assert.ok(firstRefused > 0, 'the session ended while the page kept polling');
  assert.ok(
    lastOk - signedInBefore >= (LIFETIME_S - 1) * 1000,
    `the polling renewed it until shortly before the lifetime (last 200 after ${lastOk - signedInBefore} ms)`,
  );
  assert.ok(firstRefused - signedInAfter >= LIFETIME_S * 1000 - 50, `not before the lifetime (refused after ${firstRefused - signedInAfter} ms)`);
  assert.equal((await mcp(user.cookie)).status, 401, 'the MCP path refuses the cookie too');
  assert.equal((await me(user.cookie)).status, 401, 'and it stays refused');
});

/** The newest signed-in session record on disk, as the file store wrote it. */
function newestSessionRecord():
  { expiresAt: number; value: { signedInAt?: number; tokens?: { sealedRefreshToken?: string; expiresAt?: number; issuedAt?: number } } } | undefined {
  const dir = join(gw.stateDir, 'sessions');
  const records = readdirSync(dir).map((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')) as ReturnType<typeof newestSessionRecord> & object);
  return records.filter((r) => r.value.signedInAt !== undefined).sort((x, y) => (y.value.signedInAt ?? 0) - (x.value.signedInAt ?? 0))[0];
}

test('a dev session holds a rotating refresh token: a refresh pass renews it at the dev IdP and the session keeps working; an ended session is removed from disk and does not come back after a restart', async () => {
  const user = await login(gw.url, 'user', DEMO_PASSWORD);
  assert.equal((await me(user.cookie)).status, 200);
  const stored = newestSessionRecord();
  const tokens = stored?.value.tokens;
  assert.ok(
    stored?.value.signedInAt !== undefined && tokens?.expiresAt !== undefined && tokens.sealedRefreshToken !== undefined,
    'the dev IdP issues a refresh token at sign-in',
  );
  assert.ok(Math.abs(tokens.expiresAt - stored.value.signedInAt - 600_000) < 2000, "the dev IdP's access token lives 600 s");
  assert.ok(stored.expiresAt <= stored.value.signedInAt + LIFETIME_S * 1000, 'the record ends at the absolute lifetime (the shorter of the two here)');

  // As if the access token were 30 s from expiry: the refresher exchanges the refresh token for real.
  await gw.gateway.refreshSessions(tokens.expiresAt - 30_000);
  const refreshed = newestSessionRecord()?.value.tokens;
  const sealer = createSealer(TEST_SECRET_KEY);
  assert.ok(refreshed?.sealedRefreshToken !== undefined && (refreshed.issuedAt ?? 0) > (tokens.issuedAt ?? 0), 'the session was refreshed');
  assert.notEqual(sealer.open(refreshed.sealedRefreshToken), sealer.open(tokens.sealedRefreshToken), 'the dev IdP rotates refresh tokens');
  assert.equal((await mcp(user.cookie)).status, 200, 'the refreshed session still works');

  await new Promise((r) => setTimeout(r, LIFETIME_S * 1000 + 100));
  assert.equal((await mcp(user.cookie)).status, 401);
  await gw.restart();
  assert.equal((await me(user.cookie)).status, 401);
  assert.equal((await mcp(user.cookie)).status, 401);
  const sessionFiles = readdirSync(join(gw.stateDir, 'sessions'));
  assert.deepEqual(sessionFiles, [], 'expired sessions are removed at start');
});
