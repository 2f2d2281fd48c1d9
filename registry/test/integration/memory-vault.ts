/**
 * A stand-in SecretVault for tests: plaintext in memory, nothing sealed, nothing on disk. The
 * gateway's real vault (credentials/vault.ts: sealed at rest, rotatable keys) replaces it in
 * startGateway; tests that only need somewhere to put a backend secret use this one.
 */
import type { SecretInfo, SecretVault } from '../../src/credentials/types.ts';

export class MemoryVault implements SecretVault {
  readonly #secrets = new Map<string, { value: string; info: SecretInfo }>();
  /** Every id ever put, in order (tests check what was written, never a value). */
  readonly puts: string[] = [];

  async put(id: string, plaintext: string): Promise<void> {
    this.puts.push(id);
    this.#secrets.set(id, { value: plaintext, info: Object.freeze({ id, updatedAt: Date.now(), keyId: 'memory' }) });
  }

  peek(id: string): string | undefined {
    return this.#secrets.get(id)?.value;
  }

  async delete(id: string): Promise<boolean> {
    return this.#secrets.delete(id);
  }

  list(): readonly SecretInfo[] {
    return [...this.#secrets.values()].map((s) => s.info);
  }

  async reseal(): Promise<number> {
    return this.#secrets.size;
  }
}
