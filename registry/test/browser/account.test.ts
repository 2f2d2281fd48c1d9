/**
 * The pages about the clients acting for a person, in the real chromium: personal access tokens
 * (create, shown once with ready-to-paste configurations, used through nginx, revoked) and the
 * connected OAuth clients (a client naming itself `<script>` is shown as text; revoked). No
 * console error, no CSP violation.
 */
import assert from 'node:assert/strict';
import { initializeWithBearer } from '../integration/oauth-http.ts';
import { after, before, describe, test } from 'node:test';
import { login } from '../integration/login.ts';
import { connectClientOverHttp } from '../integration/oauth-flow.ts';
import { screenshot, startSuite, type Suite } from './browser.ts';

let s: Suite;

before(async () => {
  s = await startSuite();
});
after(async () => {
  await s?.close();
});

function initialize(server: string, token: string): Promise<Response> {
  return initializeWithBearer(`${s.gw.url}/api/streamable/${server}`, token);
}

describe('personal access tokens page', () => {
  test('create from the menu: shown once with the four client configurations, works on its server only; listed as text; revoked', async () => {
    await s.as('user', async ({ page }) => {
      page.on('dialog', (d) => void d.accept());
      await page.click('#nav-tokens');
      await page.waitForSelector('#token-form');
      await page.fill('#t-name', 'work laptop');
      await page.check('input[name=servers][value=currenttime]');
      await page.fill('#t-days', '7');
      await Promise.all([page.waitForSelector('#new-token'), page.click('#create-token')]);
      const token = await page.locator('#new-token').inputValue();
      assert.match(token, /^mgp_/);
      assert.match((await page.locator('#shown-once').textContent()) ?? '', /shown this once/);
      const claude = await page.locator('#text-claude-code').inputValue();
      assert.equal(claude, `claude mcp add --transport http currenttime ${s.gw.url}/api/streamable/currenttime --header "Authorization: Bearer ${token}"`);
      const vscode = JSON.parse(await page.locator('#text-vscode').inputValue());
      assert.deepEqual(vscode.servers.currenttime, {
        type: 'http',
        url: `${s.gw.url}/api/streamable/currenttime`,
        headers: { Authorization: `Bearer ${token}` },
      });
      const cursor = JSON.parse(await page.locator('#text-cursor').inputValue());
      assert.equal(cursor.mcpServers.currenttime.headers.Authorization, `Bearer ${token}`);
      const desktop = JSON.parse(await page.locator('#text-claude-desktop').inputValue());
      assert.deepEqual(desktop.mcpServers.currenttime.args.slice(0, 2), ['mcp-remote', `${s.gw.url}/api/streamable/currenttime`]);
      assert.equal(desktop.mcpServers.currenttime.env.GATEWAY_TOKEN, token);
      await screenshot(page, 'token-created');
      assert.equal((await initialize('currenttime', token)).status, 200);
      assert.equal((await initialize('fininfo', token)).status, 401);

      await page.click('#back-to-tokens');
      await page.waitForSelector('#tokens');
      assert.ok(!(await page.content()).includes(token.slice(-43)), 'the list never shows the token again');
      const row = page.locator('#tokens tr[data-token]');
      assert.equal(await row.count(), 1);
      assert.equal(await row.locator('.token-name').textContent(), 'work laptop');
      await Promise.all([page.waitForSelector('#notice'), row.locator('button').click()]);
      assert.match((await page.locator('#notice').textContent()) ?? '', /revoked/);
      assert.equal(await page.locator('#tokens tr[data-token]').count(), 0);
      assert.equal((await initialize('currenttime', token)).status, 401);

      // A name is data: shown as text on the created page and in the list, never as markup.
      const hostile = '<img src=x onerror=alert(1)> laptop';
      await page.fill('#t-name', hostile);
      await page.check('input[name=servers][value=currenttime]');
      await page.fill('#t-days', '1');
      await Promise.all([page.waitForSelector('#new-token'), page.click('#create-token')]);
      assert.ok(((await page.locator('main').textContent()) ?? '').includes(hostile), 'the created page shows the name as text');
      assert.equal(await page.locator('main img').count(), 0);
      await page.click('#back-to-tokens');
      await page.waitForSelector('#tokens');
      assert.equal(await page.locator('#tokens tr[data-token] .token-name').textContent(), hostile, 'the name is text');
      assert.equal(await page.locator('#tokens img').count(), 0);
      await Promise.all([page.waitForSelector('#notice'), page.locator('#tokens tr[data-token] button').click()]);
      assert.equal(await page.locator('#tokens tr[data-token]').count(), 0);
    });
  });

  test('a lifetime above PAT_MAX_LIFETIME_DAYS is refused on the form; a POST without the CSRF token is refused; nothing created', async () => {
    await s.as('user', async ({ page, context }) => {
      await page.goto(`${s.gw.url}/tokens`);
      await page.fill('#t-name', 'too long');
      await page.check('input[name=servers][value=fininfo]');
      // The browser's own max= check would stop the form first; remove it to reach the server's.
      await page.locator('#t-days').evaluate((el) => el.removeAttribute('max'));
      await page.fill('#t-days', '91');
      await Promise.all([page.waitForSelector('#token-problem'), page.click('#create-token')]);
      assert.match((await page.locator('#token-problem').textContent()) ?? '', /1 to 90/);
      const forged = await context.request.post(`${s.gw.url}/tokens`, {
        form: { _csrf: 'forged', name: 'x', servers: 'currenttime', lifetimeDays: '1' },
        maxRedirects: 0,
      });
      assert.equal(forged.status(), 403);
      await page.goto(`${s.gw.url}/tokens`);
      assert.equal(await page.locator('#no-tokens').count(), 1);
    });
  });
});

describe('connected clients page', () => {
  test('a client that names itself <script> is listed as text with its redirect host and server; an admin sees it with the person; revoking stops its refresh token', async () => {
    const { jar } = await login(s.gw.url, 'user', 'demo');
    const name = '<script>alert("x")</script> Evil CLI';
    const flow = await connectClientOverHttp(s.gw.url, jar, { clientName: name, server: 'currenttime' });
    await s.as('admin', async ({ page }) => {
      await page.goto(`${s.gw.url}/connections`);
      const row = page.locator('#connections tr[data-grant]');
      assert.equal(await row.count(), 1);
      assert.equal(await row.locator('.person').textContent(), 'user');
    });
    await s.as('analyst', async ({ page }) => {
      await page.click('#nav-connections');
      await page.waitForSelector('#no-connections');
    });
    await s.as('user', async ({ page }) => {
      page.on('dialog', (d) => void d.accept());
      await page.click('#nav-connections');
      const row = page.locator('#connections tr[data-grant]');
      await row.waitFor();
      assert.equal(await row.locator('.client-name').textContent(), name);
      assert.equal(await row.locator('.redirect-hosts').textContent(), '127.0.0.1:9');
      assert.match((await row.locator('.servers').textContent()) ?? '', /currenttime/);
      assert.equal(await page.locator('#connections script').count(), 0);
      await Promise.all([page.waitForSelector('#notice'), row.locator('button').click()]);
      assert.match((await page.locator('#notice').textContent()) ?? '', /disconnected/);
      assert.equal(await page.locator('#no-connections').count(), 1);
    });
    const refreshed = await flow.refresh();
    assert.equal(refreshed.status, 400);
    assert.equal(refreshed.body['error'], 'invalid_grant');
    assert.equal((await initialize('currenttime', flow.accessToken)).status, 401, 'its access token too');

    // The picture for the docs, with a client named as real ones are.
    await connectClientOverHttp(s.gw.url, jar, { clientName: 'Claude Code', server: 'fininfo' });
    await s.as('user', async ({ page }) => {
      await page.goto(`${s.gw.url}/connections`);
      await page.locator('#connections tr[data-grant]').waitFor();
      await screenshot(page, 'connections');
    });
  });
});

test("no console errors and no CSP violations on these pages (but the refused form's 400)", () => {
  assert.deepEqual(s.problems.on(s.gw.url, [/status of 400 .*@ .*\/tokens$/]), []);
});
