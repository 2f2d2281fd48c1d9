import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const main = join(import.meta.dirname, '..', 'main.ts');
const run = (env: Record<string, string>) =>
  spawnSync(process.execPath, [main, '--check-config'], {
    env: { PATH: process.env['PATH'] ?? '', STATE_DIR: mkdtempSync(join(tmpdir(), 'mcpgw-check-')), ...env },
    encoding: 'utf8',
    timeout: 20_000,
  });

test('a bad configuration stops the start with one line per problem, naming each variable', () => {
  const result = run({ GATEWAY_PORT: '99999', MCP_AUTH_PROVIDER_TYPE: 'okt', SECRET_KEY: 'short' });
  assert.equal(result.status, 1);
  const lines = result.stderr.trim().split('\n');
  assert.equal(lines[0], 'invalid configuration:');
  assert.equal(lines.length, 4, result.stderr);
  for (const name of ['GATEWAY_PORT', 'MCP_AUTH_PROVIDER_TYPE', 'SECRET_KEY'])
    assert.ok(
      lines.some((l) => l.includes(name)),
      name,
    );
  assert.ok(!result.stderr.includes('short'), 'the rejected secret value is not echoed');
});

test('config:check reports a broken catalog file and exits 1', () => {
  const catalog = mkdtempSync(join(tmpdir(), 'mcpgw-check-catalog-'));
  writeFileSync(join(catalog, 'bad.json'), '{ "name": "bad;name" }');
  const result = run({ CATALOG_DIR: catalog });
  assert.equal(result.status, 1);
  assert.match(result.stderr, /bad\.json: .*server name must match/);
});

test('config:check exits 0 on the embedded defaults and never prints the generated secret', () => {
  const result = run({});
  assert.equal(result.status, 0, result.stderr);
  assert.match(result.stdout, /configuration is valid/);
  assert.doesNotMatch(result.stdout + result.stderr, /[0-9a-f]{64}/, 'no generated key in the output');
});

test('a bad OAUTH_CLIENTS_FILE stops the start with one line per problem', () => {
  const file = join(mkdtempSync(join(tmpdir(), 'mcpgw-check-clients-')), 'clients.yaml');
  writeFileSync(file, 'clients:\n  - client_id: web\n    redirect_uris: ["http://evil.example/cb"]\n');
  const result = run({ OAUTH_CLIENTS_FILE: file });
  assert.equal(result.status, 1);
  assert.deepEqual(result.stderr.trim().split('\n'), [
    'invalid configuration:',
    `  OAUTH_CLIENTS_FILE ${file}: clients.0 (web): http://evil.example/cb: http redirect URIs must be loopback (127.0.0.1, [::1] or localhost); use https otherwise`,
  ]);
});
