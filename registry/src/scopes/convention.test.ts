import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { conventionScopes, scopesForGroups, validateMappedScope, type GroupMapping } from './convention.ts';

const ALL_SERVER = (s: string) => [`mcp:server:${s}:edit`, `mcp:server:${s}:execute`, `mcp:server:${s}:read`, `mcp:server:${s}:toggle`];

/** Every row of the convention, as DESIGN.md states it. */
const CONVENTION: ReadonlyArray<readonly [string, readonly string[]]> = [
  ['mcp-admin', ['mcp:registry:admin']],
  ['mcp-user', ['mcp:registry:read']],
  ['mcp-server-github', ['mcp:server:github:execute', 'mcp:server:github:read']],
  ['mcp-server-github-admin', ALL_SERVER('github')],
  ['mcp-server-github-toggle', ['mcp:server:github:toggle']],
  ['mcp-server-github-edit', ['mcp:server:github:edit']],
  ['mcp-server-github-resources', ['mcp:server:github:resources:read']],
  ['mcp-server-github-prompts', ['mcp:server:github:prompts:read']],
  ['mcp-server-github-tool-create_issue', ['mcp:server:github:tool:create_issue:execute']],
];

/** Server names may hold `-`: suffix first, then the first `-tool-`, else the whole rest. */
const AMBIGUITY: ReadonlyArray<readonly [string, string, readonly string[]]> = [
  ['a hyphenated server name', 'mcp-server-my-app', ['mcp:server:my-app:execute', 'mcp:server:my-app:read']],
  ['a role suffix after a hyphenated name', 'mcp-server-my-app-admin', ALL_SERVER('my-app')],
  ['only the last suffix as the role', 'mcp-server-x-edit-toggle', ['mcp:server:x-edit:toggle']],
  ['-resources after a hyphenated name', 'mcp-server-my-docs-resources', ['mcp:server:my-docs:resources:read']],
  ['only the last suffix as the role (prompts after resources)', 'mcp-server-x-resources-prompts', ['mcp:server:x-resources:prompts:read']],
  ['-prompts before -tool- (so a tool ending in -prompts needs the mapping)', 'mcp-server-gh-tool-export-prompts', ['mcp:server:gh-tool-export:prompts:read']],
  ['a server named resources (no leading -)', 'mcp-server-resources', ['mcp:server:resources:execute', 'mcp:server:resources:read']],
  ['a server named prompts (no leading -)', 'mcp-server-prompts', ['mcp:server:prompts:execute', 'mcp:server:prompts:read']],
  ['-resource (singular) as part of the server name', 'mcp-server-x-resource', ['mcp:server:x-resource:execute', 'mcp:server:x-resource:read']],
  ['a role suffix before -tool- (so a tool ending in -admin needs the mapping)', 'mcp-server-x-tool-y-admin', ALL_SERVER('x-tool-y')],
  ['the first -tool- as the split', 'mcp-server-gh-tool-list-tool-x', ['mcp:server:gh:tool:list-tool-x:execute']],
  ['a tool name with -, _ and .', 'mcp-server-gh-tool-files.read-v2_x', ['mcp:server:gh:tool:files.read-v2_x:execute']],
  ['a server containing -tool- as server + tool (needs the mapping)', 'mcp-server-my-tool-box', ['mcp:server:my:tool:box:execute']],
  ['a server named admin (no leading -)', 'mcp-server-admin', ['mcp:server:admin:execute', 'mcp:server:admin:read']],
  ['a server named tool-x (no leading -)', 'mcp-server-tool-x', ['mcp:server:tool-x:execute', 'mcp:server:tool-x:read']],
  ['a 63-character server name', `mcp-server-${'a'.repeat(63)}`, [`mcp:server:${'a'.repeat(63)}:execute`, `mcp:server:${'a'.repeat(63)}:read`]],
  ['a 128-character tool name', `mcp-server-a-tool-${'T'.repeat(128)}`, [`mcp:server:a:tool:${'T'.repeat(128)}:execute`]],
];

/** One JSON string literal per line; `#` lines and blank lines are comments (see the file). */
function readHostileGroupNames(): string[] {
  const url = new URL('../../test/fixtures/hostile-group-names.txt', import.meta.url);
  return readFileSync(url, 'utf8')
    .split('\n')
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => {
      const name: unknown = JSON.parse(line);
      assert.equal(typeof name, 'string', `fixture line is not a JSON string: ${line}`);
      return name as string;
    });
}

describe('scopesForGroups: the convention', () => {
  for (const [group, scopes] of CONVENTION) {
    it(`grants ${scopes.join(', ')} to group ${group}`, () => {
      assert.deepEqual(scopesForGroups([group]), [...scopes].sort());
    });
  }
  it('adds the groups together, sorted and de-duplicated', () => {
    const scopes = scopesForGroups(['mcp-server-b', 'mcp-user', 'mcp-server-b-toggle', 'mcp-server-b', 'mcp-server-a-edit']);
    assert.deepEqual(scopes, ['mcp:registry:read', 'mcp:server:a:edit', 'mcp:server:b:execute', 'mcp:server:b:read', 'mcp:server:b:toggle']);
  });
  it('grants nothing to no groups or to groups outside the convention', () => {
    assert.deepEqual(scopesForGroups([]), []);
    assert.deepEqual(scopesForGroups(['engineering', 'admins', 'mcp-users']), []);
  });
  it('grants nothing to a resources or prompts group whose server name is invalid', () => {
    const groups = [
      'mcp-server--resources',
      'mcp-server-GH-prompts',
      'mcp-server-a;b-resources',
      'mcp-server-*-prompts',
      'mcp-server-gh-RESOURCES',
      'mcp-server-gh-resources ',
      'mcp-server-gh-prompts\n',
    ];
    assert.deepEqual(scopesForGroups(groups), []);
  });
  it('does not give -admin separate resources or prompts scopes: its execute covers them', () => {
    assert.deepEqual(
      scopesForGroups(['mcp-server-gh-admin']).filter((s) => /resources|prompts/.test(s)),
      [],
    );
  });
  it('ignores members of the groups claim that are not strings', () => {
    const groups = [null, 7, { toString: () => 'mcp-admin' }, 'mcp-user'] as unknown as string[];
    assert.deepEqual(scopesForGroups(groups), ['mcp:registry:read']);
  });
});

describe('scopesForGroups: the ambiguity rule', () => {
  for (const [what, group, scopes] of AMBIGUITY) {
    it(`reads ${group} with ${what}`, () => {
      assert.deepEqual(conventionScopes(group).sort(), [...scopes].sort());
    });
  }
});

describe('scopesForGroups: hostile group names', () => {
  const names = readHostileGroupNames();
  it('reads a non-trivial corpus', () => {
    assert.ok(names.length >= 50, `only ${names.length} names`);
  });
  for (const name of names) {
    it(`grants nothing to ${JSON.stringify(name).slice(0, 80)}`, () => {
      assert.deepEqual(scopesForGroups([name]), []);
      assert.deepEqual(scopesForGroups([name], {}), []);
      assert.deepEqual(scopesForGroups([name], { 'mcp-ops': ['mcp:registry:admin'] }), []);
    });
  }
  it('grants nothing to a 100,000-character group name', () => {
    assert.deepEqual(scopesForGroups([`mcp-server-${'a-tool-'.repeat(15_000)}`]), []);
    assert.deepEqual(scopesForGroups([`mcp-server-${'a'.repeat(100_000)}-admin`]), []);
  });
});

describe('scopesForGroups: the mapping file', () => {
  const mapping: GroupMapping = {
    'GitHub Users': ['mcp:server:github:read', 'mcp:server:github:execute'],
    'All Readers': ['mcp:server:*:read'],
    Ops: ['mcp:registry:admin', 'mcp:server:*:tool:health:execute'],
    Sloppy: ['mcp:server:GitHub:read', 'mcp:server:gh*:read', 'not a scope', 'mcp:server:ok:read', 42 as unknown as string],
    NotAList: 'mcp:registry:admin' as unknown as readonly string[],
    'mcp-user': ['mcp:server:docs:read'],
  };
  const ROWS: ReadonlyArray<readonly [string, readonly string[], readonly string[]]> = [
    ['maps an IdP group that cannot follow the convention', ['GitHub Users'], ['mcp:server:github:execute', 'mcp:server:github:read']],
    ['keeps * in the server position as-is', ['All Readers'], ['mcp:server:*:read']],
    ['keeps a wildcard tool scope as-is', ['Ops'], ['mcp:registry:admin', 'mcp:server:*:tool:health:execute']],
    ['skips invalid entries and keeps the valid ones', ['Sloppy'], ['mcp:server:ok:read']],
    ['ignores an entry that is not a list', ['NotAList'], []],
    ['adds to the convention for the same group', ['mcp-user'], ['mcp:registry:read', 'mcp:server:docs:read']],
    ['matches group names exactly, case-sensitively', ['github users', 'Ops '], []],
    ['never reads inherited keys such as constructor', ['constructor', '__proto__', 'toString'], []],
  ];
  for (const [what, groups, scopes] of ROWS) {
    it(what, () => {
      assert.deepEqual(scopesForGroups(groups, mapping), [...scopes].sort());
    });
  }
  it('honours a mapping for __proto__ only when the file defines it as its own key', () => {
    const parsed = JSON.parse('{"__proto__": ["mcp:registry:read"]}') as GroupMapping;
    assert.deepEqual(scopesForGroups(['__proto__'], parsed), ['mcp:registry:read']);
  });
});

describe('validateMappedScope', () => {
  const ROWS: ReadonlyArray<readonly [string, boolean]> = [
    ['mcp:registry:admin', true],
    ['mcp:server:github:execute', true],
    ['mcp:server:*:read', true],
    ['mcp:server:*:tool:search:execute', true],
    ['mcp:server:*:resources:read', true],
    ['mcp:server:docs:prompts:read', true],
    ['mcp:server:docs:resources:write', false],
    ['mcp:server:docs:prompts', false],
    ['mcp:server:github:tool:a.b-c_d:execute', true],
    ['mcp:server:gh*:read', false],
    ['mcp:server:github:tool:*:execute', false],
    ['mcp:server:GitHub:read', false],
    ['mcp:server:github:read ', false],
    ['mcp:server:github:delete', false],
    ['', false],
  ];
  for (const [scope, ok] of ROWS) {
    it(`${ok ? 'accepts' : 'rejects'} ${JSON.stringify(scope)}`, () => {
      assert.equal(validateMappedScope(scope), ok);
    });
  }
});
