import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import express from 'express';
import session from 'express-session';
import { createLogger } from '../log.ts';
import { FileRecordStore } from '../store/index.ts';
import { SESSION_COOKIE, sessionCookieOptions } from './cookie.ts';
import { LoginSessions } from './login-sessions.ts';
import type { SessionValue } from './session-record.ts';

const log = createLogger('silent');
const HOUR = 3_600_000;
const SECRET = 'login-sessions-test-secret-0123456789abcdef';
const servers: Server[] = [];
const stores: LoginSessions[] = [];
after(async () => {
  for (const s of servers) s.close();
  for (const s of stores) await s.close();
});

/**
 * express-session over LoginSessions, as web/app.ts mounts it, with routes shaped like the
 * login callback, a page, a slow request and logout. `gate` holds the slow request after it
 * read the session, so a test can sign out meanwhile.
 */
async function start(limits = { idleMs: HOUR, maxLifetimeMs: 24 * HOUR }, dir = mkdtempSync(join(tmpdir(), 'mcpgw-login-sessions-'))) {
  const sessions = new LoginSessions({ records: new FileRecordStore<SessionValue>({ dir, log }), limits, log });
  stores.push(sessions);
  let release!: () => void;
  let reached!: () => void;
  const gate = { held: new Promise<void>((r) => (release = r)), reached: new Promise<void>((r) => (reached = r)), release: () => release() };
  const app = express();
  app.use(
    session({
      name: SESSION_COOKIE,
      secret: SECRET,
      store: sessions,
      resave: false,
      saveUninitialized: false,
      rolling: true,
      cookie: sessionCookieOptions(false, limits.idleMs / 1000),
    }),
  );
  app.get('/signin', async (req, res) => {
    await new Promise<void>((resolve, reject) => req.session.regenerate((err) => (err ? reject(err) : resolve())));
    req.session.identity = { sub: 'alice', username: 'alice', groups: ['g'], provider: 'dev' };
    req.session.scopes = ['mcp:registry:read'];
    req.session.tokens = { sealedRefreshToken: 'sealed', expiresAt: Date.now() + HOUR, issuedAt: Date.now() };
    req.session.signedInAt = Date.now();
    sessions.limitCookie(req);
    res.send('ok');
  });
  app.get('/page', (req, res) => void res.status(req.session.identity ? 200 : 401).send(''));
  app.get('/slow', async (req, res) => {
    if (!req.session.identity) return void res.status(401).send('');
    reached();
    await gate.held;
    req.session.notice = 'saved by the slow request';
    res.send('ok');
  });
  app.post('/logout', (req, res) => req.session.destroy(() => res.send('bye')));
  const server = app.listen(0, '127.0.0.1');
  servers.push(server);
  await new Promise((r) => server.once('listening', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { sessions, url, dir, gate };
}

async function signIn(url: string): Promise<{ cookie: string; sid: string; expires: number }> {
  const res = await fetch(`${url}/signin`);
  const line = res.headers.getSetCookie().find((l) => l.startsWith(`${SESSION_COOKIE}=`)) ?? '';
  const cookie = line.split(';')[0] ?? '';
  const sid =
    decodeURIComponent(cookie.split('=')[1] ?? '')
      .slice(2)
      .split('.')[0] ?? '';
  return { cookie, sid, expires: Date.parse(/expires=([^;]+)/i.exec(line)?.[1] ?? '') };
}

test('a request still running when the user signs out does not bring the session back when it saves, on disk or after a restart', async () => {
  const { sessions, url, dir, gate } = await start();
  const { cookie, sid } = await signIn(url);
  assert.ok(sessions.peek(sid)?.identity);
  const slow = fetch(`${url}/slow`, { headers: { cookie } });
  await gate.reached;
  assert.equal((await fetch(`${url}/logout`, { method: 'POST', headers: { cookie } })).status, 200);
  gate.release();
  assert.equal((await slow).status, 200);
  assert.equal(sessions.peek(sid), undefined);
  assert.equal((await fetch(`${url}/page`, { headers: { cookie } })).status, 401);
  await sessions.close();
  assert.deepEqual(readdirSync(dir), []);
  const restarted = new FileRecordStore<SessionValue>({ dir, log });
  assert.equal(restarted.peek(sid), undefined);
  await restarted.close();
});

test("a save that lost a race keeps the other write's fields and applies only its own changes", async () => {
  const { sessions, url, gate } = await start();
  const { cookie, sid } = await signIn(url);
  const slow = fetch(`${url}/slow`, { headers: { cookie } });
  await gate.reached;
  // A refresh lands while the slow request holds its copy: new groups and scopes.
  const [record] = await sessions.list();
  assert.ok(record);
  assert.ok((await sessions.replace(sid, record.version, { ...record.value, identity: { ...record.value.identity!, groups: [] }, scopes: [] })).ok);
  gate.release();
  assert.equal((await slow).status, 200);
  const after = sessions.peek(sid);
  assert.equal(after?.notice, 'saved by the slow request', "the request's change");
  assert.deepEqual(after?.scopes, [], "the refresh's change was not overwritten with what the request read");
  assert.deepEqual(after?.identity?.groups, []);
});

test('the cookie and the session end at the absolute lifetime, however often the page is visited', async () => {
  const maxLifetimeMs = 1500;
  const { sessions, url } = await start({ idleMs: HOUR, maxLifetimeMs });
  const signedInAt = Date.now();
  const { cookie, sid, expires } = await signIn(url);
  assert.ok(expires <= signedInAt + maxLifetimeMs + 1000, 'the cookie set at sign-in (HTTP dates have whole seconds)');
  let status = 200;
  while (status === 200) {
    const res = await fetch(`${url}/page`, { headers: { cookie } });
    status = res.status;
    const renewed = Date.parse(/expires=([^;]+)/i.exec(res.headers.getSetCookie().join(';'))?.[1] ?? 'NaN');
    if (status === 200) assert.ok(renewed <= signedInAt + maxLifetimeMs + 1000 + 100, 'each renewal of the cookie');
    assert.ok(Date.now() - signedInAt < maxLifetimeMs + 1000, 'the session ended at its lifetime');
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.ok(Date.now() - signedInAt >= maxLifetimeMs, 'not before it');
  assert.equal(sessions.peek(sid), undefined);
});
