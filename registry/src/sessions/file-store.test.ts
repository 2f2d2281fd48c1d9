import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SessionData } from 'express-session';
import { createLogger } from '../log.ts';
import { FileSessionStore } from './file-store.ts';

const log = createLogger('silent');
const data = (expiresInMs: number, username = 'u'): SessionData =>
  ({ cookie: { originalMaxAge: expiresInMs, expires: new Date(Date.now() + expiresInMs).toISOString() }, identity: { sub: username, username, groups: [], provider: 'dev' }, scopes: ['mcp:registry:read'] }) as unknown as SessionData;
const set = (store: FileSessionStore, sid: string, value: SessionData) => new Promise<void>((resolve, reject) => store.set(sid, value, (err) => (err ? reject(err) : resolve())));

test('a session survives a restart, in a 0600 file whose name is not the session id', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mcpgw-sessions-'));
  const first = new FileSessionStore(dir, log);
  await set(first, 'sid-1', data(60_000, 'alice'));
  first.close();
  const [file] = readdirSync(dir);
  assert.ok(file && !file.includes('sid-1'));
  assert.equal(statSync(join(dir, file)).mode & 0o777, 0o600);
  const second = new FileSessionStore(dir, log);
  assert.equal(second.peek('sid-1')?.identity?.username, 'alice');
  second.close();
});

test('expired sessions are gone from memory and disk; unreadable files are removed at start', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mcpgw-sessions-'));
  writeFileSync(join(dir, 'garbage.json'), '{ not json');
  const store = new FileSessionStore(dir, log);
  await set(store, 'old', data(30));
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(store.peek('old'), undefined);
  assert.deepEqual(readdirSync(dir), []);
  store.close();
});

test('destroy removes the session at once', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mcpgw-sessions-'));
  const store = new FileSessionStore(dir, log);
  await set(store, 'sid', data(60_000));
  await new Promise<void>((resolve) => store.destroy('sid', () => resolve()));
  assert.equal(store.peek('sid'), undefined);
  assert.deepEqual(readdirSync(dir), []);
  store.close();
});

test('a stored session is a copy: later changes to the object do not leak in unsaved', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mcpgw-sessions-'));
  const store = new FileSessionStore(dir, log);
  const value = data(60_000);
  await set(store, 'sid', value);
  (value as unknown as { scopes: string[] }).scopes.push('mcp:registry:admin');
  assert.deepEqual(store.peek('sid')?.scopes, ['mcp:registry:read']);
  assert.doesNotMatch(readFileSync(join(dir, readdirSync(dir)[0] ?? ''), 'utf8'), /admin/);
  store.close();
});
