import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseCredentialKeys } from '../config/credential-keys.ts';
import { loadConfig } from '../config/load.ts';
import { KeyRing, sealedKeyId } from './key-ring.ts';

const key = (id: string) => ({ id, secret: randomBytes(32).toString('base64url') });

test('a sealed value opens to the plaintext, and two seals of one value differ (random IV)', () => {
  const ring = new KeyRing([key('k1')]);
  const a = ring.seal('github:token', 'ghp_s3cret');
  const b = ring.seal('github:token', 'ghp_s3cret');
  assert.match(a, /^v1\.k1\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]+$/);
  assert.notEqual(a, b);
  assert.ok(!a.includes('s3cret'));
  assert.equal(ring.open('github:token', a), 'ghp_s3cret');
  assert.equal(ring.open('github:token', ring.seal('github:token', '')), '');
  assert.equal(ring.open('u', ring.seal('u', 'naïve ✓')), 'naïve ✓');
});

test('a tampered value does not open: any changed character, a relabelled key id, a truncation', () => {
  const k1 = key('k1');
  const k2 = { id: 'k2', secret: k1.secret }; // the same bytes under another id: the AAD still differs
  const ring = new KeyRing([k1, k2]);
  const sealed = ring.seal('id', 'value');
  const [v, kid, iv, body] = sealed.split('.') as [string, string, string, string];
  const flip = (s: string, i: number) => s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1);
  for (let i = 0; i < body.length; i++) assert.equal(ring.open('id', [v, kid, iv, flip(body, i)].join('.')), undefined, `body char ${i}`);
  for (let i = 0; i < iv.length; i++) assert.equal(ring.open('id', [v, kid, flip(iv, i), body].join('.')), undefined, `iv char ${i}`);
  assert.equal(ring.open('id', ['v1', 'k2', iv, body].join('.')), undefined, 'relabelled');
  assert.equal(ring.open('id', ['v2', kid, iv, body].join('.')), undefined, 'another version');
  assert.equal(ring.open('id', sealed.slice(0, -4)), undefined, 'truncated');
  assert.equal(ring.open('id', 'not sealed at all'), undefined);
  assert.equal(ring.open('id', undefined as unknown as string), undefined, 'a record of another shape');
  assert.equal(ring.open('id', sealed), 'value');
});

test('a value moved to another secret id does not open', () => {
  const ring = new KeyRing([key('k1')]);
  const sealed = ring.seal('server-a:api-key', 'value-a');
  assert.equal(ring.open('server-b:api-key', sealed), undefined);
  assert.equal(ring.open('server-a:api-key', sealed), 'value-a');
});

test('rotation: the new first key seals, the old key still opens; a ring without the old key does not', () => {
  const old = key('k2026-01');
  const fresh = key('k2026-11');
  const before = new KeyRing([old]);
  const sealedBefore = before.seal('id', 'kept');
  const rotated = new KeyRing([fresh, old]);
  assert.equal(rotated.sealingKeyId, 'k2026-11');
  assert.deepEqual(rotated.keyIds, ['k2026-11', 'k2026-01']);
  assert.equal(rotated.open('id', sealedBefore), 'kept');
  const sealedAfter = rotated.seal('id', 'kept');
  assert.equal(sealedKeyId(sealedAfter), 'k2026-11');
  assert.equal(before.open('id', sealedAfter), undefined, 'the old ring lacks the new key');
  assert.equal(new KeyRing([fresh]).open('id', sealedBefore), undefined, 'the old key was dropped');
});

test('each bad CREDENTIAL_KEYS value gives one line naming the variable, never the key', () => {
  const good = randomBytes(32).toString('base64');
  const short = randomBytes(16).toString('base64');
  const cases: [string, RegExp][] = [
    [`k1:${short}`, /CREDENTIAL_KEYS: the key of k1 is 16 bytes, not 32/],
    [`k1:${randomBytes(48).toString('base64url')}`, /the key of k1 is 48 bytes, not 32/],
    [`k1:${good.slice(0, 20)}!!${good.slice(22)}`, /the key of k1 is not base64 or base64url/],
    [good, /CREDENTIAL_KEYS has no key id/],
    [`K1:${good}`, /CREDENTIAL_KEYS: the key id must be 1-32 of a-z 0-9 -/],
    [`${'a'.repeat(33)}:${good}`, /the key id must be 1-32/],
    [`k1:${good},k1:${randomBytes(32).toString('base64')}`, /CREDENTIAL_KEYS entry 2 of 2: the key id k1 appears twice/],
    [`k1:${good},`, /CREDENTIAL_KEYS entry 2 of 2 is empty/],
    [`sk:${good}`, /the key id sk is the key derived from SECRET_KEY/],
  ];
  for (const [value, expected] of cases) {
    const result = loadConfig({ CREDENTIAL_KEYS: value }, mkdtempSync(join(tmpdir(), 'mcpgw-keys-')));
    assert.ok(!result.ok, value);
    assert.equal(result.errors.length, 1, result.errors.join('\n'));
    const [line] = result.errors as [string];
    assert.match(line, expected);
    assert.ok(line.startsWith('CREDENTIAL_KEYS'), line);
    // No piece of any key given (not even a quarter of it) appears in the message.
    for (const part of value.split(/[,:]/).filter((p) => p.length >= 8)) assert.ok(!line.includes(part.slice(0, 8)), `${line} echoes the key`);
  }
});

test('CREDENTIAL_KEYS accepts base64 and base64url, keeps the order, and sk alone is the key derived from SECRET_KEY', () => {
  const bytes = Buffer.from('fb'.repeat(16) + 'ff'.repeat(16), 'hex'); // base64 with + and /
  const parsed = parseCredentialKeys(`new:${bytes.toString('base64')}, old:${bytes.toString('base64url')},sk`, 'CREDENTIAL_KEYS');
  assert.ok(parsed.ok);
  assert.deepEqual(parsed.keys, [
    { id: 'new', secret: bytes.toString('base64url') },
    { id: 'old', secret: bytes.toString('base64url') },
    { id: 'sk', secret: undefined },
  ]);
  const secretKey = 'x'.repeat(40);
  const a = loadConfig({ CREDENTIAL_KEYS: `new:${bytes.toString('base64')},sk`, SECRET_KEY: secretKey }, mkdtempSync(join(tmpdir(), 'mcpgw-keys-')));
  const b = loadConfig({ REDIS_URL: 'redis://127.0.0.1:1', SECRET_KEY: secretKey }, mkdtempSync(join(tmpdir(), 'mcpgw-keys-')));
  assert.ok(a.ok && b.ok);
  assert.equal(a.config.credentialKeys.from, 'env');
  assert.deepEqual(
    a.config.credentialKeys.keys.map((k) => k.id),
    ['new', 'sk'],
  );
  assert.equal(b.config.credentialKeys.from, 'secret-key');
  assert.deepEqual(b.config.credentialKeys.keys, [a.config.credentialKeys.keys[1]], 'the same derived key on every replica');
  assert.ok(b.config.warnings.some((w) => w.includes('CREDENTIAL_KEYS is not')));
  assert.ok(!a.config.warnings.some((w) => w.includes('CREDENTIAL_KEYS')));
});

test('without CREDENTIAL_KEYS or REDIS_URL a key is generated once into STATE_DIR/credential_keys (0600) and reused', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mcpgw-keys-'));
  const first = loadConfig({}, dir);
  const second = loadConfig({}, dir);
  assert.ok(first.ok && second.ok);
  assert.equal(first.config.credentialKeys.from, 'file');
  assert.deepEqual(first.config.credentialKeys, second.config.credentialKeys);
  const [only] = first.config.credentialKeys.keys;
  assert.match(only!.id, /^k\d{8}$/);
  const file = join(dir, '.state', 'credential_keys');
  assert.equal(readFileSync(file, 'utf8').trim(), `${only!.id}:${only!.secret}`);
  assert.equal(statSync(file).mode & 0o777, 0o600);
  // The file is in CREDENTIAL_KEYS form: its content is what an operator copies there.
  const copied = loadConfig({ CREDENTIAL_KEYS: readFileSync(file, 'utf8').trim() }, mkdtempSync(join(tmpdir(), 'mcpgw-keys-')));
  assert.ok(copied.ok);
  assert.deepEqual(copied.config.credentialKeys.keys, first.config.credentialKeys.keys);
});
