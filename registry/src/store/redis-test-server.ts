/**
 * For tests only: one throwaway redis-server on loopback, an ephemeral port, nothing written to
 * disk. `stop` and `start` again on the same port simulate an outage. A thin face of
 * `registry/test/redis-server.ts` (RedisServer: persistence, raw commands) for the tests that
 * use this shape.
 */
import { RedisServer } from '../../test/redis-server.ts';

export { REDIS_SERVER } from '../../test/redis-server.ts';

export interface TestRedis {
  /** `redis://127.0.0.1:<port>` */
  readonly url: string;
  /** Starts it again on the same port (empty: it keeps nothing). */
  start(): Promise<void>;
  /** Kills it (SIGKILL, like a crash) and waits for the exit. */
  stop(): Promise<void>;
}

export async function startTestRedis(): Promise<TestRedis> {
  const server = new RedisServer();
  await server.start();
  return { url: server.url, start: () => server.start(), stop: () => server.stop() };
}
