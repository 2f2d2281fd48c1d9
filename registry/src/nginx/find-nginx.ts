import { accessSync, constants as fsConstants, existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';

/** Where Debian's libnginx-mod-http-js puts the njs module. */
export const DEFAULT_NJS_MODULE = '/usr/lib/nginx/modules/ngx_http_js_module.so';

function isExecutable(path: string): boolean {
  try {
    accessSync(path, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Finds the nginx binary (`bin` when given, else `nginx` on PATH, else /usr/sbin/nginx) and
 * the njs module file. Never throws: when something is missing, `missing` is a sentence for
 * the operator and `package` names the Debian package that provides it.
 */
export function findNginx(
  bin?: string,
  njsModule: string = DEFAULT_NJS_MODULE,
): { bin: string; njsModule: string } | { missing: string; package: 'nginx' | 'libnginx-mod-http-js' } {
  // eslint-disable-next-line no-restricted-properties -- PATH is where the OS keeps programs, not gateway configuration
  const searchPath = process.env['PATH'] ?? '';
  const candidates =
    bin !== undefined
      ? [bin]
      : [
          ...searchPath
            .split(delimiter)
            .filter(Boolean)
            .map((dir) => join(dir, 'nginx')),
          '/usr/sbin/nginx',
        ];
  const found = candidates.find(isExecutable);
  if (found === undefined) {
    return { missing: `nginx not found (looked at ${candidates.join(', ')}); install the Debian package nginx`, package: 'nginx' };
  }
  if (!existsSync(njsModule)) {
    return { missing: `njs module ${njsModule} not found; install the Debian package libnginx-mod-http-js`, package: 'libnginx-mod-http-js' };
  }
  return { bin: found, njsModule };
}
