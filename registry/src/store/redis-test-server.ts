/**
 * For tests only: one throwaway redis-server on loopback, an ephemeral port, nothing written to
 * disk (as redis-store.test.ts starts it). `stop` and `start` again on the same port simulate an
 * outage. Debian's redis-server (scripts/ensure-system-deps.ts installs it); missing, the tests
 * fail rather than skip.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { freePort } from '../../../servers/shared/free-port.ts';

export const REDIS_SERVER = '/usr/bin/redis-server';

export interface TestRedis {
  /** `redis://127.0.0.1:<port>` */
  readonly url: string;
  /** Starts it again on the same port (empty: it keeps nothing). */
  start(): Promise<void>;
  /** Kills it (SIGKILL, like a crash) and waits for the exit. */
  stop(): Promise<void>;
}

export async function startTestRedis(): Promise<TestRedis> {
  const port = await freePort();
  let server: ChildProcess | undefined;
  const redis: TestRedis = {
    url: `redis://127.0.0.1:${port}`,
    async start() {
      const child = spawn(REDIS_SERVER, ['--save', '', '--appendonly', 'no', '--port', String(port), '--bind', '127.0.0.1'], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let output = '';
      await new Promise<void>((resolve, reject) => {
        const onData = (chunk: Buffer) => {
          output += chunk.toString();
          if (output.includes('Ready to accept connections')) resolve();
        };
        child.stdout.on('data', onData);
        child.stderr.on('data', onData);
        child.once('error', (err) => reject(new Error(`could not start ${REDIS_SERVER} (apt-get install redis-server): ${err.message}`)));
        child.once('exit', (code) => reject(new Error(`${REDIS_SERVER} exited (${code}) before it was ready:\n${output}`)));
      });
      server = child;
    },
    async stop() {
      const child = server;
      server = undefined;
      if (!child || child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, 'exit');
      child.kill('SIGKILL');
      await exited;
    },
  };
  await redis.start();
  return redis;
}
