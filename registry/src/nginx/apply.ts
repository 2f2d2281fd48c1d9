/**
 * The I/O adapter around renderNginxConfig: runs nginx as a child process, tests every config
 * with `nginx -t` before it goes live, swaps it in atomically and reloads, and keeps the last
 * good config serving when a new one is refused.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdir, open, rename, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { GatewayError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { ErrorLog, errorLines, reloadVerdict } from './error-log.ts';

export { findNginx } from './find-nginx.ts';

const START_TIMEOUT_MS = 10_000;
const STOP_GRACE_MS = 5_000;

export interface NginxControllerOptions {
  readonly nginxBin: string;
  /** Holds nginx.conf, the pid file, logs and temp files; created when missing. */
  readonly runtimeDir: string;
  readonly log: Logger;
  /**
   * Told the outcome of every apply(): `reloaded` (nginx took a new config), `unchanged` (it
   * was the live one), `failed` (refused by `nginx -t` or by the reload, or nginx not running).
   * For metrics; it must not throw.
   */
  readonly onApply?: (outcome: 'reloaded' | 'unchanged' | 'failed') => void;
}

export interface NginxStatus {
  readonly running: boolean;
  readonly pid: number | undefined;
  readonly lastAppliedAt: string | undefined;
  readonly lastError: string | undefined;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

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

async function readText(path: string): Promise<string> {
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

/**
 * Runs one nginx master as a child of the registry. Configs are tested with `nginx -t` before
 * they replace the live one; applies run one at a time, in call order.
 */
export class NginxController {
  readonly #bin: string;
  readonly #dir: string;
  readonly #log: Logger;
  readonly #onApply: NginxControllerOptions['onApply'];
  readonly #errorLog: ErrorLog;
  #child: ChildProcess | undefined;
  #alive = false;
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
    this.#onApply = options.onApply;
    this.#errorLog = new ErrorLog(join(this.#dir, 'error.log'));
  }

  get configPath(): string {
    return join(this.#dir, 'nginx.conf');
  }

  /** Why the last start or apply failed, or that nginx died; cleared by the next success. */
  get lastError(): string | undefined {
    return this.#lastError;
  }

  status(): NginxStatus {
    return { running: this.#alive, pid: this.#alive ? this.#child?.pid : undefined, lastAppliedAt: this.#lastAppliedAt, lastError: this.#lastError };
  }

  /**
   * Tests `config`, makes it the live config and starts nginx with it, resolving once nginx
   * wrote its pid file and every `listen` address accepts TCP connections.
   * @throws GatewayError `NGINX_CONFIG_REJECTED` when `nginx -t` refuses the config (its error
   *   lines are the message); `NGINX_UNAVAILABLE` when nginx exits or does not listen within
   *   10 s (the message holds error.log's error lines). Calling start() while running is a
   *   programmer error (plain Error).
   */
  async start(config: string): Promise<void> {
    if (this.#alive) throw new Error('nginx is already running');
    await this.#prepareDirs();
    await this.#testCandidate(config);
    await rename(`${this.configPath}.next`, this.configPath);
    const offset = await this.#errorLog.size();

    const child = spawn(this.#bin, ['-p', this.#dir, '-e', this.#errorLog.path, '-c', this.configPath], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.#child = child;
    this.#alive = true;
    this.#stopping = false;
    child.stderr?.setEncoding('utf8').on('data', (text: string) => this.#log.warn({ stderr: text.trim() }, 'nginx wrote to stderr'));
    this.#exited = new Promise((resolve) => {
      const gone = (code: number | null, signal: NodeJS.Signals | null, err?: Error): void => {
        if (!this.#alive) return;
        this.#alive = false;
        if (!this.#stopping) {
          this.#lastError = err !== undefined ? `nginx could not be run: ${err.message}` : `nginx exited unexpectedly (code ${code}, signal ${signal})`;
          this.#log.error({ code, signal, err }, 'nginx exited unexpectedly');
        }
        resolve();
      };
      child.once('exit', (code, signal) => gone(code, signal));
      child.once('error', (err) => gone(null, null, err));
    });

    if (!(await this.#waitUntilListening(child, listenAddresses(config)))) {
      const detail = errorLines(await this.#errorLog.since(offset)) || this.#lastError || 'no output';
      await this.stop();
      this.#lastError = `nginx did not start: ${detail}`;
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
   * SIGHUP; resolves once the old workers stopped taking connections. If the master fails to
   * load it after all (a port taken since the test), the previous file is put back.
   * Calls are serialized: two applies never interleave.
   * @throws GatewayError `NGINX_CONFIG_REJECTED` with nginx's error lines when the config is
   *   refused (the running config and process are untouched); `NGINX_UNAVAILABLE` when nginx
   *   is not running.
   */
  apply(config: string): Promise<{ changed: boolean }> {
    const run = this.#queue.then(() => this.#applyNow(config));
    this.#queue = run.catch(() => undefined);
    const onApply = this.#onApply;
    if (onApply)
      run.then(
        ({ changed }) => onApply(changed ? 'reloaded' : 'unchanged'),
        () => onApply('failed'),
      );
    return run;
  }

  /**
   * Stops nginx: SIGQUIT (finish open requests), SIGTERM after 5 s, SIGKILL 5 s later.
   * Resolves once the master has exited; a no-op when it is not running.
   */
  async stop(): Promise<void> {
    const child = this.#child;
    if (child === undefined || !this.#alive) return;
    this.#stopping = true;
    for (const signal of ['SIGQUIT', 'SIGTERM', 'SIGKILL'] as const) {
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
  errorLogTail(lines = 20): Promise<string> {
    return this.#errorLog.tail(lines);
  }

  async #applyNow(config: string): Promise<{ changed: boolean }> {
    if (!this.#alive) throw new GatewayError('NGINX_UNAVAILABLE', 'nginx is not running');
    if (config === this.#current) {
      // What is wanted is what serves: an earlier refusal no longer stands.
      this.#lastError = undefined;
      return { changed: false };
    }
    await this.#testCandidate(config);
    const offset = await this.#errorLog.size();
    // rename() is atomic: the master reads either the old file or the new one, never half.
    await rename(`${this.configPath}.next`, this.configPath);
    this.#child?.kill('SIGHUP');
    // The workers of the config being replaced, each of which must confirm it stopped accepting.
    const oldWorkers = Number(/^\s*worker_processes\s+(\d+);/m.exec(this.#current ?? '')?.[1] ?? 1);
    const verdict = await reloadVerdict(this.#errorLog, offset, this.#child?.pid, this.#log, oldWorkers);
    if (verdict.failed) {
      // The master keeps serving its old config when a reload fails; make the file match it.
      await writeFile(this.configPath, this.#current ?? '', { mode: 0o644 });
      this.#lastError = verdict.detail;
      this.#log.error({ detail: verdict.detail }, 'nginx could not load the config; the previous one keeps serving');
      throw new GatewayError('NGINX_CONFIG_REJECTED', verdict.detail);
    }
    this.#current = config;
    this.#lastError = undefined;
    this.#lastAppliedAt = new Date().toISOString();
    return { changed: true };
  }

  /**
   * Runs `nginx -t` on a config without starting or touching a running nginx.
   * `quiet`: a probe (finding which server nginx refuses) - its failure is neither logged nor
   * kept as lastError.
   */
  async test(config: string, options: { quiet?: boolean } = {}): Promise<void> {
    await this.#prepareDirs();
    await this.#testCandidate(config, options.quiet ?? false);
  }

  /** Writes nginx.conf.next and runs `nginx -t` on it. */
  async #testCandidate(config: string, quiet = false): Promise<void> {
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
      if (quiet) throw new GatewayError('NGINX_CONFIG_REJECTED', detail);
      this.#lastError = detail;
      this.#log.error({ detail }, 'nginx refused the config');
      throw new GatewayError('NGINX_CONFIG_REJECTED', detail);
    }
    const warnings = result.output.split('\n').filter((line) => line.includes('[warn]'));
    if (warnings.length > 0) this.#log.warn({ warnings }, 'nginx accepted the config with warnings');
  }

  async #waitUntilListening(child: ChildProcess, addresses: Array<{ host: string; port: number }>): Promise<boolean> {
    const pidFile = join(this.#dir, 'nginx.pid');
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (Date.now() < deadline && this.#alive) {
      // The master writes its pid after binding; checking it is ours avoids mistaking another
      // process on the same port for this nginx.
      if ((await readText(pidFile)).trim() === String(child.pid)) {
        const results = await Promise.all(addresses.map((a) => canConnect(a.host, a.port)));
        if (results.every(Boolean)) return true;
      }
      await sleep(25);
    }
    return false;
  }

  async #prepareDirs(): Promise<void> {
    await mkdir(join(this.#dir, 'tmp'), { recursive: true, mode: 0o755 });
    // As root, workers run as the config's `user` (nobody): they must reach the temp dirs,
    // which nginx itself creates and chowns to that user. Traverse only, no listing.
    if (process.getuid?.() === 0) {
      await chmod(this.#dir, 0o711);
      await chmod(join(this.#dir, 'tmp'), 0o711);
    }
  }
}
