import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { startTestGateway, type TestGateway } from './harness.ts';
import { login } from './login.ts';

/*
 * Every URL the gateway publishes is built from GATEWAY_PUBLIC_URL, never from what the client
 * says its host is (security review, issue 10): a discovery document built from `Host:
 * evil.example` sends the next client's authorization request, token and credentials there.
 * Each variation is sent straight to the registry and through nginx.
 */

const EVIL = 'evil.example';
const VARIATIONS: ReadonlyArray<{ name: string; headers: Record<string, string> }> = [
  { name: 'Host', headers: { host: EVIL } },
  { name: 'X-Forwarded-Host', headers: { 'x-forwarded-host': EVIL } },
  { name: 'X-Forwarded-Proto https', headers: { 'x-forwarded-proto': 'https' } },
  { name: 'X-Forwarded-Host and -Proto', headers: { 'x-forwarded-host': EVIL, 'x-forwarded-proto': 'https', 'x-forwarded-port': '443' } },
  { name: 'Forwarded', headers: { forwarded: `for=1.2.3.4;host=${EVIL};proto=https` } },
  { name: 'Host with a port', headers: { host: `${EVIL}:8443` } },
];

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** node:http, not fetch: fetch does not let a caller choose the Host header. */
function get(base: string, path: string, headers: Record<string, string>): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(new URL(path, base), { headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Every absolute http(s) URL in a text (JSON string values, HTML attributes, headers). */
function absoluteUrls(text: string): string[] {
  return [...text.matchAll(/https?:\/\/[^\s"'<>\\]+/g)].map((m) => m[0]);
}

let gw: TestGateway;

describe('published URLs come from GATEWAY_PUBLIC_URL only', () => {
  before(async () => {
    gw = await startTestGateway();
  });
  after(async () => {
    if (process.exitCode) process.stderr.write(`nginx error.log:\n${gw?.errorLog()}\n`);
    await gw?.[Symbol.asyncDispose]();
  });

  /** The dev IdP's authorization URL as the registry's /login sends a browser there. */
  async function authorizationPath(): Promise<string> {
    const res = await get(gw.url, '/login', {});
    assert.equal(res.status, 302);
    const location = new URL(String(res.headers['location']));
    return `${location.pathname}${location.search}`;
  }

  const paths = [
    '/idp/.well-known/openid-configuration',
    '/idp/jwks',
    '/.well-known/oauth-authorization-server',
    '/.well-known/openid-configuration',
    '/.well-known/oauth-protected-resource',
    '/.well-known/oauth-protected-resource/api/streamable/currenttime',
    '/.well-known/oauth-protected-resource/api/execute/currenttime/sse',
    '/login',
    '/',
  ];

  for (const variation of VARIATIONS) {
    test(`discovery, JWKS, login redirects and pages ignore ${variation.name}`, async () => {
      for (const [where, base] of [
        ['registry', gw.gateway.registryUrl],
        ['nginx', gw.url],
      ] as const) {
        const seen: string[] = [];
        for (const path of [...paths, await authorizationPath()]) {
          let res = await get(base, path, variation.headers);
          // Follow the IdP's own redirects (authorization -> interaction) with the same headers.
          for (let hop = 0; hop < 3 && res.status >= 300 && res.status < 400; hop++) {
            const location = String(res.headers['location']);
            seen.push(`${path} -> Location ${location}`);
            assert.ok(!location.includes(EVIL), `${where} ${path}: Location ${location}`);
            if (/^https?:/.test(location) && !location.startsWith(gw.url)) assert.fail(`${where} ${path}: Location ${location} is not under ${gw.url}`);
            const next = new URL(location, gw.url);
            const cookies = ([] as string[])
              .concat(res.headers['set-cookie'] ?? [])
              .map((c) => c.split(';')[0])
              .join('; ');
            res = await get(base, `${next.pathname}${next.search}`, { ...variation.headers, ...(cookies ? { cookie: cookies } : {}) });
          }
          const text = `${JSON.stringify(res.headers)}\n${res.body}`;
          assert.ok(!text.includes(EVIL), `${where} ${path} (${res.status}) mentions ${EVIL}`);
          if (path.includes('well-known') && res.status === 200) {
            const urls = absoluteUrls(res.body);
            assert.ok(path !== '/idp/.well-known/openid-configuration' || urls.length > 5, 'the discovery document lists its endpoints');
            // The gateway's own resource, and its authorization server's issuer, are the public URL itself, without a path.
            for (const url of urls) assert.ok(url === gw.url || url.startsWith(`${gw.url}/`), `${where} ${path}: ${url} is not under ${gw.url}`);
          }
        }
        assert.ok(seen.length > 0, 'the login redirects were followed');
      }
    });
  }

  test('sign-in through nginx still works (the pinned origin is the one the browser uses)', async () => {
    const trace = await login(gw.url, 'admin', 'test-admin-password');
    assert.match(trace.cookie, /^mcp_gateway_session=/);
  });
});
