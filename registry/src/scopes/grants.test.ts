import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { canEditServer, canReadServer, canToggleServer, grantsOnServer, hasScope, type ServerGrants } from './grants.ts';

describe('hasScope', () => {
  const ROWS: ReadonlyArray<readonly [string, readonly string[], string, boolean]> = [
    ['holds a scope exactly', ['mcp:server:gh:edit'], 'mcp:server:gh:edit', true],
    ['does not hold a scope for another server', ['mcp:server:gl:edit'], 'mcp:server:gh:edit', false],
    ['does not hold another action', ['mcp:server:gh:read'], 'mcp:server:gh:edit', false],
    ['matches * in the server position', ['mcp:server:*:edit'], 'mcp:server:gh:edit', true],
    ['matches * in a tool scope', ['mcp:server:*:tool:t:execute'], 'mcp:server:gh:tool:t:execute', true],
    ['matches * in a resources scope', ['mcp:server:*:resources:read'], 'mcp:server:gh:resources:read', true],
    ['matches * in a prompts scope', ['mcp:server:*:prompts:read'], 'mcp:server:gh:prompts:read', true],
    ['lets admin imply everything', ['mcp:registry:admin'], 'mcp:server:gh:tool:t:execute', true],
    ['lets admin imply registry read', ['mcp:registry:admin'], 'mcp:registry:read', true],
    ['lets admin imply resources:read', ['mcp:registry:admin'], 'mcp:server:gh:resources:read', true],
    ['lets registry read imply every server read', ['mcp:registry:read'], 'mcp:server:gh:read', true],
    ['does not let registry read imply execute', ['mcp:registry:read'], 'mcp:server:gh:execute', false],
    ['does not let registry read imply admin', ['mcp:registry:read'], 'mcp:registry:admin', false],
    ['does not let registry read imply resources:read', ['mcp:registry:read'], 'mcp:server:gh:resources:read', false],
    ['does not let server read imply prompts:read', ['mcp:server:gh:read'], 'mcp:server:gh:prompts:read', false],
    ['lets server execute imply each of its tools', ['mcp:server:gh:execute'], 'mcp:server:gh:tool:t:execute', true],
    ['lets server execute imply its resources:read', ['mcp:server:gh:execute'], 'mcp:server:gh:resources:read', true],
    ['lets server execute imply its prompts:read', ['mcp:server:gh:execute'], 'mcp:server:gh:prompts:read', true],
    ['lets a mapped *:execute imply resources:read', ['mcp:server:*:execute'], 'mcp:server:gh:resources:read', true],
    ["does not let another server's execute imply resources:read", ['mcp:server:gl:execute'], 'mcp:server:gh:resources:read', false],
    ['does not let resources:read imply prompts:read', ['mcp:server:gh:resources:read'], 'mcp:server:gh:prompts:read', false],
    ['does not let resources:read imply execute', ['mcp:server:gh:resources:read'], 'mcp:server:gh:execute', false],
    ['does not let prompts:read imply a tool', ['mcp:server:gh:prompts:read'], 'mcp:server:gh:tool:t:execute', false],
    ['does not let a tool scope imply server execute', ['mcp:server:gh:tool:t:execute'], 'mcp:server:gh:execute', false],
    ['does not let a tool scope imply another tool', ['mcp:server:gh:tool:t:execute'], 'mcp:server:gh:tool:u:execute', false],
    ['does not let a tool scope imply resources:read', ['mcp:server:gh:tool:t:execute'], 'mcp:server:gh:resources:read', false],
    ['does not let edit imply toggle', ['mcp:server:gh:edit'], 'mcp:server:gh:toggle', false],
    ['refuses a malformed wanted scope, even for admin', ['mcp:registry:admin'], 'mcp:server:GH:read', false],
    ['refuses a wildcard wanted scope, even when held', ['mcp:server:*:read'], 'mcp:server:*:read', false],
    ['refuses a wildcard resources scope as wanted, even when held', ['mcp:server:*:resources:read'], 'mcp:server:*:resources:read', false],
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
    [['mcp:server:github:resources:read'], { read: true, toggle: false, edit: false }],
    [['mcp:server:github:prompts:read'], { read: true, toggle: false, edit: false }],
    [['mcp:server:*:prompts:read'], { read: true, toggle: false, edit: false }],
    [['mcp:server:github:tool:create_issue:execute'], { read: true, toggle: false, edit: false }],
    [['mcp:server:*:tool:create_issue:execute'], { read: true, toggle: false, edit: false }],
    [['mcp:server:*:toggle'], { read: true, toggle: true, edit: false }],
    [
      ['mcp:server:gitlab:read', 'mcp:server:gitlab:toggle', 'mcp:server:gitlab:edit', 'mcp:server:gitlab:resources:read'],
      { read: false, toggle: false, edit: false },
    ],
    [['mcp:server:github-x:read'], { read: false, toggle: false, edit: false }],
    [['mcp:server:GitHub:read', 'mcp:server:github:resources:write', 'garbage'], { read: false, toggle: false, edit: false }],
    [[], { read: false, toggle: false, edit: false }],
  ];
  for (const [scopes, can] of ROWS) {
    it(`gives [${scopes.join(', ')}] read=${can.read} toggle=${can.toggle} edit=${can.edit} on github`, () => {
      assert.deepEqual({ read: canReadServer(scopes, 'github'), toggle: canToggleServer(scopes, 'github'), edit: canEditServer(scopes, 'github') }, can);
    });
  }
  it('refuses every action on an invalid server name, even for admin', () => {
    for (const name of ['', 'GitHub', 'a:b', '*', 'gith\u0443b']) {
      const scopes = ['mcp:registry:admin', 'mcp:server:*:read'];
      assert.deepEqual([canReadServer(scopes, name), canToggleServer(scopes, name), canEditServer(scopes, name)], [false, false, false]);
    }
  });
});

describe('grantsOnServer', () => {
  const NONE: ServerGrants = { execute: false, tools: [], resources: false, prompts: false };
  const ROWS: ReadonlyArray<readonly [string, readonly string[], ServerGrants]> = [
    ['grants nothing to no scopes', [], NONE],
    [
      'grants nothing over MCP to read, toggle, edit or registry read',
      ['mcp:registry:read', 'mcp:server:github:read', 'mcp:server:github:toggle', 'mcp:server:github:edit'],
      NONE,
    ],
    ['grants everything to admin, with no tool list', ['mcp:registry:admin'], { execute: true, tools: [], resources: true, prompts: true }],
    ['grants everything to server execute', ['mcp:server:github:execute'], { execute: true, tools: [], resources: true, prompts: true }],
    ['grants everything to a mapped *:execute', ['mcp:server:*:execute'], { execute: true, tools: [], resources: true, prompts: true }],
    [
      'lists the tools of the tool scopes on the server and on *, sorted and de-duplicated',
      ['mcp:server:github:tool:b:execute', 'mcp:server:*:tool:a:execute', 'mcp:server:github:tool:a:execute', 'mcp:server:gitlab:tool:z:execute'],
      { ...NONE, tools: ['a', 'b'] },
    ],
    [
      'lists only tools named by tool scopes, even beside execute',
      ['mcp:server:github:execute', 'mcp:server:github:tool:t:execute'],
      { execute: true, tools: ['t'], resources: true, prompts: true },
    ],
    ['grants resources to resources:read on the server or *', ['mcp:server:*:resources:read'], { ...NONE, resources: true }],
    ['grants prompts to prompts:read on the server', ['mcp:server:github:prompts:read'], { ...NONE, prompts: true }],
    [
      'ignores scopes about other servers and malformed ones',
      [
        'mcp:server:gitlab:resources:read',
        'mcp:server:gitlab:execute',
        'mcp:server:github:tool:*:execute',
        'MCP:SERVER:GITHUB:EXECUTE',
        'mcp:server:github:tool:a b:execute',
      ],
      NONE,
    ],
  ];
  for (const [what, scopes, grants] of ROWS) {
    it(what, () => {
      assert.deepEqual(grantsOnServer(scopes, 'github'), grants);
    });
  }
  it('freezes its answer, tool list included', () => {
    const grants = grantsOnServer(['mcp:server:github:tool:a:execute'], 'github');
    assert.ok(Object.isFrozen(grants) && Object.isFrozen(grants.tools));
  });
  it('throws TypeError for an invalid server name rather than format a scope from it', () => {
    assert.throws(() => grantsOnServer(['mcp:registry:admin'], 'a:b'), TypeError);
  });
});
