import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SessionData } from 'express-session';
import { loadConfig } from '../../src/config/load.ts';
import { createIdentityProvider } from '../../src/identity/create-provider.ts';
import type { IdentityProvider, LoginResult } from '../../src/identity/provider.ts';
import { createLogger } from '../../src/log.ts';
import { LoginSessions } from '../../src/sessions/login-sessions.ts';
import { SessionRefresher } from '../../src/sessions/refresh.ts';
import { createSealer } from '../../src/sessions/seal.ts';
import type { SessionValue } from '../../src/sessions/session-record.ts';
import { FileRecordStore } from '../../src/store/index.ts';
import { startTestIdp, type TestIdp } from '../idp/test-idp.ts';
import { ADMIN_PASSWORD, TEST_SECRET_KEY } from './harness.ts';

/*
 * The refresher against a real IdP (the Okta-shaped test IdP, which rotates refresh tokens) and
 * the real file store. The only thing added to the provider is a gate after the IdP answered, so
 * a test can act while the refresh is in flight: the token has already been rotated at the IdP,
 * the gateway has not written the result yet.
 */
const log = createLogger('silent');
const sealer = createSealer(TEST_SECRET_KEY);
const HOUR = 3_600_000;
const SID = 'session-under-test';
let idp: TestIdp;
let provider: IdentityProvider;
let dir: string;
let sessions: LoginSessions;

before(async () => {
  idp = await startTestIdp('okta', {
    redirectUri: 'http://127.0.0.1:1/oauth/callback/okta',
    users: [{ username: 'alice', password: 'alice-pw', groups: ['mcp-server-fininfo'] }],
    accessTokenTtlSeconds: 60,
  });
  const loaded = loadConfig(
    {
      GATEWAY_PUBLIC_URL: 'http://127.0.0.1:1',
      SECRET_KEY: TEST_SECRET_KEY,
      ADMIN_PASSWORD,
      LOGGING_LEVEL: 'silent',
      STATE_DIR: mkdtempSync(join(tmpdir(), 'mcpgw-refresh-state-')),
      MCP_AUTH_PROVIDER_TYPE: 'okta',
      MCP_AUTH_ALLOW_INSECURE_HTTP: 'true',
      MCP_AUTH_OKTA_TENANT_URL: idp.origin,
      MCP_AUTH_OKTA_CLIENT_ID: idp.clientId,
      MCP_AUTH_OKTA_CLIENT_SECRET: idp.clientSecret,
      MCP_AUTH_AUDIENCE: 'api://default',
      MCP_AUTH_SCOPES: 'openid profile email offline_access',
    },
    join(import.meta.dirname, '..', '..', '..'),
  );
  if (!loaded.ok) throw new Error(loaded.errors.join('\n'));
  provider = createIdentityProvider(loaded.config, { internalUrl: () => '', machineClients: () => [], log });
});
after(async () => {
  await sessions?.close();
  await idp?.close();
});
beforeEach(async () => {
  await sessions?.close();
  dir = mkdtempSync(join(tmpdir(), 'mcpgw-refresh-'));
  sessions = new LoginSessions({ records: new FileRecordStore<SessionValue>({ dir, log }), limits: { idleMs: HOUR, maxLifetimeMs: 24 * HOUR }, log });
});

/** A signed-in session whose access token is about to expire (so the refresher takes it). */
async function signedIn(refreshToken: string): Promise<void> {
  const now = Date.now();
  assert.deepEqual(await sessions.replace(SID, 0, {}), { ok: false, current: undefined }, 'replace never creates a session');
  await new Promise<void>((resolve, reject) =>
    sessions.set(
      SID,
      {
        cookie: { originalMaxAge: HOUR, expires: new Date(now + HOUR).toISOString(), httpOnly: true, path: '/' },
        identity: { sub: 'alice', username: 'alice', groups: ['mcp-server-fininfo'], provider: 'okta' },
        scopes: ['mcp:server:fininfo:execute'],
        tokens: { sealedRefreshToken: sealer.seal(refreshToken), expiresAt: now + 1000, issuedAt: now - 59_000 },
        signedInAt: now,
      } as unknown as SessionData,
      (err) => (err ? reject(err) : resolve()),
    ),
  );
}

/** The provider with a gate between the IdP's answer and the refresher seeing it. */
function gated(): { provider: Pick<IdentityProvider, 'name' | 'refresh'>; idpAnswered: Promise<void>; release: () => void } {
  let release!: () => void;
  let answered!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const idpAnswered = new Promise<void>((r) => (answered = r));
  return {
    provider: {
      name: provider.name,
      async refresh(token: string): Promise<LoginResult> {
        const result = await provider.refresh(token);
        answered();
        await gate;
        return result;
      },
    },
    idpAnswered,
    release,
  };
}

const refresher = (p: Pick<IdentityProvider, 'name' | 'refresh'>) =>
  new SessionRefresher({ store: sessions, provider: p, scopesFor: (groups) => groups.map((g) => `scope-of:${g}`), sealer, log });
const read = (sid: string) =>
  new Promise<SessionData | null | undefined>((resolve, reject) => sessions.get(sid, (err, data) => (err ? reject(err) : resolve(data))));
const write = (sid: string, data: SessionData) => new Promise<void>((resolve, reject) => sessions.set(sid, data, (err) => (err ? reject(err) : resolve())));

describe('the refresher against a real IdP', () => {
  test('refresh racing logout: a refresh in flight when the user signs out does not bring the session back, in memory, on disk or after a restart', async () => {
    await signedIn((await idp.userTokens('alice')).refreshToken!);
    const slow = gated();
    const running = refresher(slow.provider).runOnce();
    await slow.idpAnswered;
    // What POST /logout does: req.session.destroy() -> the store's destroy.
    await new Promise<void>((resolve, reject) => sessions.destroy(SID, (err) => (err ? reject(err) : resolve())));
    slow.release();
    await running;
    assert.equal(sessions.peek(SID), undefined);
    await sessions.close();
    assert.deepEqual(readdirSync(dir), [], 'no file on disk');
    const restarted = new FileRecordStore<SessionValue>({ dir, log });
    assert.equal(restarted.peek(SID), undefined, 'nothing after a restart');
    await restarted.close();
  });

  test('a request that saves the session while its refresh is in flight keeps its change, and the refresh keeps the rotated refresh token', async () => {
    await signedIn((await idp.userTokens('alice')).refreshToken!);
    const before = sessions.peek(SID)!;
    const slow = gated();
    const running = refresher(slow.provider).runOnce();
    await slow.idpAnswered;
    const data = (await read(SID))!;
    data.csrfToken = 'set-by-a-request';
    await write(SID, data);
    slow.release();
    await running;
    const after = sessions.peek(SID)!;
    assert.equal(after.csrfToken, 'set-by-a-request');
    assert.notEqual(after.tokens?.sealedRefreshToken, before.tokens?.sealedRefreshToken, 'the rotated refresh token was kept');
    assert.ok((after.tokens?.expiresAt ?? 0) > Date.now() + 30_000, "with the new access token's expiry");

    // The IdP rotated the token: only the kept one works. Remove alice's group and refresh again.
    idp.setGroups('alice', []);
    const [record] = await sessions.list();
    assert.ok(record);
    assert.ok(
      (
        await sessions.replace(SID, record.version, {
          ...record.value,
          tokens: { ...record.value.tokens!, expiresAt: Date.now() + 1000, issuedAt: Date.now() - 59_000 },
        })
      ).ok,
      'made due',
    );
    await refresher(provider).runOnce();
    assert.deepEqual(sessions.peek(SID)?.identity?.groups, [], 'the refresh with the kept token succeeded and re-read the groups');
    assert.deepEqual(sessions.peek(SID)?.scopes, []);
    assert.equal(sessions.peek(SID)?.csrfToken, 'set-by-a-request');
    idp.setGroups('alice', ['mcp-server-fininfo']);
  });

  test('a refresh token the IdP refuses ends the session, on disk too', async () => {
    await signedIn('not-a-refresh-token-this-idp-issued');
    await refresher(provider).runOnce();
    assert.equal(sessions.peek(SID), undefined);
    await sessions.close();
    assert.deepEqual(readdirSync(dir), []);
    rmSync(dir, { recursive: true, force: true });
  });
});
