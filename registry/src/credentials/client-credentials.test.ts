import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { decodeJwt } from 'jose';
import { startProtectedBackend, type ProtectedBackend } from '../../test/fixtures/protected-backend.ts';
import { GatewayError } from '../errors.ts';
import { ClientCredentialsSource, schedule, type ClientCredentialsOptions } from './client-credentials.ts';

const FAST_RETRY = { initialMs: 50, maxMs: 200 };

function sourceFor(backend: ProtectedBackend, overrides: Partial<ClientCredentialsOptions> = {}): ClientCredentialsSource {
  return new ClientCredentialsSource({
    server: 'weather',
    endpoint: { issuer: backend.issuer },
    clientId: backend.client.clientId,
    secret: () => backend.client.clientSecret,
    resource: backend.mcpUrl,
    scope: 'mcp:tools',
    allowInsecureHttp: true,
    retry: FAST_RETRY,
    ...overrides,
  });
}

/** A GatewayError BACKEND_CREDENTIAL_FAILED whose message matches and never holds the secret. */
function credentialFailure(backend: ProtectedBackend, pattern: RegExp): (err: unknown) => boolean {
  return (err) => {
    assert.ok(err instanceof GatewayError);
    assert.equal(err.code, 'BACKEND_CREDENTIAL_FAILED');
    assert.match(err.message, pattern);
    assert.ok(!err.message.includes(backend.client.clientSecret), 'no secret in the message');
    return true;
  };
}

/** Seconds left on a JWT access token (the test reads `exp`; the source never does). */
function secondsLeft(token: string): number {
  return decodeJwt(token).exp! - Date.now() / 1000;
}

describe('schedule', () => {
  test('a margin of 10 % between 1 s and 60 s; the refresh half a margin before', () => {
    assert.deepEqual(schedule(0, 3_600_000), { staleAt: 3_540_000, refreshAt: 3_510_000 });
    assert.deepEqual(schedule(0, 300_000), { staleAt: 270_000, refreshAt: 255_000 });
    assert.deepEqual(schedule(0, 5000), { staleAt: 4000, refreshAt: 3500 });
  });
});

describe('ClientCredentialsSource against a real AS and MCP backend', () => {
  let backend: ProtectedBackend;
  before(async () => {
    backend = await startProtectedBackend({ accessTokenTtlSeconds: 300 });
  });
  after(() => backend.close());

  test('gets a token for the backend, which the backend accepts (whoami)', async () => {
    const source = sourceFor(backend);
    try {
      const token = await source.ensure();
      const claims = decodeJwt(token);
      assert.equal(claims.aud, backend.mcpUrl);
      assert.equal(claims['client_id'], backend.client.clientId);
      assert.equal(source.current(), token);

      const mcp = new Client({ name: 'cc-test', version: '1' });
      await mcp.connect(new StreamableHTTPClientTransport(new URL(backend.mcpUrl), { requestInit: { headers: { authorization: `Bearer ${token}` } } }));
      const result = await mcp.callTool({ name: 'whoami', arguments: {} });
      await mcp.close();
      const [content] = result.content as { text: string }[];
      assert.deepEqual(JSON.parse(content!.text), {
        sub: backend.client.clientId,
        client_id: backend.client.clientId,
        aud: backend.mcpUrl,
        scope: 'mcp:tools',
      });
      assert.ok(backend.received.some((r) => r.authorization === `Bearer ${token}`));
    } finally {
      source.close();
    }
  });

  test('caches: two ensure() calls, one token request; concurrent first calls share one', async () => {
    const source = sourceFor(backend);
    try {
      const before = backend.tokenRequests;
      const tokens = await Promise.all(Array.from({ length: 20 }, () => source.ensure()));
      assert.equal(new Set(tokens).size, 1);
      assert.equal(await source.ensure(), tokens[0]);
      assert.equal(backend.tokenRequests - before, 1);
    } finally {
      source.close();
    }
  });

  test('a token URL without discovery, client_secret_post, audience as well as resource', async () => {
    const source = sourceFor(backend, {
      endpoint: { tokenEndpoint: backend.endpoints.token },
      authMethod: 'client_secret_post',
      audience: 'ignored-by-this-as',
    });
    try {
      assert.equal(decodeJwt(await source.ensure()).aud, backend.mcpUrl);
    } finally {
      source.close();
    }
  });

  test('RFC 8414 discovery works too, and an AS that takes only post gets post', async () => {
    const strict = await startProtectedBackend({ tokenEndpointAuthMethods: ['client_secret_post'] });
    const source = sourceFor(strict, { endpoint: { issuer: strict.issuer, discovery: 'oauth2' }, resource: strict.mcpUrl });
    try {
      assert.equal(decodeJwt(await source.ensure()).aud, strict.mcpUrl);
    } finally {
      source.close();
      await strict.close();
    }
  });

  test('a missing secret: BACKEND_CREDENTIAL_FAILED "no client secret stored", no request', async () => {
    const source = sourceFor(backend, { secret: () => undefined });
    try {
      const before = backend.tokenRequests;
      await assert.rejects(source.ensure(), credentialFailure(backend, /^backend "weather": no client secret stored$/));
      assert.equal(backend.tokenRequests, before);
      assert.equal(source.current(), undefined);
    } finally {
      source.close();
    }
  });

  test('a wrong secret or an unknown resource: the AS status and error code, never the secret', async () => {
    const wrong = sourceFor(backend, { secret: () => `${backend.client.clientSecret}-old` });
    const target = sourceFor(backend, { resource: 'https://nowhere.example/mcp' });
    try {
      await assert.rejects(wrong.ensure(), credentialFailure(backend, /"weather".*\/token.* 401 invalid_client/));
      await assert.rejects(target.ensure(), credentialFailure(backend, /400 invalid_target/));
    } finally {
      wrong.close();
      target.close();
    }
  });

  test('token endpoint failure: a clear error, callers in the backoff get it without a request, recovery after', async () => {
    const source = sourceFor(backend, { retry: { initialMs: 300, maxMs: 300 } });
    try {
      backend.failTokenEndpoint(true);
      const before = backend.tokenRequests;
      await assert.rejects(
        source.ensure(),
        credentialFailure(backend, /^backend "weather": token request to http:\/\/127\.0\.0\.1:\d+\/token failed: HTTP 500$/),
      );
      await assert.rejects(source.ensure(), credentialFailure(backend, /HTTP 500/));
      assert.equal(backend.tokenRequests - before, 1, 'the second caller, inside the backoff, made no request');

      backend.failTokenEndpoint('invalid_client');
      await sleep(350);
      await assert.rejects(source.ensure(), credentialFailure(backend, /401 invalid_client/));

      backend.failTokenEndpoint(false);
      await sleep(350);
      assert.equal(decodeJwt(await source.ensure()).aud, backend.mcpUrl);
    } finally {
      backend.failTokenEndpoint(false);
      source.close();
    }
  });
});

describe('ClientCredentialsSource with short-lived tokens', () => {
  const TTL = 3;
  let backend: ProtectedBackend;
  before(async () => {
    backend = await startProtectedBackend({ accessTokenTtlSeconds: TTL });
  });
  after(() => backend.close());

  test('50 concurrent callers over several lifetimes: about one request per lifetime, never an expired token', async () => {
    const source = sourceFor(backend);
    const before = backend.tokenRequests;
    const started = Date.now();
    const durationMs = 4 * TTL * 1000;
    let calls = 0;
    const caller = async () => {
      while (Date.now() - started < durationMs) {
        const current = source.current();
        if (current !== undefined) assert.ok(secondsLeft(current) > 0, 'current() returned an expired token');
        const token = await source.ensure();
        assert.ok(secondsLeft(token) > 0, 'ensure() returned an expired token');
        calls += 1;
        await sleep(5);
      }
    };
    try {
      await Promise.all(Array.from({ length: 50 }, caller));
      const requests = backend.tokenRequests - before;
      // The refresh comes at 1.5 s into a 3 s lifetime (margin 1 s, then half of it): 12 s of
      // load is 8 refreshes, give or take one, against thousands of calls.
      assert.ok(calls > 1000, `calls: ${calls}`);
      assert.ok(requests >= 4 && requests <= 10, `token requests: ${requests}`);
    } finally {
      source.close();
    }
  });

  test('while the AS fails, the cached token keeps serving until it goes stale, then the error; recovery after', async () => {
    const source = sourceFor(backend, { retry: { initialMs: 100, maxMs: 200 } });
    try {
      const first = await source.ensure();
      backend.failTokenEndpoint(true);
      const failedFrom = backend.tokenRequests;
      await sleep(1700); // past the background refresh (1.5 s), before stale (2 s)
      assert.ok(backend.tokenRequests > failedFrom, 'the background refresh was tried');
      assert.equal(source.current(), first);
      assert.equal(await source.ensure(), first);
      await sleep(500); // stale now
      assert.equal(source.current(), undefined);
      await assert.rejects(
        (async () => {
          for (;;) await source.ensure().then(() => sleep(20)); // until the error shows
        })(),
        credentialFailure(backend, /HTTP 500/),
      );
      backend.failTokenEndpoint(false);
      await sleep(250);
      const next = await source.ensure();
      assert.notEqual(next, first);
      assert.ok(secondsLeft(next) > 1);
    } finally {
      backend.failTokenEndpoint(false);
      source.close();
    }
  });

  test('idle: no background refresh when nobody used the token; close() stops refreshes', async () => {
    const idle = sourceFor(backend);
    const closed = sourceFor(backend);
    try {
      await closed.ensure();
      closed.close();
      const before = backend.tokenRequests;
      await idle.ensure(); // hands the token out once: that counts as use
      await sleep(2200);
      const afterFirst = backend.tokenRequests;
      assert.equal(afterFirst - before, 2, 'one fetch, one background refresh (idle), none for the closed source');
      await sleep(1700); // idle's new token was not used: no second refresh
      assert.equal(backend.tokenRequests, afterFirst);
    } finally {
      idle.close();
    }
  });
});
