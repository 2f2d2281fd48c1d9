import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseScopeMapping } from './mapping-file.ts';

test('reads groups and clients from YAML', () => {
  const result = parseScopeMapping(`
groups:
  GitHub Users: [mcp:server:github:execute]
  All Readers: ["mcp:server:*:read"]
clients:
  ci-bot: [mcp:server:fininfo:tool:get_stock_aggregates:execute]
`);
  assert.ok(result.ok);
  assert.deepEqual(result.mapping.groups['GitHub Users'], ['mcp:server:github:execute']);
  assert.deepEqual(result.mapping.clients['ci-bot'], ['mcp:server:fininfo:tool:get_stock_aggregates:execute']);
  assert.equal(result.mapping.groups['constructor'], undefined, 'no inherited properties');
});

test('reads the same from JSON', () => {
  const result = parseScopeMapping('{"groups":{"Ops":["mcp:registry:admin"]}}');
  assert.ok(result.ok);
  assert.deepEqual(result.mapping.groups['Ops'], ['mcp:registry:admin']);
  assert.equal(Object.keys(result.mapping.clients).length, 0);
});

test('refuses the whole file on any bad entry, naming each place', () => {
  const result = parseScopeMapping(`
groups:
  A: [mcp:server:gh*:read, "mcp:server:x:tool:*:execute"]
clinets:
  x: []
`);
  assert.equal(result.ok, false);
  assert.ok(!result.ok);
  assert.ok(
    result.errors.some((e) => e.startsWith('groups.A.0') && e.includes('gh*')),
    result.errors.join('\n'),
  );
  assert.ok(result.errors.some((e) => e.startsWith('groups.A.1')));
  assert.ok(
    result.errors.some((e) => /clinets/.test(e)),
    'unknown top-level keys are errors',
  );
});

test('refuses duplicate keys and YAML aliases, and non-YAML text', () => {
  assert.equal(parseScopeMapping('groups:\n  A: [mcp:registry:read]\n  A: [mcp:registry:admin]\n').ok, false);
  assert.equal(parseScopeMapping('x: &a [1]\ngroups:\n  B: *a\n').ok, false);
  assert.equal(parseScopeMapping('groups: [').ok, false);
});

test('keys that look like numbers stay the group names they are', () => {
  const result = parseScopeMapping('groups:\n  0123: [mcp:registry:read]\n  1e5: [mcp:registry:read]\n  true: [mcp:registry:read]\n');
  assert.ok(result.ok, JSON.stringify(result));
  assert.deepEqual(Object.keys(result.mapping.groups).sort(), ['0123', '1e5', 'true']);
});
