import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import express from 'express';
import { sign } from 'cookie-signature';
import type { SessionData } from 'express-session';
import { createLogger } from '../log.ts';
import { VALIDATE_PATH } from './paths.ts';
import { createValidateRoute } from './validate-route.ts';

const SECRET = 'unit-test-secret-unit-test-secret-000';
const sessions = new Map<string, SessionData>([
  ['sid-user', { cookie: { originalMaxAge: 1000 }, identity: { sub: 'u-1', username: 'user\r\nX-Injected: 1', groups: [], provider: 'dev' }, scopes: ['mcp:server:svc:execute'] } as unknown as SessionData],
]);
const catalog = { get: (name: string) => (name === 'svc' ? ({ name: 'svc', enabled: true } as never) : undefined) };

async function serve(authEnabled: boolean): Promise<{ url: string; server: Server }> {
  const app = express();
  app.all(VALIDATE_PATH, createValidateRoute({ catalog, sessions: { peek: (sid) => sessions.get(sid) }, secret: SECRET, authEnabled, realm: 'mcp-gateway', log: createLogger('silent') }));
  const server = app.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

const cookie = (sid: string) => `mcp_gateway_session=${encodeURIComponent(`s:${sign(sid, SECRET)}`)}`;

describe('the check endpoint', () => {
  let on: { url: string; server: Server };
  let off: { url: string; server: Server };
  before(async () => {
    on = await serve(true);
    off = await serve(false);
  });
  after(() => {
    on.server.close();
    off.server.close();
  });

  test('allows a session with the execute scope and sanitizes identity headers', async () => {
    const res = await fetch(`${on.url}${VALIDATE_PATH}`, { headers: { 'x-mcp-server': 'svc', cookie: cookie('sid-user') } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-user'), 'u-1');
    assert.equal(res.headers.get('x-username'), 'user??X-Injected: 1', 'CR/LF in a claim cannot split a header');
    assert.equal(res.headers.get('x-injected'), null);
    assert.equal(res.headers.get('x-scopes'), 'mcp:server:svc:execute');
  });

  test('"fail closed": a missing or malformed X-MCP-Server is a 500, never a 200 or 401', async () => {
    for (const server of [undefined, '', 'a;b', '../svc', 'SVC']) {
      const headers: Record<string, string> = { cookie: cookie('sid-user') };
      if (server !== undefined) headers['x-mcp-server'] = server;
      assert.equal((await fetch(`${on.url}${VALIDATE_PATH}`, { headers })).status, 500, String(server));
    }
  });

  test('a signed cookie for an unknown session is 401 invalid_token', async () => {
    const res = await fetch(`${on.url}${VALIDATE_PATH}`, { headers: { 'x-mcp-server': 'svc', cookie: cookie('sid-gone') } });
    assert.equal(res.status, 401);
    assert.equal(res.headers.get('www-authenticate'), 'Bearer realm="mcp-gateway", error="invalid_token"');
  });

  test('answers on its exact path only, not on other spellings Express would route to it', async () => {
    for (const path of ['/AUTH/validate', '/auth/validate/']) {
      assert.equal((await fetch(`${on.url}${path}`, { headers: { 'x-mcp-server': 'svc', cookie: cookie('sid-user') } })).status, 404, path);
    }
  });

  test('with MCP_AUTH_ENABLED=false every request to a known enabled server is allowed as anonymous', async () => {
    const res = await fetch(`${off.url}${VALIDATE_PATH}`, { headers: { 'x-mcp-server': 'svc' } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-username'), 'anonymous');
    assert.equal((await fetch(`${off.url}${VALIDATE_PATH}`, { headers: { 'x-mcp-server': 'nope' } })).status, 404);
  });
});
