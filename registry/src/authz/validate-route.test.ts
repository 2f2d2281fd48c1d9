import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import express from 'express';
import { sign } from 'cookie-signature';
import { importJWK, SignJWT } from 'jose';
import type { SessionData } from 'express-session';
import type { AuditEntry } from '../audit/audit-log.ts';
import { deriveSigningKey, publicJwk } from '../authserver/keys.ts';
import { createGatewayTokenVerifier } from '../authserver/verify.ts';
import { createLogger } from '../log.ts';
import { VALIDATE_PATH } from './paths.ts';
import { createSessionBinding } from './session-binding.ts';
import { decodeAuditSummary } from './check-cache.ts';
import { createValidateRoute, type ValidateRouteOptions } from './validate-route.ts';

const SECRET = 'unit-test-secret-unit-test-secret-000';
const sessions = new Map<string, SessionData>([
  [
    'sid-other',
    {
      cookie: { originalMaxAge: 1000 },
      identity: { sub: 'u-2', username: 'other', groups: [], provider: 'dev' },
      scopes: ['mcp:server:svc:execute'],
    } as unknown as SessionData,
  ],
  [
    'sid-tool',
    {
      cookie: { originalMaxAge: 1000 },
      identity: { sub: 'u-3', username: 'tool-user', groups: [], provider: 'dev' },
      scopes: ['mcp:server:svc:tool:get_time:execute'],
    } as unknown as SessionData,
  ],
  [
    'sid-user',
    {
      cookie: { originalMaxAge: 1000 },
      identity: { sub: 'u-1', username: 'user\r\nX-Injected: 1', groups: [], provider: 'dev' },
      scopes: ['mcp:server:svc:execute'],
    } as unknown as SessionData,
  ],
]);
const catalog = {
  get: (name: string) =>
    name === 'svc' ? ({ name: 'svc', enabled: true, transports: { 'streamable-http': '/mcp', sse: '/sse' }, tools: [] } as never) : undefined,
};

const audited: AuditEntry[] = [];
const audit = { record: (e: AuditEntry) => void audited.push(e), flush: async () => {}, recent: async () => [] };

/** The check on a loopback port, with the file's catalog, sessions and audit unless `options` says otherwise. */
async function serve(options: Partial<ValidateRouteOptions> = {}): Promise<{ url: string; server: Server }> {
  const app = express();
  app.all(
    VALIDATE_PATH,
    createValidateRoute({
      catalog,
      sessions: { peek: (sid) => sessions.get(sid) },
      secret: SECRET,
      authEnabled: true,
      realm: 'mcp-gateway',
      publicUrl: 'https://mcp.example.com',
      audit,
      log: createLogger('silent'),
      ...options,
    }),
  );
  const server = app.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

const call = { 'x-mcp-messages': 'tools/call get_time', 'x-original-method': 'POST' };
const cookie = (sid: string) => `mcp_gateway_session=${encodeURIComponent(`s:${sign(sid, SECRET)}`)}`;

describe('the check endpoint', () => {
  let on: { url: string; server: Server };
  let off: { url: string; server: Server };
  before(async () => {
    on = await serve();
    off = await serve({ authEnabled: false });
  });
  after(() => {
    on.server.close();
    off.server.close();
  });

  test('allows a session with the execute scope and sanitizes identity headers', async () => {
    const res = await fetch(`${on.url}${VALIDATE_PATH}`, { headers: { 'x-mcp-server': 'svc', cookie: cookie('sid-user'), ...call } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-user'), 'u-1');
    assert.equal(res.headers.get('x-username'), 'user??X-Injected: 1', 'CR/LF in a claim cannot split a header');
    assert.equal(res.headers.get('x-injected'), null);
    assert.equal(res.headers.get('x-scopes'), 'mcp:server:svc:execute');
  });

  test('"fail closed": a missing or malformed X-MCP-Server is a 500, never a 200 or 401', async () => {
    for (const server of [undefined, '', 'a;b', '../svc', 'SVC']) {
      const headers: Record<string, string> = { cookie: cookie('sid-user'), ...call };
      if (server !== undefined) headers['x-mcp-server'] = server;
      assert.equal((await fetch(`${on.url}${VALIDATE_PATH}`, { headers })).status, 500, String(server));
    }
  });

  test('a signed cookie for an unknown session is 401 invalid_token', async () => {
    const res = await fetch(`${on.url}${VALIDATE_PATH}`, { headers: { 'x-mcp-server': 'svc', cookie: cookie('sid-gone') } });
    assert.equal(res.status, 401);
    assert.equal(
      res.headers.get('www-authenticate'),
      'Bearer realm="mcp-gateway", error="invalid_token", scope="mcp:server:svc:execute", resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/api/streamable/svc"',
    );
  });

  test('a 401 names the metadata URL of the transport asked for and the scope the request needs (no error without credentials)', async () => {
    const sse = await fetch(`${on.url}${VALIDATE_PATH}`, { headers: { 'x-mcp-server': 'svc', 'x-mcp-transport': 'sse', ...call } });
    assert.equal(sse.status, 401);
    assert.equal(
      sse.headers.get('www-authenticate'),
      'Bearer realm="mcp-gateway", scope="mcp:server:svc:tool:get_time:execute", resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/api/execute/svc/sse"',
    );
    const init = await fetch(`${on.url}${VALIDATE_PATH}`, {
      headers: { 'x-mcp-server': 'svc', 'x-mcp-transport': 'streamable-http', 'x-mcp-messages': 'initialize', 'x-original-method': 'POST' },
    });
    assert.equal(
      init.headers.get('www-authenticate'),
      'Bearer realm="mcp-gateway", scope="mcp:server:svc:execute", resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/api/streamable/svc"',
    );
  });

  test('a 403 carries the insufficient_scope challenge naming the missing tool scope (step-up)', async () => {
    const res = await fetch(`${on.url}${VALIDATE_PATH}`, {
      headers: {
        'x-mcp-server': 'svc',
        'x-mcp-transport': 'streamable-http',
        cookie: cookie('sid-tool'),
        'x-mcp-messages': 'tools/call other',
        'x-original-method': 'POST',
      },
    });
    assert.equal(res.status, 403);
    assert.equal(res.headers.get('x-missing-scope'), 'mcp:server:svc:tool:other:execute');
    assert.equal(
      res.headers.get('www-authenticate'),
      'Bearer error="insufficient_scope", scope="mcp:server:svc:tool:other:execute", resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/api/streamable/svc"',
    );
  });

  test('answers on its exact path only, not on other spellings Express would route to it', async () => {
    for (const path of ['/AUTH/validate', '/auth/validate/']) {
      assert.equal((await fetch(`${on.url}${path}`, { headers: { 'x-mcp-server': 'svc', cookie: cookie('sid-user') } })).status, 404, path);
    }
  });

  test('with MCP_AUTH_ENABLED=false every request to a known enabled server is allowed as anonymous', async () => {
    const res = await fetch(`${off.url}${VALIDATE_PATH}`, { headers: { 'x-mcp-server': 'svc', ...call } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-username'), 'anonymous');
    assert.equal((await fetch(`${off.url}${VALIDATE_PATH}`, { headers: { 'x-mcp-server': 'nope', ...call } })).status, 404);
  });

  test('"fail closed": a POST without a readable body summary from njs is a 500', async () => {
    for (const messages of [undefined, '', '-', 'a b c', Array(101).fill('ping').join(',')]) {
      const headers: Record<string, string> = { 'x-mcp-server': 'svc', cookie: cookie('sid-user'), 'x-original-method': 'POST' };
      if (messages !== undefined) headers['x-mcp-messages'] = messages;
      assert.equal((await fetch(`${on.url}${VALIDATE_PATH}`, { headers })).status, 500, String(messages));
    }
  });

  test('every decision is audited with user, server, method, tool, decision and missing scope', async () => {
    audited.length = 0;
    await fetch(`${on.url}${VALIDATE_PATH}`, {
      headers: { 'x-mcp-server': 'svc', cookie: cookie('sid-user'), 'x-request-id': 'req-7', 'x-mcp-transport': 'streamable-http', ...call },
    });
    await fetch(`${on.url}${VALIDATE_PATH}`, { headers: { 'x-mcp-server': 'svc', ...call } });
    assert.deepEqual(
      audited.map((e) => e.event === 'access' && [e.requestId, e.user, e.server, e.transport, e.method, e.tool, e.decision, e.status]),
      [
        ['req-7', 'user\r\nX-Injected: 1', 'svc', 'streamable-http', 'tools/call', 'get_time', 'allow', 200],
        [undefined, '', 'svc', undefined, 'tools/call', 'get_time', 'deny', 401],
      ],
    );
  });

  describe('MCP sessions', () => {
    const binding = createSessionBinding(SECRET);
    const userKey = binding.keyFor(JSON.stringify(['person', 'dev', 'u-1']));
    const check = (sid: string, headers: Record<string, string>) =>
      fetch(`${on.url}${VALIDATE_PATH}`, { headers: { 'x-mcp-server': 'svc', cookie: cookie(sid), ...call, ...headers } });

    test('a session sealed to the principal opens to the backend id; the sealing key comes only with what may open a session', async () => {
      const sealed = binding.seal('streamable', 'svc', 'backend-1', userKey);
      const res = await check('sid-user', { 'x-mcp-transport': 'streamable-http', 'x-mcp-session': sealed });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('x-mcp-backend-session'), 'backend-1');
      assert.equal(res.headers.get('x-mcp-session-key'), null, 'the backend echoes the id the client sent: nothing to seal');
      const legacy = await check('sid-user', { 'x-mcp-transport': 'sse', 'x-mcp-session': binding.seal('sse', 'svc', '/messages?sessionId=1', userKey) });
      assert.equal(legacy.status, 200);
      assert.equal(legacy.headers.get('x-mcp-backend-target'), '/messages?sessionId=1');
      assert.equal(legacy.headers.get('x-mcp-session-key'), null);
      // An initialize (its response may assign a session) and the legacy stream (its endpoint event) carry the key.
      const init = await check('sid-user', { 'x-mcp-transport': 'streamable-http', 'x-mcp-messages': 'initialize' });
      assert.equal(init.headers.get('x-mcp-session-key'), userKey.header);
      const stream = await check('sid-user', { 'x-mcp-transport': 'sse', 'x-original-method': 'GET', 'x-mcp-messages': '-', 'x-mcp-path': '/sse' });
      assert.equal(stream.status, 200);
      assert.equal(stream.headers.get('x-mcp-session-key'), userKey.header);
      // Anything else without a session (a stateless server's tools/call) gets none.
      const stateless = await check('sid-user', { 'x-mcp-transport': 'streamable-http' });
      assert.equal(stateless.headers.get('x-mcp-session-key'), null);
    });

    test('another principal, another server, another transport or a garbled id: 404 with X-MCP-Session-Unknown and no identity', async () => {
      const sealed = binding.seal('streamable', 'svc', 'backend-1', userKey);
      const cases: Array<[string, Record<string, string>]> = [
        ['sid-other', { 'x-mcp-transport': 'streamable-http', 'x-mcp-session': sealed }],
        ['sid-user', { 'x-mcp-transport': 'sse', 'x-mcp-session': sealed }],
        ['sid-user', { 'x-mcp-transport': 'streamable-http', 'x-mcp-session': binding.seal('streamable', 'other-svc', 'backend-1', userKey) }],
        ['sid-user', { 'x-mcp-transport': 'streamable-http', 'x-mcp-session': 'backend-1' }],
        ['sid-user', { 'x-mcp-transport': 'streamable-http', 'x-mcp-session': sealed.slice(0, -1) }],
        ['sid-user', { 'x-mcp-transport': 'sse' }],
      ];
      for (const [sid, headers] of cases) {
        const res = await check(sid, headers);
        assert.equal(res.status, 404, JSON.stringify(headers));
        assert.equal(res.headers.get('x-mcp-session-unknown'), '1');
        assert.equal(res.headers.get('x-user'), null);
        assert.equal(res.headers.get('x-mcp-session-key'), null);
        assert.equal(res.headers.get('x-mcp-backend-session'), null);
      }
    });

    test('with auth disabled, sessions bind to the one anonymous principal', async () => {
      const anonymous = binding.keyFor('["anonymous"]');
      const res = await fetch(`${off.url}${VALIDATE_PATH}`, {
        headers: { 'x-mcp-server': 'svc', ...call, 'x-mcp-session': binding.seal('streamable', 'svc', 'b', anonymous) },
      });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('x-mcp-backend-session'), 'b');
    });
  });
});

describe("the check with the gateway's own access tokens", () => {
  const PUBLIC = 'https://gw.example';
  const key = deriveSigningKey(SECRET);
  let svc: { url: string; server: Server };
  before(async () => {
    svc = await serve({
      publicUrl: PUBLIC,
      gatewayTokens: createGatewayTokenVerifier({ issuer: PUBLIC, key: publicJwk(key), publicUrl: PUBLIC }),
    });
  });
  after(() => svc.server.close());

  const token = async (aud: string, scope: string, sub = 'dev:u-1', clientId = 'c-1') =>
    new SignJWT({ scope, client_id: clientId, username: 'user' })
      .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt' })
      .setIssuer(PUBLIC)
      .setAudience(aud)
      .setSubject(sub)
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(await importJWK(key, 'ES256'));
  const check = async (bearer: string, messages = call) =>
    fetch(`${svc.url}${VALIDATE_PATH}`, { headers: { 'x-mcp-server': 'svc', authorization: `Bearer ${bearer}`, ...messages } });

  test("a token for the server's MCP URL: the person, with the token's scopes", async () => {
    const res = await check(await token(`${PUBLIC}/api/streamable/svc`, 'mcp:server:svc:execute'));
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-user'), 'u-1', 'the same subject as with the cookie');
    assert.equal(res.headers.get('x-username'), 'user');
    assert.equal(res.headers.get('x-scopes'), 'mcp:server:svc:execute');
    // Same principal as the cookie: the same MCP session key (sent for an initialize).
    const initialize = { 'x-mcp-messages': 'initialize', 'x-original-method': 'POST' };
    const withToken = await check(await token(`${PUBLIC}/api/streamable/svc`, 'mcp:server:svc:execute'), initialize);
    const withCookie = await fetch(`${svc.url}${VALIDATE_PATH}`, { headers: { 'x-mcp-server': 'svc', cookie: cookie('sid-user'), ...initialize } });
    assert.ok(withToken.headers.get('x-mcp-session-key'));
    assert.equal(withToken.headers.get('x-mcp-session-key'), withCookie.headers.get('x-mcp-session-key'));
  });

  test('scopes come from the token: a one-tool token is refused another tool (403)', async () => {
    const res = await check(await token(`${PUBLIC}/api/execute/svc/sse`, 'mcp:server:svc:tool:other:execute'));
    assert.equal(res.status, 403);
    assert.equal(res.headers.get('x-missing-scope'), 'mcp:server:svc:tool:get_time:execute');
  });

  test('a token for another resource, or from another issuer, is 401 invalid_token', async () => {
    for (const bad of [
      await token(`${PUBLIC}/api/streamable/other`, 'mcp:server:svc:execute'),
      await token(`${PUBLIC}/api/streamable/svc/`, 'mcp:server:svc:execute'),
      await new SignJWT({ scope: 'mcp:server:svc:execute' })
        .setProtectedHeader({ alg: 'ES256' })
        .setIssuer('https://idp.example')
        .sign(await importJWK(key, 'ES256')),
    ]) {
      const res = await check(bad);
      assert.equal(res.status, 401);
      assert.equal(
        res.headers.get('www-authenticate'),
        'Bearer realm="mcp-gateway", error="invalid_token", scope="mcp:server:svc:tool:get_time:execute", resource_metadata="https://gw.example/.well-known/oauth-protected-resource/api/streamable/svc"',
      );
    }
  });

  test('a client-credentials token (sub = client_id) is that machine client', async () => {
    const res = await check(await token(`${PUBLIC}/api/streamable/svc`, 'mcp:server:svc:execute', 'machine-1', 'machine-1'));
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-username'), 'client:machine-1');
  });
});

describe('the check routes when given a route lookup (nginx/route.ts)', () => {
  let routed: { url: string; server: Server };
  let backendUp = true;
  before(async () => {
    routed = await serve({
      route: ({ server, transport, method, path }) => {
        if (server !== 'svc') return { ok: false, refusal: { status: 404, refused: 'SERVER_UNKNOWN' } };
        if (transport === 'sse' && path !== '/sse') return { ok: false, refusal: { status: 404, refused: 'NOT_FOUND' } };
        if (transport === 'sse' && method !== 'GET') return { ok: false, refusal: { status: 405, refused: 'METHOD_NOT_ALLOWED', allow: 'GET' } };
        return {
          ok: true,
          backend: () => (backendUp ? { ok: true, header: 'streamable http mcp_backend_0123456789ab 127.0.0.1:1 /mcp' } : { ok: false, reason: 'down' }),
        };
      },
    });
  });
  after(() => routed.server.close());

  const check = (headers: Record<string, string>) =>
    fetch(`${routed.url}${VALIDATE_PATH}`, { headers: { 'x-mcp-messages': '-', 'x-original-method': 'GET', ...headers } });

  test('refuses unknown servers, other paths and methods before looking at credentials', async () => {
    const unknown = await check({ 'x-mcp-server': 'nope', 'x-mcp-transport': 'streamable-http' });
    assert.equal(unknown.status, 404);
    assert.equal(unknown.headers.get('x-mcp-route-refused'), null);
    const other = await check({ 'x-mcp-server': 'svc', 'x-mcp-transport': 'sse', 'x-mcp-path': '/mcp' });
    assert.equal(other.status, 404);
    assert.equal(other.headers.get('x-mcp-route-refused'), 'NOT_FOUND');
    const post = await check({ 'x-mcp-server': 'svc', 'x-mcp-transport': 'sse', 'x-mcp-path': '/sse', 'x-original-method': 'POST' });
    assert.equal(post.status, 405);
    assert.equal(post.headers.get('x-mcp-route-refused'), 'METHOD_NOT_ALLOWED');
    assert.equal(post.headers.get('x-mcp-route-allow'), 'GET');
    // Without credentials the known server and endpoint is a 401, as before.
    assert.equal((await check({ 'x-mcp-server': 'svc', 'x-mcp-transport': 'sse', 'x-mcp-path': '/sse' })).status, 401);
  });

  test('answers the route on a 200, and 502 BACKEND_UNAVAILABLE without identity when the backend cannot be reached', async () => {
    const ok = await check({ 'x-mcp-server': 'svc', 'x-mcp-transport': 'streamable-http', 'x-mcp-path': '-', cookie: cookie('sid-other') });
    assert.equal(ok.status, 200);
    assert.equal(ok.headers.get('x-mcp-route'), 'streamable http mcp_backend_0123456789ab 127.0.0.1:1 /mcp');
    backendUp = false;
    try {
      const down = await check({ 'x-mcp-server': 'svc', 'x-mcp-transport': 'streamable-http', cookie: cookie('sid-other') });
      assert.equal(down.status, 502);
      assert.equal(down.headers.get('x-mcp-route-refused'), 'BACKEND_UNAVAILABLE');
      assert.equal(down.headers.get('x-user'), null);
      assert.equal(down.headers.get('x-mcp-route'), null);
    } finally {
      backendUp = true;
    }
    // A refused principal gets no route.
    const denied = await check({
      'x-mcp-server': 'svc',
      'x-mcp-transport': 'streamable-http',
      cookie: cookie('sid-tool'),
      'x-mcp-messages': 'tools/call other',
      'x-original-method': 'POST',
    });
    assert.equal(denied.status, 403);
    assert.equal(denied.headers.get('x-mcp-route'), null);
  });
});

describe("the gateway's own backend credential in the check's answer", () => {
  const keyed = { name: 'keyed', enabled: true, transports: { 'streamable-http': '/mcp' }, tools: [], backendAuth: { type: 'headers', headers: [] } };
  const plain = { name: 'svc', enabled: true, transports: { 'streamable-http': '/mcp' }, tools: [] };
  const sessionsWith = new Map(sessions);
  sessionsWith.set('sid-keyed', {
    cookie: { originalMaxAge: 1000 },
    identity: { sub: 'u-9', username: 'k', groups: [], provider: 'dev' },
    scopes: ['mcp:server:keyed:execute', 'mcp:server:svc:execute'],
  } as unknown as SessionData);
  let answer: { ok: true; headers: Record<string, string> } | { ok: false; reason: string; connect?: string } = {
    ok: false,
    reason: 'no secret is set for the header X-API-Key',
  };
  const asked: string[] = [];
  let url = '';
  let server: Server;
  before(async () => {
    const started = await serve({
      catalog: { get: (name: string) => ({ keyed, svc: plain })[name] as never },
      sessions: { peek: (sid) => sessionsWith.get(sid) },
      backendCredentials: {
        forCheck: (def) => {
          asked.push(def.name);
          return answer;
        },
      },
    });
    server = started.server;
    url = `${started.url}${VALIDATE_PATH}`;
  });
  after(() => server.close());
  const ask = (name: string, sid = 'sid-keyed') =>
    fetch(url, { headers: { 'x-mcp-server': name, cookie: cookie(sid), 'x-mcp-messages': 'initialize', 'x-original-method': 'POST' } });

  test('a server without backendAuth is never looked up and gets no credential header', async () => {
    const res = await ask('svc');
    assert.equal(res.status, 200);
    assert.deepEqual(asked, []);
    assert.ok(![...res.headers.keys()].some((k) => k.startsWith('x-mcp-backend')));
  });

  test('a credential that cannot be had is 502 BACKEND_CREDENTIAL_FAILED with what failed, audited as a denial', async () => {
    const res = await ask('keyed');
    assert.equal(res.status, 502);
    assert.equal(res.headers.get('x-mcp-error'), 'BACKEND_CREDENTIAL_FAILED');
    assert.equal(res.headers.get('x-mcp-error-detail'), 'no secret is set for the header X-API-Key');
    assert.equal(res.headers.get('x-user'), null, 'no identity on a refusal');
    const entry = audited.at(-1) as { status: number; reason: string; decision: string };
    assert.deepEqual([entry.status, entry.reason, entry.decision], [502, 'backend-credential-failed', 'deny']);
  });

  test('a person who can fix it themselves is 403 BACKEND_CONNECT_REQUIRED naming the page, audited as a denial', async () => {
    const before = answer;
    answer = {
      ok: false,
      reason: 'no token uploaded for keyed: upload one at https://mcp.example.com/servers/keyed/token',
      connect: 'https://mcp.example.com/servers/keyed/token',
    };
    try {
      const res = await ask('keyed');
      assert.equal(res.status, 403);
      assert.equal(res.headers.get('x-mcp-error'), 'BACKEND_CONNECT_REQUIRED');
      assert.equal(res.headers.get('x-mcp-connect-url'), 'https://mcp.example.com/servers/keyed/token');
      assert.equal(res.headers.get('x-mcp-error-detail'), answer.reason);
      assert.equal(res.headers.get('x-mcp-session-elicitation'), null, 'no session, no declared elicitation');
      assert.equal(res.headers.get('x-user'), null);
      assert.equal(res.headers.get('www-authenticate'), null, 'not an authorization problem of the MCP client');
      const entry = audited.at(-1) as { status: number; reason: string; decision: string };
      assert.deepEqual([entry.status, entry.reason, entry.decision], [403, 'backend-connect-required', 'deny']);
      // The session's initialize declared URL-mode elicitation: njs is told, from the sealed id.
      const binding = createSessionBinding(SECRET);
      const key = binding.keyFor(JSON.stringify(['person', 'dev', 'u-9']));
      const withSession = (sealed: string) =>
        fetch(url, {
          headers: { 'x-mcp-server': 'keyed', cookie: cookie('sid-keyed'), ...call, 'x-mcp-transport': 'streamable-http', 'x-mcp-session': sealed },
        });
      const flagged = await withSession(binding.seal('streamable', 'keyed', 'b-1', key, 'u'));
      assert.equal(flagged.status, 403);
      assert.equal(flagged.headers.get('x-mcp-session-elicitation'), 'url');
      const plainSession = await withSession(binding.seal('streamable', 'keyed', 'b-1', key));
      assert.equal(plainSession.headers.get('x-mcp-session-elicitation'), null);
    } finally {
      answer = before;
    }
  });

  test('a connect page that is not on GATEWAY_PUBLIC_URL is never named: 502 BACKEND_CREDENTIAL_FAILED', async () => {
    const before = answer;
    answer = { ok: false, reason: 'connect at https://evil.example/x', connect: 'https://evil.example/x' };
    try {
      const res = await ask('keyed');
      assert.equal(res.status, 502);
      assert.equal(res.headers.get('x-mcp-error'), 'BACKEND_CREDENTIAL_FAILED');
      assert.equal(res.headers.get('x-mcp-connect-url'), null);
    } finally {
      answer = before;
    }
  });

  test('an allowed request carries the slots and their values (for njs only); a refused one never asks', async () => {
    answer = { ok: true, headers: { 'x-mcp-backend-credential': 'h1', 'x-mcp-backend-h1': 'k1' } };
    const res = await ask('keyed');
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-mcp-backend-credential'), 'h1');
    assert.equal(res.headers.get('x-mcp-backend-h1'), 'k1');
    asked.length = 0;
    const refused = await ask('keyed', 'sid-tool');
    assert.equal(refused.status, 403);
    assert.deepEqual(asked, [], 'the credential is looked up only for a request that is allowed');
    assert.equal(refused.headers.get('x-mcp-backend-h1'), null);
  });
});

describe('cacheable answers (CHECK_CACHE_SECONDS, authz/check-cache.ts)', () => {
  const NOW = 1_800_000_000_000;
  let cached: { url: string; server: Server };
  let expiring: { url: string; server: Server };
  before(async () => {
    cached = await serve({ cacheSeconds: 30, now: () => NOW });
    // A session that ends in 7.5 s: its answers may be kept 7 s, not 30.
    expiring = await serve({ cacheSeconds: 30, now: () => NOW, sessions: { peek: (sid) => sessions.get(sid), expiresAt: () => NOW + 7_500 } });
  });
  after(() => {
    cached.server.close();
    expiring.server.close();
  });
  const check = (url: string, headers: Record<string, string>) => fetch(`${url}${VALIDATE_PATH}`, { headers: { 'x-mcp-server': 'svc', ...headers } });

  test('an allow without a secret says how long nginx may keep it, and carries its own audit line', async () => {
    const res = await check(cached.url, { cookie: cookie('sid-user'), ...call });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-accel-expires'), '30');
    const summary = decodeAuditSummary(res.headers.get('x-mcp-audit') ?? '');
    assert.deepEqual(summary, {
      user: 'user\r\nX-Injected: 1',
      method: 'tools/call',
      tool: 'get_time',
      messages: 1,
      decision: 'allow',
      status: 200,
      missingScope: undefined,
      reason: undefined,
    });
  });

  test("never past the credential's end", async () => {
    const res = await check(expiring.url, { cookie: cookie('sid-user'), ...call });
    assert.equal(res.headers.get('x-accel-expires'), '7');
  });

  test('a missing scope is kept too, with its audit line', async () => {
    const res = await check(cached.url, { cookie: cookie('sid-tool'), 'x-mcp-messages': 'tools/call other', 'x-original-method': 'POST' });
    assert.equal(res.status, 403);
    assert.equal(res.headers.get('x-accel-expires'), '30');
    assert.equal(decodeAuditSummary(res.headers.get('x-mcp-audit') ?? '')?.missingScope, 'mcp:server:svc:tool:other:execute');
  });

  test('never kept: a 401, an answer with the sealing key, a session of someone else, an unknown server', async () => {
    const binding = createSessionBinding(SECRET);
    const otherKey = binding.keyFor(JSON.stringify(['person', 'dev', 'u-2']));
    const cases: Array<[string, Record<string, string>, number]> = [
      ['no credential', { ...call }, 401],
      ['a forged cookie', { cookie: cookie('sid-gone'), ...call }, 401],
      ['an initialize', { cookie: cookie('sid-user'), 'x-mcp-messages': 'initialize', 'x-original-method': 'POST' }, 200],
      ["another's session", { cookie: cookie('sid-user'), ...call, 'x-mcp-session': binding.seal('streamable', 'svc', 'b', otherKey) }, 404],
    ];
    for (const [what, headers, status] of cases) {
      const res = await check(cached.url, headers);
      assert.equal(res.status, status, what);
      assert.equal(res.headers.get('x-accel-expires'), null, what);
      assert.equal(res.headers.get('x-mcp-audit'), null, what);
    }
    const unknown = await fetch(`${cached.url}${VALIDATE_PATH}`, { headers: { 'x-mcp-server': 'nope', cookie: cookie('sid-user'), ...call } });
    assert.equal(unknown.status, 404);
    assert.equal(unknown.headers.get('x-accel-expires'), null);
  });

  test('an answer carrying a backend credential is never kept', async () => {
    const withCredential = await serve({
      cacheSeconds: 30,
      catalog: {
        get: (name: string) => (name === 'svc' ? ({ ...(catalog.get('svc') as unknown as object), backendAuth: { type: 'headers' } } as never) : undefined),
      },
      backendCredentials: {
        forCheck: () => ({ ok: true, headers: { 'x-mcp-backend-credential': 'authorization', 'x-mcp-backend-authorization': 'Bearer s3cret' } }),
      },
    });
    // Nor an allow for such a server that carried none this time: its credentials change without a catalog change.
    const withoutOne = await serve({
      cacheSeconds: 30,
      catalog: {
        get: (name: string) => (name === 'svc' ? ({ ...(catalog.get('svc') as unknown as object), backendAuth: { type: 'headers' } } as never) : undefined),
      },
      backendCredentials: { forCheck: () => undefined },
    });
    try {
      const res = await check(withCredential.url, { cookie: cookie('sid-user'), ...call });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('x-mcp-backend-authorization'), 'Bearer s3cret');
      assert.equal(res.headers.get('x-accel-expires'), null);
      const none = await check(withoutOne.url, { cookie: cookie('sid-user'), ...call });
      assert.equal(none.status, 200);
      assert.equal(none.headers.get('x-accel-expires'), null);
    } finally {
      withCredential.server.close();
      withoutOne.server.close();
    }
  });

  test('0 seconds: no answer says it may be kept', async () => {
    const off = await serve({ cacheSeconds: 0 });
    try {
      const res = await check(off.url, { cookie: cookie('sid-user'), ...call });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('x-accel-expires'), null);
    } finally {
      off.server.close();
    }
  });
});
