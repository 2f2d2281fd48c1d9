import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from './load.ts';

const root = () => mkdtempSync(join(tmpdir(), 'mcpgw-config-'));

test('applies the embedded defaults when nothing is set', () => {
  const result = loadConfig({}, root());
  assert.ok(result.ok);
  const c = result.config;
  assert.equal(c.gateway.port, 8080);
  assert.equal(c.gateway.host, '127.0.0.1');
  assert.equal(c.gateway.publicUrl, 'http://localhost:8080');
  assert.equal(c.providerType, 'dev');
  assert.equal(c.authEnabled, true);
  assert.equal(c.cookieSecure, false);
  assert.ok(Object.isFrozen(c) && Object.isFrozen(c.gateway));
});

test('generates SECRET_KEY once into the state folder with mode 0600 and reuses it', () => {
  const dir = root();
  const first = loadConfig({}, dir);
  const second = loadConfig({}, dir);
  assert.ok(first.ok && second.ok);
  assert.equal(first.config.secretKey, second.config.secretKey);
  assert.ok(first.config.secretKey.length >= 32);
  const file = join(dir, '.state', 'secret_key');
  assert.equal(readFileSync(file, 'utf8').trim(), first.config.secretKey);
  assert.equal(statSync(file).mode & 0o777, 0o600);
  assert.ok(first.config.warnings.some((w) => w.includes('SECRET_KEY')));
});

test('reports every bad value at once, one line each naming the variable', () => {
  const result = loadConfig(
    {
      GATEWAY_PORT: 'eighty',
      MCP_AUTH_ENABLED: 'maybe',
      MCP_AUTH_PROVIDER_TYPE: 'okt',
      SECRET_KEY: 'short',
      LOGGING_LEVEL: 'LOUD',
      SESSION_TTL_SECONDS: '5',
      GATEWAY_PUBLIC_URL: 'ftp://x',
    },
    root(),
  );
  assert.equal(result.ok, false);
  assert.ok(!result.ok);
  const names = ['GATEWAY_PORT', 'MCP_AUTH_ENABLED', 'MCP_AUTH_PROVIDER_TYPE', 'SECRET_KEY', 'LOGGING_LEVEL', 'SESSION_TTL_SECONDS', 'GATEWAY_PUBLIC_URL'];
  assert.equal(result.errors.length, names.length, result.errors.join('\n'));
  for (const name of names) assert.ok(result.errors.some((e) => e.includes(name)), `no line names ${name}:\n${result.errors.join('\n')}`);
  assert.ok(result.errors.some((e) => e.includes('"okt" is not one of')));
});

test('accepts the Python gateway spellings (LOGGING_LEVEL=INFO, MCP_AUTH_ENABLED=False)', () => {
  const result = loadConfig({ LOGGING_LEVEL: 'INFO', MCP_AUTH_ENABLED: 'False' }, root());
  assert.ok(result.ok);
  assert.equal(result.config.logLevel, 'info');
  assert.equal(result.config.authEnabled, false);
});

test('warns about unknown MCP_AUTH_* names and makes cookies Secure behind https', () => {
  const result = loadConfig({ MCP_AUTH_PROVIDR_TYPE: 'dev', GATEWAY_PUBLIC_URL: 'https://mcp.example.com/' }, root());
  assert.ok(result.ok);
  assert.ok(result.config.warnings.some((w) => w.startsWith('MCP_AUTH_PROVIDR_TYPE')));
  assert.equal(result.config.cookieSecure, true);
  assert.equal(result.config.gateway.publicUrl, 'https://mcp.example.com');
});
