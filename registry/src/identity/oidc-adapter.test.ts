import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../log.ts';
import { FileRecordStore } from '../store/index.ts';
import { recordStoreAdapter, type OidcStoreEntry } from './oidc-adapter.ts';
import { createSealer } from '../sessions/seal.ts';

const log = createLogger('silent');

function open(dir = mkdtempSync(join(tmpdir(), 'mcpgw-oidc-adapter-'))) {
  const store = new FileRecordStore<OidcStoreEntry>({ dir, log });
  return { dir, store, Adapter: recordStoreAdapter(store) };
}

test('payloads round-trip as copies, by id and by session uid, and survive reopening the store', async () => {
  const first = open();
  const sessions = new first.Adapter('Session');
  await sessions.upsert('s1', { uid: 'u1', accountId: 'alice' }, 60);
  const found = await sessions.find('s1');
  assert.deepEqual(found, { uid: 'u1', accountId: 'alice' });
  (found as { accountId: string }).accountId = 'mallory';
  assert.equal((await sessions.find('s1'))?.accountId, 'alice', 'find hands out a copy');
  await first.store.close();

  const second = open(first.dir);
  assert.equal((await new second.Adapter('Session').findByUid('u1'))?.accountId, 'alice');
  assert.equal(await new second.Adapter('Session').findByUid('nobody'), undefined);
  await second.store.close();
});

test('consume marks a record used, and never brings back one that was destroyed', async () => {
  const { store, Adapter } = open();
  const codes = new Adapter('AuthorizationCode');
  await codes.upsert('c1', { grantId: 'g1' }, 60);
  await codes.consume('c1');
  assert.equal(typeof (await codes.find('c1'))?.consumed, 'number');
  await codes.destroy('c1');
  await codes.consume('c1');
  assert.equal(await codes.find('c1'), undefined);
  await store.close();
});

test('revokeByGrantId removes every record the grant owns and nothing else', async () => {
  const { store, Adapter } = open();
  const refresh = new Adapter('RefreshToken');
  const access = new Adapter('AccessToken');
  await Promise.all([refresh.upsert('r1', { grantId: 'g1' }, 60), access.upsert('a1', { grantId: 'g1' }, 60), access.upsert('a2', { grantId: 'g2' }, 60)]);
  await refresh.revokeByGrantId('g1');
  assert.equal(await refresh.find('r1'), undefined);
  assert.equal(await access.find('a1'), undefined);
  assert.deepEqual(await access.find('a2'), { grantId: 'g2' });
  await store.close();
});

test('records expire with the lifetime oidc-provider gives them', async () => {
  let now = Date.now();
  const dir = mkdtempSync(join(tmpdir(), 'mcpgw-oidc-adapter-'));
  const store = new FileRecordStore<OidcStoreEntry>({ dir, log, now: () => now });
  const Adapter = recordStoreAdapter(store, () => now);
  await new Adapter('Interaction').upsert('i1', { returnTo: '/x' }, 10);
  now += 9_000;
  assert.ok(await new Adapter('Interaction').find('i1'));
  now += 2_000;
  assert.equal(await new Adapter('Interaction').find('i1'), undefined);
  await store.close();
});

test('token ids and session ids never reach the store: keys hold their SHA-256, payloads no jti, session pointers are sealed; find(id) still works', async () => {
  const { store, Adapter } = (() => {
    const dir = mkdtempSync(join(tmpdir(), 'mcpgw-oidc-adapter-'));
    const store = new FileRecordStore<OidcStoreEntry>({ dir, log });
    return { store, Adapter: recordStoreAdapter(store, Date.now, createSealer('s'.repeat(32))) };
  })();
  const secrets = { refresh: 'rt-secret-value-0123456789', access: 'at-secret-value-0123456789', session: 'session-cookie-value-0123456789' };
  await new Adapter('RefreshToken').upsert(secrets.refresh, { jti: secrets.refresh, grantId: 'g1', iat: 1 }, 60);
  await new Adapter('AccessToken').upsert(secrets.access, { jti: secrets.access, grantId: 'g1' }, 60);
  await new Adapter('Session').upsert(secrets.session, { jti: secrets.session, uid: 'u1', accountId: 'alice' }, 60);
  const stored = JSON.stringify(await store.list());
  for (const secret of Object.values(secrets)) assert.ok(!stored.includes(secret), `${secret} is not stored`);
  assert.deepEqual(await new Adapter('RefreshToken').find(secrets.refresh), { jti: secrets.refresh, grantId: 'g1', iat: 1 });
  assert.equal((await new Adapter('Session').findByUid('u1'))?.jti, secrets.session);
  await new Adapter('RefreshToken').consume(secrets.refresh);
  assert.equal(typeof (await new Adapter('RefreshToken').find(secrets.refresh))?.consumed, 'number');
  await new Adapter('RefreshToken').revokeByGrantId('g1');
  assert.equal(await new Adapter('AccessToken').find(secrets.access), undefined);
  assert.equal(await new Adapter('RefreshToken').find(secrets.refresh), undefined);
  await store.close();
});

test('records written before ids were hashed are still found, consumed and destroyed', async () => {
  const { store, Adapter } = open();
  await store.create('RefreshToken:old-token', { payload: { jti: 'old-token', grantId: 'g' } }, { expiresAt: Date.now() + 60_000 });
  const refresh = new Adapter('RefreshToken');
  assert.equal((await refresh.find('old-token'))?.grantId, 'g');
  await refresh.consume('old-token');
  assert.equal(typeof (await refresh.find('old-token'))?.consumed, 'number');
  await refresh.destroy('old-token');
  assert.equal(await refresh.find('old-token'), undefined);
  await store.close();
});

test("a registered client's secret is sealed in the store; find gives it back, and under another SECRET_KEY the client has none", async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mcpgw-oidc-adapter-'));
  const store = new FileRecordStore<OidcStoreEntry>({ dir, log });
  const Adapter = recordStoreAdapter(store, Date.now, createSealer('s'.repeat(32)));
  const secret = 'client-secret-value-0123456789';
  await new Adapter('Client').upsert('client-1', {
    client_id: 'client-1',
    client_secret: secret,
    client_name: 'Editor',
    redirect_uris: ['http://127.0.0.1:1/cb'],
  });
  assert.ok(!JSON.stringify(await store.list()).includes(secret), 'the secret is not stored in clear');
  assert.deepEqual(await new Adapter('Client').find('client-1'), {
    client_id: 'client-1',
    client_secret: secret,
    client_name: 'Editor',
    redirect_uris: ['http://127.0.0.1:1/cb'],
  });
  const other = recordStoreAdapter(store, Date.now, createSealer('z'.repeat(32)));
  assert.equal((await new other('Client').find('client-1'))?.client_secret, undefined, 'sealed under another key: no usable secret');
  await store.close();
});
