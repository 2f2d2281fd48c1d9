/**
 * Reading nginx's error.log: the tail for people, and the master's verdict after a reload,
 * which nginx reports nowhere else (SIGHUP has no reply).
 */
import { open, stat } from 'node:fs/promises';
import type { Logger } from '../log.ts';

const RELOAD_TIMEOUT_MS = 5_000;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** The `[emerg]`/`[alert]`/`[crit]`/`[error]` lines of nginx output, or all of it when none. */
export function errorLines(output: string): string {
  const lines = output.split('\n').filter((line) => /\[(emerg|alert|crit|error)\]/.test(line));
  return (lines.length > 0 ? lines : output.split('\n').filter(Boolean)).join('\n');
}

export class ErrorLog {
  readonly path: string;

  constructor(path: string) {
    this.path = path;
  }

  /** Current size in bytes; 0 when the file does not exist yet. */
  async size(): Promise<number> {
    try {
      return (await stat(this.path)).size;
    } catch {
      return 0;
    }
  }

  /** Everything written since byte `offset`; '' when unreadable. */
  async since(offset: number): Promise<string> {
    try {
      const handle = await open(this.path, 'r');
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

  /** The last `lines` lines (at most the last 64 KiB of the file). */
  async tail(lines: number): Promise<string> {
    const text = await this.since(Math.max(0, (await this.size()) - 64 * 1024));
    return text.replace(/\n$/, '').split('\n').slice(-lines).join('\n');
  }
}

/** How many distinct worker pids (not the master) logged "gracefully shutting down". */
function shutDownWorkers(text: string, masterPid: number | undefined): number {
  const pids = new Set<string>();
  for (const line of text.split('\n')) {
    if (!line.includes('gracefully shutting down')) continue;
    const pid = / (\d+)#\d+: /.exec(line)?.[1];
    if (pid !== undefined && pid !== String(masterPid)) pids.add(pid);
  }
  return pids.size;
}

/**
 * Waits for the master's verdict on a SIGHUP, reading what it logged after `offset` (the
 * rendered config logs at `notice`).
 * Success: the master logs "start worker processes"; it then sleeps ~100 ms before telling
 * the old workers to quit, and until then they still accept connections under the old
 * config, so we also wait until each of them (`oldWorkers`) logged "gracefully shutting down".
 * Failure: an [emerg]/[alert] line from the master. We let it finish first (a taken port is
 * retried 5 times, 500 ms apart) so its late lines are not read as the next apply's verdict.
 * Neither within 5 s: reported as success with a warning, since nginx said nothing wrong.
 */
export async function reloadVerdict(
  log: ErrorLog,
  offset: number,
  masterPid: number | undefined,
  logger: Logger,
  oldWorkers = 1,
): Promise<{ failed: boolean; detail: string }> {
  const fromMaster = (line: string): boolean => line.includes(` ${masterPid}#`);
  const masterFailures = (text: string): string[] => text.split('\n').filter((line) => fromMaster(line) && /\[(emerg|alert)\]/.test(line));
  let deadline = Date.now() + RELOAD_TIMEOUT_MS;
  let loaded = false;
  let seen = '';
  let quietSince = Date.now();
  while (Date.now() < deadline) {
    const text = await log.since(offset);
    if (text !== seen) quietSince = Date.now();
    seen = text;
    if (!loaded && text.split('\n').some((line) => fromMaster(line) && line.includes('start worker processes'))) {
      loaded = true;
      deadline = Date.now() + 1000;
    }
    // Every old worker must have stopped accepting: until the last one says so, a request can
    // still meet the previous config.
    if (loaded && shutDownWorkers(text, masterPid) >= oldWorkers) return { failed: false, detail: '' };
    const failures = masterFailures(text);
    if (!loaded && failures.length > 0 && (text.includes('still could not bind') || Date.now() - quietSince > 700)) {
      return { failed: true, detail: failures.join('\n') };
    }
    await sleep(10);
  }
  const failures = masterFailures(seen);
  if (!loaded && failures.length > 0) return { failed: true, detail: failures.join('\n') };
  if (!loaded) logger.warn('nginx did not confirm the reload in error.log; assuming it took effect');
  return { failed: false, detail: '' };
}
