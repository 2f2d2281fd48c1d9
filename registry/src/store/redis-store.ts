import { createHash } from 'node:crypto';
import { createClient } from 'redis';
import { GatewayError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { connectOnce } from './redis-connect.ts';
import { frozenCopy, type Frozen, type RecordStore, type StoreHealth, type StoredRecord, type WriteOptions, type WriteResult } from './record-store.ts';

export interface RedisRecordStoreOptions<T = unknown> {
  /** `redis://host:port` (or `rediss://`). */
  readonly url: string;
  /** Names this store's keys (one store per kind of record); the same namespace on another client is the same store. */
  readonly namespace: string;
  readonly log: Logger;
  /** The clock (ms since epoch), injectable so expiry can be tested without sleeping. */
  readonly now?: () => number;
  /**
   * Told the outcome of every write of this client that changed Redis, as soon as its reply is
   * in (the mirror applies its own writes at once: read-your-writes). `undefined`: removed.
   */
  readonly onWrite?: (key: string, version: number, record: StoredRecord<T> | undefined) => void;
}

type RedisClient = ReturnType<typeof createClient>;
type Reply = string | number | null | false | Reply[];

/**
 * The next version, from the store's one counter: raised to the clock when it is behind (a fresh
 * or flushed Redis), so versions keep growing like the file store's and are never reused.
 * KEYS[2] is the counter, ARGV[1] the writer's clock.
 */
const NEXT_VERSION = `
local v = redis.call('INCR', KEYS[2])
if v <= tonumber(ARGV[1]) then
  redis.call('SET', KEYS[2], ARGV[1])
  v = redis.call('INCR', KEYS[2])
end`;

/**
 * Every change is announced on the store's channel from inside its script, so the order of the
 * messages is the order Redis applied the changes (a mirror, redis-mirror.ts, depends on it):
 * `{"k": key, "v": version, "j": value JSON, "c": createdAt, "e": expiresAt}` for a write,
 * `{"k": key, "v": version, "d": 1}` for a removal. ARGV[#ARGV] is the channel, ARGV[#ARGV-1] the key.
 */
const ANNOUNCE_WRITE = (v: string, json: string, createdAt: string, expiresAt: string) =>
  `redis.call('PUBLISH', ARGV[#ARGV], cjson.encode({k = ARGV[#ARGV - 1], v = tostring(${v}), j = ${json}, c = ${createdAt}, e = ${expiresAt}}))`;
const ANNOUNCE_REMOVAL = `redis.call('PUBLISH', ARGV[#ARGV], cjson.encode({k = ARGV[#ARGV - 1], v = tostring(v), d = 1}))`;

/** KEYS: record, counter. ARGV: now, value (JSON), expiresAt, ttl (ms), key, channel. Fails while a live record has the key. */
const CREATE = `
local cur = redis.call('HMGET', KEYS[1], 'version', 'value', 'createdAt', 'expiresAt')
if cur[1] and tonumber(cur[4]) > tonumber(ARGV[1]) then return {0, cur[1], cur[2], cur[3], cur[4]} end
${NEXT_VERSION}
redis.call('HSET', KEYS[1], 'version', v, 'value', ARGV[2], 'createdAt', ARGV[1], 'expiresAt', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
${ANNOUNCE_WRITE('v', 'ARGV[2]', 'ARGV[1]', 'ARGV[3]')}
return {1, v}`;

/** KEYS: record, counter. ARGV: now, expected version, value (JSON), expiresAt, ttl (ms), key, channel. Never creates. */
const COMPARE_AND_SET = `
local cur = redis.call('HMGET', KEYS[1], 'version', 'value', 'createdAt', 'expiresAt')
if not cur[1] or tonumber(cur[4]) <= tonumber(ARGV[1]) then return {0} end
if cur[1] ~= ARGV[2] then return {0, cur[1], cur[2], cur[3], cur[4]} end
${NEXT_VERSION}
redis.call('HSET', KEYS[1], 'version', v, 'value', ARGV[3], 'expiresAt', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
${ANNOUNCE_WRITE('v', 'ARGV[3]', 'cur[3]', 'ARGV[4]')}
return {1, v, cur[3]}`;

/**
 * KEYS: record, counter. ARGV: now, expected version ('' for any), key, channel. {1, version} when
 * a live record was removed, {0} otherwise. A removal takes a version too (from the counter), so
 * a mirror can keep it as a tombstone that no older write overtakes.
 */
const DESTROY = `
local cur = redis.call('HMGET', KEYS[1], 'version', 'expiresAt')
if not cur[1] then return {0} end
local live = tonumber(cur[2]) > tonumber(ARGV[1])
if live and ARGV[2] ~= '' and cur[1] ~= ARGV[2] then return {0} end
redis.call('DEL', KEYS[1])
${NEXT_VERSION}
${ANNOUNCE_REMOVAL}
if live then return {1, v} end
return {0}`;

const FIELDS = ['version', 'value', 'createdAt', 'expiresAt'] as const;

/**
 * Records in Redis (docs/store.md, "The Redis implementation"), for gateways that share state.
 *
 * Keys: `mcpgw:{<namespace>}:r:<key>` is a hash {version, value (JSON), createdAt, expiresAt}
 * with a Redis TTL; `mcpgw:{<namespace>}:version` is the store's version counter. The braces are
 * a cluster hash tag, so one script's keys share a slot. `create`, `compareAndSet` and `destroy`
 * are each one Lua script, so the version check and the write are atomic on the server.
 *
 * Expiry is decided by `expiresAt` against this store's clock on every read and in every script;
 * the Redis TTL (`expiresAt - now`, so a skewed clock cannot delete early) only prunes.
 *
 * Fail closed: the client does not queue commands while disconnected, and every failure
 * rejects with STORE_UNAVAILABLE; nothing is answered from a cache. The client reconnects by
 * itself. No `peek`: there is no local copy to read synchronously (see docs/store.md).
 */
export class RedisRecordStore<T> implements RecordStore<T>, StoreHealth {
  readonly #client: RedisClient;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #prefix: string;
  readonly #counter: string;
  readonly #channel: string;
  readonly #onWrite: RedisRecordStoreOptions<T>['onWrite'];
  readonly #inFlight = new Set<Promise<unknown>>();
  readonly #upListeners = new Set<(up: boolean) => void>();
  #closed = false;
  #down = false;
  #lastUp = true;
  /** Once open() has connected: a failed first connection is reported by open(), not logged here. */
  #connected = false;

  /**
   * Connects; rejects with STORE_UNAVAILABLE when the first attempt fails (no retrying at start).
   * Once connected, the client reconnects by itself.
   */
  static async open<T>(options: RedisRecordStoreOptions<T>): Promise<RedisRecordStore<T>> {
    const store = new RedisRecordStore<T>(options);
    const client = store.#client;
    try {
      await connectOnce(client);
    } catch (err) {
      throw unavailable('connect', err);
    }
    store.#down = false;
    store.#connected = true;
    return store;
  }

  private constructor(options: RedisRecordStoreOptions<T>) {
    this.#log = options.log;
    this.#now = options.now ?? Date.now;
    const base = `mcpgw:{${options.namespace}}`;
    this.#prefix = `${base}:r:`;
    this.#counter = `${base}:version`;
    this.#channel = redisChannel(options.namespace);
    this.#onWrite = options.onWrite;
    this.#client = createClient({
      url: options.url,
      // Fail closed: a command sent while disconnected rejects at once instead of waiting.
      disableOfflineQueue: true,
      socket: { connectTimeout: 5000, reconnectStrategy: (retries: number) => Math.min(50 * 2 ** retries, 2000) },
    });
    this.#client.on('error', (err: unknown) => {
      if (this.#down || !this.#connected) return;
      this.#down = true;
      this.#log.warn({ err, namespace: options.namespace }, 'redis record store: connection lost; operations fail until it is back');
      this.#announceUp();
    });
    this.#client.on('ready', () => {
      if (this.#down) this.#log.info({ namespace: options.namespace }, 'redis record store: connected again');
      this.#down = false;
      this.#announceUp();
    });
  }

  /** Connected (commands are sent, not refused). */
  isUp(): boolean {
    return !this.#closed && this.#client.isReady;
  }

  onUpChange(listener: (up: boolean) => void): () => void {
    this.#upListeners.add(listener);
    return () => this.#upListeners.delete(listener);
  }

  #announceUp(): void {
    const up = this.isUp();
    if (up === this.#lastUp) return;
    this.#lastUp = up;
    for (const listener of this.#upListeners) listener(up);
  }

  /** Resolves once the client is connected (at once when it is). */
  async ready(): Promise<void> {
    if (this.#client.isReady) return;
    await new Promise<void>((resolve) => this.#client.once('ready', () => resolve()));
  }

  async get(key: string): Promise<StoredRecord<T> | undefined> {
    const now = this.#now();
    const fields = (await this.#run('get', ['HMGET', this.#prefix + key, ...FIELDS])) as Reply[];
    return this.#record(key, fields, now);
  }

  async create(key: string, value: T | Frozen<T>, options: WriteOptions): Promise<WriteResult<T>> {
    const now = this.#now();
    const json = this.#encode(value, options, now);
    const reply = (await this.#script(
      'create',
      CREATE,
      [this.#prefix + key, this.#counter],
      [now, json, options.expiresAt, options.expiresAt - now, key, this.#channel],
    )) as Reply[];
    if (reply[0] === 1) return { ok: true, record: this.#wrote(this.#made(key, reply[1], json, now, options.expiresAt)) };
    return { ok: false, current: this.#record(key, reply.slice(1), now) };
  }

  async compareAndSet(key: string, expectedVersion: number, value: T | Frozen<T>, options: WriteOptions): Promise<WriteResult<T>> {
    const now = this.#now();
    const json = this.#encode(value, options, now);
    const reply = (await this.#script(
      'compareAndSet',
      COMPARE_AND_SET,
      [this.#prefix + key, this.#counter],
      [now, String(expectedVersion), json, options.expiresAt, options.expiresAt - now, key, this.#channel],
    )) as Reply[];
    if (reply[0] === 1) return { ok: true, record: this.#wrote(this.#made(key, reply[1], json, Number(reply[2]), options.expiresAt)) };
    return { ok: false, current: this.#record(key, reply.slice(1), now) };
  }

  async destroy(key: string, expectedVersion?: number): Promise<boolean> {
    const now = this.#now();
    const reply = (await this.#script(
      'destroy',
      DESTROY,
      [this.#prefix + key, this.#counter],
      [now, expectedVersion === undefined ? '' : String(expectedVersion), key, this.#channel],
    )) as Reply[];
    if (reply[0] !== 1) return false;
    this.#onWrite?.(key, Number(reply[1]), undefined);
    return true;
  }

  #wrote(record: StoredRecord<T>): StoredRecord<T> {
    this.#onWrite?.(record.key, record.version, record);
    return record;
  }

  /**
   * Every live record: SCAN over this store's prefix, then one HMGET per key (pipelined). SCAN
   * walks the whole keyspace of the database (O(all keys), not O(this store's keys)), in steps,
   * so it is for pages and maintenance, never for the per-request path.
   */
  async list(): Promise<StoredRecord<T>[]> {
    const now = this.#now();
    const match = `${globEscape(this.#prefix)}*`;
    const keys: string[] = [];
    let cursor = '0';
    do {
      const [next, batch] = (await this.#run('list', ['SCAN', cursor, 'MATCH', match, 'COUNT', '1000'])) as [string, string[]];
      cursor = String(next);
      keys.push(...batch.map(String));
    } while (cursor !== '0');
    const unique = [...new Set(keys)].map((k) => k.slice(this.#prefix.length));
    const rows = await Promise.all(
      unique.map(async (key) => this.#record(key, (await this.#run('list', ['HMGET', this.#prefix + key, ...FIELDS])) as Reply[], now)),
    );
    return rows.filter((r): r is StoredRecord<T> => r !== undefined);
  }

  /** PUBLISHes `message` on the store's change channel (the mirror's heartbeat). */
  async publish(message: string): Promise<void> {
    await this.#run('publish', ['PUBLISH', this.#channel, message]);
  }

  /** Waits for the operations in flight, then closes the connection (QUIT). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.allSettled([...this.#inFlight]);
    if (this.#client.isReady) await this.#client.close();
    else this.#client.destroy();
    this.#announceUp();
  }

  /** Copies in: the value is serialized now, so later changes to the caller's object change nothing. */
  #encode(value: T | Frozen<T>, options: WriteOptions, now: number): string {
    if (this.#closed) throw new Error('the record store is closed');
    if (!(options.expiresAt > now)) throw new RangeError(`expiresAt ${options.expiresAt} is not in the future`);
    return JSON.stringify(value);
  }

  #made(key: string, version: Reply | undefined, json: string, createdAt: number, expiresAt: number): StoredRecord<T> {
    return Object.freeze({ key, version: Number(version), value: frozenCopy(JSON.parse(json) as T), createdAt, expiresAt });
  }

  /** [version, value, createdAt, expiresAt] as stored, or undefined when missing or expired by this store's clock. */
  #record(key: string, fields: Reply[], now: number): StoredRecord<T> | undefined {
    const [version, value, createdAt, expiresAt] = fields;
    if (version === undefined || version === null || version === false || typeof value !== 'string') return undefined;
    if (!(Number(expiresAt) > now)) return undefined;
    return this.#made(key, version, value, Number(createdAt), Number(expiresAt));
  }

  /** EVALSHA, falling back to EVAL when Redis does not have the script (first use, or after a restart). */
  async #script(op: string, script: string, keys: string[], args: (string | number)[]): Promise<Reply> {
    const sha = sha1(script);
    const tail = [String(keys.length), ...keys, ...args.map(String)];
    return this.#track(op, async () => {
      try {
        return (await this.#client.sendCommand(['EVALSHA', sha, ...tail])) as Reply;
      } catch (err) {
        if (!(err instanceof Error && err.message.startsWith('NOSCRIPT'))) throw err;
        return (await this.#client.sendCommand(['EVAL', script, ...tail])) as Reply;
      }
    });
  }

  #run(op: string, args: string[]): Promise<Reply> {
    return this.#track(op, async () => (await this.#client.sendCommand(args)) as Reply);
  }

  /** Counts the operation in flight (for close) and turns every failure into STORE_UNAVAILABLE. */
  async #track(op: string, run: () => Promise<Reply>): Promise<Reply> {
    if (this.#closed) throw new Error('the record store is closed');
    const pending = run();
    this.#inFlight.add(pending);
    try {
      return await pending;
    } catch (err) {
      throw unavailable(op, err);
    } finally {
      this.#inFlight.delete(pending);
    }
  }
}

/** The channel a namespace's changes are announced on (same hash tag as its keys). */
export function redisChannel(namespace: string): string {
  return `mcpgw:{${namespace}}:changes`;
}

export function unavailable(op: string, err: unknown): GatewayError {
  const reason = err instanceof Error ? err.message || err.name : String(err);
  return new GatewayError('STORE_UNAVAILABLE', `record store (redis) unavailable: ${op} failed (${reason}); a write's outcome is unknown`, { cause: err });
}

const shas = new Map<string, string>();
function sha1(script: string): string {
  let sha = shas.get(script);
  if (sha === undefined) {
    sha = createHash('sha1').update(script).digest('hex');
    shas.set(script, sha);
  }
  return sha;
}

/** Escapes SCAN MATCH's glob characters, so a namespace is matched literally. */
function globEscape(text: string): string {
  return text.replace(/[*?[\]\\]/g, '\\$&');
}
