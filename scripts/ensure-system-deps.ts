import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { findNginx } from '../registry/src/nginx/apply.ts';

/** Debian's chromium, which the browser tests (registry/test/browser) drive with playwright-core. */
export const CHROMIUM = '/usr/bin/chromium';

/** Debian's redis-server, which the Redis record store's tests (registry/src/store/redis-store.test.ts) start. */
export const REDIS_SERVER = '/usr/bin/redis-server';

/**
 * nginx with the njs module (and, for the tests, chromium and redis-server) are what npm cannot install.
 * Where one is missing and we are root with apt-get, install Debian's packages; otherwise stop
 * with one line naming them.
 */
export function ensureSystemDeps(options: { browser: boolean }): void {
  const found = findNginx(process.env['NGINX_BIN'], process.env['NGINX_NJS_MODULE']);
  const missing: { problem: string; packages: string[] }[] = [];
  if ('missing' in found) missing.push({ problem: found.missing, packages: ['nginx', 'libnginx-mod-http-js'] });
  if (options.browser && !existsSync(CHROMIUM)) missing.push({ problem: `${CHROMIUM} is missing (the browser tests need it)`, packages: ['chromium'] });
  if (options.browser && !existsSync(REDIS_SERVER))
    missing.push({ problem: `${REDIS_SERVER} is missing (the Redis store tests need it)`, packages: ['redis-server'] });
  if (missing.length === 0) return;
  const packages = missing.flatMap((m) => m.packages);
  const canInstall = process.getuid?.() === 0 && existsSync('/usr/bin/apt-get');
  if (!canInstall) {
    for (const m of missing) process.stderr.write(`${m.problem} (as root: apt-get install -y ${m.packages.join(' ')})\n`);
    process.exit(1);
  }
  process.stdout.write(`installing ${packages.join(', ')} from Debian (apt-get)...\n`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
  execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...packages], { stdio: 'inherit', env });
  const again = findNginx(process.env['NGINX_BIN'], process.env['NGINX_NJS_MODULE']);
  if ('missing' in again) {
    process.stderr.write(`${again.missing}\n`);
    process.exit(1);
  }
  if (options.browser && !existsSync(CHROMIUM)) {
    process.stderr.write(`${CHROMIUM} is still missing after apt-get install chromium\n`);
    process.exit(1);
  }
  if (options.browser && !existsSync(REDIS_SERVER)) {
    process.stderr.write(`${REDIS_SERVER} is still missing after apt-get install redis-server\n`);
    process.exit(1);
  }
}

// As a command (before the tests): nginx, chromium and redis-server. scripts/start.ts asks for nginx only.
if (import.meta.main) ensureSystemDeps({ browser: true });
