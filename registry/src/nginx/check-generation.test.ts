import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { StoredRecord } from '../store/record-store.ts';
import { createLogger } from '../log.ts';
import { CacheDirWatch, CheckGeneration, invalidateOnChanges, SUSPENDED_GENERATION, type CheckInputs } from './check-generation.ts';

describe('CheckGeneration', () => {
  const dir = mkdtempSync(join(tmpdir(), 'generation-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('written at once, a new value at every bump, and another start never reuses a value', () => {
    const file = join(dir, 'check-generation');
    const one = new CheckGeneration(file);
    const first = readFileSync(file, 'utf8');
    one.bump();
    const second = readFileSync(file, 'utf8');
    assert.notEqual(second, first);
    assert.equal(one.bumps, 1);
    assert.deepEqual(readdirSync(dir), ['check-generation'], 'no temporary file left');
    new CheckGeneration(file);
    assert.notEqual(readFileSync(file, 'utf8'), first, "a restart's first generation is not the last one's");
  });
});

describe('CacheDirWatch', () => {
  const dir = mkdtempSync(join(tmpdir(), 'generation-watch-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('suspends caching while the folder has a problem, and resumes under a new generation', async () => {
    const file = join(dir, 'check-generation');
    const generation = new CheckGeneration(file);
    const first = readFileSync(file, 'utf8');
    let problem: string | undefined;
    const watch = new CacheDirWatch({ generation, problem: () => problem, log: createLogger('silent'), everyMs: 10 });
    const tick = () => new Promise((resolve) => setTimeout(resolve, 40));
    try {
      problem = 'has mode 500';
      await tick();
      assert.equal(readFileSync(file, 'utf8'), SUSPENDED_GENERATION);
      generation.bump();
      assert.equal(readFileSync(file, 'utf8'), SUSPENDED_GENERATION, 'a bump while suspended keeps it suspended');
      problem = undefined;
      await tick();
      const resumed = readFileSync(file, 'utf8');
      assert.notEqual(resumed, SUSPENDED_GENERATION);
      assert.notEqual(resumed, first, 'answers cached before the suspension are never served again');
    } finally {
      watch.stop();
    }
  });
});

type Listener<T> = (key: string, record: StoredRecord<T> | undefined) => void;
function source<T>(initial: StoredRecord<T>[] = []) {
  const listeners = new Set<Listener<T>>();
  return {
    onChange: (l: Listener<T>) => (listeners.add(l), () => void listeners.delete(l)),
    snapshot: () => initial,
    change: (key: string, value: T | undefined) =>
      listeners.forEach((l) => l(key, value === undefined ? undefined : ({ key, version: 1, value, createdAt: 0, expiresAt: 0 } as StoredRecord<T>))),
    size: () => listeners.size,
  };
}

describe('invalidateOnChanges', () => {
  const signedIn = (scopes: string[]) => ({ identity: { sub: 'u-1' }, scopes });
  const setup = () => {
    let bumps = 0;
    type Session = { identity?: { sub: string; groups?: string[] } | undefined; scopes?: string[] | undefined };
    const sessions = source<Session>([{ key: 'old', version: 1, value: signedIn(['a']), createdAt: 0, expiresAt: 0 }]);
    const authserver = source<unknown>();
    const tokens = source<unknown>();
    const catalog = new EventEmitter();
    let reload = () => {};
    const inputs: CheckInputs = { sessions, authserver, tokens, catalog, mapping: { onReload: (l) => ((reload = l), () => {}) } };
    const stop = invalidateOnChanges({ bump: () => void bumps++ }, inputs);
    return { sessions, authserver, tokens, catalog, reload: () => reload(), bumps: () => bumps, stop };
  };

  test("sessions: a deletion and a change of an already signed-in one's scopes bump; a new session, a sign-in and a rolling write do not", () => {
    const t = setup();
    t.sessions.change('login', { identity: undefined, scopes: undefined });
    t.sessions.change('login', undefined);
    assert.equal(t.bumps(), 0, 'a login in progress, replaced at sign-in, had no cached answer');
    t.sessions.change('new', { identity: undefined, scopes: undefined });
    t.sessions.change('new', signedIn(['a']));
    assert.equal(t.bumps(), 0, 'a new session and its sign-in have no cached answer');
    t.sessions.change('new', signedIn(['a']));
    t.sessions.change('old', signedIn(['a']));
    assert.equal(t.bumps(), 0, 'the same identity and scopes (a touch, a refreshed token)');
    t.sessions.change('old', signedIn(['a', 'b']));
    assert.equal(t.bumps(), 1, 'scopes recomputed (seeded from the snapshot at start)');
    t.sessions.change('old', { identity: { sub: 'u-1', groups: ['g'] }, scopes: ['a', 'b'] });
    assert.equal(t.bumps(), 2, "groups changed (a personal token's scopes follow them)");
    t.sessions.change('old', signedIn(['a', 'b']));
    assert.equal(t.bumps(), 3);
    t.sessions.change('new', undefined);
    assert.equal(t.bumps(), 4, 'signed out or ended');
  });

  test("the authorization server's revocations and tokens bump, a sign-in's steps do not; personal tokens, the mapping and the catalog bump", () => {
    const t = setup();
    t.authserver.change('Interaction:abc', {});
    t.authserver.change('Session:#x', {});
    t.authserver.change('AuthorizationCode:#y', {});
    assert.equal(t.bumps(), 0);
    t.authserver.change('RevokedClient:u-1 c-1', {});
    t.authserver.change('Grant:g', undefined);
    assert.equal(t.bumps(), 2);
    t.tokens.change('pat:1', undefined);
    t.reload();
    t.catalog.emit('changed', []);
    assert.equal(t.bumps(), 5);
    t.stop();
    t.catalog.emit('changed', []);
    t.tokens.change('pat:2', {});
    assert.equal(t.bumps(), 5, 'unsubscribed');
    assert.equal(t.sessions.size(), 0);
  });
});
