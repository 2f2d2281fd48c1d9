/**
 * The read-only pages in a real browser: what each demo user sees on the servers page and in
 * the menu, a server's tools and its health check, the copy buttons, tool search, "who can do
 * what" and the audit log.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { type Page } from 'playwright-core';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { buildServer as buildCurrenttime } from '../../../servers/currenttime/server.ts';
import { serveMcp } from '../../../servers/shared/serve-mcp.ts';
import { rawInitialize, screenshot, signIn, startSuite, text, withMcp, type Suite } from './browser.ts';

let s: Suite;

before(async () => {
  s = await startSuite();
  // Every backend has answered one health check, so tool counts come from tools/list.
  await s.gw.gateway.monitor.settled();
});
after(async () => {
  await s?.close();
});

const listed = (page: Page) => page.locator('#servers tr[data-server]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-server')));
const row = (page: Page, server: string) => page.locator(`#servers tr[data-server="${server}"]`);

describe('the servers page, per demo user', () => {
  const expectations: { user: string; servers: string[]; register: boolean; access: boolean; toolCounts?: Record<string, number> }[] = [
    { user: 'admin', servers: ['currenttime', 'fininfo', 'offline'], register: true, access: true, toolCounts: { currenttime: 1, fininfo: 4 } },
    { user: 'operator', servers: ['currenttime', 'fininfo', 'offline'], register: false, access: true },
    { user: 'user', servers: ['currenttime', 'fininfo'], register: false, access: false, toolCounts: { currenttime: 1, fininfo: 4 } },
    { user: 'tool-user', servers: ['currenttime'], register: false, access: false, toolCounts: { currenttime: 1 } },
    { user: 'analyst', servers: ['fininfo'], register: false, access: false, toolCounts: { fininfo: 1 } },
    { user: 'researcher', servers: ['fininfo'], register: false, access: false, toolCounts: { fininfo: 0 } },
    { user: 'no-groups', servers: [], register: false, access: false },
  ];
  for (const e of expectations) {
    test(`${e.user}: lists ${e.servers.join(', ') || 'no server'}; menu ${e.register ? 'with' : 'without'} Register, ${e.access ? 'with' : 'without'} Who can do what`, async () => {
      await s.as(e.user, async ({ context, page }) => {
        assert.equal(new URL(page.url()).pathname, '/');
        if (e.servers.length === 0) {
          assert.ok(await page.locator('#no-servers').isVisible(), '#no-servers is shown');
          assert.equal(await page.locator('#servers').count(), 0);
        } else {
          assert.deepEqual((await listed(page)).sort(), e.servers);
          assert.equal(await page.locator('#no-servers').count(), 0);
        }
        for (const [server, count] of Object.entries(e.toolCounts ?? {})) {
          assert.equal(await row(page, server).locator('td[data-tool-count]').getAttribute('data-tool-count'), String(count), `${server} tool count`);
        }
        assert.equal(await page.locator('#nav-register').count(), e.register ? 1 : 0, '#nav-register');
        assert.equal(await page.locator('#nav-access').count(), e.access ? 1 : 0, '#nav-access');
        if (e.user === 'admin') {
          assert.equal(await row(page, 'currenttime').locator('[data-health]').getAttribute('data-health'), 'healthy');
          assert.equal(await row(page, 'offline').locator('td[data-state]').getAttribute('data-state'), 'disabled');
          await screenshot(page, 'servers-admin');
        }
        if (e.user === 'operator') {
          // mcp-server-currenttime-toggle: the Disable button on currenttime and nowhere else.
          assert.equal(await row(page, 'currenttime').locator('button[data-action=toggle]').textContent(), 'Disable');
          assert.equal(await page.locator('#servers button[data-action=toggle]').count(), 1);
          assert.equal(await page.locator('#servers [data-action=edit]').count(), 0);
        }
        if (e.user === 'tool-user') await screenshot(page, 'servers-tool-user');
      });
    });
  }
});

describe('a server and its tools', () => {
  test('the detail page lists the backend tools with descriptions and an input schema; Check now reports the latency', async () => {
    await s.as('admin', async ({ context, page }) => {
      await page.goto(`${s.gw.url}/servers/currenttime`);
      const tool = page.locator('#tools .tool[data-tool="current_time_by_timezone"]');
      assert.match((await tool.locator('.tool-description').textContent()) ?? '', /time zone/i);
      assert.match((await page.locator('#tools').textContent()) ?? '', /From the server's tools\/list/);
      const details = tool.locator('details');
      assert.equal(await details.evaluate((d) => (d as unknown as { open: boolean }).open), false);
      await details.locator('summary').click();
      assert.equal(await details.evaluate((d) => (d as unknown as { open: boolean }).open), true);
      assert.ok(await tool.locator('pre.schema').isVisible());
      const schema = JSON.parse((await tool.locator('pre.schema').textContent()) ?? '') as { properties?: Record<string, unknown>; required?: string[] };
      assert.ok(schema.properties?.['tz_name'], 'the schema names tz_name');
      assert.equal(await page.locator('#server [data-health]').first().getAttribute('data-health'), 'healthy');
      await screenshot(page, 'server-detail');

      await page.locator('#refresh').click();
      await page.waitForURL(`${s.gw.url}/servers/currenttime`);
      assert.match((await page.locator('#notice').textContent()) ?? '', /^currenttime answered in \d+ ms with 1 tools?\.$/);
    });
  });

  test('a Copy button puts the gateway URL on the clipboard', async () => {
    await s.as('user', async ({ context, page }) => {
      await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: s.gw.url });
      const expected = `${s.gw.url}/api/streamable/currenttime`;
      const input = page.locator('#url-currenttime-streamable-http');
      assert.equal(await input.inputValue(), expected);
      const button = row(page, 'currenttime').locator('button[data-copy-target="url-currenttime-streamable-http"]');
      await button.click();
      await page.waitForFunction(
        () =>
          (globalThis as unknown as { document: { querySelector(s: string): { getAttribute(n: string): string | null } | null } }).document
            .querySelector('button[data-copy-target="url-currenttime-streamable-http"]')
            ?.getAttribute('data-copied') === 'true',
      );
      assert.equal(await button.textContent(), 'Copied');
      assert.equal(await page.evaluate('navigator.clipboard.readText()'), expected);
    });
  });
});

describe('tool search', () => {
  test('q=time finds current_time_by_timezone on currenttime', async () => {
    await s.as('admin', async ({ context, page }) => {
      await page.goto(`${s.gw.url}/tools`);
      await page.locator('#q').fill('time');
      await Promise.all([page.waitForURL(/\/tools\?q=time$/), page.locator('#search').click()]);
      const found = await page
        .locator('#tool-results .tool')
        .evaluateAll((els) => els.map((e) => `${e.getAttribute('data-server')}/${e.getAttribute('data-tool')}`));
      assert.ok(found.includes('currenttime/current_time_by_timezone'), found.join());
      assert.ok(!found.includes('fininfo/print_stuff'), 'print_stuff does not mention time');
      await screenshot(page, 'tools-search');
    });
  });

  test('analyst: an empty search shows only get_stock_aggregates', async () => {
    await s.as('analyst', async ({ context, page }) => {
      await page.goto(`${s.gw.url}/tools?q=`);
      const found = await page
        .locator('#tool-results .tool')
        .evaluateAll((els) => els.map((e) => `${e.getAttribute('data-server')}/${e.getAttribute('data-tool')}`));
      assert.deepEqual(found, ['fininfo/get_stock_aggregates']);
    });
  });
});

describe('who can do what', () => {
  test('operator: the tool group of get_stock_aggregates may not call print_stuff (naming the scope) and may call get_stock_aggregates', async () => {
    await s.as('operator', async ({ context, page }) => {
      await page.locator('#nav-access').click();
      await page.waitForURL(`${s.gw.url}/access`);
      await page.locator('input[name=subject][value=groups]').check();
      await page.locator('#groups').fill('mcp-server-fininfo-tool-get_stock_aggregates');
      await page.locator('#server').selectOption('fininfo');
      await page.locator('#tool').fill('print_stuff');
      await Promise.all([page.waitForURL(/\/access\?/), page.locator('#decide').click()]);
      assert.equal(await page.locator('#decision').getAttribute('data-decision'), 'deny');
      assert.equal(await page.locator('#missing-scope').textContent(), 'mcp:server:fininfo:tool:print_stuff:execute');
      // The form keeps what was asked.
      assert.equal(await page.locator('#groups').inputValue(), 'mcp-server-fininfo-tool-get_stock_aggregates');
      assert.equal(await page.locator('#server').inputValue(), 'fininfo');

      await page.locator('#tool').fill('get_stock_aggregates');
      await Promise.all([page.waitForURL(/tool=get_stock_aggregates/), page.locator('#decide').click()]);
      assert.equal(await page.locator('#decision').getAttribute('data-decision'), 'allow');
      assert.equal(await page.locator('#missing-scope').count(), 0);
      await screenshot(page, 'who-can');
    });
  });

  test('the subject radio shows the groups input or the user select, not both', async () => {
    await s.as('admin', async ({ context, page }) => {
      await page.goto(`${s.gw.url}/access`);
      assert.ok(await page.locator('#groups').isVisible());
      assert.ok(!(await page.locator('#user').isVisible()));
      await page.locator('input[name=subject][value=user]').check();
      assert.ok(await page.locator('#user').isVisible());
      assert.ok(!(await page.locator('#groups').isVisible()));
    });
  });
});

describe('the audit log', () => {
  test('after MCP calls, admin filters to deny only, then to one user', async () => {
    const tool = await s.signedIn('tool-user');
    const analyst = await s.signedIn('analyst');
    const nobody = await s.signedIn('no-groups');
    const admin = await s.signedIn('admin');
    try {
      // Allowed and refused calls of three users.
      await withMcp(s.gw.url, 'currenttime', tool.cookie, async (c) => {
        assert.match(text(await c.callTool({ name: 'current_time_by_timezone', arguments: { tz_name: 'Europe/Paris' } })), /Europe\/Paris/);
      });
      await withMcp(s.gw.url, 'fininfo', analyst.cookie, async (c) => {
        await assert.rejects(c.callTool({ name: 'print_stuff', arguments: { stuff: 'x' } }), /print_stuff:execute/);
      });
      assert.equal((await rawInitialize(s.gw.url, 'currenttime', nobody.cookie)).status, 403);

      const page = admin.page;
      await page.locator('#nav-audit').click();
      await page.waitForURL(`${s.gw.url}/audit`);
      const all = await page.locator('#audit tbody tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-decision')));
      assert.ok(all.includes('allow') && all.includes('deny'), `the unfiltered log has both: ${all.join()}`);

      await page.locator('#a-decision').selectOption('deny');
      await Promise.all([page.waitForURL(/decision=deny/), page.locator('#filter').click()]);
      const denied = await page
        .locator('#audit tbody tr')
        .evaluateAll((rows) => rows.map((r) => `${r.getAttribute('data-decision')}:${r.getAttribute('data-user')}`));
      assert.ok(denied.length >= 2, denied.join());
      assert.ok(
        denied.every((d) => d.startsWith('deny:')),
        denied.join(),
      );
      assert.ok(denied.includes('deny:analyst') && denied.includes('deny:no-groups'), denied.join());
      assert.equal(await page.locator('#a-decision').inputValue(), 'deny', 'the filter stays selected');
      await screenshot(page, 'audit');

      await page.locator('#a-decision').selectOption('');
      await page.locator('#a-user').fill('tool-user');
      await Promise.all([page.waitForURL(/user=tool-user/), page.locator('#filter').click()]);
      const mine = await page
        .locator('#audit tbody tr')
        .evaluateAll((rows) => rows.map((r) => `${r.getAttribute('data-user')}:${r.getAttribute('data-decision')}`));
      assert.ok(mine.length >= 1, 'tool-user has entries');
      assert.ok(
        mine.every((m) => m.startsWith('tool-user:')),
        mine.join(),
      );
      assert.ok(mine.includes('tool-user:allow'), mine.join());
    } finally {
      await Promise.all([tool, analyst, nobody, admin].map((x) => x.context.close()));
    }
  });
});

describe('signing in', () => {
  test('the dev IdP sign-in page', async () => {
    const context = await s.context();
    try {
      const page = await context.newPage();
      await page.goto(`${s.gw.url}/`);
      assert.ok(await page.locator('#sign-in').isVisible());
      await page.locator('#sign-in').click();
      await page.waitForURL((u) => u.pathname.startsWith('/idp/'));
      assert.ok(await page.locator('#username').isVisible());
      await screenshot(page, 'login');
      await page.locator('#username').fill('admin');
      await page.locator('#password').fill('wrong password');
      await page.locator('#submit').click();
      assert.match((await page.locator('#login-error').textContent()) ?? '', /\S/);
      await signIn(page, s.gw.url, 'operator', 'demo');
      assert.equal(await page.locator('#whoami').textContent(), 'operator');
      await Promise.all([page.waitForURL(`${s.gw.url}/`), page.locator('#sign-out').click()]);
      assert.ok(await page.locator('#sign-in').isVisible(), 'signed out');
    } finally {
      await context.close();
    }
  });
});

describe('live health', () => {
  test('the servers page redraws a health cell from the API when the backend goes down, without reloading', async () => {
    const backend = await serveMcp(buildCurrenttime, { port: 0 });
    let closed = false;
    s.gw.writeDefinition('flaky', { name: 'flaky', url: backend.url, transports: { 'streamable-http': '/mcp' }, enabled: true });
    const { context, page } = await s.signedIn('admin');
    try {
      await s.gw.gateway.monitor.refresh('flaky').catch(() => undefined);
      await page.waitForFunction(async () => (await fetch('/api/registry/servers/flaky')).ok);
      await s.gw.gateway.monitor.refresh('flaky');
      await page.goto(`${s.gw.url}/`);
      const cell = row(page, 'flaky').locator('td[data-health-cell]');
      assert.equal(await cell.locator('[data-health]').getAttribute('data-health'), 'healthy');
      await page.evaluate(() => ((globalThis as unknown as { __sameDocument: boolean }).__sameDocument = true));

      await backend.close();
      closed = true;
      const after = await s.gw.gateway.monitor.refresh('flaky');
      assert.equal(after.health.status, 'unhealthy');
      await page.evaluate(() => (globalThis as unknown as EventTarget).dispatchEvent(new Event('focus')));
      await cell.locator('[data-health=unhealthy]').waitFor({ timeout: 5000 });
      assert.equal((await cell.locator('[data-health-error]').textContent())?.trim(), after.health.error, 'the error is shown as the API gave it');
      assert.equal(await page.evaluate(() => (globalThis as unknown as { __sameDocument?: boolean }).__sameDocument), true, 'the page was not reloaded');
      assert.equal(await row(page, 'flaky').count(), 1, 'an unhealthy server keeps its row (and its routes)');
    } finally {
      await context.close();
      if (!closed) await backend.close();
      rmSync(join(s.gw.catalogDir, 'flaky.json'), { force: true });
    }
  });
});

test('no console error, page error or CSP violation on any page visited', () => {
  // The one expected: the IdP answers a wrong password with 401, which chromium logs.
  const wrongPassword =
    /^Failed to load resource: the server responded with a status of 401 \(Unauthorized\) @ http:\/\/127\.0\.0\.1:\d+\/idp\/interaction\/[^/]+\/login$/;
  assert.deepEqual(s.problems.on(new URL(s.gw.url).origin, [wrongPassword]), []);
});
