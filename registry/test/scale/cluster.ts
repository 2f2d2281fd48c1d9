/**
 * A real multi-replica gateway on loopback, for the scale-out tests: one redis-server
 * (registry/test/redis-server.ts, with an append-only file so a restart keeps every
 * acknowledged write), N gateway replicas
 * (`registry/src/main.ts`, each with its own nginx, as separate process groups so one can be
 * SIGKILLed like a container), and a plain nginx load balancer in front, round robin, no
 * session affinity. Every replica shares REDIS_URL, SECRET_KEY and the public URL (the
 * balancer's); each has its own STATE_DIR and ports.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, Processes, startPlainNginx, waitForHttp } from '../../../scripts/bench/processes.ts';
import { RedisServer } from '../redis-server.ts';

const projectRoot = join(import.meta.dirname, '..', '..', '..');

/** Every command Redis has run so far (INFO commandstats), by name; `info` itself excluded. */
export async function commandCounts(redis: RedisServer): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for (const match of (await redis.command('INFO', 'commandstats')).matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
    if (match[1] !== 'info') counts.set(match[1]!, Number(match[2]));
  }
  return counts;
}

export interface ReplicaSpec {
  readonly redisUrl: string;
  readonly publicUrl: string;
  readonly secretKey: string;
  readonly adminPassword: string;
  readonly catalogDir: string;
  readonly usersFile: string;
  readonly env?: Readonly<Record<string, string>>;
}

/** One gateway replica: the registry and its nginx, in a process group of their own. */
export class Replica {
  readonly name: string;
  readonly port: number;
  readonly stateDir: string;
  readonly #spec: ReplicaSpec;
  readonly #logFile: string;
  #child: ChildProcess | undefined;

  constructor(name: string, port: number, dir: string, spec: ReplicaSpec) {
    this.name = name;
    this.port = port;
    this.stateDir = join(dir, 'state');
    this.#logFile = join(dir, 'registry.log');
    this.#spec = spec;
    mkdirSync(dir, { recursive: true });
  }

  /** This replica's own nginx, bypassing the balancer. */
  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    const fd = (await import('node:fs')).openSync(this.#logFile, 'a');
    const child = spawn(process.execPath, [join(projectRoot, 'registry', 'src', 'main.ts')], {
      cwd: projectRoot,
      env: {
        PATH: process.env['PATH'] ?? '/usr/bin:/bin',
        HOME: process.env['HOME'] ?? '/tmp',
        GATEWAY_PORT: String(this.port),
        GATEWAY_PUBLIC_URL: this.#spec.publicUrl,
        STATE_DIR: this.stateDir,
        CATALOG_DIR: this.#spec.catalogDir,
        SECRET_KEY: this.#spec.secretKey,
        ADMIN_PASSWORD: this.#spec.adminPassword,
        DEV_IDP_USERS_FILE: this.#spec.usersFile,
        REDIS_URL: this.#spec.redisUrl,
        LOGGING_LEVEL: process.env['TEST_LOG_LEVEL'] ?? 'warn',
        ...this.#spec.env,
      },
      stdio: ['ignore', fd, fd],
      detached: true,
    });
    this.#child = child;
    await waitForHttp(`${this.url}/readyz`, child, 30_000).catch((err: unknown) => {
      throw new Error(`${this.name} did not become ready: ${(err as Error).message}\n${this.log().slice(-3000)}`);
    });
  }

  /** Like a container killed by the kernel: SIGKILL to the registry and its nginx at once. */
  async kill(): Promise<void> {
    const child = this.#child;
    this.#child = undefined;
    if (!child?.pid) return;
    const exited = child.exitCode === null && child.signalCode === null ? once(child, 'exit') : Promise.resolve();
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
    await exited;
  }

  /** A clean stop: SIGTERM to the registry, which stops its nginx; the group is killed after 10 s. */
  async stop(): Promise<void> {
    const child = this.#child;
    this.#child = undefined;
    if (!child?.pid || child.exitCode !== null || child.signalCode !== null) {
      if (child?.pid) killGroup(child.pid);
      return;
    }
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    const timer = setTimeout(() => killGroup(child.pid!), 10_000);
    await exited;
    clearTimeout(timer);
    killGroup(child.pid);
  }

  log(): string {
    try {
      return readFileSync(this.#logFile, 'utf8');
    } catch {
      return '';
    }
  }

  /** This replica's nginx error log (reloads show as `signal 1 (SIGHUP) received`). */
  errorLog(): string {
    try {
      return readFileSync(join(this.stateDir, 'nginx', 'error.log'), 'utf8');
    } catch {
      return '';
    }
  }

  /** How many MCP requests this replica's nginx served (its access log; flushed every second). */
  accessLog(): string {
    try {
      return readFileSync(join(this.stateDir, 'nginx', 'access.log'), 'utf8');
    } catch {
      return '';
    }
  }
}

function killGroup(pid: number): void {
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // ESRCH: gone
  }
}

/**
 * The load balancer: plain nginx, round robin over the replicas' nginx ports, no affinity. A
 * replica that refuses connections is skipped (`proxy_next_upstream error`: nothing was sent
 * yet, so even a POST is safe to pass on) and left alone for a second.
 */
export function startLoadBalancer(procs: Processes, dir: string, port: number, replicaPorts: readonly number[]): Promise<string> {
  return startPlainNginx(procs, {
    name: 'lb',
    dir,
    port,
    workers: 1,
    maxBodySize: '2m',
    upstreams: `    upstream gateways {
${replicaPorts.map((p) => `        server 127.0.0.1:${p} max_fails=1 fail_timeout=1s;`).join('\n')}
        keepalive 16;
    }`,
    locations: `        location / {
            proxy_pass http://gateways;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_buffering off;
            proxy_read_timeout 3600s;
            proxy_next_upstream error timeout;
            proxy_connect_timeout 1s;
        }`,
    healthPath: '/lb-healthz',
  });
}

export { freePort, Processes, RedisServer };
