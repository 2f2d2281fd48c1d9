/**
 * The folder nginx keeps the check's cached answers in (CHECK_CACHE_DIR), checked before nginx
 * starts. Whoever can write it can plant an answer that lets any request through, and nginx
 * answers 500 to every MCP request when it cannot write there: both are refused here, at start,
 * with what to do, instead of a wall of 500s later.
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
  /** The uid nginx's workers run as: ours, or nobody's when we are root (check-cache-dir is then owned by root or it). */
  readonly uid: number;
  /** Running as root: nginx's master chowns the folder to the workers' user itself. */
  readonly root: boolean;
}

/**
 * Creates the folder (mode 0700) when it is missing, then checks it: a real directory (not a
 * symbolic link), owned by the user nginx's workers run as, and open to nobody else.
 * @throws GatewayError `CONFIG_INVALID` naming the folder, what is wrong and the fix.
 */
export function prepareCacheDir(dir: string, owner: CacheDirOwner = currentOwner()): void {
  const refuse = (what: string, fix: string): never => {
    throw new GatewayError('CONFIG_INVALID', `CHECK_CACHE_DIR ${dir}: ${what}; ${fix} (or set CHECK_CACHE_SECONDS=0 to cache no decisions)`);
  };
  try {
    if (!existsSync(dir)) mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    refuse(`cannot be created (${(err as NodeJS.ErrnoException).code ?? String(err)})`, 'create it for the user the gateway runs as, with chmod 700');
  }
  const stat = lstatSync(dir);
  if (stat.isSymbolicLink()) refuse('is a symbolic link', 'point CHECK_CACHE_DIR at the real folder');
  if (!stat.isDirectory()) refuse('is not a folder', 'choose a folder');
  if (!owner.root && stat.uid !== owner.uid)
    refuse(`is owned by uid ${stat.uid}, not by uid ${owner.uid} that nginx's workers run as`, `chown ${owner.uid} ${dir}`);
  if ((stat.mode & 0o077) !== 0)
    refuse(
      `has mode ${(stat.mode & 0o777).toString(8)}: others could read who called what, or plant an answer that lets any request through`,
      `chmod 700 ${dir}`,
    );
  if (owner.root) {
    // The workers run as nobody: every folder above must let others through.
    for (let parent = dirname(resolve(dir)); ; parent = dirname(parent)) {
      const mode = statSync(parent).mode;
      if ((mode & 0o001) === 0)
        refuse(
          `cannot be reached by nginx's workers (nobody): ${parent} has mode ${(mode & 0o777).toString(8)}`,
          `chmod o+x ${parent} or choose another folder`,
        );
      if (parent === dirname(parent)) break;
    }
  } else {
    try {
      accessSync(dir, constants.R_OK | constants.W_OK | constants.X_OK);
    } catch {
      refuse(`is not readable, writable and searchable by its owner (mode ${(stat.mode & 0o777).toString(8)})`, `chmod 700 ${dir}`);
    }
  }
}

function currentOwner(): CacheDirOwner {
  const uid = process.getuid?.() ?? 0;
  return { uid, root: uid === 0 };
}
