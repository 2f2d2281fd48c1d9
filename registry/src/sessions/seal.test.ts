import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSealer } from './seal.ts';

test('seals and opens; the sealed text does not contain the secret', () => {
  const sealer = createSealer('k'.repeat(40));
  const sealed = sealer.seal('refresh-token-value');
  assert.ok(!sealed.includes('refresh-token-value'));
  assert.notEqual(sealer.seal('refresh-token-value'), sealed, 'a fresh IV each time');
  assert.equal(sealer.open(sealed), 'refresh-token-value');
});

test('refuses tampered text and another key', () => {
  const sealer = createSealer('k'.repeat(40));
  const sealed = sealer.seal('secret');
  const flipped = Buffer.from(sealed, 'base64url');
  flipped[flipped.length - 1] = (flipped[flipped.length - 1] ?? 0) ^ 1;
  assert.equal(sealer.open(flipped.toString('base64url')), undefined);
  assert.equal(createSealer('x'.repeat(40)).open(sealed), undefined);
  assert.equal(sealer.open('garbage'), undefined);
});
