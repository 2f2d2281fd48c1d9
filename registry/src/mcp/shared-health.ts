/**
 * Backend check results shared by the replicas (issue 12): the lease holder publishes each
 * result, every replica reads them from memory. docs/store.md, "Backend checks across replicas".
 */
import type { StoredRecord, WatchedRecordStore } from '../store/record-store.ts';
import type { BackendSnapshot } from './backend-monitor.ts';

/** A snapshot as published to the other replicas, with the fingerprint (url + transports) of what was checked. */
export interface SharedBackendSnapshot extends BackendSnapshot {
  readonly fingerprint: string;
}

/** Every replica's view of the checks' results, one record per server (Redis's mirror in production). */
export type BackendHealthStore = WatchedRecordStore<SharedBackendSnapshot>;

/** One holder among the replicas (store/lease.ts: `LocalLease` is always held, `RedisLease` one replica at a time). */
export type { Lease } from '../store/lease.ts';

/**
 * The result published for `name` when it is about the backend address `print`; undefined
 * without one, for another address, or while the store is unreachable (peek throws
 * STORE_UNAVAILABLE then, and the replica shows its own results meanwhile).
 */
export function publishedSnapshot(store: BackendHealthStore, name: string, print: string): BackendSnapshot | undefined {
  let record: StoredRecord<SharedBackendSnapshot> | undefined;
  try {
    record = store.peek(name);
  } catch {
    return undefined;
  }
  if (record === undefined || record.value.fingerprint !== print) return undefined;
  const { fingerprint: _checked, ...snapshot } = record.value;
  return snapshot as BackendSnapshot;
}

/** Writes a result over whatever is there (compare-and-set, a few rounds: the newest check wins). */
export async function writeSnapshot(store: BackendHealthStore, name: string, value: SharedBackendSnapshot, expiresAt: number): Promise<void> {
  for (let round = 0; round < 4; round++) {
    const current = await store.get(name);
    const result = current ? await store.compareAndSet(name, current.version, value, { expiresAt }) : await store.create(name, value, { expiresAt });
    if (result.ok) return;
  }
}
