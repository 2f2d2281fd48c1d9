/**
 * The folder nginx keeps the check's cached answers in (CHECK_CACHE_DIR), checked before nginx
 * starts and every 2 s after (check-generation.ts CacheDirWatch). Whoever can write it can plant
 * an answer that lets any request through, and nginx answers 500 to every MCP request when it
 * cannot use it: both are refused at start, with what to do, instead of a wall of 500s later.
 */
import { createHash } from 'node:crypto';
import { accessSync, chmodSync, constants, existsSync, lstatSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { GatewayError } from '../errors.ts';

/**
 * Where the generation file and (by default) the cache folder live. Not root: nginx's runtime
 * folder, whose workers run as us. Root: nginx's workers run as nobody, who cannot enter a
 * private state folder; a folder of ours under /run (a tmpfs: cached answers never touch a
 * disk), one per runtime folder, entered by anyone (0711) and listed by no one.
 */
export function checkCacheHome(runtimeDir: string, root = currentOwner().root): { home: string; removeOnStop: boolean } {
  if (!root) return { home: runtimeDir, removeOnStop: false };
  const base = existsSync('/run') ? '/run/mcp-gateway' : join(tmpdir(), 'mcp-gateway');
  const home = join(base, createHash('sha256').update(resolve(runtimeDir)).digest('hex').slice(0, 16));
  for (const dir of [base, home]) {
    mkdirSync(dir, { recursive: true, mode: 0o711 });
    chmodSync(dir, 0o711);
  }
  return { home, removeOnStop: true };
}

/** Removes a home checkCacheHome made (root only): nothing of it outlives the gateway. */
export function removeCacheHome(home: string): void {
  rmSync(home, { recursive: true, force: true });
}

export interface CacheDirOwner {
  /** Our uid: nginx's workers run as us, unless we are root (then they run as nobody). */
  readonly uid: number;
  /** Running as root: nginx's master chowns the folder to the workers' user itself. */
  readonly root: boolean;
}

/**
 * Creates the folder (mode 0700) when it is missing, then checks it (cacheDirProblem).
 * @throws GatewayError `CONFIG_INVALID` naming the folder, what is wrong and the fix.
 */
export function prepareCacheDir(dir: string, owner: CacheDirOwner = currentOwner()): void {
  let problem: string | undefined;
  try {
    if (!existsSync(dir)) mkdirSync(dir, { recursive: true, mode: 0o700 });
    problem = cacheDirProblem(dir, owner);
  } catch (err) {
    problem = `cannot be created (${(err as NodeJS.ErrnoException).code ?? String(err)}); create it for the user the gateway runs as, with chmod 700`;
  }
  if (problem !== undefined)
    throw new GatewayError('CONFIG_INVALID', `CHECK_CACHE_DIR ${dir}: ${problem} (or set CHECK_CACHE_SECONDS=0 to cache no decisions)`);
}

/**
 * What is wrong with the folder, and the fix (`what; fix`), or undefined when nginx's workers can
 * use it safely: a real directory (not a symbolic link), owned by the user they run as, with
 * rwx for that owner and nothing for anyone else, reachable by them. Also run while the gateway
 * runs (check-generation.ts CacheDirWatch): a folder changed under a running nginx would
 * otherwise turn cached answers into 500s.
 */
export function cacheDirProblem(dir: string, owner: CacheDirOwner = currentOwner()): string | undefined {
  let stat;
  try {
    stat = lstatSync(dir);
  } catch (err) {
    return `cannot be read (${(err as NodeJS.ErrnoException).code ?? String(err)}); create it for the user the gateway runs as, with chmod 700`;
  }
  if (stat.isSymbolicLink()) return 'is a symbolic link; point CHECK_CACHE_DIR at the real folder';
  if (!stat.isDirectory()) return 'is not a folder; choose a folder';
  if (!owner.root && stat.uid !== owner.uid)
    return `is owned by uid ${stat.uid}, not by uid ${owner.uid} that nginx's workers run as; chown ${owner.uid} ${dir}`;
  const mode = (stat.mode & 0o777).toString(8);
  if ((stat.mode & 0o077) !== 0)
    return `has mode ${mode}: others could read who called what, or plant an answer that lets any request through; chmod 700 ${dir}`;
  if ((stat.mode & 0o700) !== 0o700) return `has mode ${mode}: nginx's workers could not keep answers there; chmod 700 ${dir}`;
  if (owner.root) {
    // The workers run as nobody: every folder above must let others through.
    for (let parent = dirname(resolve(dir)); ; parent = dirname(parent)) {
      const parentMode = statSync(parent).mode;
      if ((parentMode & 0o001) === 0)
        return `cannot be reached by nginx's workers (nobody): ${parent} has mode ${(parentMode & 0o777).toString(8)}; chmod o+x ${parent} or choose another folder`;
      if (parent === dirname(parent)) break;
    }
  } else {
    try {
      accessSync(dir, constants.R_OK | constants.W_OK | constants.X_OK);
    } catch {
      return `is not readable, writable and searchable by its owner (mode ${mode}); chmod 700 ${dir}`;
    }
  }
  return undefined;
}

function currentOwner(): CacheDirOwner {
  const uid = process.getuid?.() ?? 0;
  return { uid, root: uid === 0 };
}
