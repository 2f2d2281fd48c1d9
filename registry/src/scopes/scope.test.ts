import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  REGISTRY_ADMIN,
  REGISTRY_READ,
  SERVER_NAME_PATTERN,
  TOOL_NAME_PATTERN,
  formatScope,
  parseScope,
  parseScopePattern,
  promptsScope,
  resourcesScope,
  serverScope,
  toolScope,
  type Scope,
} from './scope.ts';
// Only to catch drift between scope.ts's copies of the name patterns and the catalog's.
import * as catalog from '../catalog/server-definition.ts';

const VALID: ReadonlyArray<readonly [string, Scope]> = [
  ['mcp:registry:admin', { kind: 'registry-admin' }],
  ['mcp:registry:read', { kind: 'registry-read' }],
  ['mcp:server:github:read', { kind: 'server', server: 'github', action: 'read' }],
  ['mcp:server:github:execute', { kind: 'server', server: 'github', action: 'execute' }],
  ['mcp:server:github:toggle', { kind: 'server', server: 'github', action: 'toggle' }],
  ['mcp:server:github:edit', { kind: 'server', server: 'github', action: 'edit' }],
  ['mcp:server:my-app-2:execute', { kind: 'server', server: 'my-app-2', action: 'execute' }],
  ['mcp:server:github:resources:read', { kind: 'resources', server: 'github' }],
  ['mcp:server:github:prompts:read', { kind: 'prompts', server: 'github' }],
  ['mcp:server:resources:resources:read', { kind: 'resources', server: 'resources' }],
  ['mcp:server:prompts:read', { kind: 'server', server: 'prompts', action: 'read' }],
  ['mcp:server:0:read', { kind: 'server', server: '0', action: 'read' }],
  ['mcp:server:github:tool:create_issue:execute', { kind: 'tool', server: 'github', tool: 'create_issue' }],
  ['mcp:server:gh:tool:files.read-v2_x:execute', { kind: 'tool', server: 'gh', tool: 'files.read-v2_x' }],
  ['mcp:server:gh:tool:tool:execute', { kind: 'tool', server: 'gh', tool: 'tool' }],
  ['mcp:server:gh:tool:execute:execute', { kind: 'tool', server: 'gh', tool: 'execute' }],
  ['mcp:server:x-tool-y:tool:a-tool-b:execute', { kind: 'tool', server: 'x-tool-y', tool: 'a-tool-b' }],
  [`mcp:server:${'a'.repeat(63)}:read`, { kind: 'server', server: 'a'.repeat(63), action: 'read' }],
  [`mcp:server:a:tool:${'T'.repeat(128)}:execute`, { kind: 'tool', server: 'a', tool: 'T'.repeat(128) }],
];

const INVALID: readonly string[] = [
  '',
  'mcp',
  'mcp:registry',
  'mcp:registry:write',
  'mcp:registry:admin:extra',
  'MCP:REGISTRY:ADMIN',
  'mcp:registry:admin ',
  ' mcp:registry:admin',
  'mcp:registry:admin\n',
  'xmcp:registry:read',
  'mcp:server:github',
  'mcp:server:github:delete',
  'mcp:server:github:Execute',
  'mcp:server::read',
  'mcp:server:GitHub:read',
  'mcp:server:-x:read',
  'mcp:server:a;b:read',
  'mcp:server:../x:read',
  'mcp:server:gith\u0443b:read',
  `mcp:server:${'a'.repeat(64)}:read`,
  'mcp:server:*:read',
  'mcp:server:gh*:read',
  'mcp:server:github:read:extra',
  'mcp:server:github:tool:x',
  'mcp:server:github:tool:x:read',
  'mcp:server:github:tool::execute',
  'mcp:server:github:tool:a b:execute',
  'mcp:server:github:tool:a/b:execute',
  'mcp:server:github:tool:*:execute',
  'mcp:server:github:tool:a:b:execute',
  `mcp:server:github:tool:${'T'.repeat(129)}:execute`,
  'mcp:server:github:tools:x:execute',
  'mcp:server:github:tool:x:execute:',
  'mcp:server:github:resources',
  'mcp:server:github:prompts',
  'mcp:server:github:resources:write',
  'mcp:server:github:resources:execute',
  'mcp:server:github:prompts:get',
  'mcp:server:github:resource:read',
  'mcp:server:github:prompt:read',
  'mcp:server:github:Resources:read',
  'mcp:server:github:resources:READ',
  'mcp:server:github:resources:read:extra',
  'mcp:server:github:resources:read ',
  'mcp:server:github:tools:read',
  'mcp:server:github:resources:*',
  'mcp:server:*:resources:read',
  'mcp:server:*:prompts:read',
];

describe('parseScope', () => {
  for (const [text, scope] of VALID) {
    it(`parses ${JSON.stringify(text)} and formats it back unchanged`, () => {
      assert.deepEqual(parseScope(text), scope);
      assert.equal(formatScope(scope), text);
    });
  }
  for (const text of INVALID) {
    it(`refuses ${JSON.stringify(text)} as malformed`, () => {
      assert.equal(parseScope(text), undefined);
    });
  }
  it('refuses a value that is not a string', () => {
    assert.equal(parseScope(42 as unknown as string), undefined);
  });
});

describe('parseScopePattern', () => {
  const PATTERNS: ReadonlyArray<readonly [string, Scope]> = [
    ['mcp:server:*:read', { kind: 'server', server: '*', action: 'read' }],
    ['mcp:server:*:execute', { kind: 'server', server: '*', action: 'execute' }],
    ['mcp:server:*:tool:search:execute', { kind: 'tool', server: '*', tool: 'search' }],
    ['mcp:server:*:resources:read', { kind: 'resources', server: '*' }],
    ['mcp:server:*:prompts:read', { kind: 'prompts', server: '*' }],
    ['mcp:registry:read', { kind: 'registry-read' }],
  ];
  for (const [text, scope] of PATTERNS) {
    it(`accepts ${JSON.stringify(text)} with * only in the server position`, () => {
      assert.deepEqual(parseScopePattern(text), scope);
      assert.equal(formatScope(scope), text);
    });
  }
  for (const text of [
    'mcp:server:gh*:resources:read',
    'mcp:server:gh:*:read',
    'mcp:server:gh*:read',
    'mcp:server:**:read',
    'mcp:server:*',
    'mcp:server:gh:tool:*:execute',
    'mcp:*:admin',
    'mcp:server:gh:*',
  ]) {
    it(`refuses ${JSON.stringify(text)}: * anywhere else, or mixed with a name`, () => {
      assert.equal(parseScopePattern(text), undefined);
    });
  }
});

describe('scope helpers', () => {
  it('exposes the registry scopes as constants', () => {
    assert.equal(REGISTRY_ADMIN, 'mcp:registry:admin');
    assert.equal(REGISTRY_READ, 'mcp:registry:read');
  });
  it('builds server, resources, prompts and tool scopes', () => {
    assert.equal(serverScope('github', 'toggle'), 'mcp:server:github:toggle');
    assert.equal(resourcesScope('github'), 'mcp:server:github:resources:read');
    assert.equal(promptsScope('github'), 'mcp:server:github:prompts:read');
    assert.equal(resourcesScope('*'), 'mcp:server:*:resources:read');
    assert.equal(toolScope('github', 'create_issue'), 'mcp:server:github:tool:create_issue:execute');
  });
  const MISUSE: ReadonlyArray<readonly [string, () => string]> = [
    ['a server name holding ":"', () => serverScope('a:b', 'read')],
    ['an upper-case server name', () => serverScope('GitHub', 'read')],
    ['an empty server name', () => serverScope('', 'read')],
    ['a resources scope for a server name holding ":"', () => resourcesScope('a:b')],
    ['a prompts scope for an upper-case server name', () => promptsScope('GitHub')],
    ['a tool name holding ":"', () => toolScope('gh', 'a:execute')],
    ['an empty tool name', () => toolScope('gh', '')],
    ['an unknown action', () => serverScope('gh', 'delete' as 'read')],
  ];
  for (const [what, build] of MISUSE) {
    it(`throws TypeError rather than format a scope from ${what}`, () => {
      assert.throws(build, TypeError);
    });
  }
  it('keeps its copies of the name patterns identical to the catalog ones', () => {
    assert.equal(SERVER_NAME_PATTERN.source, catalog.SERVER_NAME_PATTERN.source);
    assert.equal(SERVER_NAME_PATTERN.flags, catalog.SERVER_NAME_PATTERN.flags);
    assert.equal(TOOL_NAME_PATTERN.source, catalog.TOOL_NAME_PATTERN.source);
    assert.equal(TOOL_NAME_PATTERN.flags, catalog.TOOL_NAME_PATTERN.flags);
  });
});
