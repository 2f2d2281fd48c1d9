import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { GATEWAY_ERROR_CODES, toHttp, GatewayError } from './errors.ts';

const root = join(import.meta.dirname, '..', '..');

/**
 * Every place outside TypeScript's type checker that writes an error code into a response:
 * the njs step (plain JavaScript) and the nginx renderer (codes inside `return` strings).
 */
function emittingFiles(): string[] {
  const njs = readdirSync(join(root, 'nginx', 'njs'))
    .filter((f) => f.endsWith('.js'))
    .map((f) => join(root, 'nginx', 'njs', f));
  const nginx = readdirSync(join(root, 'registry', 'src', 'nginx'))
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts') && f !== 'harness.ts')
    .map((f) => join(root, 'registry', 'src', 'nginx', f));
  return [...njs, ...nginx];
}

/**
 * `error: 'CODE'`, `error: "CODE"` and `"error":"CODE"` as the files spell them, and any quoted
 * SNAKE_CASE constant (njs passes codes to helpers such as `bad(..., 'MCP_REQUEST_INVALID')`).
 */
const EMITTED = /["']?error["']?\s*:\s*["']([A-Z][A-Z0-9_]+)["']|["']([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)["']/g;

test('every error code emitted by njs or the nginx renderer is in the registry (errors.ts)', () => {
  const known = new Set<string>(GATEWAY_ERROR_CODES);
  const found = new Map<string, string>();
  for (const file of emittingFiles()) {
    for (const match of readFileSync(file, 'utf8').matchAll(EMITTED)) found.set(match[1] ?? match[2] ?? '', file);
  }
  assert.ok(found.size >= 8, `the scan found only ${found.size} codes: has the way njs writes errors changed?`);
  const unknown = [...found].filter(([code]) => !known.has(code)).map(([code, file]) => `${code} (${file.slice(root.length + 1)})`);
  assert.deepEqual(unknown, [], 'add these codes to errors.ts and docs/errors.md');
});

test('the scan finds a code that is not in the registry (it can fail)', () => {
  const sample = `return refuse(r, 400, { error: 'NO_SUCH_CODE', message: 'x' }); bad(400, null, -1, 'm', 'OTHER_CODE');`;
  const codes = [...sample.matchAll(EMITTED)].map((m) => m[1] ?? m[2]);
  assert.deepEqual(codes, ['NO_SUCH_CODE', 'OTHER_CODE']);
  assert.ok(!(GATEWAY_ERROR_CODES as readonly string[]).includes('NO_SUCH_CODE'));
});

test('toHttp shows client faults and hides server faults', () => {
  assert.deepEqual(toHttp(new GatewayError('SERVER_UNKNOWN', 'no such server')), { status: 404, body: { error: 'SERVER_UNKNOWN', message: 'no such server' } });
  assert.deepEqual(toHttp(new GatewayError('INTERNAL', 'stack detail')), { status: 500, body: { error: 'INTERNAL', message: 'internal error' } });
  assert.deepEqual(toHttp(new Error('boom')), { status: 500, body: { error: 'INTERNAL', message: 'internal error' } });
});
