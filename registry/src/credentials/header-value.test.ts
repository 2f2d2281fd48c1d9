import assert from 'node:assert/strict';
import { test } from 'node:test';
import { credentialValueProblem, MAX_CREDENTIAL_VALUE_CHARS } from './header-value.ts';

test('a credential header value is visible ASCII with inner spaces, bounded; CR, LF, NUL and the rest are refused', () => {
  for (const ok of ['k1', 'Bearer t1', 'Basic YWxhZGRpbjpvcGVuc2VzYW1l', 'a\tb', 'x'.repeat(MAX_CREDENTIAL_VALUE_CHARS)])
    assert.equal(credentialValueProblem(ok), undefined, ok);
  for (const bad of ['', 'a\r\nX-Injected: 1', 'a\nb', 'a\u0000b', ' k9lead', 'k9trail ', 'é', 'x'.repeat(MAX_CREDENTIAL_VALUE_CHARS + 1), '\u007f']) {
    const problem = credentialValueProblem(bad);
    assert.ok(problem, JSON.stringify(bad));
    assert.ok(!problem.includes(bad) || bad === '', 'the problem never echoes the value');
  }
});
