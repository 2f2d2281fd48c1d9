import assert from 'node:assert/strict';
import { test } from 'node:test';
import { redirectUriProblem } from './authorization-server.ts';
import { deriveSigningKey } from './keys.ts';
import { narrowScopes, resourcesOf, serverOfResource, serverScopes } from './resources.ts';

const PUBLIC = 'https://mcp.example.com';

test('resource URLs: each server has its two MCP URLs, and nothing else names a server', () => {
  assert.deepEqual(resourcesOf(PUBLIC, 'fininfo'), ['https://mcp.example.com/api/streamable/fininfo', 'https://mcp.example.com/api/execute/fininfo/sse']);
  for (const r of resourcesOf(PUBLIC, 'fininfo')) assert.equal(serverOfResource(PUBLIC, r), 'fininfo');
  for (const other of [
    'https://mcp.example.com/api/streamable/fininfo/',
    'https://mcp.example.com/api/streamable/Fininfo',
    'https://mcp.example.com/api/execute/fininfo',
    'https://mcp.example.com/api/streamable/../fininfo',
    'https://evil.example/api/streamable/fininfo',
    'https://mcp.example.com.evil.example/api/streamable/fininfo',
    'https://mcp.example.com/api/streamable/fininfo?x=1',
    'https://mcp.example.com/',
  ])
    assert.equal(serverOfResource(PUBLIC, other), undefined, other);
});

test("serverScopes: the person's scopes on one server, spelled for it, never another server's", () => {
  assert.deepEqual(serverScopes(['mcp:server:fininfo:read', 'mcp:server:fininfo:execute', 'mcp:server:currenttime:execute'], 'fininfo'), [
    'mcp:server:fininfo:read',
    'mcp:server:fininfo:execute',
  ]);
  assert.deepEqual(serverScopes(['mcp:registry:admin'], 'fininfo'), ['mcp:server:fininfo:read', 'mcp:server:fininfo:execute']);
  assert.deepEqual(serverScopes(['mcp:server:fininfo:tool:get_stock_aggregates:execute'], 'fininfo'), ['mcp:server:fininfo:tool:get_stock_aggregates:execute']);
  assert.deepEqual(serverScopes(['mcp:server:*:tool:echo:execute', 'mcp:server:fininfo:resources:read'], 'fininfo'), [
    'mcp:server:fininfo:resources:read',
    'mcp:server:fininfo:tool:echo:execute',
  ]);
  assert.deepEqual(serverScopes(['mcp:server:currenttime:execute', 'mcp:server:fininfo:toggle'], 'fininfo'), []);
});

test('narrowScopes: a requested scope narrows, never widens; no request for this server means everything held', () => {
  const held = ['mcp:server:fininfo:read', 'mcp:server:fininfo:execute'];
  assert.deepEqual(narrowScopes(held, [], 'fininfo'), { granted: held, rejected: [] });
  assert.deepEqual(narrowScopes(held, ['openid', 'mcp', 'mcp:server:other:execute'], 'fininfo'), { granted: held, rejected: [] });
  assert.deepEqual(narrowScopes(held, ['mcp:server:fininfo:tool:x:execute'], 'fininfo'), { granted: ['mcp:server:fininfo:tool:x:execute'], rejected: [] });
  assert.deepEqual(narrowScopes(held, ['mcp:server:fininfo:execute'], 'fininfo'), { granted: ['mcp:server:fininfo:execute'], rejected: [] });
  const oneTool = ['mcp:server:fininfo:tool:x:execute'];
  // Asked for more than held: what is held under it, never more.
  assert.deepEqual(narrowScopes(oneTool, ['mcp:server:fininfo:execute'], 'fininfo'), { granted: oneTool, rejected: ['mcp:server:fininfo:execute'] });
  assert.deepEqual(narrowScopes(oneTool, ['mcp:server:fininfo:execute', 'mcp:server:fininfo:tool:x:execute'], 'fininfo'), {
    granted: oneTool,
    rejected: ['mcp:server:fininfo:execute'],
  });
  assert.deepEqual(narrowScopes(oneTool, ['mcp:server:fininfo:tool:y:execute'], 'fininfo'), { granted: [], rejected: ['mcp:server:fininfo:tool:y:execute'] });
  assert.deepEqual(narrowScopes(oneTool, ['mcp:server:fininfo:prompts:read'], 'fininfo'), { granted: [], rejected: ['mcp:server:fininfo:prompts:read'] });
});

test('redirect URIs: loopback http on any port, https anywhere, custom schemes only when allowed', () => {
  for (const ok of ['http://127.0.0.1:49152/callback', 'http://localhost/cb', 'http://[::1]:8080/cb', 'https://app.example/cb'])
    assert.equal(redirectUriProblem(ok, []), undefined, ok);
  for (const bad of ['http://evil.example/cb', 'http://127.0.0.1.evil.example/cb', 'myapp://cb', 'javascript:alert(1)', 'not a uri'])
    assert.ok(redirectUriProblem(bad, []), bad);
  assert.equal(redirectUriProblem('vscode://cb', ['vscode']), undefined);
  assert.ok(redirectUriProblem('cursor://cb', ['vscode']));
});

test('the signing key is derived from SECRET_KEY: the same after a restart, another for another key', () => {
  const a = deriveSigningKey('a-secret-key-a-secret-key-a-secret-key-0001');
  assert.deepEqual(deriveSigningKey('a-secret-key-a-secret-key-a-secret-key-0001'), a);
  const b = deriveSigningKey('b-secret-key-b-secret-key-b-secret-key-0002');
  assert.notEqual(a.x, b.x);
  assert.equal(a.kty, 'EC');
  assert.equal(a.crv, 'P-256');
});
