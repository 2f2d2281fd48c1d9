import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { GATEWAY_ERROR_CODES } from '../errors.ts';
import { renderConfigurationDoc } from './docs.ts';
import { ENV_VARS, envSchema } from './schema.ts';

const root = join(import.meta.dirname, '..', '..', '..');

test('docs/configuration.md is what the schema generates (run npm run docs:config after a change)', () => {
  assert.equal(readFileSync(join(root, 'docs', 'configuration.md'), 'utf8'), renderConfigurationDoc());
});

test('every documented variable is in the schema and every schema key is documented', () => {
  assert.deepEqual(ENV_VARS.map((v) => v.name).sort(), Object.keys(envSchema.shape).sort());
});

test('docs/errors.md lists every GatewayErrorCode', () => {
  const doc = readFileSync(join(root, 'docs', 'errors.md'), 'utf8');
  for (const code of GATEWAY_ERROR_CODES) assert.ok(doc.includes(`\`${code}\``), `${code} is missing from docs/errors.md`);
});
