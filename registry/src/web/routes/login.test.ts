import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { safeReturnTo } from './login.ts';

const fixture = join(import.meta.dirname, '..', '..', '..', 'test', 'fixtures', 'open-redirects.txt');
const hostile = readFileSync(fixture, 'utf8')
  .split('\n')
  .filter((line) => line.trim() !== '' && !line.startsWith('#'))
  .map((line) => JSON.parse(line) as string);

test('the open-redirect corpus has cases', () => assert.ok(hostile.length >= 20));

for (const value of hostile) {
  test(`returnTo ${JSON.stringify(value)} falls back to /`, () => assert.equal(safeReturnTo(value), '/'));
}

test('same-origin paths are kept', () => {
  for (const path of ['/', '/servers', '/?tab=servers', '/servers/currenttime#tools']) assert.equal(safeReturnTo(path), path);
});

test('non-strings and overlong values fall back to /', () => {
  for (const value of [undefined, null, 42, ['/x'], { a: 1 }, `/${'a'.repeat(600)}`]) assert.equal(safeReturnTo(value), '/');
});
