/**
 * MCP client programs, unmodified, against the gateway as their authorization server:
 *
 * - `mcp-remote` (the stdio bridge Claude Desktop runs) as a child process speaking MCP over
 *   stdio, driven by the SDK's StdioClientTransport + Client the way Claude Desktop drives it.
 *   It starts with no credentials and does discovery, dynamic registration and PKCE itself, and
 *   opens "the browser" through the `open` package: on Linux the package's own `xdg-open`
 *   script, which with no desktop runs `$BROWSER <url>`. The test's `$BROWSER` is a shell script
 *   that appends the URL to a file; the test opens that URL in the real Debian chromium, signs in
 *   and allows, and chromium lands on mcp-remote's own loopback callback.
 * - The MCP Inspector's CLI mode (`inspector --cli`, no web UI): its own OAuth flow (it opens the
 *   browser through `open` too when MCP_AUTO_OPEN_ENABLED=true, its switch for "no TTY but a
 *   person is there"), its stored tokens on a second run; and a gateway token in `--header`, on
 *   Streamable HTTP and SSE.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import type { Page } from 'playwright-core';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { decodeJwt } from 'jose';
import { devMachineSecret, DEV_MACHINE_CLIENT_ID } from '../../src/identity/dev.ts';
import { freePort, TEST_SECRET_KEY } from '../integration/harness.ts';
import { DEMO_PASSWORD, startSuite, text, type Suite } from './browser.ts';

const ROOT = resolve(import.meta.dirname, '../../..');
const MCP_REMOTE = join(ROOT, 'node_modules/mcp-remote/dist/proxy.js');
const INSPECTOR = join(ROOT, 'node_modules/@modelcontextprotocol/inspector/clients/launcher/build/index.js');

let suite: Suite;
let dir: string;

before(async () => {
  suite = await startSuite({
    gateway: { mapping: `clients:\n  ${JSON.stringify(DEV_MACHINE_CLIENT_ID)}: ["mcp:server:currenttime:execute"]\n` },
  });
  dir = mkdtempSync(join(tmpdir(), 'mcp-clients-'));
});

after(async () => {
  await suite?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The environment of a client program: no desktop (so `xdg-open` takes `$BROWSER`), its own HOME. */
function childEnv(home: string, extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (
      v === undefined ||
      /^(DISPLAY|WAYLAND_DISPLAY|XDG_CURRENT_DESKTOP|DESKTOP_SESSION|KDE_FULL_SESSION|GNOME_DESKTOP_SESSION_ID|DBUS_SESSION_BUS_ADDRESS)$/.test(k)
    )
      continue;
    if (k.startsWith('NODE_TEST') || k === 'NODE_OPTIONS') continue;
    env[k] = v;
  }
  return { ...env, HOME: home, ...extra };
}

/** A fake browser: `$BROWSER <url>` appends the URL to `<dir>/opened.txt`. Returns [script, log]. */
function fakeBrowser(name: string): { script: string; log: string } {
  const log = join(dir, `${name}-opened.txt`);
  const script = join(dir, `${name}-browser.sh`);
  writeFileSync(script, `#!/bin/sh\nprintf '%s\\n' "$1" >> '${log}'\n`);
  chmodSync(script, 0o755);
  return { script, log };
}

const opened = (log: string): string[] => (existsSync(log) ? readFileSync(log, 'utf8').split('\n').filter(Boolean) : []);

async function waitFor<T>(what: string, probe: () => T | undefined, timeoutMs = 30_000, detail = () => ''): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${detail()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** mcp-remote as Claude Desktop runs it: a stdio child with an SDK Client on the other end. */
function mcpRemote(args: string[], env: Record<string, string>) {
  const transport = new StdioClientTransport({ command: process.execPath, args: [MCP_REMOTE, ...args], env, stderr: 'pipe' });
  const stderr: string[] = [];
  transport.stderr?.on('data', (chunk: Buffer) => stderr.push(chunk.toString()));
  const client = new Client({ name: 'claude-desktop-like', version: '1.0.0' });
  return { transport, client, stderr };
}

/** Signs in at the dev IdP if asked and allows at the consent page; waits until chromium is on the callback. */
async function signInAndAllow(page: Page, url: string, options: { username?: string; clientName?: string; callbackOrigin: (u: URL) => boolean }): Promise<URL> {
  await page.goto(url);
  if (options.username !== undefined) {
    await page.waitForSelector('#username');
    await page.fill('#username', options.username);
    await page.fill('#password', DEMO_PASSWORD);
    await page.click('#submit');
  }
  await page.waitForSelector('#consent');
  if (options.clientName !== undefined) assert.match((await page.locator('#consent').textContent()) ?? '', new RegExp(options.clientName));
  await page.click('#allow');
  await page.waitForURL(options.callbackOrigin);
  return new URL(page.url());
}

const loopbackCallback = (u: URL) => ['localhost', '127.0.0.1', '[::1]'].includes(u.hostname) && u.pathname === '/oauth/callback';

async function listAndCall(client: Client): Promise<void> {
  const tools = await client.listTools();
  assert.deepEqual(
    tools.tools.map((t) => t.name),
    ['current_time_by_timezone'],
  );
  const called = await client.callTool({ name: 'current_time_by_timezone', arguments: { tz_name: 'UTC' } });
  assert.notEqual(called.isError, true, text(called));
  assert.match(text(called), /\d{4}-\d{2}-\d{2}/);
}

/** The stored tokens of mcp-remote's config dir (`<hash>_tokens.json` under a version directory). */
function storedTokens(configDir: string): Array<{ access_token: string; refresh_token?: string }> {
  const found: Array<{ access_token: string; refresh_token?: string }> = [];
  const walk = (d: string) => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const path = join(d, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith('_tokens.json')) found.push(JSON.parse(readFileSync(path, 'utf8')) as { access_token: string });
    }
  };
  walk(configDir);
  return found;
}

for (const [label, path, extra] of [
  ['Streamable HTTP', '/api/streamable/currenttime', []],
  ['SSE', '/api/execute/currenttime/sse', ['--transport', 'sse-only']],
] as const) {
  test(`mcp-remote over ${label}: no credentials -> browser sign-in and consent -> tools; a second run reuses the stored tokens`, async () => {
    const mcpUrl = `${suite.gw.url}${path}`;
    const name = label === 'SSE' ? 'remote-sse' : 'remote-http';
    const home = join(dir, `${name}-home`);
    const configDir = join(dir, `${name}-config`);
    const browser = fakeBrowser(name);
    const env = childEnv(home, { BROWSER: browser.script, MCP_REMOTE_CONFIG_DIR: configDir });

    const first = mcpRemote([mcpUrl, ...extra], env);
    const context = await suite.context();
    const page = await context.newPage();
    try {
      const connected = first.client.connect(first.transport);
      connected.catch(() => {});
      const authorizeUrl = await waitFor(
        'mcp-remote to open the browser',
        () => opened(browser.log)[0],
        30_000,
        () => `\n${first.stderr.join('')}`,
      );
      const authorize = new URL(authorizeUrl);
      assert.equal(authorize.origin + authorize.pathname, `${suite.gw.url}/oauth2/authorize`);
      assert.equal(authorize.searchParams.get('code_challenge_method'), 'S256');
      assert.equal(authorize.searchParams.get('resource'), mcpUrl);
      const landed = await signInAndAllow(page, authorizeUrl, { username: 'user', clientName: 'MCP CLI Proxy', callbackOrigin: loopbackCallback });
      assert.ok(landed.searchParams.get('code'), landed.href);
      await connected;
      await listAndCall(first.client);
      await first.client.close();

      const tokens = storedTokens(configDir);
      assert.equal(tokens.length, 1, 'mcp-remote stored one token set');
      const claims = decodeJwt(tokens[0]!.access_token);
      assert.equal(claims.iss, suite.gw.url);
      assert.equal(claims.aud, mcpUrl);
      assert.equal(claims['scope'], 'mcp:server:currenttime:execute');
      assert.equal(claims.sub, 'dev:user');
      assert.ok(tokens[0]!.refresh_token, 'a refresh token');

      // A second run (Claude Desktop restarted): the stored tokens, no browser.
      const second = mcpRemote([mcpUrl, ...extra], env);
      await second.client.connect(second.transport);
      await listAndCall(second.client);
      await second.client.close();
      assert.equal(opened(browser.log).length, 1, 'the second run opened no browser');
    } catch (err) {
      throw new Error(`mcp-remote stderr:\n${first.stderr.join('')}`, { cause: err });
    } finally {
      await first.client.close().catch(() => {});
      await context.close();
    }
  });
}

/** Runs the Inspector CLI to the end; returns exit code, stdout, stderr. */
function inspector(args: string[], home: string, extraEnv: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [INSPECTOR, '--cli', ...args], {
      env: childEnv(home, { MCP_AUTO_OPEN_ENABLED: 'false', ...extraEnv }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolvePromise({ code, stdout, stderr });
    });
  });
}

/** The dev machine client's client-credentials token for one MCP URL, from the gateway's token endpoint. */
async function machineToken(resource: string): Promise<string> {
  const basic = Buffer.from(`${DEV_MACHINE_CLIENT_ID}:${devMachineSecret(TEST_SECRET_KEY)}`).toString('base64');
  const response = await fetch(`${suite.gw.url}/oauth2/token`, {
    method: 'POST',
    headers: { authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'client_credentials', resource }).toString(),
  });
  const issued = (await response.json()) as { access_token: string };
  assert.equal(response.status, 200, JSON.stringify(issued));
  return issued.access_token;
}

test('the Inspector CLI (--cli, --transport http and sse) with a gateway token in --header: tools/list, tools/call; no token is refused', async () => {
  const mcpUrl = `${suite.gw.url}/api/streamable/currenttime`;
  const home = join(dir, 'inspector-home');
  const bearer = `Authorization: Bearer ${await machineToken(mcpUrl)}`;

  const listed = await inspector([mcpUrl, '--transport', 'http', '--header', bearer, '--method', 'tools/list', '--format', 'json'], home);
  assert.equal(listed.code, 0, listed.stderr);
  const tools = (JSON.parse(listed.stdout) as { result: { tools: Array<{ name: string }> } }).result;
  assert.deepEqual(
    tools.tools.map((t) => t.name),
    ['current_time_by_timezone'],
  );

  const called = await inspector(
    [
      mcpUrl,
      '--transport',
      'http',
      '--header',
      bearer,
      '--method',
      'tools/call',
      '--tool-name',
      'current_time_by_timezone',
      '--tool-arg',
      'tz_name=UTC',
      '--format',
      'json',
    ],
    home,
  );
  assert.equal(called.code, 0, called.stderr);
  const result = (JSON.parse(called.stdout) as { result: { content: Array<{ text: string }>; isError?: boolean } }).result;
  assert.notEqual(result.isError, true, called.stdout);
  assert.match(result.content[0]!.text, /\d{4}-\d{2}-\d{2}/);

  // The SSE transport: a token for the SSE URL (its own resource).
  const sseUrl = `${suite.gw.url}/api/execute/currenttime/sse`;
  const overSse = await inspector(
    [sseUrl, '--transport', 'sse', '--header', `Authorization: Bearer ${await machineToken(sseUrl)}`, '--method', 'tools/list', '--format', 'json'],
    home,
  );
  assert.equal(overSse.code, 0, overSse.stderr);
  assert.deepEqual(
    (JSON.parse(overSse.stdout) as { result: { tools: Array<{ name: string }> } }).result.tools.map((t) => t.name),
    ['current_time_by_timezone'],
  );

  // No token, and told not to start an interactive OAuth: the 401 challenge is what it reports.
  const refused = await inspector([mcpUrl, '--transport', 'http', '--stored-auth-only', '--method', 'tools/list', '--format', 'json'], home);
  assert.notEqual(refused.code, 0, refused.stdout);
  const envelope = JSON.parse(refused.stderr.trim().split('\n').at(-1)!) as { error: { code: string; message: string } };
  assert.equal(envelope.error.code, 'auth_required', refused.stderr);
  assert.match(envelope.error.message, /AUTH_NO_CREDENTIALS/);
  // What it met: the gateway's challenge.
  const raw = await fetch(mcpUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
  });
  assert.equal(raw.status, 401);
  assert.match(raw.headers.get('www-authenticate') ?? '', /^Bearer/);
});

test('the Inspector CLI (--cli, --transport http) does the OAuth flow itself: browser sign-in and consent, then stored tokens', async () => {
  const mcpUrl = `${suite.gw.url}/api/streamable/currenttime`;
  const home = join(dir, 'inspector-oauth-home');
  const browser = fakeBrowser('inspector');
  const callbackUrl = `http://127.0.0.1:${await freePort()}/oauth/callback`;
  // No TTY here: MCP_AUTO_OPEN_ENABLED=true is the CLI's own switch for "a person is there, open the browser".
  // No OS keychain here: the file store (under the temp HOME) keeps the tokens for the second run.
  const env = { MCP_AUTO_OPEN_ENABLED: 'true', BROWSER: browser.script, MCP_INSPECTOR_SECRET_STORE: 'file' };
  const running = inspector([mcpUrl, '--transport', 'http', '--callback-url', callbackUrl, '--method', 'tools/list', '--format', 'json'], home, env);
  const context = await suite.context();
  const page = await context.newPage();
  try {
    const authorizeUrl = await waitFor('the Inspector CLI to open the browser', () => opened(browser.log)[0]);
    const authorize = new URL(authorizeUrl);
    assert.equal(authorize.origin + authorize.pathname, `${suite.gw.url}/oauth2/authorize`);
    assert.equal(authorize.searchParams.get('resource'), mcpUrl);
    const landed = await signInAndAllow(page, authorizeUrl, { username: 'user', callbackOrigin: (u) => u.href.startsWith(callbackUrl) });
    assert.ok(landed.searchParams.get('code'), landed.href);
  } finally {
    await context.close();
  }
  const listed = await running;
  assert.equal(listed.code, 0, listed.stderr);
  assert.deepEqual(
    (JSON.parse(listed.stdout) as { result: { tools: Array<{ name: string }> } }).result.tools.map((t) => t.name),
    ['current_time_by_timezone'],
  );

  // Again, non-interactive: the tokens it stored, no browser.
  const called = await inspector(
    [
      mcpUrl,
      '--transport',
      'http',
      '--stored-auth-only',
      '--method',
      'tools/call',
      '--tool-name',
      'current_time_by_timezone',
      '--tool-arg',
      'tz_name=UTC',
      '--format',
      'json',
    ],
    home,
    { MCP_INSPECTOR_SECRET_STORE: 'file' },
  );
  assert.equal(called.code, 0, called.stderr);
  assert.match((JSON.parse(called.stdout) as { result: { content: Array<{ text: string }> } }).result.content[0]!.text, /\d{4}-\d{2}-\d{2}/);
  assert.equal(opened(browser.log).length, 1);
});

test('no console error, page error or CSP violation on the sign-in and consent pages', () => {
  assert.deepEqual(suite.problems.on(new URL(suite.gw.url).origin), []);
});
