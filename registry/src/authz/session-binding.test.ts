import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, hkdfSync } from 'node:crypto';
import type { Principal } from './credentials.ts';
import { BINDING_LABEL, createSessionBinding, principalBindingId } from './session-binding.ts';

const SECRET = 'unit-test-secret-unit-test-secret-000';
const person = (provider: string, sub: string, username = 'u'): Principal => ({ identity: { sub, username, groups: [], provider }, scopes: [] });

describe('principalBindingId', () => {
  test('a person is provider + subject, whatever the credential or username', () => {
    assert.equal(principalBindingId(person('dev', 's-1', 'alice'), true), principalBindingId(person('dev', 's-1', 'alice-renamed'), true));
    assert.notEqual(principalBindingId(person('dev', 's-1'), true), principalBindingId(person('okta', 's-1'), true));
  });

  test('a machine client is its client id and can never equal a person, whatever the subject holds', () => {
    const machine: Principal = { identity: { sub: 'c-1', username: 'client:c-1', groups: [], provider: 'dev' }, scopes: [], machineClient: 'c-1' };
    assert.equal(principalBindingId(machine, true), '["client","dev","c-1"]');
    for (const sub of ['c-1', 'client:c-1', '"client","dev","c-1"', 'dev:client:c-1']) {
      assert.notEqual(principalBindingId(person('dev', sub), true), principalBindingId(machine, true), sub);
    }
  });

  test('with auth disabled there is one principal', () => {
    assert.equal(principalBindingId(person('dev', 'x'), false), '["anonymous"]');
  });
});

describe('seal and open', () => {
  const binding = createSessionBinding(SECRET);
  const alice = binding.keyFor('["person","dev","alice"]');
  const bob = binding.keyFor('["person","dev","bob"]');

  test('the format: base64url(value).tag, 22 tag characters, visible ASCII only', () => {
    const sealed = binding.seal('streamable', 'svc', '4dde8950-49e4-429a-a647-ba549f14cad0', alice);
    assert.match(sealed, /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{22}$/);
    assert.equal(Buffer.from(sealed.split('.')[0] ?? '', 'base64url').toString(), '4dde8950-49e4-429a-a647-ba549f14cad0');
  });

  test('is what njs computes: K_p = HMAC(HKDF(secret, label), principal); tag = HMAC(K_p, kind NUL server NUL value)', () => {
    const root = Buffer.from(hkdfSync('sha256', SECRET, Buffer.alloc(0), BINDING_LABEL, 32));
    const key = createHmac('sha256', root).update('["person","dev","alice"]').digest();
    assert.equal(alice.header, key.toString('base64url'));
    const tag = createHmac('sha256', Buffer.from(alice.header, 'base64url')).update('sse\u0000svc\u0000/messages?sessionId=1').digest('base64url').slice(0, 22);
    assert.equal(binding.seal('sse', 'svc', '/messages?sessionId=1', alice), `${Buffer.from('/messages?sessionId=1').toString('base64url')}.${tag}`);
  });

  test('opens for the principal it was sealed to, on any process with the same secret', () => {
    const sealed = binding.seal('streamable', 'svc', 'b-1', alice);
    assert.deepEqual(binding.open('streamable', 'svc', sealed, alice), { ok: true, value: 'b-1' });
    const replica = createSessionBinding(SECRET);
    assert.deepEqual(replica.open('streamable', 'svc', sealed, replica.keyFor('["person","dev","alice"]')), { ok: true, value: 'b-1' });
  });

  test('is unbound for another principal, server, kind or secret (an id opened before included: the cache repeats successes only)', () => {
    assert.equal(binding.open('streamable', 'svc', binding.seal('streamable', 'svc', 'b-1', alice), alice).ok, true);
    const sealed = binding.seal('streamable', 'svc', 'b-1', alice);
    assert.deepEqual(binding.open('streamable', 'svc', sealed, bob), { ok: false, reason: 'session-unbound' });
    assert.deepEqual(binding.open('streamable', 'svc2', sealed, alice), { ok: false, reason: 'session-unbound' });
    assert.deepEqual(binding.open('sse', 'svc', binding.seal('sse', 'svc', '/b-1', alice), bob), { ok: false, reason: 'session-unbound' });
    const other = createSessionBinding(`${SECRET}-rotated`);
    assert.equal(other.open('streamable', 'svc', sealed, other.keyFor('["person","dev","alice"]')).ok, false);
  });

  test("keeps the initialize's URL-elicitation flag under the tag: `.u` opens with urlElicitation, and cannot be added or dropped", () => {
    const plain = binding.seal('streamable', 'svc', 'b-2', alice);
    const flagged = binding.seal('streamable', 'svc', 'b-2', alice, 'u');
    assert.match(flagged, /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{22}\.u$/);
    // What njs computes: the flags after another NUL.
    const tag = createHmac('sha256', alice.key).update('streamable\u0000svc\u0000b-2\u0000u').digest('base64url').slice(0, 22);
    assert.equal(flagged, `${Buffer.from('b-2').toString('base64url')}.${tag}.u`);
    assert.deepEqual(binding.open('streamable', 'svc', flagged, alice), { ok: true, value: 'b-2', urlElicitation: true });
    assert.deepEqual(binding.open('streamable', 'svc', plain, alice), { ok: true, value: 'b-2' });
    assert.deepEqual(binding.open('streamable', 'svc', `${plain}.u`, alice), { ok: false, reason: 'session-unbound' });
    assert.deepEqual(binding.open('streamable', 'svc', flagged.slice(0, -2), alice), { ok: false, reason: 'session-unbound' });
    assert.deepEqual(binding.open('streamable', 'svc', flagged, bob), { ok: false, reason: 'session-unbound' });
    assert.equal(binding.open('streamable', 'svc', `${flagged.slice(0, -1)}x`, alice).ok, false);
  });

  test('refuses garbled, truncated, padded, non-canonical and oversized ids as malformed', () => {
    const sealed = binding.seal('streamable', 'svc', 'b-1', alice);
    const [body = '', tag = ''] = sealed.split('.');
    for (const bad of [
      '',
      '.',
      'b-1',
      sealed.slice(0, -1),
      `${sealed}A`,
      `${body}=.${tag}`,
      `${body}.${tag}.x`,
      `${body} .${tag}`,
      `${'A'.repeat(2000)}.${tag}`,
      `${Buffer.from('a\nb').toString('base64url')}.${tag}`,
    ]) {
      const opened = binding.open('streamable', 'svc', bad, alice);
      assert.equal(opened.ok, false, JSON.stringify(bad));
    }
    assert.equal(binding.open('streamable', 'svc', `${body}.${tag.replace(/.$/, (c) => (c === 'A' ? 'B' : 'A'))}`, alice).ok, false);
  });

  test('a legacy target must be an origin-relative path of visible ASCII', () => {
    for (const bad of ['messages', '//evil.example/x', '/a b', '/a\r\nX: 1', '/a#b', '/a"b', '']) {
      assert.throws(() => binding.seal('sse', 'svc', bad, alice), /refusing to seal/, JSON.stringify(bad));
    }
    assert.throws(() => binding.seal('streamable', 'svc', 'a b', alice));
  });

  test('keys are cached per principal and the cache is bounded', () => {
    assert.equal(binding.keyFor('["person","dev","alice"]'), alice);
    for (let i = 0; i < 10_050; i++) binding.keyFor(`p${i}`);
    assert.notEqual(binding.keyFor('["person","dev","alice"]'), alice, 'the oldest entry was dropped');
    assert.equal(binding.keyFor('["person","dev","alice"]').header, alice.header, 'and derives the same key again');
  });
});
