/**
 * Refreshes docs/images/*.png: runs the browser suite (real chromium against a real gateway)
 * with SCREENSHOTS_DIR set, so its screenshot() calls write there. A plain test run leaves
 * SCREENSHOTS_DIR unset and never touches the work tree.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ensureSystemDeps } from './ensure-system-deps.ts';

const root = join(import.meta.dirname, '..');
const dir = join(root, 'docs', 'images');
const EXPECTED = [
  'servers-admin',
  'servers-tool-user',
  'server-detail',
  'register-errors',
  'tools-search',
  'who-can',
  'audit',
  'login',
  'consent',
  'connections',
  'token-created',
  'backend-connect-not-connected',
  'backend-connect-provider-sign-in',
  'backend-connect-connected',
  'backend-connect-broken',
];

ensureSystemDeps({ browser: true });
mkdirSync(dir, { recursive: true });
const started = Date.now();
const node = join(root, 'node_modules', '.bin', 'node');
const run = spawnSync(existsSync(node) ? node : process.execPath, ['--test', '--test-concurrency=1', 'registry/test/browser/*.test.ts'], {
  cwd: root,
  stdio: 'inherit',
  env: { ...process.env, SCREENSHOTS_DIR: dir },
});
if (run.status !== 0) {
  process.stderr.write(`the browser suite failed (exit ${run.status ?? run.signal}); screenshots may be incomplete\n`);
  process.exit(1);
}
const stale = EXPECTED.filter((name) => {
  const file = join(dir, `${name}.png`);
  return !existsSync(file) || statSync(file).mtimeMs < started;
});
if (stale.length > 0) {
  process.stderr.write(`not written by this run: ${stale.map((n) => `docs/images/${n}.png`).join(', ')}\n`);
  process.exit(1);
}
process.stdout.write(`${EXPECTED.length} screenshots written to docs/images\n`);
