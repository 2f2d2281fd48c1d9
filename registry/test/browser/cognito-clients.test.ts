/**
 * The MCP authorization contract with an upstream IdP shaped like Cognito: the IdP has no dynamic
 * client registration (its discovery document names no registration endpoint, as Cognito's
 * does not), so an MCP client cannot register there; it registers at the gateway, which is its
 * authorization server, and the person signs in at the Cognito-shaped IdP (through the gateway's
 * own login, real nginx, the real Debian chromium). The token's scopes come from the person's
 * `cognito:groups`: the naming convention for one group, the mapping file for another.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { decodeJwt } from 'jose';
import { buildServer as buildFininfo } from '../../../servers/fininfo/server.ts';
import { serveMcp, type RunningMcpServer } from '../../../servers/shared/serve-mcp.ts';
import { externalFixture, USERS, type ProviderFixture } from '../integration/identity-contract.ts';
import { launchBrowser, ProblemCollector } from './browser.ts';
import { InMemoryOAuthProvider, publicClientMetadata } from './oauth-provider.ts';

let backend: RunningMcpServer;
let fx: ProviderFixture;
let browser: Browser;
const problems = new ProblemCollector();
let redirectServer: Server;
let redirectUrl: string;

before(async () => {
  backend = await serveMcp(buildFininfo, { port: 0 });
  fx = await externalFixture('cognito', backend);
  browser = await launchBrowser();
  redirectServer = createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/plain' }).end('You can close this window.'));
  await new Promise<void>((resolve) => redirectServer.listen(0, '127.0.0.1', resolve));
  redirectUrl = `http://127.0.0.1:${(redirectServer.address() as AddressInfo).port}/callback`;
});

after(async () => {
  if (process.exitCode) process.stderr.write(`nginx error.log:\n${fx?.gw.errorLog()}\n`);
  // Every connection dropped first: a failed authorization can leave chromium holding one open,
  // and a server that waits for it keeps the file from ever ending.
  redirectServer?.closeAllConnections();
  redirectServer?.close();
  await browser?.close();
  await fx?.close();
  await backend?.close();
});

const password = (username: string) => USERS.find((u) => u.username === username)!.password;

/** An application's OAuthClientProvider: in memory; its browser step signs in at the Cognito-shaped IdP and allows. */
class CognitoSignInProvider extends InMemoryOAuthProvider {
  landed: URL | undefined;
  readonly seen: string[] = [];
  readonly page: Page;
  readonly username: string;

  constructor(page: Page, username: string) {
    super(redirectUrl, publicClientMetadata('SDK client via Cognito', redirectUrl));
    this.page = page;
    this.username = username;
  }
  async redirectToAuthorization(url: URL) {
    const idpOrigin = new URL(fx.idpIssuer!).origin;
    const onNav = (frame: { url(): string; parentFrame(): unknown }) => {
      if (frame.parentFrame() === null) this.seen.push(frame.url());
    };
    this.page.on('framenavigated', onNav);
    try {
      await this.page.goto(url.href);
      // The gateway's login sends the browser on to the Cognito-shaped IdP's hosted sign-in form.
      await this.page.waitForURL((u) => u.origin === idpOrigin);
      await this.page.fill('input[name=username]', this.username);
      await this.page.fill('input[name=password]', password(this.username));
      await this.page.click('button[type=submit]');
      await this.page.waitForSelector('#consent');
      await this.page.click('#allow');
      await this.page.waitForURL((u) => u.href.startsWith(redirectUrl));
      this.landed = new URL(this.page.url());
    } catch (err) {
      throw new Error(`authorization stopped at ${this.page.url()} after ${this.seen.join(' -> ')}: ${(await this.page.content()).slice(0, 800)}`, {
        cause: err,
      });
    } finally {
      this.page.off('framenavigated', onNav);
    }
  }
}

async function connect(provider: CognitoSignInProvider, mcpUrl: string): Promise<Client> {
  const open = () => new StreamableHTTPClientTransport(new URL(mcpUrl), { authProvider: provider });
  const transport = open();
  try {
    await new Client({ name: 'cognito-test', version: '1.0.0' }).connect(transport);
    throw new Error('connected without signing in');
  } catch (err) {
    if (!(err instanceof UnauthorizedError)) throw err;
  }
  const code = provider.landed?.searchParams.get('code');
  assert.ok(code, `the authorization ended without a code: ${provider.landed?.href}`);
  await transport.finishAuth(code);
  const client = new Client({ name: 'cognito-test', version: '1.0.0' });
  await client.connect(open());
  return client;
}

test('the Cognito-shaped IdP offers no dynamic client registration; the gateway does', async () => {
  const idpMetadata = (await (await fetch(`${fx.idpIssuer}/.well-known/openid-configuration`)).json()) as Record<string, unknown>;
  assert.equal(idpMetadata['registration_endpoint'], undefined);
  const gatewayMetadata = (await (await fetch(`${fx.gw.url}/.well-known/oauth-authorization-server`)).json()) as Record<string, unknown>;
  assert.equal(gatewayMetadata['issuer'], fx.gw.url);
  assert.equal(gatewayMetadata['registration_endpoint'], `${fx.gw.url}/oauth2/register`);
});

for (const [username, groups, scope, tools] of [
  // The naming convention: the group `mcp-server-fininfo` gives read + execute on fininfo; the SDK
  // asks for the scope the 401 names (execute), so the token is narrowed to it.
  ['alice', 'mcp-server-fininfo', 'mcp:server:fininfo:execute', null],
  // A group that cannot follow the convention: the mapping file gives it one tool.
  ['bob', 'Finance Analysts', 'mcp:server:fininfo:tool:get_stock_aggregates:execute', ['get_stock_aggregates']],
] as const) {
  test(`an unmodified SDK client, ${username} signing in at the Cognito-shaped IdP: the token carries the scopes of cognito:groups ${groups}`, async () => {
    const context = await browser.newContext();
    context.setDefaultTimeout(10_000);
    await problems.watch(context);
    const page = await context.newPage();
    const mcpUrl = `${fx.gw.url}/api/streamable/fininfo`;
    const provider = new CognitoSignInProvider(page, username);
    const client = await connect(provider, mcpUrl);
    assert.equal(provider.landed?.searchParams.get('iss'), fx.gw.url);

    const claims = decodeJwt(provider.tokens()!.access_token);
    assert.equal(claims.iss, fx.gw.url, 'the gateway issued it, not the IdP');
    assert.equal(claims.aud, mcpUrl);
    assert.equal(claims['username'], username);
    assert.match(String(claims.sub), /^cognito:/);
    assert.equal(claims['scope'], scope);

    const listed = (await client.listTools()).tools.map((t) => t.name);
    if (tools === null) assert.ok(listed.length > 1, listed.join());
    else assert.deepEqual(listed, tools);
    const called = await client.callTool({ name: 'get_stock_aggregates', arguments: { ticker: 'AAPL' } });
    assert.notEqual(called.isError, true);
    await client.close();
    await context.close();
  });
}

test('no console error, page error or CSP violation on the gateway pages', () => {
  assert.deepEqual(problems.on(new URL(fx.gw.url).origin), []);
});
