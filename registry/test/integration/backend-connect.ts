/**
 * Connects a signed-in person's account at a `user_oauth` backend over plain HTTP, the way the
 * browser does it (registry/test/browser/backend-connect.test.ts drives chromium): the card's
 * link, the authorization server's redirects and its sign-in form, back to the gateway's
 * callback. One jar for both hosts, as a browser keeps cookies per host whatever the port.
 */
import assert from 'node:assert/strict';
import { jarFetch, type CookieJar } from './cookie-jar.ts';

/** Returns the notice the gateway showed on the way back (e.g. "Connected to ... as alice."). */
export async function connectOverHttp(jar: CookieJar, gatewayUrl: string, server: string, username: string, password: string): Promise<string> {
  let url = `${gatewayUrl}/servers/${server}/connect/start`;
  let signedIn = false;
  for (let hop = 0; hop < 16; hop++) {
    const response = await jarFetch(jar, url, { headers: { 'sec-fetch-site': 'same-origin' } });
    if (response.status >= 300 && response.status < 400) {
      url = new URL(response.headers.get('location') ?? '', url).href;
      continue;
    }
    const body = await response.text();
    const form = /<form method="post" action="([^"]+)"/i.exec(body);
    if (!url.startsWith(gatewayUrl) && form && !signedIn) {
      signedIn = true;
      const posted = await jarFetch(jar, new URL(form[1]!, url).href, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ username, password }).toString(),
      });
      assert.ok(posted.status >= 300 && posted.status < 400, `the provider's sign-in answered ${posted.status}`);
      url = new URL(posted.headers.get('location') ?? '', url).href;
      continue;
    }
    assert.equal(response.status, 200, `${response.status} at ${url}: ${body.slice(0, 300)}`);
    assert.ok(new URL(url).pathname === `/servers/${server}`, `ended at ${url}`);
    return /id="notice"[^>]*>([^<]*)</.exec(body)?.[1]?.trim() ?? '';
  }
  throw new Error('too many redirects while connecting');
}
