import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { accountOf, connectionId, connectionSchedule, decodeConnection, encodeConnection, parseConnectionId, type ConnectionRecord } from './user-oauth.ts';
import { isUploadedTokenOf } from './uploaded-tokens.ts';

const record: ConnectionRecord = {
  v: 1,
  issuer: 'https://as.example.com',
  clientId: 'c1',
  accessToken: 'at',
  refreshToken: 'rt',
  expiresAt: 1_000_000 + 3_600_000,
  issuedAt: 1_000_000,
  connectedAt: 1_000_000,
  state: 'connected',
};

describe('per-user OAuth records', () => {
  test("a connection's vault id names the person's hash and the server, and is never an uploaded token's", () => {
    const id = connectionId('h4sh', 'github');
    assert.deepEqual(parseConnectionId(id), { hash: 'h4sh', server: 'github' });
    assert.equal(parseConnectionId('user:h4sh:server:github'), undefined);
    assert.equal(parseConnectionId('server:github:client-secret'), undefined);
    assert.equal(isUploadedTokenOf(id, 'github'), false);
  });

  test('a record survives its encoding; anything else is no record', () => {
    assert.deepEqual(decodeConnection(encodeConnection(record)), record);
    assert.equal(decodeConnection('not json'), undefined);
    assert.equal(decodeConnection(JSON.stringify({ ...record, v: 2 })), undefined);
    assert.equal(decodeConnection(JSON.stringify({ ...record, accessToken: undefined })), undefined, 'connected without a token');
    const { accessToken: _a, refreshToken: _r, ...rest } = record;
    assert.deepEqual(decodeConnection(JSON.stringify({ ...rest, state: 'broken', problem: 'refused' }))?.state, 'broken');
  });

  test('a token is refreshed before it goes stale, and stale before it expires; without a lifetime, never', () => {
    const { staleAt, refreshAt } = connectionSchedule(record);
    assert.equal(staleAt, record.expiresAt! - 60_000, 'an hour-long token: a minute of margin');
    assert.ok(refreshAt < staleAt);
    const short = connectionSchedule({ issuedAt: 0, expiresAt: 8000 });
    assert.deepEqual(short, { staleAt: 7000, refreshAt: 6500 });
    assert.deepEqual(connectionSchedule({ issuedAt: 0 }), { staleAt: Infinity, refreshAt: Infinity });
  });

  test('who connected: a name claim before the subject, nothing unprintable', () => {
    assert.equal(accountOf({ sub: '42', preferred_username: 'alice' }), 'alice');
    assert.equal(accountOf({ sub: '42', email: 'a@example.com' }), 'a@example.com');
    assert.equal(accountOf({ sub: '42' }), '42');
    assert.equal(accountOf({ sub: 'a\nb' }), undefined);
    assert.equal(accountOf(undefined), undefined);
  });
});
