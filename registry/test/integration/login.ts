import assert from 'node:assert/strict';
import { CookieJar, jarFetch } from './cookie-jar.ts';

export interface LoginTrace {
  readonly jar: CookieJar;
  /** The session cookie as a Cookie header value: `mcp_gateway_session=...`. */
  readonly cookie: string;
  /** The callback URL the IdP redirected to (code + state), for replay tests. */
  readonly callbackUrl: string;
}

/**
 * Signs in through the real login form over HTTP: /login → dev IdP → form POST → consent-free
 * redirect → /oauth/callback/dev → back to the page with a session cookie.
 */
export async function login(
  gatewayUrl: string,
  username: string,
  password: string,
  options: { stopAtCallback?: boolean; jar?: CookieJar } = {},
): Promise<LoginTrace> {
  const jar = options.jar ?? new CookieJar();
  let url = `${gatewayUrl}/login`;
  let callbackUrl = '';
  for (let hop = 0; hop < 12; hop++) {
    if (url.includes('/oauth/callback/')) {
      callbackUrl = url;
      if (options.stopAtCallback) return { jar, cookie: '', callbackUrl };
    }
    const response = await jarFetch(jar, url);
    if (response.status >= 300 && response.status < 400) {
      url = new URL(response.headers.get('location') ?? '', url).href;
      continue;
    }
    const body = await response.text();
    // Any IdP's sign-in page: the first POST form with a password field.
    const form = /<form[^>]*method="post"[^>]*action="([^"]+)"[^>]*>(?:(?!<\/form>)[\s\S])*name="password"/i.exec(body);
    if (response.status === 200 && form && !url.startsWith(gatewayUrl + '/?') && new URL(url).pathname !== '/') {
      const posted = await jarFetch(jar, new URL((form[1] ?? '').replaceAll('&amp;', '&'), url).href, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ username, password }).toString(),
      });
      assert.ok(posted.status >= 300 && posted.status < 400, `login form answered ${posted.status}: ${await posted.text()}`);
      url = new URL(posted.headers.get('location') ?? '', url).href;
      continue;
    }
    assert.equal(response.status, 200, `unexpected ${response.status} at ${url}: ${body.slice(0, 500)}`);
    const session = jar.get('mcp_gateway_session');
    assert.ok(session, 'signed in without a session cookie');
    return { jar, cookie: `mcp_gateway_session=${session}`, callbackUrl };
  }
  throw new Error('too many redirects while signing in');
}

/** Reads the CSRF token from the signed-in page. */
export async function csrfFrom(gatewayUrl: string, jar: CookieJar): Promise<string> {
  const page = await (await jarFetch(jar, `${gatewayUrl}/`)).text();
  const token = /name="_csrf" value="([^"]+)"/.exec(page)?.[1];
  assert.ok(token, 'no CSRF token on the page');
  return token;
}
