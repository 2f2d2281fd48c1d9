import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { startLoadBalancer } from '../../registry/test/scale/cluster.ts';
import { startGateway, type RunningGateway } from './gateway.ts';
import { freePort, type Processes } from './processes.ts';

const REDIS_SERVER = '/usr/bin/redis-server';
const REDIS_CLI = '/usr/bin/redis-cli';

export interface RunningReplicas {
  /** The load balancer: what clients use. */
  readonly url: string;
  readonly replicas: readonly RunningGateway[];
  /** Every command Redis has run so far (INFO commandstats, `info` itself excluded). */
  commands(): number;
}

/**
 * Row (h)'s topology: a redis-server, two gateways (`registry/src/main.ts`, each with its
 * nginx) sharing REDIS_URL and SECRET_KEY, and a plain nginx balancer in front, round robin with
 * no affinity (registry/test/scale/cluster.ts, the one the scale-out tests use). Everything is
 * a child in `procs`, so the benchmark's stop and abort take it down.
 */
export async function startReplicas(procs: Processes, root: string, dir: string, backendUrl: string): Promise<RunningReplicas> {
  const redisPort = await freePort();
  const redisDir = join(dir, 'redis');
  mkdirSync(redisDir, { recursive: true });
  const redis = procs.start(
    'redis',
    REDIS_SERVER,
    ['--port', String(redisPort), '--bind', '127.0.0.1', '--dir', redisDir, '--save', '', '--appendonly', 'no'],
    {
      cwd: redisDir,
      logFile: join(redisDir, 'redis.log'),
    },
  );
  const cli = (...args: string[]) => spawnSync(REDIS_CLI, ['-p', String(redisPort), ...args], { encoding: 'utf8' });
  for (let tries = 0; cli('PING').stdout.trim() !== 'PONG'; tries++) {
    if (redis.exitCode !== null || tries > 100) throw new Error(`${REDIS_SERVER} did not start (apt-get install redis-server)`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const lbPort = await freePort();
  const publicUrl = `http://127.0.0.1:${lbPort}`;
  const secretKey = randomBytes(32).toString('hex');
  const replicas: RunningGateway[] = [];
  for (const name of ['replica-1', 'replica-2']) {
    replicas.push(
      await startGateway(procs, root, join(dir, name), backendUrl, { name, publicUrl, secretKey, env: { REDIS_URL: `redis://127.0.0.1:${redisPort}` } }),
    );
  }
  const url = await startLoadBalancer(
    procs,
    join(dir, 'lb'),
    lbPort,
    replicas.map((r) => Number(new URL(r.url).port)),
  );
  return {
    url,
    replicas,
    commands() {
      let total = 0;
      for (const match of cli('INFO', 'commandstats').stdout.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) if (match[1] !== 'info') total += Number(match[2]);
      return total;
    },
  };
}
