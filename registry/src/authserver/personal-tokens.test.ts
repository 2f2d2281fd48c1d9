import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import pino from 'pino';
import { FileRecordStore } from '../store/index.ts';
import { PersonalTokens, type PersonalTokenRecord } from './personal-tokens.ts';

const DAY = 86_400_000;
const OWNER = { provider: 'dev', sub: 'u1', username: 'user', groups: ['team'] };
const OTHER = { provider: 'dev', sub: 'u2' };

async function withTokens(use: (tokens: PersonalTokens, clock: { now: number }) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'pat-'));
  const clock = { now: Date.now() };
  const records = new FileRecordStore<PersonalTokenRecord>({ dir, log: pino({ level: 'silent' }), now: () => clock.now });
  const tokens = new PersonalTokens({
    records,
    maxLifetimeDays: 90,
    // The mapping: team holds execute on a, read on b, and a scope of c.
    scopesFor: (groups) => (groups.includes('team') ? ['mcp:server:a:execute', 'mcp:server:b:read', 'mcp:server:c:read'] : []),
  });
  try {
    await use(tokens, clock);
  } finally {
    await records.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

test('a token is valid on its chosen servers only, with the scopes the person holds there', () =>
  withTokens(async (tokens, clock) => {
    const { token, view } = await tokens.create(OWNER, { name: 'laptop', servers: ['b', 'a'], lifetimeDays: 7 }, clock.now);
    assert.match(token, /^mgp_[A-Za-z0-9_-]{16}_[A-Za-z0-9_-]{43}$/);
    assert.deepEqual(view.servers, ['a', 'b']);
    const onA = tokens.check(token, 'a');
    assert.ok(onA.ok);
    assert.ok(onA.scopes.includes('mcp:server:a:execute'));
    assert.ok(
      onA.scopes.every((s) => s.startsWith('mcp:server:a:')),
      'nothing about another server',
    );
    const onB = tokens.check(token, 'b');
    assert.ok(onB.ok);
    assert.deepEqual(onB.scopes, ['mcp:server:b:read']);
    assert.equal(tokens.check(token, 'c').ok, false, 'held by the person, not chosen');
    assert.equal(tokens.check(`${token.slice(0, -1)}${token.endsWith('A') ? 'B' : 'A'}`, 'a').ok, false, 'a wrong secret');
    assert.equal(tokens.check('mgp_garbage', 'a').ok, false);
  }));

test('expired after its lifetime; a lifetime above the maximum is refused', () =>
  withTokens(async (tokens, clock) => {
    const { token } = await tokens.create(OWNER, { name: 'short', servers: ['a'], lifetimeDays: 1 }, clock.now);
    clock.now += DAY - 1000;
    assert.equal(tokens.check(token, 'a').ok, true);
    clock.now += 2000;
    assert.equal(tokens.check(token, 'a').ok, false);
    assert.deepEqual(tokens.list(undefined), []);
    await assert.rejects(tokens.create(OWNER, { name: 'long', servers: ['a'], lifetimeDays: 91 }), RangeError);
    await assert.rejects(tokens.create(OWNER, { name: 'none', servers: ['a'], lifetimeDays: 0 }), RangeError);
  }));

test('listed and revoked by its owner (or by anyone when no owner is given: an admin); another person gets nothing', () =>
  withTokens(async (tokens) => {
    const { token, view } = await tokens.create(OWNER, { name: 'laptop', servers: ['a'], lifetimeDays: 7 });
    assert.deepEqual(
      tokens.list(OWNER).map((t) => t.id),
      [view.id],
    );
    assert.deepEqual(tokens.list(OTHER), []);
    assert.equal(tokens.list(undefined)[0]?.owner, 'user');
    assert.ok(!JSON.stringify(tokens.list(undefined)).includes(token.slice(-43)), 'the list never holds the secret');
    assert.equal(await tokens.revoke(view.id, OTHER), undefined);
    assert.equal(tokens.check(token, 'a').ok, true);
    assert.equal((await tokens.revoke(view.id, OWNER))?.id, view.id);
    assert.equal(tokens.check(token, 'a').ok, false, 'revoked: refused at once');
    const second = await tokens.create(OWNER, { name: 'desk', servers: ['a'], lifetimeDays: 7 });
    assert.equal((await tokens.revoke(second.view.id, undefined))?.name, 'desk');
    assert.equal(tokens.check(second.token, 'a').ok, false);
  }));
