/**
 * The I/O adapter around renderNginxConfig: runs nginx as a child process, tests every config
 * with `nginx -t` before it goes live, swaps it in atomically and reloads, and keeps the last
 * good config serving when a new one is refused.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants as fsConstants, existsSync } from 'node:fs';
import { chmod, mkdir, open, rename, stat, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { delimiter, join } from 'node:path';
import { GatewayError } from '../errors.ts';
import type { Logger } from '../log.ts';

const START_TIMEOUT_MS = 10_000;
const RELOAD_TIMEOUT_MS = 5_000;
const STOP_GRACE_MS = 5_000;
const DEFAULT_NJS_MODULE = '/usr/lib/nginx/modules/ngx_http_js_module.so';

export interface NginxControllerOptions {
  readonly nginxBin: string;
  /** Holds nginx.conf, the pid file, logs and temp files; created when missing. */
  readonly runtimeDir: string;
  readonly log: Logger;
}

export interface NginxStatus {
  readonly running: boolean;
  readonly pid: number | undefined;
  readonly lastAppliedAt: string | undefined;
  readonly lastError: string | undefined;
}

/**
 * Finds the nginx binary (`bin`, else PATH, else /usr/sbin/nginx) and the njs module.
 * Never throws: when something is missing, `missing` says what and `package` names the
 * Debian package that provides it.
 */
export function findNginx(
  bin?: string,
  njsModule: string = DEFAULT_NJS_MODULE,
): { bin: string; njsModule: string } | { missing: string; package: 'nginx' | 'libnginx-mod-http-js' } {
  const candidates = bin !== undefined ? [bin] : [...(process.env['PATH'] ?? '').split(delimiter).filter(Boolean).map((dir) => join(dir, 'nginx')), '/usr/sbin/nginx'];
  const found = candidates.find((path) => {
    try {
      accessSync(path, fsConstants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
  if (found === undefined) {
    return { missing: `nginx not found (looked at ${candidates.join(', ')}); install the Debian package nginx`, package: 'nginx' };
  }
  if (!existsSync(njsModule)) {
    return { missing: `njs module ${njsModule} not found; install the Debian package libnginx-mod-http-js`, package: 'libnginx-mod-http-js' };
  }
  return { bin: found, njsModule };
}

/** The `[emerg]`/`[alert]`/`[crit]` lines of nginx output, or all of it when there are none. */
function errorLines(output: string): string {
  const lines = output.split('\n').filter((line) => /\[(emerg|alert|crit|error)\]/.test(line));
  return (lines.length > 0 ? lines : output.split('\n').filter(Boolean)).join('\n');
}

/** `listen` addresses in a config, so start() can wait until nginx really accepts connections. */
function listenAddresses(config: string): Array<{ host: string; port: number }> {
  const out: Array<{ host: string; port: number }> = [];
  for (const match of config.matchAll(/^\s*listen\s+"?(\[[^\]]+\]|[^\s":;]+):(\d+)"?/gm)) {
    const host = (match[1] ?? '').replace(/^\[|\]$/g, '');
    out.push({ host: host === '*' || host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host, port: Number(match[2]) });
  }
  return out;
}

function canConnect(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Runs one nginx master as a child of the registry. Configs are tested with `nginx -t` before
 * they replace the live one; applies run one at a time, in call order.
 */
export class NginxController {
  readonly #bin: string;
  readonly #dir: string;
  readonly #log: Logger;
  #child: ChildProcess | undefined;
  #exited: Promise<void> = Promise.resolve();
  #stopping = false;
  #current: string | undefined;
  #queue: Promise<unknown> = Promise.resolve();
  #lastError: string | undefined;
  #lastAppliedAt: string | undefined;

  constructor(options: NginxControllerOptions) {
    this.#bin = options.nginxBin;
    this.#dir = options.runtimeDir;
    this.#log = options.log;
  }

  get configPath(): string {
    return join(this.#dir, 'nginx.conf');
  }

  get errorLogPath(): string {
    return join(this.#dir, 'error.log');
  }

  /** Why the last start or apply failed; cleared by the next success. */
  get lastError(): string | undefined {
    return this.#lastError;
  }

  status(): NginxStatus {
    const running = this.#child !== undefined && this.#child.exitCode === null && this.#child.signalCode === null;
    return { running, pid: running ? this.#child?.pid : undefined, lastAppliedAt: this.#lastAppliedAt, lastError: this.#lastError };
  }

  /**
   * Tests `config`, makes it the live config and starts nginx with it, resolving once the
   * listen addresses accept TCP connections.
   * @throws GatewayError `NGINX_CONFIG_REJECTED` when `nginx -t` refuses the config (its error
   *   lines are the message); `NGINX_UNAVAILABLE` when nginx exits or does not listen within
   *   10 s (the message ends with the tail of error.log). A second start() is a programmer error.
   */
  async start(config: string): Promise<void> {
    if (this.#child !== undefined) throw new Error('nginx is already started');
    await this.#prepareDirs();
    await this.#testCandidate(config);
    await rename(`${this.configPath}.next`, this.configPath);
    const errorLogStart = await this.#errorLogSize();

    const child = spawn(this.#bin, ['-p', this.#dir, '-e', this.errorLogPath, '-c', this.configPath], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.#child = child;
    this.#stopping = false;
    child.stderr?.setEncoding('utf8').on('data', (text: string) => this.#log.warn({ stderr: text.trim() }, 'nginx wrote to stderr'));
    this.#exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        if (!this.#stopping) {
          this.#lastError = `nginx exited unexpectedly (code ${code}, signal ${signal})`;
          this.#log.error({ code, signal }, 'nginx exited unexpectedly');
        }
        resolve();
      });
    });
    child.once('error', (err) => this.#log.error({ err }, 'nginx could not be started'));

    const ready = await this.#waitUntilListening(child, listenAddresses(config));
    if (!ready) {
      const tail = await this.#errorLogSince(errorLogStart);
      await this.stop();
      this.#child = undefined;
      this.#lastError = `nginx did not start: ${tail}`;
      throw new GatewayError('NGINX_UNAVAILABLE', this.#lastError);
    }
    this.#current = config;
    this.#lastError = undefined;
    this.#lastAppliedAt = new Date().toISOString();
    this.#log.info({ pid: child.pid }, 'nginx started');
  }

  /**
   * Makes `config` the live config: skipped when identical to it; otherwise written as
   * nginx.conf.next, tested with `nginx -t`, renamed over nginx.conf, and the master sent
   * SIGHUP. If the master then fails to load it (say a port taken since the test), the
   * previous file is restored. Calls are serialized: two applies never interleave.
   * @throws GatewayError `NGINX_CONFIG_REJECTED` with nginx's error lines when the config is
   *   refused (the running config and process are untouched); `NGINX_UNAVAILABLE` when nginx
   *   is not running.
   */
  apply(config: string): Promise<{ changed: boolean }> {
    const run = this.#queue.then(() => this.#applyNow(config));
    this.#queue = run.catch(() => undefined);
    return run;
  }

  /**
   * Stops nginx: SIGQUIT (finish open requests), SIGTERM after 5 s, SIGKILL 5 s later.
   * Resolves once the master has exited; a no-op when it is not running.
   */
  async stop(): Promise<void> {
    const child = this.#child;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    this.#stopping = true;
    const signals: NodeJS.Signals[] = ['SIGQUIT', 'SIGTERM', 'SIGKILL'];
    for (const signal of signals) {
      child.kill(signal);
      let timer: NodeJS.Timeout | undefined;
      const exited = await Promise.race([
        this.#exited.then(() => true),
        new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), STOP_GRACE_MS))),
      ]);
      clearTimeout(timer);
      if (exited) break;
      this.#log.warn({ signal }, 'nginx did not stop in time; escalating');
    }
    await this.#exited;
    this.#log.info('nginx stopped');
  }

  /** The last `lines` lines of error.log ('' when there is none). Never throws. */
  async errorLogTail(lines = 20): Promise<string> {
    const size = await this.#errorLogSize();
    const text = await this.#errorLogSince(Math.max(0, size - 64 * 1024));
    return text.split('\n').slice(-lines).join('\n');
  }

  async #applyNow(config: string): Promise<{ changed: boolean }> {
    if (!this.status().running) throw new GatewayError('NGINX_UNAVAILABLE', 'nginx is not running');
    if (config === this.#current) return { changed: false };
    await this.#testCandidate(config);
    const offset = await this.#errorLogSize();
    await rename(`${this.configPath}.next`, this.configPath);
    this.#child?.kill('SIGHUP');
    const outcome = await this.#reloadOutcome(offset, this.#child?.pid);
    if (outcome.failed) {
      // The master keeps its old config when a reload fails; put the file back to match it.
      await writeFile(this.configPath, this.#current ?? '', { mode: 0o644 });
      this.#lastError = outcome.detail;
      throw new GatewayError('NGINX_CONFIG_REJECTED', outcome.detail);
    }
    this.#current = config;
    this.#lastError = undefined;
    this.#lastAppliedAt = new Date().toISOString();
    return { changed: true };
  }

  /** Writes nginx.conf.next and runs `nginx -t` on it. */
  async #testCandidate(config: string): Promise<void> {
    const candidate = `${this.configPath}.next`;
    await writeFile(candidate, config, { mode: 0o644 });
    // `-e stderr`: test failures come back to us instead of landing in the live error.log.
    const result = await new Promise<{ ok: boolean; output: string }>((resolve) => {
      execFile(this.#bin, ['-t', '-p', this.#dir, '-e', 'stderr', '-c', candidate], { timeout: 10_000 }, (err, stdout, stderr) =>
        resolve({ ok: err === null, output: `${stdout}${stderr}` }),
      );
    });
    if (!result.ok) {
      const detail = errorLines(result.output);
      this.#lastError = detail;
      this.#log.error({ detail }, 'nginx refused the config');
      throw new GatewayError('NGINX_CONFIG_REJECTED', detail);
    }
    const warnings = result.output.split('\n').filter((line) => line.includes('[warn]'));
    if (warnings.length > 0) this.#log.warn({ warnings }, 'nginx accepted the config with warnings');
  }

  /**
   * Waits for the master's verdict on a SIGHUP in error.log (render.ts logs at `notice`).
   * Success: the master logs "start worker processes"; it then sleeps ~100 ms before telling
   * the old workers to quit, and until then they still accept connections under the old
   * config, so we also wait for their "gracefully shutting down". Failure: an [emerg] from the
   * master; we let it finish (a taken port is retried 5 times, 500 ms apart) so its late lines
   * are not read as the verdict on the next apply.
   */
  async #reloadOutcome(offset: number, masterPid: number | undefined): Promise<{ failed: boolean; detail: string }> {
    const fromMaster = (line: string): boolean => line.includes(` ${masterPid}#`);
    let deadline = Date.now() + RELOAD_TIMEOUT_MS;
    let loaded = false;
    let seen = '';
    let quietSince = Date.now();
    while (Date.now() < deadline) {
      const text = await this.#errorLogSince(offset);
      if (text !== seen) quietSince = Date.now();
      seen = text;
      const master = text.split('\n').filter(fromMaster);
      if (!loaded && master.some((line) => line.includes('start worker processes'))) {
        loaded = true;
        deadline = Date.now() + 1000;
      }
      if (loaded && text.includes('gracefully shutting down')) break;
      const failure = master.filter((line) => /\[(emerg|alert)\]/.test(line));
      if (!loaded && failure.length > 0 && (text.includes('still could not bind') || Date.now() - quietSince > 700)) {
        return { failed: true, detail: failure.join('\n') };
      }
      await sleep(10);
    }
    const failure = seen.split('\n').filter((line) => fromMaster(line) && /\[(emerg|alert)\]/.test(line));
    if (!loaded && failure.length > 0) return { failed: true, detail: failure.join('\n') };
    if (!loaded) this.#log.warn('nginx did not confirm the reload in error.log; assuming it took effect');
    return { failed: false, detail: '' };
  }

  async #waitUntilListening(child: ChildProcess, addresses: Array<{ host: string; port: number }>): Promise<boolean> {
    const pidFile = join(this.#dir, 'nginx.pid');
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (Date.now() < deadline) {
      if (child.exitCode !== null || child.signalCode !== null) return false;
      // The master writes its pid after binding; checking it is ours avoids mistaking another
      // process on the same port for this nginx.
      const pid = await this.#readFile(pidFile);
      if (pid.trim() === String(child.pid)) {
        const results = await Promise.all(addresses.map((a) => canConnect(a.host, a.port)));
        if (results.every(Boolean)) return true;
      }
      await sleep(25);
    }
    return false;
  }

  async #prepareDirs(): Promise<void> {
    await mkdir(join(this.#dir, 'tmp'), { recursive: true, mode: 0o755 });
    // As root, workers run as the config's `user` (nobody); they must be able to reach the
    // temp dirs, which nginx itself creates and chowns to that user. Traverse only, no listing.
    if (process.getuid?.() === 0) {
      await chmod(this.#dir, 0o711);
      await chmod(join(this.#dir, 'tmp'), 0o711);
    }
  }

  async #errorLogSize(): Promise<number> {
    try {
      return (await stat(this.errorLogPath)).size;
    } catch {
      return 0;
    }
  }

  async #errorLogSince(offset: number): Promise<string> {
    try {
      const handle = await open(this.errorLogPath, 'r');
      try {
        const { size } = await handle.stat();
        const buffer = Buffer.alloc(Math.max(0, size - offset));
        await handle.read(buffer, 0, buffer.length, offset);
        return buffer.toString('utf8');
      } finally {
        await handle.close();
      }
    } catch {
      return '';
    }
  }

  async #readFile(path: string): Promise<string> {
    try {
      const handle = await open(path, 'r');
      try {
        return await handle.readFile('utf8');
      } finally {
        await handle.close();
      }
    } catch {
      return '';
    }
  }
}
