import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseMessagesHeader } from './messages-header.ts';

describe('parseMessagesHeader', () => {
  it('reads methods, tools/call tools, subscriptions/listen families and responses', () => {
    assert.deepEqual(parseMessagesHeader('initialize,tools/call get_time,!response'), [
      { kind: 'request', method: 'initialize' },
      { kind: 'request', method: 'tools/call', tool: 'get_time' },
      { kind: 'response' },
    ]);
    assert.deepEqual(parseMessagesHeader('subscriptions/listen tools+resources'), [
      { kind: 'request', method: 'subscriptions/listen', listen: ['tools', 'resources'] },
    ]);
    assert.deepEqual(parseMessagesHeader('subscriptions/listen none'), [{ kind: 'request', method: 'subscriptions/listen', listen: [] }]);
    assert.deepEqual(parseMessagesHeader('subscriptions/listen other'), [{ kind: 'request', method: 'subscriptions/listen', listen: ['other'] }]);
    assert.deepEqual(parseMessagesHeader('-'), []);
  });
  it('refuses a header it cannot read exactly (the caller then refuses the request)', () => {
    for (const value of [undefined, '', 'a b c', 'subscriptions/listen tools+logs', 'subscriptions/listen tools+', 'subscriptions/listen __proto__', ',']) {
      assert.equal(parseMessagesHeader(value), undefined, String(value));
    }
  });
});
