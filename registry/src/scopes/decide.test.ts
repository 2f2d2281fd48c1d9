import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { decideAccess, type Decision, type ListenKind, type McpMessage } from './decide.ts';

const GH = { name: 'github', enabled: true };
const OFF = { name: 'github', enabled: false };

const call = (tool?: string): McpMessage => (tool === undefined ? { kind: 'request', method: 'tools/call' } : { kind: 'request', method: 'tools/call', tool });
const request = (method: string): McpMessage => ({ kind: 'request', method });
const notification = (method: string): McpMessage => ({ kind: 'notification', method });
const listen = (...families: ListenKind[]): McpMessage => ({ kind: 'request', method: 'subscriptions/listen', listen: families });
const RESPONSE: McpMessage = { kind: 'response' };
const methodOf = (message: McpMessage): string | undefined => (message.kind === 'response' ? undefined : message.method);

const EXECUTE = 'mcp:server:github:execute';
const ISSUE = 'mcp:server:github:tool:create_issue:execute';
const RESOURCES = 'mcp:server:github:resources:read';
const PROMPTS = 'mcp:server:github:prompts:read';
const EVERY_NARROW_SCOPE = [ISSUE, RESOURCES, PROMPTS];

const ALLOW_ALL: Decision = { allow: true };
const allowed = (...toolFilter: string[]): Decision => ({ allow: true, toolFilter });
const refused = (missingScope: string, method?: string): Decision => ({
  allow: false,
  status: 403,
  reason: 'scope-missing',
  missingScope,
  ...(method === undefined ? {} : { method }),
});
const UNKNOWN: Decision = { allow: false, status: 404, reason: 'server-unknown' };
const DISABLED: Decision = { allow: false, status: 503, reason: 'server-disabled' };

/** [scopes, messages, expected decision], to server github unless a row says otherwise. */
type Case = readonly [readonly string[], readonly McpMessage[], Decision];
type Row = {
  readonly row: number;
  readonly behaviour: string;
  /** The catalog entry; github, enabled, when the key is absent. */
  readonly server?: { readonly name: string; readonly enabled: boolean } | undefined;
  readonly cases: readonly Case[];
};

/** One entry per row of the decision table in docs/authorization.md, same numbers. */
const TABLE: readonly Row[] = [
  {
    row: 1,
    behaviour: 'answers 404 server-unknown for a server not in the catalog, even to an admin',
    server: undefined,
    cases: [
      [['mcp:registry:admin'], [request('initialize')], UNKNOWN],
      [[], [], UNKNOWN],
    ],
  },
  {
    row: 2,
    behaviour: 'answers 503 server-disabled for a disabled server before any scope check, even to an admin',
    server: OFF,
    cases: [
      [['mcp:registry:admin'], [call('create_issue')], DISABLED],
      [[EXECUTE], [], DISABLED],
      [[], [request('tools/list')], DISABLED],
    ],
  },
  {
    row: 3,
    behaviour: 'allows everything with no toolFilter to admin, server execute or a mapped *:execute',
    cases: [
      [['mcp:registry:admin'], [request('initialize'), call('anything'), request('completion/complete'), request('tools/CALL')], ALLOW_ALL],
      [[EXECUTE], [call(''), request('sampling/createMessage'), request('resources/read')], ALLOW_ALL],
      [['mcp:server:*:execute', ISSUE], [request('tools/list')], ALLOW_ALL],
      [[EXECUTE], [], ALLOW_ALL],
    ],
  },
  {
    row: 4,
    behaviour: 'allows a request without a body (GET stream, DELETE) with server access, else 403 naming execute',
    cases: [
      [[ISSUE], [], allowed('create_issue')],
      [[RESOURCES], [], allowed()],
      [['mcp:server:*:prompts:read'], [], allowed()],
      [[], [], refused(EXECUTE)],
      [['mcp:server:github:read', 'mcp:server:github:toggle', 'mcp:server:github:edit', 'mcp:registry:read'], [], refused(EXECUTE)],
    ],
  },
  {
    row: 5,
    behaviour: 'allows initialize, server/discover, ping, logging/setLevel, notifications/* and responses with server access, else 403 naming execute',
    cases: [
      ...[
        request('initialize'),
        request('server/discover'),
        request('ping'),
        request('logging/setLevel'),
        notification('notifications/initialized'),
        notification('notifications/cancelled'),
        RESPONSE,
      ].flatMap((message): Case[] => [
        [[ISSUE], [message], allowed('create_issue')],
        [[RESOURCES], [message], allowed()],
        [[PROMPTS], [message], allowed()],
        [['mcp:server:github:read'], [message], refused(EXECUTE, methodOf(message))],
      ]),
    ],
  },
  {
    row: 6,
    behaviour: 'allows tools/list with at least one tool scope on the server, else 403 naming execute',
    cases: [
      [[ISSUE], [request('tools/list')], allowed('create_issue')],
      [['mcp:server:*:tool:search:execute'], [request('tools/list')], allowed('search')],
      [[RESOURCES, PROMPTS], [request('tools/list')], refused(EXECUTE, 'tools/list')],
      [['mcp:server:gitlab:tool:create_issue:execute'], [request('tools/list')], refused(EXECUTE, 'tools/list')],
    ],
  },
  {
    row: 7,
    behaviour: "allows tools/call of tool T only with T's tool scope (or its * form), else 403 naming that scope",
    cases: [
      [[ISSUE], [call('create_issue')], allowed('create_issue')],
      [['mcp:server:*:tool:create_issue:execute'], [call('create_issue')], allowed('create_issue')],
      [[ISSUE], [call('delete_repo')], refused('mcp:server:github:tool:delete_repo:execute', 'tools/call')],
      [[RESOURCES, PROMPTS], [call('create_issue')], refused(ISSUE, 'tools/call')],
      [['mcp:server:gitlab:tool:create_issue:execute'], [call('create_issue')], refused(ISSUE, 'tools/call')],
      [['mcp:server:github:tool:Create_Issue:execute'], [call('create_issue')], refused(ISSUE, 'tools/call')],
    ],
  },
  {
    row: 8,
    behaviour: 'refuses tools/call with a missing, empty or invalid tool name with 403 naming execute',
    cases: [
      [EVERY_NARROW_SCOPE, [call()], refused(EXECUTE, 'tools/call')],
      [EVERY_NARROW_SCOPE, [call('')], refused(EXECUTE, 'tools/call')],
      [EVERY_NARROW_SCOPE, [call('create issue')], refused(EXECUTE, 'tools/call')],
    ],
  },
  {
    row: 9,
    behaviour: 'allows the resources methods with resources:read (or its * form), else 403 naming resources:read',
    cases: ['resources/list', 'resources/read', 'resources/templates/list', 'resources/subscribe', 'resources/unsubscribe'].flatMap((method): Case[] => [
      [[RESOURCES], [request(method)], allowed()],
      [['mcp:server:*:resources:read', ISSUE], [request(method)], allowed('create_issue')],
      [[ISSUE, PROMPTS, 'mcp:server:gitlab:resources:read'], [request(method)], refused(RESOURCES, method)],
    ]),
  },
  {
    row: 10,
    behaviour: 'allows prompts/list and prompts/get with prompts:read (or its * form), else 403 naming prompts:read',
    cases: ['prompts/list', 'prompts/get'].flatMap((method): Case[] => [
      [[PROMPTS], [request(method)], allowed()],
      [['mcp:server:*:prompts:read'], [request(method)], allowed()],
      [[ISSUE, RESOURCES], [request(method)], refused(PROMPTS, method)],
    ]),
  },
  {
    row: 11,
    behaviour: 'allows subscriptions/listen when the session may list every family its filter opts in to, else 403 naming the first missing scope',
    cases: [
      [[ISSUE], [listen('tools')], allowed('create_issue')],
      [[RESOURCES], [listen()], allowed()],
      [[ISSUE, RESOURCES, PROMPTS], [listen('tools', 'prompts', 'resources')], allowed('create_issue')],
      [['mcp:server:*:prompts:read'], [listen('prompts')], allowed()],
      [[ISSUE], [listen('tools', 'resources')], refused(RESOURCES, 'subscriptions/listen')],
      [[RESOURCES, PROMPTS], [listen('tools')], refused(EXECUTE, 'subscriptions/listen')],
      [[ISSUE, RESOURCES], [listen('prompts')], refused(PROMPTS, 'subscriptions/listen')],
      [EVERY_NARROW_SCOPE, [listen('tools', 'other')], refused(EXECUTE, 'subscriptions/listen')],
      [EVERY_NARROW_SCOPE, [request('subscriptions/listen')], refused(EXECUTE, 'subscriptions/listen')],
      [['mcp:server:github:read'], [listen()], refused(EXECUTE, 'subscriptions/listen')],
      [[EXECUTE], [listen('other'), request('subscriptions/listen')], ALLOW_ALL],
    ],
  },
  {
    row: 12,
    behaviour: 'refuses every other method without execute with 403 naming execute',
    cases: [
      'completion/complete',
      'sampling/createMessage',
      'elicitation/create',
      'roots/list',
      'tasks/list',
      'tasks/get',
      'tasks/update',
      'tasks/cancel',
      'server/Discover',
      'subscriptions/LISTEN',
      'tools/CALL',
      'Tools/call',
      'resources/write',
    ].map((method): Case => [EVERY_NARROW_SCOPE, [request(method)], refused(EXECUTE, method)]),
  },
  {
    row: 13,
    behaviour: 'allows a batch only when every message is allowed; the first refused message decides the 403',
    cases: [
      [[ISSUE], [request('initialize'), notification('notifications/initialized'), request('tools/list'), call('create_issue')], allowed('create_issue')],
      [[ISSUE], [request('tools/list'), call('delete_repo'), request('resources/list')], refused('mcp:server:github:tool:delete_repo:execute', 'tools/call')],
      [[], [request('resources/list'), request('prompts/get')], refused(RESOURCES, 'resources/list')],
    ],
  },
  {
    row: 14,
    behaviour: 'gives toolFilter, sorted and possibly empty, exactly when allowed without execute',
    cases: [
      [
        ['mcp:server:github:tool:b:execute', 'mcp:server:*:tool:a:execute', 'mcp:server:github:tool:a:execute', 'mcp:server:gitlab:tool:z:execute'],
        [request('tools/list')],
        allowed('a', 'b'),
      ],
      [[RESOURCES], [request('initialize')], allowed()],
      [[EXECUTE, ISSUE], [request('tools/list')], ALLOW_ALL],
    ],
  },
];

/** Hostile or odd input, against a session that holds every narrow scope but execute. */
const HOSTILE: ReadonlyArray<readonly [string, readonly McpMessage[], Decision]> = [
  ['a method with a trailing space (tools/call )', [{ kind: 'request', method: 'tools/call ', tool: 'create_issue' }], refused(EXECUTE, 'tools/call ')],
  ['an upper-case method (TOOLS/CALL)', [{ kind: 'request', method: 'TOOLS/CALL', tool: 'create_issue' }], refused(EXECUTE, 'TOOLS/CALL')],
  ['a method with a NUL (tools/list\\u0000)', [request('tools/list\u0000')], refused(EXECUTE, 'tools/list\u0000')],
  ['a method with a newline (initialize\\n)', [request('initialize\n')], refused(EXECUTE, 'initialize\n')],
  ['a method named __proto__', [request('__proto__')], refused(EXECUTE, '__proto__')],
  ['a notifications method spelt without the slash', [notification('notifications')], refused(EXECUTE, 'notifications')],
  ['a tool name with a Cyrillic look-alike (create_\\u0456ssue)', [call('create_\u0456ssue')], refused(EXECUTE, 'tools/call')],
  ['a tool name holding a comma (a,b) with both a and b granted', [call('a,b')], refused(EXECUTE, 'tools/call')],
  ['a tool name holding a colon (create_issue:execute)', [call('create_issue:execute')], refused(EXECUTE, 'tools/call')],
  ['a 129-character tool name', [call('T'.repeat(129))], refused(EXECUTE, 'tools/call')],
  ['a tool name with a path (../x)', [call('../x')], refused(EXECUTE, 'tools/call')],
  ['a tool name *', [call('*')], refused(EXECUTE, 'tools/call')],
  ['a tool name with a trailing space (create_issue )', [call('create_issue ')], refused(EXECUTE, 'tools/call')],
  [
    'a tool name that is not a string',
    [{ kind: 'request', method: 'tools/call', tool: ['create_issue'] as unknown as string }],
    refused(EXECUTE, 'tools/call'),
  ],
  ['a method that is not a string', [{ kind: 'request', method: null as unknown as string }], refused(EXECUTE)],
  ['a message of unknown kind', [{ kind: 'batch', method: 'ping' } as unknown as McpMessage], refused(EXECUTE, 'ping')],
  [
    'a batch hiding a forbidden call after allowed ones',
    [request('initialize'), call('create_issue'), call('a'), call('delete_repo'), request('prompts/get')],
    refused('mcp:server:github:tool:delete_repo:execute', 'tools/call'),
  ],
  [
    'a batch hiding completion/complete among notifications',
    [notification('notifications/initialized'), request('completion/complete')],
    refused(EXECUTE, 'completion/complete'),
  ],
];

describe('decideAccess: the decision table (docs/authorization.md)', () => {
  for (const entry of TABLE) {
    it(`row ${entry.row}: ${entry.behaviour}`, () => {
      const server = 'server' in entry ? entry.server : GH;
      for (const [scopes, messages, decision] of entry.cases) {
        assert.deepEqual(decideAccess({ scopes, server, messages }), decision, JSON.stringify({ scopes, messages }));
      }
    });
  }
  it('has a test for every row of the table in docs/authorization.md, and no more', () => {
    const doc = readFileSync(new URL('../../../docs/authorization.md', import.meta.url), 'utf8');
    const section = doc.split('\n## ').find((s) => s.startsWith('The decision table')) ?? '';
    const rows = [...section.matchAll(/^\| (\d+) \|/gm)].map((m) => Number(m[1]));
    assert.deepEqual(
      rows,
      TABLE.map(({ row }) => row),
    );
  });
});

describe('decideAccess: hostile requests', () => {
  const SESSION = [
    ...EVERY_NARROW_SCOPE,
    'mcp:server:github:tool:a:execute',
    'mcp:server:github:tool:b:execute',
    `mcp:server:github:tool:${'T'.repeat(128)}:execute`,
  ];
  for (const [what, messages, decision] of HOSTILE) {
    it(`refuses ${what}`, () => {
      assert.deepEqual(decideAccess({ scopes: SESSION, server: GH, messages }), decision);
    });
  }
  it('allows the 128-character tool name its scope names (the boundary of the 129 case)', () => {
    const decision = decideAccess({ scopes: SESSION, server: GH, messages: [call('T'.repeat(128))] });
    assert.equal(decision.allow, true);
  });
  it('allows a batch of only notifications with server access, and refuses it naming the first without', () => {
    const batch = [notification('notifications/initialized'), notification('notifications/cancelled'), notification('notifications/progress')];
    assert.deepEqual(decideAccess({ scopes: [PROMPTS], server: GH, messages: batch }), allowed());
    assert.deepEqual(decideAccess({ scopes: [], server: GH, messages: batch }), refused(EXECUTE, 'notifications/initialized'));
  });
  it('allows a batch of responses with server access, and refuses it without naming a method', () => {
    assert.deepEqual(decideAccess({ scopes: [ISSUE], server: GH, messages: [RESPONSE, RESPONSE] }), allowed('create_issue'));
    assert.deepEqual(decideAccess({ scopes: ['mcp:registry:read'], server: GH, messages: [RESPONSE, RESPONSE] }), refused(EXECUTE));
  });
  it('answers 404 for a catalog entry whose name is not a valid server name, even to an admin', () => {
    assert.deepEqual(decideAccess({ scopes: ['mcp:registry:admin'], server: { name: 'a;b', enabled: true }, messages: [] }), UNKNOWN);
  });
  it('grants nothing to scopes that differ only in case or whitespace', () => {
    const scopes = ['MCP:SERVER:GITHUB:EXECUTE', `${EXECUTE} `, 'mcp:registry:admin\n', ` ${RESOURCES}`, 'mcp:server:github:tool:*:execute'];
    assert.deepEqual(decideAccess({ scopes, server: GH, messages: [] }), refused(EXECUTE));
  });
  it('returns frozen decisions, so a caller cannot widen a shared toolFilter', () => {
    const decision = decideAccess({ scopes: [ISSUE], server: GH, messages: [] });
    assert.ok(Object.isFrozen(decision) && decision.allow && Object.isFrozen(decision.toolFilter));
  });
});
