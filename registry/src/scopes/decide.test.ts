import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { canEditServer, canReadServer, canToggleServer, decideAccess, hasScope, type AccessInput, type Decision } from './decide.ts';

const GH = { name: 'github', enabled: true };
const OFF = { name: 'github', enabled: false };
const ALLOW: Decision = { allow: true };
const MISSING: Decision = { allow: false, status: 403, reason: 'scope-missing', missingScope: 'mcp:server:github:execute' };
const UNKNOWN: Decision = { allow: false, status: 404, reason: 'server-unknown' };
const DISABLED: Decision = { allow: false, status: 503, reason: 'server-disabled' };

const OUTCOMES: ReadonlyArray<readonly [string, AccessInput, Decision]> = [
  ['allows a user holding mcp:server:<name>:execute', { scopes: ['mcp:server:github:execute'], server: GH }, ALLOW],
  ['allows a registry admin without any server scope', { scopes: ['mcp:registry:admin'], server: GH }, ALLOW],
  ['allows a mapped mcp:server:*:execute wildcard', { scopes: ['mcp:server:*:execute'], server: GH }, ALLOW],
  ['refuses a user without the execute scope with 403 naming mcp:server:<name>:execute', { scopes: [], server: GH }, MISSING],
  ['refuses read, toggle and edit without execute with 403', { scopes: ['mcp:server:github:read', 'mcp:server:github:toggle', 'mcp:server:github:edit'], server: GH }, MISSING],
  ['refuses registry read with 403 (it sees servers, it does not execute them)', { scopes: ['mcp:registry:read'], server: GH }, MISSING],
  ['refuses another server\'s execute scope with 403', { scopes: ['mcp:server:gitlab:execute'], server: GH }, MISSING],
  ['refuses a session holding only tool scopes with 403 until the tool rule lands', { scopes: ['mcp:server:github:tool:create_issue:execute'], server: GH, method: 'tools/call', tool: 'create_issue' }, MISSING],
  ['refuses a scope that differs only in case or whitespace with 403', { scopes: ['MCP:SERVER:GITHUB:EXECUTE', 'mcp:server:github:execute ', 'mcp:registry:admin\n'], server: GH }, MISSING],
  ['refuses a wildcard for another action with 403', { scopes: ['mcp:server:*:read', 'mcp:server:*:tool:x:execute'], server: GH }, MISSING],
  ['answers 404 server-unknown for a server not in the catalog, even to an admin', { scopes: ['mcp:registry:admin'], server: undefined }, UNKNOWN],
  ['answers 404 server-unknown for a server whose name is not a valid name', { scopes: ['mcp:registry:admin'], server: { name: 'a;b', enabled: true } }, UNKNOWN],
  ['answers 503 server-disabled for a disabled server, even to an admin', { scopes: ['mcp:registry:admin'], server: OFF }, DISABLED],
  ['answers 503 server-disabled before the scope check for a user without scopes', { scopes: [], server: OFF }, DISABLED],
];

describe('decideAccess', () => {
  for (const [name, input, decision] of OUTCOMES) {
    it(name, () => {
      assert.deepEqual(decideAccess(input), decision);
    });
  }
  it('ignores method and tool for now: the server rule alone decides', () => {
    const input = { scopes: ['mcp:server:github:execute'], server: GH };
    for (const extra of [{}, { method: 'initialize' }, { method: 'tools/call', tool: 'anything' }]) {
      assert.deepEqual(decideAccess({ ...input, ...extra }), ALLOW);
    }
  });
});

describe('hasScope', () => {
  const ROWS: ReadonlyArray<readonly [string, readonly string[], string, boolean]> = [
    ['holds a scope exactly', ['mcp:server:gh:edit'], 'mcp:server:gh:edit', true],
    ['does not hold a scope for another server', ['mcp:server:gl:edit'], 'mcp:server:gh:edit', false],
    ['does not hold another action', ['mcp:server:gh:read'], 'mcp:server:gh:edit', false],
    ['matches * in the server position', ['mcp:server:*:edit'], 'mcp:server:gh:edit', true],
    ['matches * in a tool scope', ['mcp:server:*:tool:t:execute'], 'mcp:server:gh:tool:t:execute', true],
    ['lets admin imply everything', ['mcp:registry:admin'], 'mcp:server:gh:tool:t:execute', true],
    ['lets admin imply registry read', ['mcp:registry:admin'], 'mcp:registry:read', true],
    ['lets registry read imply every server read', ['mcp:registry:read'], 'mcp:server:gh:read', true],
    ['does not let registry read imply execute', ['mcp:registry:read'], 'mcp:server:gh:execute', false],
    ['does not let registry read imply admin', ['mcp:registry:read'], 'mcp:registry:admin', false],
    ['lets server execute imply each of its tools', ['mcp:server:gh:execute'], 'mcp:server:gh:tool:t:execute', true],
    ['does not let a tool scope imply server execute', ['mcp:server:gh:tool:t:execute'], 'mcp:server:gh:execute', false],
    ['does not let a tool scope imply another tool', ['mcp:server:gh:tool:t:execute'], 'mcp:server:gh:tool:u:execute', false],
    ['does not let edit imply toggle', ['mcp:server:gh:edit'], 'mcp:server:gh:toggle', false],
    ['refuses a malformed wanted scope, even for admin', ['mcp:registry:admin'], 'mcp:server:GH:read', false],
    ['refuses a wildcard wanted scope, even when held', ['mcp:server:*:read'], 'mcp:server:*:read', false],
  ];
  for (const [what, scopes, wanted, expected] of ROWS) {
    it(what, () => {
      assert.equal(hasScope(scopes, wanted), expected);
    });
  }
});

describe('canReadServer, canToggleServer, canEditServer', () => {
  type Row = readonly [readonly string[], { read: boolean; toggle: boolean; edit: boolean }];
  const ROWS: ReadonlyArray<Row> = [
    [['mcp:registry:admin'], { read: true, toggle: true, edit: true }],
    [['mcp:registry:read'], { read: true, toggle: false, edit: false }],
    [['mcp:server:github:read'], { read: true, toggle: false, edit: false }],
    [['mcp:server:github:execute'], { read: true, toggle: false, edit: false }],
    [['mcp:server:github:toggle'], { read: true, toggle: true, edit: false }],
    [['mcp:server:github:edit'], { read: true, toggle: false, edit: true }],
    [['mcp:server:github:tool:create_issue:execute'], { read: true, toggle: false, edit: false }],
    [['mcp:server:*:tool:create_issue:execute'], { read: true, toggle: false, edit: false }],
    [['mcp:server:*:toggle'], { read: true, toggle: true, edit: false }],
    [['mcp:server:gitlab:read', 'mcp:server:gitlab:toggle', 'mcp:server:gitlab:edit'], { read: false, toggle: false, edit: false }],
    [['mcp:server:github-x:read'], { read: false, toggle: false, edit: false }],
    [['mcp:server:GitHub:read', 'garbage'], { read: false, toggle: false, edit: false }],
    [[], { read: false, toggle: false, edit: false }],
  ];
  for (const [scopes, can] of ROWS) {
    it(`gives [${scopes.join(', ')}] read=${can.read} toggle=${can.toggle} edit=${can.edit} on github`, () => {
      assert.deepEqual(
        { read: canReadServer(scopes, 'github'), toggle: canToggleServer(scopes, 'github'), edit: canEditServer(scopes, 'github') },
        can,
      );
    });
  }
  it('refuses every action on an invalid server name, even for admin', () => {
    for (const name of ['', 'GitHub', 'a:b', '*', 'gith\u0443b']) {
      const scopes = ['mcp:registry:admin', 'mcp:server:*:read'];
      assert.deepEqual([canReadServer(scopes, name), canToggleServer(scopes, name), canEditServer(scopes, name)], [false, false, false]);
    }
  });
});
