/**
 * Per-user OAuth to a backend (issue 13, `user_oauth`) in a real browser: a backend MCP server
 * behind its own authorization server (oidc-provider with DCR, rotating refresh tokens and
 * revocation) that checks every token's audience. A person connects from the server page
 * (the gateway discovers the server from the backend's RFC 9728 metadata and registers itself),
 * their MCP requests then carry their own token and no one else's, the token is refreshed
 * before it expires, a refused refresh marks the connection broken, and disconnecting revokes
 * the tokens. No token is ever in the config, the audit, the log or the state folder.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Page } from 'playwright-core';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UrlElicitationRequiredError } from '@modelcontextprotocol/sdk/types.js';
import { startProtectedBackend, type ProtectedBackend } from '../fixtures/protected-backend.ts';
import { assertNoSecretAtRest } from '../integration/no-secret-at-rest.ts';
import { cookieHeader, screenshot, signIn, startSuite, text, type Suite } from './browser.ts';

const SERVER = 'protected';
const USERS = [
  { username: 'carol', password: 'pw-carol', groups: [`mcp-server-${SERVER}`] },
  { username: 'dave', password: 'pw-dave', groups: [`mcp-server-${SERVER}`] },
];
// Access tokens live 8 s: margin 1 s, so the refresher (every second) renews each at about 6.5 s.
const TOKEN_TTL = 8;

let backend: ProtectedBackend;
let s: Suite;
const logLines: string[] = [];

before(async () => {
  backend = await startProtectedBackend({
    accessTokenTtlSeconds: TOKEN_TTL,
    users: [
      { username: 'alice', password: 'alice-pw' },
      { username: 'bob', password: 'bob-pw' },
    ],
  });
  const mcp = new URL(backend.mcpUrl);
  s = await startSuite({
    definitions: () => [
      {
        name: SERVER,
        description: 'A backend behind its own OAuth server',
        url: mcp.origin,
        transports: { 'streamable-http': mcp.pathname },
        enabled: true,
        // Everything discovered: the resource metadata, the authorization server, DCR.
        backendAuth: { type: 'user_oauth', provider: 'Protected Cloud' },
      },
    ],
    gateway: {
      users: USERS,
      env: { BACKEND_TOKEN_REFRESH_SECONDS: '1', LOGGING_LEVEL: 'debug' },
      logDestination: { write: (line: string) => void logLines.push(line) },
    },
  });
});

after(async () => {
  await s?.close();
  await backend?.close();
});

async function signedIn(username: string): Promise<{ page: Page; cookie: string; close: () => Promise<void> }> {
  const context = await s.context();
  const page = await context.newPage();
  page.on('dialog', (dialog) => void dialog.accept());
  const user = USERS.find((u) => u.username === username)!;
  await signIn(page, s.gw.url, username, user.password);
  return { page, cookie: cookieHeader(await context.cookies(s.gw.url)), close: () => context.close() };
}

/** One MCP call to the server as the cookie's person, with the unmodified SDK client. */
async function whoami(cookie: string, capabilities: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
  const client = new Client({ name: 'connect-test', version: '1.0.0' }, { capabilities });
  await client.connect(new StreamableHTTPClientTransport(new URL(`${s.gw.url}/api/streamable/${SERVER}`), { requestInit: { headers: { cookie } } }));
  try {
    return JSON.parse(text(await client.callTool({ name: 'whoami', arguments: {} }))) as Record<string, unknown>;
  } finally {
    await client.close();
  }
}

/** The error an MCP call gets, as the person's client shows it. */
async function refusal(cookie: string): Promise<string> {
  try {
    await whoami(cookie);
  } catch (err) {
    return String((err as Error).message);
  }
  assert.fail('the MCP call was not refused');
}

/**
 * Connects the page's person: the card's button, the backend's own sign-in form (unless the
 * browser is still signed in there, as on a reconnect), back to the card.
 */
async function connect(page: Page, username: string, password: string, signInAtProvider = true): Promise<void> {
  await page.goto(`${s.gw.url}/servers/${SERVER}/connect`);
  await page.waitForURL((u) => u.pathname === `/servers/${SERVER}`);
  const backOnCard = (u: URL) => u.origin === new URL(s.gw.url).origin && u.pathname === `/servers/${SERVER}`;
  if (!signInAtProvider) {
    await Promise.all([page.waitForURL(backOnCard), page.locator('#connect-account').click()]);
    return;
  }
  await page.locator('#connect-account').click();
  await page.waitForURL((u) => u.origin === backend.issuer);
  await screenshot(page, 'backend-connect-provider-sign-in');
  await page.locator('input[name=username]').fill(username);
  await page.locator('input[name=password]').fill(password);
  await Promise.all([page.waitForURL(backOnCard), page.getByRole('button', { name: 'Sign in' }).click()]);
}

const cardState = (page: Page) => page.locator('#my-connection').getAttribute('data-state');

describe('per-user OAuth: connect, use, refresh, break, disconnect', () => {
  let carol: Awaited<ReturnType<typeof signedIn>>;
  let firstToken = '';

  test('before connecting, an MCP call is refused with the page to connect at, and nothing reaches the backend', async () => {
    carol = await signedIn('carol');
    const before = backend.received.length;
    const message = await refusal(carol.cookie);
    assert.match(message, new RegExp(`${s.gw.url}/servers/${SERVER}/connect`));
    assert.match(message, /Protected Cloud/);
    assert.equal(backend.received.length, before, 'nothing was forwarded');
    // A 2025-11-25 client that supports URL-mode elicitation is sent to the connect page that way.
    const elicited = await whoami(carol.cookie, { elicitation: { url: {} } }).catch((err: unknown) => err);
    assert.ok(elicited instanceof UrlElicitationRequiredError, String(elicited));
    assert.equal(elicited.elicitations[0]?.url, `${s.gw.url}/servers/${SERVER}/connect`);
    assert.match(elicited.elicitations[0]?.message ?? '', /Protected Cloud/);
    await carol.page.goto(`${s.gw.url}/servers/${SERVER}`);
    assert.equal(await cardState(carol.page), 'none');
    assert.match((await carol.page.locator('#connect-account').textContent()) ?? '', /Connect to Protected Cloud/);
    await screenshot(carol.page, 'backend-connect-not-connected');
  });

  test("connecting signs in at the backend's own server; the card shows the account, expiry and scope", async () => {
    await connect(carol.page, 'alice', 'alice-pw');
    assert.equal(await cardState(carol.page), 'connected');
    assert.equal(await carol.page.locator('#my-connection-account').textContent(), 'alice');
    assert.match((await carol.page.locator('.notice, #notice').first().textContent()) ?? '', /Connected to Protected Cloud as alice/);
    assert.match((await carol.page.locator('#my-connection-facts').textContent()) ?? '', /Access token expires/);
    await screenshot(carol.page, 'backend-connect-connected');
    const status = (await (await fetch(`${s.gw.url}/api/registry/servers/${SERVER}/connection`, { headers: { cookie: carol.cookie } })).json()) as Record<
      string,
      string
    >;
    assert.equal(status['state'], 'connected');
    assert.equal(status['account'], 'alice');
    assert.ok(!JSON.stringify(status).match(/eyJ/), 'no token in the API');
    // The person's own overview lists it too.
    await carol.page.goto(`${s.gw.url}/connections`);
    const row = carol.page.locator(`#backend-accounts tr[data-server="${SERVER}"]`);
    assert.equal(await row.getAttribute('data-state'), 'connected');
    assert.match((await row.textContent()) ?? '', /Protected Cloud[\s\S]*alice/);
  });

  test("the person's MCP calls carry their own token for this backend (audience checked), never the gateway's cookie", async () => {
    const claims = await whoami(carol.cookie);
    assert.equal(claims['sub'], 'alice');
    assert.equal(claims['aud'], backend.mcpUrl);
    const last = backend.received.at(-1)!;
    assert.match(last.authorization ?? '', /^Bearer eyJ/);
    firstToken = last.authorization!.slice('Bearer '.length);
    assert.ok(!backend.received.some((r) => (r.authorization ?? '').includes('mcp_gateway_session')));
  });

  test('another person is not connected and never gets the first one’s token', async () => {
    const dave = await signedIn('dave');
    const before = backend.received.length;
    assert.match(await refusal(dave.cookie), /connect at/);
    assert.equal(backend.received.length, before);
    await connect(dave.page, 'bob', 'bob-pw');
    assert.equal((await whoami(dave.cookie))['sub'], 'bob');
    assert.equal((await whoami(carol.cookie))['sub'], 'alice');
    await dave.close();
  });

  test('the token is refreshed before it expires, and calls keep working with the new one', async () => {
    const status = async () =>
      (await (await fetch(`${s.gw.url}/api/registry/servers/${SERVER}/connection`, { headers: { cookie: carol.cookie } })).json()) as Record<string, string>;
    const connectedAt = (await status())['connectedAt'];
    let refreshed: Record<string, string> = {};
    for (const deadline = Date.now() + (TOKEN_TTL + 5) * 1000; Date.now() < deadline;) {
      refreshed = await status();
      if (refreshed['refreshedAt']) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    assert.ok(refreshed['refreshedAt'], 'refreshed in time');
    assert.equal(refreshed['connectedAt'], connectedAt);
    assert.ok(Date.parse(refreshed['refreshedAt']!) < Date.parse(refreshed['expiresAt']!));
    await new Promise((r) => setTimeout(r, 100));
    const claims = await whoami(carol.cookie);
    assert.equal(claims['sub'], 'alice');
    assert.notEqual(backend.received.at(-1)!.authorization, `Bearer ${firstToken}`, 'a new access token');
  });

  test('a refresh the authorization server refuses marks the connection broken; the person is told to connect again', async () => {
    backend.failTokenEndpoint('invalid_grant');
    try {
      let state = '';
      for (const deadline = Date.now() + (TOKEN_TTL + 5) * 1000; Date.now() < deadline && state !== 'broken';) {
        await new Promise((r) => setTimeout(r, 250));
        state = (
          (await (await fetch(`${s.gw.url}/api/registry/servers/${SERVER}/connection`, { headers: { cookie: carol.cookie } })).json()) as { state: string }
        ).state;
      }
      assert.equal(state, 'broken');
    } finally {
      backend.failTokenEndpoint(false);
    }
    assert.match(await refusal(carol.cookie), /broken: connect at/);
    await carol.page.goto(`${s.gw.url}/servers/${SERVER}`);
    assert.equal(await cardState(carol.page), 'broken');
    await screenshot(carol.page, 'backend-connect-broken');
    // Still signed in at the provider: straight back with a new grant.
    await connect(carol.page, 'alice', 'alice-pw', false);
    assert.equal(await cardState(carol.page), 'connected');
    assert.equal((await whoami(carol.cookie))['sub'], 'alice');
  });

  test('disconnecting revokes the tokens at the provider and refuses the next call', async () => {
    const revocations = backend.revocationRequests;
    await carol.page.goto(`${s.gw.url}/servers/${SERVER}`);
    await Promise.all([carol.page.waitForURL((u) => u.pathname === `/servers/${SERVER}`), carol.page.locator('#disconnect-account').click()]);
    await carol.page.waitForLoadState();
    assert.equal(await cardState(carol.page), 'none');
    assert.match((await carol.page.locator('.notice, #notice').first().textContent()) ?? '', /revoked/);
    assert.ok(backend.revocationRequests >= revocations + 1, 'RFC 7009 revocation was called');
    assert.match(await refusal(carol.cookie), /have not connected/);
  });

  test('no access or refresh token in nginx.conf, the audit, the log or the state folder', async () => {
    const tokens = [
      ...new Set(backend.received.map((r) => r.authorization?.replace(/^Bearer /, '')).filter((t): t is string => t !== undefined && t.length > 20)),
      ...backend.refreshTokens,
    ];
    assert.ok(tokens.length >= 4, `${tokens.length} tokens to look for`);
    await assertNoSecretAtRest(s.gw, tokens, logLines.join('\n'), 'a backend token');
    await carol.close();
  });
});

describe('an operator chooses per-user OAuth on the form', () => {
  test('admin registers a server with "Each person connects their own account" and no settings (all discovered); the page offers the connect', async () => {
    await s.as('admin', async ({ page }) => {
      await page.goto(`${s.gw.url}/register`);
      const mcp = new URL(backend.mcpUrl);
      await page.locator('#f-name').fill('via-form');
      await page.locator('#f-url').fill(mcp.origin);
      await page.locator('#f-authType').selectOption('user_oauth');
      await page.locator('#f-authSettings').fill('{ "provider": "Protected Cloud" }');
      await Promise.all([page.waitForURL(`${s.gw.url}/servers/via-form`), page.locator('#save').click()]);
      assert.equal(await page.locator('#credentials').getAttribute('data-type'), 'user_oauth');
      assert.match((await page.locator('#people-count').textContent()) ?? '', /0 people have connected/);
      assert.equal(await page.locator('#my-connection').getAttribute('data-state'), 'none');
      assert.match((await page.locator('#connect-account').textContent()) ?? '', /Connect to Protected Cloud/);
    });
  });
});
