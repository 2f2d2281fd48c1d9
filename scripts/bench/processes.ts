import { freePort } from '../../servers/shared/free-port.ts';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The OS processes the benchmark starts, each in its own process group (`detached`), so a
 * Ctrl-C on the terminal reaches the benchmark only and it stops them in order, and so a
 * last-resort SIGKILL of the group also takes the nginx that the registry runs as its child.
 */
export class Processes {
  readonly #children: { name: string; child: ChildProcess; logFile: string }[] = [];

  /** Starts `command args` with its stdout and stderr appended to `logFile`. */
  start(name: string, command: string, args: readonly string[], options: { env?: Record<string, string>; cwd: string; logFile: string }): ChildProcess {
    const fd = openSync(options.logFile, 'a');
    const child = spawn(command, args, { cwd: options.cwd, env: { ...baseEnv(), ...options.env }, stdio: ['ignore', fd, fd], detached: true });
    closeSync(fd);
    this.#children.push({ name, child, logFile: options.logFile });
    return child;
  }

  /** Each child's name and process group id (its pid), for the CPU samples. */
  groups(): { name: string; pid: number }[] {
    return this.#children.flatMap(({ name, child }) => (child.pid === undefined ? [] : [{ name, pid: child.pid }]));
  }

  /** The last lines a child wrote, for an error message. */
  tail(name: string, lines = 20): string {
    const entry = this.#children.find((c) => c.name === name);
    if (!entry) return '';
    try {
      return readFileSync(entry.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '';
    }
  }

  /** Stops every child, newest first: SIGTERM to the process, SIGKILL to its group after 5 s. */
  async stopAll(): Promise<void> {
    for (const { child } of this.#children.splice(0).reverse()) {
      if (!alive(child)) {
        killGroup(child, 'SIGKILL'); // a dead leader's group may still hold its nginx
        continue;
      }
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGTERM');
      const timer = setTimeout(() => killGroup(child, 'SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
      killGroup(child, 'SIGKILL');
    }
  }

  /** For `process.on('exit')`, where nothing asynchronous runs: SIGKILL every group left. */
  killAllNow(): void {
    for (const { child } of this.#children.splice(0)) killGroup(child, 'SIGKILL');
  }
}

/**
 * A clean environment: the children get only what the benchmark sets, so a gateway variable
 * in the caller's shell (another IdP, another catalog) cannot change what is measured.
 */
function baseEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of ['PATH', 'HOME', 'LANG', 'TMPDIR']) {
    const value = process.env[name];
    if (value !== undefined) env[name] = value;
  }
  return env;
}

function alive(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // ESRCH: the group is already gone.
  }
}

/** Polls `url` until it answers 200; fails early when `child` exits, and after `ms`. */
export async function waitForHttp(url: string, child: ChildProcess, ms: number): Promise<void> {
  const start = Date.now();
  for (;;) {
    if (!alive(child)) throw new Error(`process exited (${child.signalCode ?? `code ${child.exitCode}`}) before ${url} answered`);
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      if (res.status === 200) return;
    } catch {
      // not listening yet
    }
    if (Date.now() - start > ms) throw new Error(`${url} did not answer 200 within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export const NGINX_BIN = '/usr/sbin/nginx';

/**
 * A plain nginx (the same binary as the gateway) under `dir`, on 127.0.0.1:`port`: the main and
 * events lines and the temp paths are written here, `http` holds the upstreams and the
 * locations (inside `server`). It must answer 200 at `healthPath`, which `location =
 * <healthPath>` adds; resolves once it does.
 */
export async function startPlainNginx(
  procs: Processes,
  options: { name: string; dir: string; port: number; workers: number; maxBodySize: string; upstreams: string; locations: string; healthPath: string },
): Promise<string> {
  const { dir, port } = options;
  mkdirSync(join(dir, 'tmp'), { recursive: true });
  const conf = join(dir, 'nginx.conf');
  writeFileSync(
    conf,
    `daemon off;
master_process on;
worker_processes ${options.workers};
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'error.log')} warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path ${join(dir, 'tmp')};
    proxy_temp_path ${join(dir, 'tmp')};
    client_max_body_size ${options.maxBodySize};
    client_body_buffer_size ${options.maxBodySize};
${options.upstreams}
    server {
        listen 127.0.0.1:${port};
        location = ${options.healthPath} { return 200 "ok\\n"; }
${options.locations}
    }
}
`,
  );
  const child = procs.start(options.name, NGINX_BIN, ['-p', dir, '-e', join(dir, 'error.log'), '-c', conf], { cwd: dir, logFile: join(dir, 'stderr.log') });
  await waitForHttp(`http://127.0.0.1:${port}${options.healthPath}`, child, 10_000);
  return `http://127.0.0.1:${port}`;
}

/**
 * Row (a)'s plain nginx: its own prefix and config, proxying `/mcp` straight to the backend with
 * upstream keepalive and no auth.
 */
export async function startDirectNginx(procs: Processes, dir: string, backendPort: number, name = 'direct-nginx'): Promise<string> {
  return startPlainNginx(procs, {
    name,
    dir,
    port: await freePort(),
    workers: 2,
    maxBodySize: '1m',
    upstreams: `    upstream fininfo {
        server 127.0.0.1:${backendPort};
        keepalive 16;
    }`,
    locations: `        location = /mcp {
            proxy_pass http://fininfo/mcp;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }`,
    healthPath: '/healthz',
  });
}

/** `nginx -v` prints to stderr. */
export function nginxVersion(): string {
  const out = spawnSync(NGINX_BIN, ['-v'], { encoding: 'utf8' });
  return `${out.stderr}${out.stdout}`.trim();
}

export { freePort };
