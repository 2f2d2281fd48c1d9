/**
 * The registry's forms in a real browser, checked at the MCP endpoint through nginx and on
 * disk: enable/disable, register (with field errors first), delete (with the confirm dialog)
 * and edit.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { rawInitialize, screenshot, startSuite, text, withMcp, type Suite } from './browser.ts';

let s: Suite;

before(async () => {
  s = await startSuite();
  await s.gw.gateway.monitor.settled();
});
after(async () => {
  await s?.close();
});

const callTime = (cookie: string, server = 'currenttime') =>
  withMcp(s.gw.url, server, cookie, async (c) => text(await c.callTool({ name: 'current_time_by_timezone', arguments: { tz_name: 'Asia/Tokyo' } })));

describe('enable and disable', () => {
  test('operator disables currenttime (MCP clients get 503) and enables it again (the call works)', async () => {
    const operator = await s.signedIn('operator');
    // The operator may toggle and read, not execute: the MCP calls use a user who may.
    const user = await s.signedIn('user');
    try {
      assert.match(await callTime(user.cookie), /Asia\/Tokyo/);
      assert.equal((await rawInitialize(s.gw.url, 'currenttime', operator.cookie)).status, 403, 'operator has no execute scope');

      const page = operator.page;
      const toggle = page.locator('#servers tr[data-server="currenttime"] button[data-action=toggle]');
      assert.equal(await toggle.textContent(), 'Disable');
      await Promise.all([page.waitForURL(`${s.gw.url}/`), toggle.click()]);
      assert.equal(await page.locator('#notice').textContent(), 'currenttime is now disabled.');
      assert.equal(await page.locator('#servers tr[data-server="currenttime"] td[data-state]').getAttribute('data-state'), 'disabled');

      await assert.rejects(callTime(user.cookie), (err: Error & { code?: number }) => err.code === 503 && /SERVER_DISABLED/.test(err.message));
      assert.equal((await rawInitialize(s.gw.url, 'currenttime', user.cookie)).status, 503);
      assert.equal((await rawInitialize(s.gw.url, 'currenttime', operator.cookie)).status, 503);

      assert.equal(await toggle.textContent(), 'Enable');
      await Promise.all([page.waitForURL(`${s.gw.url}/`), toggle.click()]);
      assert.equal(await page.locator('#notice').textContent(), 'currenttime is now enabled.');
      assert.equal(await page.locator('#servers tr[data-server="currenttime"] td[data-state]').getAttribute('data-state'), 'enabled');
      assert.match(await callTime(user.cookie), /Asia\/Tokyo/);

      // The notice is shown once.
      await page.reload();
      assert.equal(await page.locator('#notice').count(), 0);
    } finally {
      await Promise.all([operator.context.close(), user.context.close()]);
    }
  });
});

describe('register and delete', () => {
  test('admin: an invalid form shows field errors and keeps the values; the fixed form registers a working server; Delete (confirmed) removes it from nginx', async () => {
    await s.as('admin', async ({ context, page, cookie }) => {
      await page.locator('#nav-register').click();
      await page.waitForURL(`${s.gw.url}/register`);
      await page.locator('#f-name').fill('Bad Name');
      await page.locator('#f-url').fill('http://127.0.0.1:1/x?y=1');
      await page.locator('#f-description').fill('A second clock');
      await page.locator('#f-tags').fill('time, demo');
      await page.locator('#save').click();
      await page.waitForURL(`${s.gw.url}/servers`);
      assert.ok(await page.locator('#form-error').isVisible());
      assert.match((await page.locator('.field[data-field=name] .field-error').textContent()) ?? '', /server name must match/);
      assert.match((await page.locator('.field[data-field=url] .field-error').textContent()) ?? '', /no query/);
      assert.equal(await page.locator('.field[data-field=description] .field-error').count(), 0);
      assert.equal(await page.locator('#f-name').getAttribute('aria-invalid'), 'true');
      assert.equal(await page.locator('#f-name').inputValue(), 'Bad Name');
      assert.equal(await page.locator('#f-url').inputValue(), 'http://127.0.0.1:1/x?y=1');
      assert.equal(await page.locator('#f-description').inputValue(), 'A second clock');
      assert.equal(await page.locator('#f-tags').inputValue(), 'time, demo');
      await screenshot(page, 'register-errors');

      await page.locator('#f-name').fill('clock2');
      await page.locator('#f-url').fill(s.gw.backend.url);
      await Promise.all([page.waitForURL(`${s.gw.url}/servers/clock2`), page.locator('#save').click()]);
      assert.match((await page.locator('#notice').textContent()) ?? '', /^clock2 is registered and nginx serves it\.$/);
      assert.equal(await page.locator('#server').getAttribute('data-server'), 'clock2');
      assert.equal(await page.locator('#backend-url').textContent(), s.gw.backend.url);
      assert.match(await callTime(cookie, 'clock2'), /Asia\/Tokyo/);

      const dialogs: string[] = [];
      page.on('dialog', (d) => {
        dialogs.push(`${d.type()}: ${d.message()}`);
        void d.accept();
      });
      await Promise.all([page.waitForURL(`${s.gw.url}/`), page.locator('#server button[data-action=delete]').click()]);
      assert.deepEqual(dialogs, ['confirm: Delete clock2? Its definition file is removed and MCP clients lose it.']);
      assert.match((await page.locator('#notice').textContent()) ?? '', /^clock2 is deleted\.$/);
      assert.equal(await page.locator('#servers tr[data-server="clock2"]').count(), 0);
      assert.equal((await rawInitialize(s.gw.url, 'clock2', cookie)).status, 404);
    });
  });

  test('admin: dismissing the confirm dialog keeps the server', async () => {
    await s.as('admin', async ({ context, page }) => {
      await page.goto(`${s.gw.url}/servers/offline`);
      let asked = 0;
      page.on('dialog', (d) => {
        asked++;
        void d.dismiss();
      });
      await page.locator('#server button[data-action=delete]').click();
      await page.waitForTimeout(300);
      assert.equal(asked, 1);
      assert.equal(new URL(page.url()).pathname, '/servers/offline');
      await page.goto(`${s.gw.url}/`);
      assert.equal(await page.locator('#servers tr[data-server="offline"]').count(), 1);
    });
  });
});

describe('edit', () => {
  test("admin edits currenttime's description: the page shows it and the file on disk holds it", async () => {
    await s.as('admin', async ({ context, page }) => {
      const file = join(s.gw.catalogDir, 'currenttime.json');
      const before = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
      await page.locator('#servers tr[data-server="currenttime"] [data-action=edit]').click();
      await page.waitForURL(`${s.gw.url}/servers/currenttime/edit`);
      assert.equal(await page.locator('#f-name').getAttribute('readonly'), '');
      assert.equal(await page.locator('#f-description').inputValue(), before['description']);
      const description = 'What time it is, anywhere (edited in the browser)';
      await page.locator('#f-description').fill(description);
      await Promise.all([page.waitForURL(`${s.gw.url}/servers/currenttime`), page.locator('#save').click()]);
      assert.match((await page.locator('#notice').textContent()) ?? '', /^currenttime is saved/);
      assert.equal(await page.locator('#server p.description').textContent(), description);
      const after = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
      assert.equal(after['description'], description);
      assert.deepEqual({ ...after, description: before['description'] }, before, 'nothing else changed');
    });
  });
});

test('no console error, page error or CSP violation on any page visited', () => {
  // The one expected: the invalid register form is answered 400 (with the form), which chromium logs.
  const invalidForm = /^Failed to load resource: the server responded with a status of 400 \(Bad Request\) @ http:\/\/127\.0\.0\.1:\d+\/servers$/;
  assert.deepEqual(s.problems.on(new URL(s.gw.url).origin, [invalidForm]), []);
});
