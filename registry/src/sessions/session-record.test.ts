import { test } from 'node:test';
import assert from 'node:assert/strict';
import { frozenCopy } from '../store/index.ts';
import { mergeSessionChanges, sessionExpiresAt, type SessionValue } from './session-record.ts';

const limits = { idleMs: 8 * 3600_000, maxLifetimeMs: 24 * 3600_000 };
const now = Date.UTC(2026, 10, 30, 12);
const identity = { sub: 'a', username: 'a', groups: ['g'], provider: 'okta' };
const cookieFor = (expiresAt: number) => ({ originalMaxAge: limits.idleMs, expires: new Date(expiresAt).toISOString() });

test('when a session ends: the rolling expiry, never past sign-in + the absolute lifetime, nor past the access token when nothing can refresh it', () => {
  const cases: Array<[string, SessionValue, number]> = [
    ['a login in flight: its cookie', { cookie: cookieFor(now + 600_000) }, now + 600_000],
    ['no cookie yet: now + the idle lifetime', {}, now + limits.idleMs],
    [
      'signed in an hour ago, renewed now',
      {
        cookie: cookieFor(now + limits.idleMs),
        identity,
        signedInAt: now - 3600_000,
        tokens: { sealedRefreshToken: 'x', expiresAt: now + 60_000, issuedAt: now },
      },
      now + limits.idleMs,
    ],
    [
      'signed in 20 h ago, renewed now: the absolute lifetime',
      {
        cookie: cookieFor(now + limits.idleMs),
        identity,
        signedInAt: now - 20 * 3600_000,
        tokens: { sealedRefreshToken: 'x', expiresAt: now + 60_000, issuedAt: now },
      },
      now + 4 * 3600_000,
    ],
    [
      "no refresh token: the access token's expiry",
      { cookie: cookieFor(now + limits.idleMs), identity, signedInAt: now, tokens: { sealedRefreshToken: undefined, expiresAt: now + 600_000, issuedAt: now } },
      now + 600_000,
    ],
    [
      'no refresh token, no expires_in: the absolute lifetime bounds it',
      { cookie: cookieFor(now + 30 * 3600_000), identity, signedInAt: now, tokens: { sealedRefreshToken: undefined, expiresAt: undefined, issuedAt: now } },
      now + limits.maxLifetimeMs,
    ],
  ];
  for (const [name, value, expected] of cases) {
    assert.equal(sessionExpiresAt(value, limits, now), expected, name);
    assert.equal(sessionExpiresAt(frozenCopy(value), limits, now), expected, `${name} (frozen)`);
  }
});

test('a save that lost a race applies only the top-level fields the request changed; the rest stays as the other writer left it', () => {
  const read = frozenCopy<SessionValue>({ cookie: cookieFor(now), identity, scopes: ['s1'], csrfToken: 't1', notice: 'n' });
  const current = frozenCopy<SessionValue>({ cookie: cookieFor(now), identity: { ...identity, groups: [] }, scopes: [], csrfToken: 't1', notice: 'n' });
  const mine: SessionValue = { cookie: cookieFor(now + 1000), identity: { ...identity, groups: ['g'] }, scopes: ['s1'], csrfToken: 't2' };
  assert.deepEqual(mergeSessionChanges(read, mine, current), {
    cookie: cookieFor(now + 1000), // the renewal
    identity: { ...identity, groups: [] }, // unchanged by the request: the refresh's
    scopes: [],
    csrfToken: 't2', // changed by the request
    // notice: deleted by the request
  });
});

test('a request that changed nothing but its cookie puts nothing else back', () => {
  const read = frozenCopy<SessionValue>({ cookie: cookieFor(now), scopes: ['old'], tokens: { sealedRefreshToken: 'r1', expiresAt: 1, issuedAt: 0 } });
  const current = frozenCopy<SessionValue>({ cookie: cookieFor(now), scopes: ['new'], tokens: { sealedRefreshToken: 'r2', expiresAt: 2, issuedAt: 1 } });
  const mine = JSON.parse(JSON.stringify(read)) as SessionValue;
  assert.deepEqual(mergeSessionChanges(read, mine, current), { ...current, cookie: mine.cookie });
});
