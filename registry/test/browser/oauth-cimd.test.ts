/**
 * Client ID Metadata Documents (on by default): an unmodified MCP TypeScript SDK client whose
 * authProvider names a `clientMetadataUrl` uses that https URL as its client_id. The gateway
 * fetches the document, shows its client_name at consent and issues tokens for it; nothing is
 * sent to /oauth2/register. Then a document whose client_id is not its own URL and a redirect URI
 * the document does not list are refused.
 *
 * The document is served by a loopback https server this file starts, under the name
 * client.example.test with a committed test certificate. The gateway reaches it only through the test
 * hook `clientMetadataFetch` (startGateway's programmatic option, never configuration): it
 * resolves that name to 127.0.0.1, trusts the certificate and drops oidc-provider's SSRF-guarded
 * dispatcher, which refuses loopback. Production keeps the guarded fetch
 * (test/integration/oauth-client-metadata.test.ts proves a loopback document is never fetched).
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer, request as httpsRequest } from 'node:https';
import type { AddressInfo, LookupFunction } from 'node:net';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, test } from 'node:test';
import type { Page } from 'playwright-core';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { OAuthClientMetadata } from '@modelcontextprotocol/sdk/shared/auth.js';
import { decodeJwt } from 'jose';
import type { ClientMetadataFetch } from '../../src/authserver/authorization-server.ts';
import { DEMO_PASSWORD, startSuite, type Suite } from './browser.ts';
import { InMemoryOAuthProvider } from './oauth-provider.ts';

const HOST = 'client.example.test';
const MAPPING = 'groups:\n  "team-x": ["mcp:server:currenttime:execute"]\n';
let suite: Suite;
const TLS_DIR = join(import.meta.dirname, '..', 'fixtures', 'tls');
let documentServer: ReturnType<typeof createHttpsServer>;
let documentOrigin: string;
let redirectServer: Server;
let redirectUrl: string;
/** Every document URL the gateway fetched through the hook. */
const fetchedDocuments: string[] = [];

/** The metadata document of the client at `url`; `overrides` changes fields of it. */
function documentFor(url: string, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    client_id: url,
    client_name: 'CIMD Test Client',
    redirect_uris: [redirectUrl],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'none',
    ...overrides,
  };
}

/**
 * The test hook: fetches https://client.example.test:<port>/... from the loopback document server.
 * It exists for tests only; production uses oidc-provider's own fetch, whose SSRF guard would
 * refuse this loopback server (which is why the dispatcher it set is dropped here).
 */
function loopbackDocumentFetch(ca: string): ClientMetadataFetch {
  const lookup: LookupFunction = (hostname, options, callback) => {
    if (hostname !== HOST) return callback(Object.assign(new Error(`not resolvable in this test: ${hostname}`), { code: 'ENOTFOUND' }), '', 4);
    if (options.all === true)
      return (callback as unknown as (e: null, a: { address: string; family: number }[]) => void)(null, [{ address: '127.0.0.1', family: 4 }]);
    return callback(null, '127.0.0.1', 4);
  };
  return async (url, options) => {
    delete options.dispatcher;
    fetchedDocuments.push(url);
    const headers = Object.fromEntries(new Headers(options.headers).entries());
    return new Promise<Response>((resolve, reject) => {
      const req = httpsRequest(url, { method: options.method ?? 'GET', headers, ca, lookup, signal: options.signal ?? undefined }, (res) => {
        const responseHeaders = new Headers();
        for (const [name, value] of Object.entries(res.headers))
          for (const v of Array.isArray(value) ? value : value === undefined ? [] : [value]) responseHeaders.append(name, v);
        resolve(new Response(Readable.toWeb(res) as ReadableStream, { status: res.statusCode ?? 500, headers: responseHeaders }));
      });
      req.on('error', reject);
      req.end();
    });
  };
}

before(async () => {
  // A committed test certificate for client.example.test (its own trust anchor; test/fixtures/tls).
  const cert = readFileSync(join(TLS_DIR, 'client.example.test-cert.pem'), 'utf8');
  documentServer = createHttpsServer({ cert, key: readFileSync(join(TLS_DIR, 'client.example.test-key.pem')) }, (req, res) => {
    const url = `${documentOrigin}${req.url ?? '/'}`;
    const path = new URL(url).pathname;
    const body =
      path === '/client.json'
        ? documentFor(url)
        : path === '/wrong-id.json'
          ? documentFor(url, { client_id: `${documentOrigin}/someone-else.json` })
          : undefined;
    if (body === undefined) return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  });
  await new Promise<void>((resolve) => documentServer.listen(0, '127.0.0.1', resolve));
  documentOrigin = `https://${HOST}:${(documentServer.address() as AddressInfo).port}`;
  redirectServer = createHttpServer((_req, res) => res.writeHead(200, { 'content-type': 'text/plain' }).end('You can close this window.'));
  await new Promise<void>((resolve) => redirectServer.listen(0, '127.0.0.1', resolve));
  redirectUrl = `http://127.0.0.1:${(redirectServer.address() as AddressInfo).port}/callback`;
  suite = await startSuite({
    gateway: {
      users: [{ username: 'mapped', password: DEMO_PASSWORD, groups: ['team-x'] }],
      mapping: MAPPING,
      hooks: { clientMetadataFetch: loopbackDocumentFetch(cert) },
    },
  });
});

after(async () => {
  documentServer?.close();
  redirectServer?.closeAllConnections();
  redirectServer?.close();
  await suite?.close();
});

const serverUrl = (name: string) => `${suite.gw.url}/api/streamable/${name}`;

/** Signs in as `username` and allows; returns the consent page's text and where the browser landed. */
async function authorizeInBrowser(page: Page, url: string, username: string): Promise<{ consentText: string; landed: URL }> {
  await page.goto(url);
  await page.waitForSelector('#username');
  await page.fill('#username', username);
  await page.fill('#password', DEMO_PASSWORD);
  await page.click('#submit');
  await page.waitForSelector('#consent');
  const consentText = (await page.textContent('body')) ?? '';
  await page.click('#allow');
  await page.waitForURL((u) => u.href.startsWith(redirectUrl));
  return { consentText, landed: new URL(page.url()) };
}

/** A client application's provider with a client metadata document URL and no registration. */
class CimdProvider extends InMemoryOAuthProvider {
  landed: URL | undefined;
  consentText = '';
  readonly clientMetadataUrl: string;
  readonly page: Page;

  constructor(page: Page, clientMetadataUrl: string) {
    super(redirectUrl, documentFor(clientMetadataUrl) as unknown as OAuthClientMetadata);
    this.page = page;
    this.clientMetadataUrl = clientMetadataUrl;
  }
  async redirectToAuthorization(url: URL) {
    ({ consentText: this.consentText, landed: this.landed } = await authorizeInBrowser(this.page, url.href, 'user'));
  }
}

/** A raw authorization request for `clientId`, answered without following redirects. */
function authorize(clientId: string, redirectUri = redirectUrl): Promise<Response> {
  const url = new URL(`${suite.gw.url}/oauth2/authorize`);
  url.search = new URLSearchParams({
    response_type: 'code',
    client_id: clientId,
    redirect_uri: redirectUri,
    code_challenge: createHash('sha256').update(randomBytes(32).toString('base64url')).digest('base64url'),
    code_challenge_method: 'S256',
    resource: serverUrl('currenttime'),
  }).toString();
  return fetch(url, { redirect: 'manual' });
}

test('an SDK client with a client metadata document URL connects without registering', async () => {
  const metadata = (await (await fetch(`${suite.gw.url}/.well-known/oauth-authorization-server`)).json()) as Record<string, unknown>;
  assert.equal(metadata['client_id_metadata_document_supported'], true, 'on by default');

  const context = await suite.context();
  const page = await context.newPage();
  const documentUrl = `${documentOrigin}/client.json`;
  const provider = new CimdProvider(page, documentUrl);
  // Every request the client application sends, to show none goes to /oauth2/register.
  const sent: string[] = [];
  const countingFetch: typeof fetch = (input, init) => {
    sent.push(input instanceof Request ? input.url : String(input));
    return fetch(input, init);
  };
  const open = () => new StreamableHTTPClientTransport(new URL(serverUrl('currenttime')), { authProvider: provider, fetch: countingFetch });

  const transport = open();
  await assert.rejects(new Client({ name: 'cimd-test', version: '1.0.0' }).connect(transport), UnauthorizedError);
  const code = provider.landed?.searchParams.get('code');
  assert.ok(code, `the authorization ended without a code: ${provider.landed?.href}`);
  await transport.finishAuth(code);
  const client = new Client({ name: 'cimd-test', version: '1.0.0' });
  await client.connect(open());

  assert.equal(provider.info?.client_id, documentUrl, 'the SDK used the document URL as client_id');
  assert.deepEqual(
    sent.filter((u) => new URL(u).pathname.endsWith('/register')),
    [],
    'no dynamic registration',
  );
  assert.ok(sent.some((u) => new URL(u).pathname === '/oauth2/token'));
  assert.ok(fetchedDocuments.includes(documentUrl), 'the gateway fetched the document');
  assert.match(provider.consentText, /CIMD Test Client/, 'the consent page names the client from its document');

  const claims = decodeJwt(provider.tokens()!.access_token);
  assert.equal(claims['client_id'], documentUrl);
  assert.equal(claims.aud, serverUrl('currenttime'));
  assert.deepEqual(
    (await client.listTools()).tools.map((t) => t.name),
    ['current_time_by_timezone'],
  );
  const called = await client.callTool({ name: 'current_time_by_timezone', arguments: { tz_name: 'UTC' } });
  assert.notEqual(called.isError, true);
  await client.close();
  await context.close();
});

test('a document whose client_id is not its own URL is refused', async () => {
  const url = `${documentOrigin}/wrong-id.json`;
  const response = await authorize(url);
  assert.equal(response.status, 400);
  assert.match(await response.text(), /invalid_client_metadata/);
  assert.ok(fetchedDocuments.includes(url), 'it was fetched, and then refused');
});

test('a redirect URI the document does not list is refused, with no redirect', async () => {
  const response = await authorize(`${documentOrigin}/client.json`, 'http://127.0.0.1:9/elsewhere');
  assert.equal(response.status, 400);
  assert.equal(response.headers.get('location'), null);
  assert.match(await response.text(), /invalid_redirect_uri/);
});

test('a client_id URL whose document is missing is refused', async () => {
  const response = await authorize(`${documentOrigin}/missing.json`);
  assert.equal(response.status, 400);
  assert.match(await response.text(), /invalid_client/);
});
