/** The store's contract for the modules that keep state (STYLE.md point 6: export on purpose). */
export type {
  Frozen,
  RecordChangeListener,
  RecordStore,
  StoreHealth,
  StoredRecord,
  SyncRecordReader,
  WatchedRecordStore,
  WriteOptions,
  WriteResult,
} from './record-store.ts';
export { frozenCopy } from './record-store.ts';
export { FileRecordStore, type FileRecordStoreOptions } from './file-store.ts';
export { RedisRecordStore, type RedisRecordStoreOptions } from './redis-store.ts';
export { MirroredRedisStore, redactUrl, type MirroredRedisStoreOptions } from './redis-mirror.ts';
export { LocalLease, RedisLease, type Lease, type RedisLeaseOptions } from './lease.ts';
