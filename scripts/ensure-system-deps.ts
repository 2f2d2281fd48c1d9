import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { findNginx } from '../registry/src/nginx/apply.ts';

/**
 * nginx with the njs module is the one thing npm cannot install. Where it is missing and we
 * are root with apt-get, install Debian's packages; otherwise stop with one line naming them.
 */
export function ensureSystemDeps(): void {
  const found = findNginx(process.env['NGINX_BIN'], process.env['NGINX_NJS_MODULE']);
  if (!('missing' in found)) return;
  const canInstall = process.getuid?.() === 0 && existsSync('/usr/bin/apt-get');
  if (!canInstall) {
    process.stderr.write(`${found.missing} (as root: apt-get install -y nginx libnginx-mod-http-js)\n`);
    process.exit(1);
  }
  process.stdout.write('installing nginx and libnginx-mod-http-js from Debian (apt-get)...\n');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
  execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', 'nginx', 'libnginx-mod-http-js'], { stdio: 'inherit', env });
  const again = findNginx(process.env['NGINX_BIN'], process.env['NGINX_NJS_MODULE']);
  if ('missing' in again) {
    process.stderr.write(`${again.missing}\n`);
    process.exit(1);
  }
}

if (import.meta.main) ensureSystemDeps();
