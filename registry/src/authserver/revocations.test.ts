import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import pino from 'pino';
import type { OidcStoreEntry } from '../identity/oidc-adapter.ts';
import { FileRecordStore } from '../store/index.ts';
import { recordRevocation, refusingRevoked } from './revocations.ts';
import type { GatewayTokenResult, GatewayTokenVerifier } from './verify.ts';

const TTL = 300;

/** A verifier that accepts `<sub>|<client>|<expiresAt>` tokens, to test the wrapper alone. */
const fake: GatewayTokenVerifier = {
  issuedHere: () => true,
  async verify(token, server): Promise<GatewayTokenResult> {
    const [sub = '', clientId = '', exp = '0'] = token.split('|');
    return { ok: true, identity: { sub, username: 'u', clientId, server, scopes: [], machine: sub === clientId }, expiresAt: Number(exp) };
  },
};

test("a disconnected client's access tokens issued before are refused; later ones, other clients and other people are not", async () => {
  const dir = mkdtempSync(join(tmpdir(), 'revoked-'));
  const records = new FileRecordStore<OidcStoreEntry>({ dir, log: pino({ level: 'silent' }) });
  try {
    const verifier = refusingRevoked(fake, records, TTL);
    const now = Date.now();
    const before = `dev:u1|client-a|${now + TTL * 1000 - 1000}`;
    assert.equal((await verifier.verify(before, 's')).ok, true);
    await recordRevocation(records, 'dev:u1', 'client-a', TTL, now);
    assert.equal((await verifier.verify(before, 's')).ok, false);
    assert.equal((await verifier.verify(`dev:u1|client-a|${now + TTL * 1000 + 1000}`, 's')).ok, true, 'issued after: authorized again');
    assert.equal((await verifier.verify(`dev:u1|client-b|${now + 1000}`, 's')).ok, true, 'another client');
    assert.equal((await verifier.verify(`dev:u2|client-a|${now + 1000}`, 's')).ok, true, 'another person');
    await recordRevocation(records, 'dev:u1', 'client-a', TTL, now + 5000);
    assert.equal((await verifier.verify(`dev:u1|client-a|${now + TTL * 1000 + 1000}`, 's')).ok, false, 'a second disconnection moves the line');
  } finally {
    await records.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
