/**
 * The browser suite's harness: Debian's chromium driven by playwright-core, one browser per
 * test file, one fresh context per signed-in user. Pages are reached the way a person reaches
 * them (the real sign-in form, real clicks), and every console error, uncaught page error and
 * Content-Security-Policy violation is collected so a file can assert at its end that none
 * happened on the gateway's pages.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type BrowserContextOptions, type Cookie, type Page } from 'playwright-core';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { buildServer as buildFininfo } from '../../../servers/fininfo/server.ts';
import { serveMcp, type RunningMcpServer } from '../../../servers/shared/serve-mcp.ts';
import { ADMIN_PASSWORD, startTestGateway, type TestGateway, type TestGatewayOptions } from '../integration/harness.ts';

export const CHROMIUM = '/usr/bin/chromium';
export const DEMO_PASSWORD = 'demo';
export { ADMIN_PASSWORD };

/** Launches Debian's chromium. Throws (never skips) when it is not installed. */
export async function launchBrowser(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: the browser tests need Debian's chromium (as root: apt-get install -y --no-install-recommends chromium)`);
  }
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-dev-shm-usage',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
}

/** One thing that went wrong in a page: a console error, an uncaught error or a CSP violation. */
export interface PageProblem {
  readonly kind: 'console' | 'pageerror' | 'csp';
  readonly url: string;
  readonly text: string;
}

/**
 * Collects problems of every page of the contexts it watches. CSP violations are seen twice
 * on purpose: the console message chromium prints, and the `securitypolicyviolation` DOM event
 * (reported through a binding, which the policy cannot block).
 */
export class ProblemCollector {
  readonly problems: PageProblem[] = [];

  async watch(context: BrowserContext): Promise<void> {
    await context.exposeBinding('__reportCspViolation', (source, text: string) => {
      this.problems.push({ kind: 'csp', url: source.frame.url(), text });
    });
    await context.addInitScript(() => {
      const w = globalThis as unknown as {
        addEventListener(
          type: string,
          listener: (event: { violatedDirective: string; blockedURI: string; sourceFile: string; lineNumber: number }) => void,
        ): void;
        __reportCspViolation?: (text: string) => void;
      };
      w.addEventListener('securitypolicyviolation', (e) => {
        void w.__reportCspViolation?.(`${e.violatedDirective} blocked ${e.blockedURI || '(inline)'} at ${e.sourceFile}:${e.lineNumber}`);
      });
    });
    const onPage = (page: Page) => {
      page.on('console', (msg) => {
        if (msg.type() !== 'error' && !/Content.Security.Policy/i.test(msg.text())) return;
        const at = msg.location().url;
        this.problems.push({
          kind: /Content.Security.Policy/i.test(msg.text()) ? 'csp' : 'console',
          url: page.url(),
          text: at && at !== page.url() ? `${msg.text()} (${at})` : msg.text(),
        });
      });
      page.on('pageerror', (err) => this.problems.push({ kind: 'pageerror', url: page.url(), text: String(err) }));
    };
    context.pages().forEach(onPage);
    context.on('page', onPage);
  }

  /** Problems on pages of `origin`, minus those a test caused on purpose (matched against `<text> @ <page url>`). */
  on(origin: string, expected: readonly RegExp[] = []): PageProblem[] {
    return this.problems.filter((p) => p.url.startsWith(origin) && !expected.some((re) => re.test(`${p.text} @ ${p.url}`)));
  }

  cspViolations(origin: string): PageProblem[] {
    return this.on(origin).filter((p) => p.kind === 'csp');
  }
}

/**
 * Signs in through the real login form: `path` (default /login) on the gateway, which sends a
 * signed-out visitor to the dev IdP's form; fills it and waits until the browser is back on the
 * gateway, off the IdP and the callback. Returns where it ended.
 */
export async function signIn(page: Page, gwUrl: string, username: string, password: string, path = '/login'): Promise<URL> {
  await page.goto(`${gwUrl}${path}`);
  return fillSignIn(page, gwUrl, username, password);
}

/** Fills the dev IdP's sign-in form the page is on and waits for the way back to the gateway. */
export async function fillSignIn(page: Page, gwUrl: string, username: string, password: string): Promise<URL> {
  await page.waitForURL((u) => u.pathname.startsWith('/idp/'));
  await page.locator('#username').fill(username);
  await page.locator('#password').fill(password);
  await Promise.all([
    page.waitForURL((u) => u.origin === new URL(gwUrl).origin && !u.pathname.startsWith('/idp/') && !u.pathname.startsWith('/oauth/callback/')),
    page.locator('#submit').click(),
  ]);
  const url = new URL(page.url());
  assert.doesNotMatch(await page.content(), /id="login-error"/, `sign-in as ${username} was refused`);
  return url;
}

/**
 * Saves a screenshot as `<SCREENSHOTS_DIR>/<name>.png` when SCREENSHOTS_DIR is set (the
 * docs:screenshots script sets it to docs/images); otherwise does nothing, so a plain test run
 * never touches the work tree.
 */
export async function screenshot(page: Page, name: string, options: { fullPage?: boolean } = {}): Promise<void> {
  const dir = process.env['SCREENSHOTS_DIR'];
  if (!dir) return;
  mkdirSync(dir, { recursive: true });
  await page.screenshot({ path: join(dir, `${name}.png`), fullPage: options.fullPage ?? true, animations: 'disabled', caret: 'hide' });
}

/** The session cookie of a context as a Cookie header, for MCP clients outside the browser. */
export function cookieHeader(cookies: readonly Cookie[]): string {
  const session = cookies.find((c) => c.name === 'mcp_gateway_session');
  assert.ok(session, 'the browser holds no session cookie');
  return `mcp_gateway_session=${session.value}`;
}

/**
 * One MCP SDK client through nginx, closed after `use`. Each client's requests carry
 * `Connection: close`: Node's fetch keeps a spare connection open after the SDK aborts its GET
 * stream, and nginx 1.22 lets an old worker keep such a connection (it has carried no request
 * yet) across a reload, answering its first request with the previous config (a server just
 * registered: 404). Fresh connections keep one test's clients from meeting another's leftovers.
 */
export async function withMcp<T>(gwUrl: string, server: string, cookie: string, use: (client: Client) => Promise<T>): Promise<T> {
  const client = new Client({ name: 'browser-suite', version: '1.0.0' });
  await client.connect(
    new StreamableHTTPClientTransport(new URL(`${gwUrl}/api/streamable/${server}`), { requestInit: { headers: { cookie, connection: 'close' } } }),
  );
  try {
    return await use(client);
  } finally {
    await client.close();
  }
}

/** A raw `initialize` POST through nginx, for answers the SDK hides behind an exception. */
export function rawInitialize(gwUrl: string, server: string, cookie = ''): Promise<Response> {
  return fetch(`${gwUrl}/api/streamable/${server}`, {
    method: 'POST',
    headers: { cookie, connection: 'close', 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
    }),
  });
}

export const text = (result: unknown): string => (result as { content: Array<{ text?: string }> }).content[0]?.text ?? '';

export const PASSWORDS: Readonly<Record<string, string>> = {
  admin: ADMIN_PASSWORD,
  operator: DEMO_PASSWORD,
  user: DEMO_PASSWORD,
  'tool-user': DEMO_PASSWORD,
  analyst: DEMO_PASSWORD,
  researcher: DEMO_PASSWORD,
  'no-groups': DEMO_PASSWORD,
};

export interface SignedIn {
  readonly context: BrowserContext;
  readonly page: Page;
  /** The session cookie as a Cookie header value, for MCP clients. */
  readonly cookie: string;
}

export interface Suite {
  readonly gw: TestGateway;
  readonly fininfo: RunningMcpServer;
  readonly browser: Browser;
  readonly problems: ProblemCollector;
  /** A fresh context (its own cookies), watched by the collector. */
  context(options?: BrowserContextOptions): Promise<BrowserContext>;
  /** A fresh context with one page, signed in as a demo user through the form. */
  signedIn(username: string, options?: BrowserContextOptions): Promise<SignedIn>;
  /** Runs `use` signed in as `username` in a fresh context, and closes the context after. */
  as<T>(username: string, use: (signed: SignedIn) => Promise<T>, options?: BrowserContextOptions): Promise<T>;
  close(): Promise<void>;
}

/**
 * What every browser test file starts in before(): a fininfo backend, the gateway (currenttime,
 * offline, fininfo and `extra` definitions, with nginx) and one chromium.
 */
export async function startSuite(
  options: { definitions?: (fininfo: RunningMcpServer) => Record<string, unknown>[]; gateway?: TestGatewayOptions } = {},
): Promise<Suite> {
  const fininfo = await serveMcp(buildFininfo, { port: 0 });
  let gw: TestGateway | undefined;
  let browser: Browser | undefined;
  try {
    gw = await startTestGateway({
      ...options.gateway,
      definitions: [
        {
          name: 'fininfo',
          description: 'Fake market data',
          url: fininfo.url,
          transports: { 'streamable-http': '/mcp' },
          enabled: true,
          tags: ['finance', 'demo'],
        },
        ...(options.definitions?.(fininfo) ?? []),
      ],
    });
    browser = await launchBrowser();
  } catch (err) {
    await gw?.[Symbol.asyncDispose]();
    await fininfo.close();
    throw err;
  }
  const problems = new ProblemCollector();
  const contexts: BrowserContext[] = [];
  const theGateway = gw;
  const theBrowser = browser;
  const context = async (contextOptions: BrowserContextOptions = {}) => {
    const c = await theBrowser.newContext({ viewport: { width: 1280, height: 900 }, ...contextOptions });
    c.setDefaultTimeout(10_000);
    await problems.watch(c);
    contexts.push(c);
    return c;
  };
  const signedIn = async (username: string, contextOptions?: BrowserContextOptions): Promise<SignedIn> => {
    const c = await context(contextOptions);
    const page = await c.newPage();
    const password = PASSWORDS[username];
    assert.ok(password, `no password known for ${username}`);
    await signIn(page, theGateway.url, username, password);
    assert.equal(await page.locator('#whoami').textContent(), username);
    return { context: c, page, cookie: cookieHeader(await c.cookies(theGateway.url)) };
  };
  return {
    gw: theGateway,
    fininfo,
    browser: theBrowser,
    problems,
    context,
    signedIn,
    async as(username, use, contextOptions) {
      const signed = await signedIn(username, contextOptions);
      try {
        return await use(signed);
      } finally {
        await signed.context.close();
      }
    },
    async close() {
      if (process.exitCode) process.stderr.write(`nginx error.log:\n${theGateway.errorLog()}\n`);
      await Promise.allSettled(contexts.map((c) => c.close()));
      await theBrowser.close();
      await theGateway[Symbol.asyncDispose]();
      await fininfo.close();
    },
  };
}
