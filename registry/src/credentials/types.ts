/**
 * The gateway's own credentials for backends (issue 13): what the composition root wires, the
 * check reads on every MCP request, and the page and API write. No secret value ever leaves
 * through these interfaces except `peek`/`current`, which feed the upstream request only.
 */

/**
 * Secrets at rest: sealed (an authenticated cipher under a key ring from the environment, the
 * first key seals, every key opens) before they reach the record store, files or Redis.
 */
export interface SecretVault {
  /** Stores or replaces the secret `id`; resolves once it is stored (sealed). */
  put(id: string, plaintext: string): Promise<void>;
  /**
   * The plaintext from memory, no I/O: for the per-request check. undefined when there is none.
   * Throws GatewayError STORE_UNAVAILABLE when the store cannot answer (fail closed).
   */
  peek(id: string): string | undefined;
  /** True when a secret was removed. */
  delete(id: string): Promise<boolean>;
  /** Which secrets exist and when each was set: never their values. */
  list(): readonly SecretInfo[];
  /** Seals every secret again under the current key (after a rotation); returns how many. */
  reseal(): Promise<number>;
}

export interface SecretInfo {
  readonly id: string;
  /** ms since epoch */
  readonly updatedAt: number;
  /** The key that sealed it (the key ring's id, never the key). */
  readonly keyId: string;
}

/** A token the gateway fetches for itself and keeps until shortly before it expires. */
export interface TokenSource {
  /** The cached access token, from memory (no I/O), or undefined when none is valid now. */
  current(): string | undefined;
  /**
   * A valid access token: the cached one, or one fetched now. Concurrent callers share one
   * fetch. Rejects with GatewayError BACKEND_CREDENTIAL_FAILED (a message without secrets).
   */
  ensure(): Promise<string>;
  /** Stops background refreshes. */
  close(): void;
}
