/**
 * The pages' defences in a real browser: markup from a definition or a backend is shown as
 * text, the Content-Security-Policy blocks inline script, a cross-site form and a forged token
 * cannot toggle a server, and sign-in never returns to another origin.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { serveMcp, type RunningMcpServer } from '../../../servers/shared/serve-mcp.ts';
import { fillSignIn, PASSWORDS, ProblemCollector, signIn, startSuite, type Suite } from './browser.ts';

const SCRIPT_DESCRIPTION = '<script>window.__xss=1</script><img src=x onerror="window.__xss=2">';
const TOOL_DESCRIPTION = '<img src=x onerror=alert(1)>';

let s: Suite;
let markup: RunningMcpServer;
let attacker: Server;
let attackerPort: number;

/** A backend whose one tool has markup for a description. */
function buildMarkupServer(): McpServer {
  const server = new McpServer({ name: 'markup', version: '0.0.1' });
  server.registerTool('shout', { description: TOOL_DESCRIPTION }, () => ({ content: [{ type: 'text', text: 'hi' }] }));
  return server;
}

before(async () => {
  markup = await serveMcp(buildMarkupServer, { port: 0 });
  s = await startSuite({ definitions: () => [{ name: 'markup', url: markup.url, transports: { 'streamable-http': '/mcp' }, enabled: true }] });
  await s.gw.gateway.monitor.settled();
  // Another origin on loopback: a page whose own script submits a form to the gateway.
  attacker = createServer((req, res) => {
    if (req.url === '/attack.js') {
      res.writeHead(200, { 'content-type': 'text/javascript' }).end('document.getElementById("attack").submit();');
      return;
    }
    res.writeHead(200, { 'content-type': 'text/html' }).end(`<!doctype html><title>Win a prize</title>
<form id="attack" method="post" action="${s.gw.url}/servers/currenttime/toggle">
  <input type="hidden" name="enabled" value="false"><input type="hidden" name="back" value="/">
</form>
<script src="/attack.js"></script>`);
  });
  await new Promise<void>((resolve) => attacker.listen(0, '127.0.0.1', resolve));
  attackerPort = (attacker.address() as AddressInfo).port;
});
after(async () => {
  await s?.close();
  await markup?.close();
  await new Promise((resolve) => attacker?.close(resolve));
});

const enabled = (name: string) => s.gw.gateway.catalog.get(name)?.enabled;
const xss = (page: import('playwright-core').Page) => page.evaluate(() => (globalThis as Record<string, unknown>)['__xss']);

describe('markup is shown as text', () => {
  test('a description with <script> and an onerror image, registered through the form, is text on / and on the detail page', async () => {
    const { context, page } = await s.signedIn('admin');
    const dialogs: string[] = [];
    page.on('dialog', (d) => {
      dialogs.push(d.message());
      void d.dismiss();
    });
    try {
      await page.goto(`${s.gw.url}/register`);
      await page.locator('#f-name').fill('xss');
      await page.locator('#f-url').fill(s.gw.backend.url);
      await page.locator('#f-description').fill(SCRIPT_DESCRIPTION);
      await page.locator('#f-tags').fill('safe, demo');
      await Promise.all([page.waitForURL(`${s.gw.url}/servers/xss`), page.locator('#save').click()]);
      assert.equal(s.gw.gateway.catalog.get('xss')?.description, SCRIPT_DESCRIPTION, 'stored as typed');

      assert.equal(await page.locator('#server p.description').textContent(), SCRIPT_DESCRIPTION);
      assert.equal(await page.locator('#server p.description > *').count(), 0, 'no element inside the description');
      assert.deepEqual(await page.locator('#server .tag').allTextContents(), ['safe', 'demo']);
      assert.equal(await xss(page), undefined);

      await page.goto(`${s.gw.url}/`);
      const description = page.locator('#servers tr[data-server="xss"] .description');
      assert.match((await description.textContent()) ?? '', /<script>/);
      assert.equal(await description.textContent(), SCRIPT_DESCRIPTION);
      assert.equal(await description.locator('*').count(), 0);
      assert.equal(await page.locator('script:not([src])').count(), 0, 'no inline script element on the page');
      await page.waitForTimeout(200);
      assert.equal(await xss(page), undefined);
      assert.deepEqual(dialogs, []);
    } finally {
      await context.close();
    }
  });

  test("a backend tool's description with markup is text on the detail page and in tool search", async () => {
    const { context, page } = await s.signedIn('admin');
    const dialogs: string[] = [];
    page.on('dialog', (d) => {
      dialogs.push(d.message());
      void d.dismiss();
    });
    try {
      await page.goto(`${s.gw.url}/servers/markup`);
      const tool = page.locator('#tools .tool[data-tool="shout"] .tool-description');
      assert.equal(await tool.textContent(), TOOL_DESCRIPTION);
      assert.equal(await tool.locator('img').count(), 0);
      await page.goto(`${s.gw.url}/tools?q=shout`);
      const found = page.locator('#tool-results .tool[data-tool="shout"] .tool-description');
      assert.equal(await found.textContent(), TOOL_DESCRIPTION);
      assert.equal(await page.locator('#tool-results img').count(), 0);
      await page.waitForTimeout(200);
      assert.deepEqual(dialogs, []);
    } finally {
      await context.close();
    }
  });
});

describe('Content-Security-Policy', () => {
  test("the front page's policy allows scripts from 'self' only", async () => {
    const context = await s.context();
    try {
      const page = await context.newPage();
      const response = await page.goto(`${s.gw.url}/`);
      const csp = response?.headers()['content-security-policy'] ?? '';
      const directives = new Map(
        csp
          .split(';')
          .map((d) => d.trim().split(/\s+/))
          .map(([k = '', ...v]) => [k, v]),
      );
      assert.deepEqual(directives.get('script-src'), ["'self'"]);
      assert.deepEqual(directives.get('style-src'), ["'self'"]);
      assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
      assert.deepEqual(directives.get('frame-ancestors'), ["'none'"]);
    } finally {
      await context.close();
    }
  });

  test('an injected inline script does not run, and the violation is reported', async () => {
    // Its own collector: this violation is the expected one, not a finding of the suite.
    const own = new ProblemCollector();
    const context = await s.browser.newContext();
    await own.watch(context);
    try {
      const page = await context.newPage();
      await signIn(page, s.gw.url, 'user', PASSWORDS['user'] ?? '');
      await page.addScriptTag({ content: 'window.__inline=1' }).catch(() => undefined);
      await page.waitForTimeout(100);
      assert.equal(await page.evaluate(() => (globalThis as Record<string, unknown>)['__inline']), undefined);
      const violations = own.cspViolations(new URL(s.gw.url).origin);
      assert.ok(
        violations.some((v) => /script-src/.test(v.text)),
        `the collector saw the blocked script: ${JSON.stringify(own.problems)}`,
      );
      // app.js still runs: the policy blocks inline script, not ours.
      await page.locator('#url-currenttime-streamable-http').waitFor();
      await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: s.gw.url });
      await page.locator('button[data-copy-target="url-currenttime-streamable-http"]').click();
      await page.locator('button[data-copy-target="url-currenttime-streamable-http"][data-copied=true]').waitFor();
    } finally {
      await context.close();
    }
  });
});

describe('CSRF', () => {
  test('a same-site page on another port auto-submits the toggle form: the session cookie goes along, the token check refuses it', async () => {
    await s.as('operator', async ({ context, page }) => {
      assert.equal(enabled('currenttime'), true);
      const [response] = await Promise.all([
        page.waitForResponse((r) => r.url() === `${s.gw.url}/servers/currenttime/toggle` && r.request().method() === 'POST'),
        page.goto(`http://127.0.0.1:${attackerPort}/`),
      ]);
      assert.equal(response.status(), 403);
      await page.waitForURL(`${s.gw.url}/servers/currenttime/toggle`);
      assert.match((await page.locator('#error-message').textContent()) ?? '', /This form has expired/);
      assert.equal(enabled('currenttime'), true, 'still enabled in the catalog');
      await page.goto(`${s.gw.url}/`);
      assert.equal(await page.locator('#servers tr[data-server="currenttime"] td[data-state]').getAttribute('data-state'), 'enabled');
    });
  });

  test('a cross-site page (localhost) auto-submits the toggle form: SameSite keeps the cookie home, nothing changes', async () => {
    await s.as('operator', async ({ context, page }) => {
      const [response] = await Promise.all([
        page.waitForResponse((r) => r.url() === `${s.gw.url}/servers/currenttime/toggle` && r.request().method() === 'POST'),
        page.goto(`http://localhost:${attackerPort}/`),
      ]);
      assert.equal(response.status(), 401, 'arrives signed out');
      assert.equal(enabled('currenttime'), true);
    });
  });

  test("a fetch from the gateway's own page with a wrong _csrf is refused with 403", async () => {
    await s.as('operator', async ({ context, page }) => {
      const status = await page.evaluate(async () => {
        const res = await fetch('/servers/currenttime/toggle', { method: 'POST', body: new URLSearchParams({ _csrf: 'not-the-token', enabled: 'false' }) });
        return res.status;
      });
      assert.equal(status, 403);
      assert.equal(enabled('currenttime'), true);
      await page.reload();
      assert.equal(await page.locator('#servers tr[data-server="currenttime"] td[data-state]').getAttribute('data-state'), 'enabled');
    });
  });
});

describe('returning after sign-in', () => {
  test('next=https://evil.example/ ends on the gateway, next=/tools on /tools, a signed-out /audit comes back to /audit', async () => {
    const context = await s.context();
    // Nothing leaves loopback: an open redirect would hang here instead of reaching the network.
    await context.route(/^https?:\/\/(?!127\.0\.0\.1[:/]|localhost[:/])/, (route) => route.abort());
    try {
      const page = await context.newPage();
      const first = await signIn(page, s.gw.url, 'operator', 'demo', '/login?next=https://evil.example/');
      assert.equal(first.href, `${s.gw.url}/`);
      await context.clearCookies();

      const second = await signIn(page, s.gw.url, 'operator', 'demo', '/login?next=//evil.example/x');
      assert.equal(second.href, `${s.gw.url}/`);
      await context.clearCookies();

      const third = await signIn(page, s.gw.url, 'operator', 'demo', '/login?next=/tools');
      assert.equal(third.href, `${s.gw.url}/tools`);
      await context.clearCookies();

      await page.goto(`${s.gw.url}/audit`);
      await fillSignIn(page, s.gw.url, 'admin', PASSWORDS['admin'] ?? '');
      assert.equal(page.url(), `${s.gw.url}/audit`);
      assert.ok(await page.locator('#audit, #no-entries').first().isVisible());
    } finally {
      await context.close();
    }
  });
});

test('no CSP violation, console error or page error on the gateway but those the tests caused', () => {
  const origin = new URL(s.gw.url).origin;
  assert.deepEqual(s.problems.cspViolations(origin), []);
  // Expected, one each: the refused same-site form (403), the signed-out cross-site one (401)
  // and the forged fetch from the servers page (403).
  const failed = (status: string) => `^Failed to load resource: the server responded with a status of ${status.replace(/[()]/g, '\\$&')}`;
  const toggle = 'http://127\\.0\\.0\\.1:\\d+/servers/currenttime/toggle';
  const expected = [
    new RegExp(`${failed('403 (Forbidden)')} @ ${toggle}$`),
    new RegExp(`${failed('401 (Unauthorized)')} @ ${toggle}$`),
    new RegExp(`${failed('403 (Forbidden)')} \\(${toggle}\\) @ http://127\\.0\\.0\\.1:\\d+/$`),
  ];
  assert.equal(s.problems.problems.filter((p) => expected.some((re) => re.test(`${p.text} @ ${p.url}`))).length, 3, JSON.stringify(s.problems.problems));
  assert.deepEqual(s.problems.on(origin, expected), []);
});
