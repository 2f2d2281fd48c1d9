/**
 * For tests only: the real sealed vault (a fresh key ring, a file store in a temp folder), so
 * the credential tests run on what the gateway ships rather than a map standing in for it.
 * `peeks` counts the hot path's reads, for tests that assert a server costs no vault lookup.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../log.ts';
import { FileRecordStore } from '../store/index.ts';
import { KeyRing } from './key-ring.ts';
import { Vault, type CredentialRecord } from './vault.ts';

export class CountingVault extends Vault {
  peeks = 0;

  override peek(id: string): string | undefined {
    this.peeks++;
    return super.peek(id);
  }
}

export function testVault(): CountingVault {
  const log = createLogger('silent');
  const store = new FileRecordStore<CredentialRecord>({ dir: mkdtempSync(join(tmpdir(), 'mcpgw-test-vault-')), log });
  return new CountingVault({ store, keys: new KeyRing([{ id: 'test', secret: randomBytes(32).toString('base64url') }]), log });
}
