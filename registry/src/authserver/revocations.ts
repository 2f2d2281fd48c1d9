import type { OidcStoreEntry } from '../identity/oidc-adapter.ts';
import type { RecordStore, SyncRecordReader } from '../store/index.ts';
import type { GatewayTokenVerifier } from './verify.ts';

/** Clock skew tolerated between signing and checking (the same process: small). */
const SKEW_MS = 30_000;

const key = (accountId: string, clientId: string) => `RevokedClient:${accountId} ${clientId}`;

/**
 * Remembers that a person disconnected a client (Connected clients): `RevokedClient:<account> <client>`
 * in the authorization server's store, holding when, for as long as an access token issued before
 * then can live. Survives a restart with the store.
 */
export async function recordRevocation(
  records: RecordStore<OidcStoreEntry>,
  accountId: string,
  clientId: string,
  accessTokenTtlSeconds: number,
  now = Date.now(),
): Promise<void> {
  const value = { ref: String(now) };
  const options = { expiresAt: now + accessTokenTtlSeconds * 1000 + SKEW_MS };
  for (let attempt = 0; attempt < 20; attempt++) {
    const current = await records.get(key(accountId, clientId));
    const result =
      current === undefined
        ? await records.create(key(accountId, clientId), value, options)
        : await records.compareAndSet(current.key, current.version, value, options);
    if (result.ok) return;
  }
  throw new Error('could not record a revocation: the record kept changing');
}

/**
 * The gateway token verifier, refusing access tokens a person's client held when they disconnected
 * it: a token of that person and client that expires no later than the disconnection plus the
 * access token lifetime was issued before it. Read from the store's memory (no I/O); a token
 * issued after (the person authorized the client again) passes.
 */
export function refusingRevoked(
  verifier: GatewayTokenVerifier,
  records: SyncRecordReader<OidcStoreEntry>,
  accessTokenTtlSeconds: number,
): GatewayTokenVerifier {
  return {
    issuedHere: (token) => verifier.issuedHere(token),
    async verify(token, server) {
      const result = await verifier.verify(token, server);
      if (!result.ok || result.identity.machine) return result;
      const revoked = records.peek(key(result.identity.sub, result.identity.clientId))?.value;
      if (revoked !== undefined && 'ref' in revoked && result.expiresAt <= Number(revoked.ref) + accessTokenTtlSeconds * 1000)
        return { ok: false, reason: 'the person disconnected this client' };
      return result;
    },
  };
}
