import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { createLogger } from './log.ts';

test('secrets never reach the log: tokens, cookies, passwords and the callback query are redacted', () => {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      lines.push(String(chunk));
      done();
    },
  });
  const log = createLogger('info', sink);
  const secret = 'eyJhbGciOiJSUzI1NiJ9.FAKE-TOKEN-VALUE.sig';
  log.info({ req: { method: 'GET', url: `/oauth/callback/dev?code=${secret}&state=s`, headers: { cookie: secret } } }, 'callback');
  log.info({ tokens: { access_token: secret, refresh_token: secret, id_token: secret }, client: { client_secret: secret } }, 'tokens');
  log.info({ user: { password: secret }, req: { headers: { authorization: `Bearer ${secret}` } } }, 'login');
  const out = lines.join('');
  assert.equal(lines.length, 3);
  assert.ok(!out.includes('FAKE-TOKEN-VALUE'), out);
  assert.match(out, /\/oauth\/callback\/dev"/, 'the path is kept without its query');
});

test('error codes are not redacted', () => {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      lines.push(String(chunk));
      done();
    },
  });
  createLogger('info', sink).info({ err: { code: 'AUTH_SCOPE_MISSING' } }, 'denied');
  assert.match(lines.join(''), /AUTH_SCOPE_MISSING/);
});
