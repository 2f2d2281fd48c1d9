import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { needsOf, type McpMessage, type Need } from './method-rules.ts';

const SERVER_ACCESS: Need = { kind: 'server-access' };
const EXECUTE: Need = { kind: 'execute' };

describe('needsOf', () => {
  const ROWS: ReadonlyArray<readonly [McpMessage, Need]> = [
    [{ kind: 'request', method: 'initialize' }, SERVER_ACCESS],
    [{ kind: 'request', method: 'server/discover' }, SERVER_ACCESS],
    [{ kind: 'request', method: 'ping' }, SERVER_ACCESS],
    [{ kind: 'notification', method: 'ping' }, SERVER_ACCESS],
    [{ kind: 'request', method: 'logging/setLevel' }, SERVER_ACCESS],
    [{ kind: 'notification', method: 'notifications/initialized' }, SERVER_ACCESS],
    [{ kind: 'notification', method: 'notifications/cancelled' }, SERVER_ACCESS],
    [{ kind: 'notification', method: 'notifications/roots/list_changed' }, SERVER_ACCESS],
    [{ kind: 'response' }, SERVER_ACCESS],
    [{ kind: 'request', method: 'tools/list' }, { kind: 'any-tool' }],
    [
      { kind: 'request', method: 'tools/call', tool: 'create_issue' },
      { kind: 'tool', tool: 'create_issue' },
    ],
    [{ kind: 'request', method: 'tools/call', tool: '' }, EXECUTE],
    [{ kind: 'request', method: 'tools/call' }, EXECUTE],
    [{ kind: 'request', method: 'tools/call', tool: 'a:b' }, EXECUTE],
    [{ kind: 'request', method: 'tools/call', tool: 42 as unknown as string }, EXECUTE],
    [{ kind: 'request', method: 'resources/list' }, { kind: 'resources' }],
    [{ kind: 'request', method: 'resources/read' }, { kind: 'resources' }],
    [{ kind: 'request', method: 'resources/templates/list' }, { kind: 'resources' }],
    [{ kind: 'request', method: 'resources/subscribe' }, { kind: 'resources' }],
    [{ kind: 'request', method: 'resources/unsubscribe' }, { kind: 'resources' }],
    [{ kind: 'request', method: 'prompts/list' }, { kind: 'prompts' }],
    [{ kind: 'request', method: 'prompts/get' }, { kind: 'prompts' }],
    [{ kind: 'request', method: 'completion/complete' }, EXECUTE],
    [{ kind: 'request', method: 'sampling/createMessage' }, EXECUTE],
    [{ kind: 'request', method: 'elicitation/create' }, EXECUTE],
    [{ kind: 'request', method: 'roots/list' }, EXECUTE],
    [{ kind: 'request', method: 'resources/write' }, EXECUTE],
    [{ kind: 'request', method: 'tools/CALL', tool: 'x' }, EXECUTE],
    [{ kind: 'request', method: 'Initialize' }, EXECUTE],
    [{ kind: 'request', method: 'notifications' }, EXECUTE],
    [{ kind: 'request', method: ' notifications/initialized' }, EXECUTE],
    [{ kind: 'request', method: 'Notifications/initialized' }, EXECUTE],
    [{ kind: 'request', method: '' }, EXECUTE],
    [{ kind: 'request', method: '__proto__' }, EXECUTE],
    [{ kind: 'request', method: 'constructor' }, EXECUTE],
    [{ kind: 'request', method: undefined as unknown as string }, EXECUTE],
    [{ kind: 'request', method: 'tasks/get' }, EXECUTE],
    [{ kind: 'request', method: 'tasks/cancel' }, EXECUTE],
    [{ kind: 'request', method: 'Server/discover' }, EXECUTE],
    [{ kind: 'request', method: 'subscriptions/listen ' }, EXECUTE],
    [{ kind: 'garbage', method: 'ping' } as unknown as McpMessage, EXECUTE],
  ];
  for (const [message, need] of ROWS) {
    it(`needs ${need.kind}${'tool' in need ? ` ${need.tool}` : ''} for ${JSON.stringify(message)}`, () => {
      assert.deepEqual(needsOf(message), [need]);
    });
  }

  const LISTEN: ReadonlyArray<readonly [unknown, readonly Need[]]> = [
    [[], [SERVER_ACCESS]],
    [['tools'], [{ kind: 'any-tool' }]],
    [['prompts'], [{ kind: 'prompts' }]],
    [['resources'], [{ kind: 'resources' }]],
    [['other'], [EXECUTE]],
    [
      ['tools', 'prompts', 'resources'],
      [{ kind: 'any-tool' }, { kind: 'prompts' }, { kind: 'resources' }],
    ],
    [
      ['tools', '__proto__'],
      [{ kind: 'any-tool' }, EXECUTE],
    ],
    [['toString'], [EXECUTE]],
    [undefined, [EXECUTE]],
    ['tools', [EXECUTE]],
  ];
  for (const [listen, needs] of LISTEN) {
    it(`needs ${needs.map((n) => n.kind).join(' + ')} for subscriptions/listen of ${JSON.stringify(listen)}`, () => {
      const message = { kind: 'request', method: 'subscriptions/listen', ...(listen === undefined ? {} : { listen }) } as McpMessage;
      assert.deepEqual(needsOf(message), needs);
    });
  }
});
