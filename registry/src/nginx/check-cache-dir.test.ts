import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GatewayError } from '../errors.ts';
import { checkCacheHome, prepareCacheDir, removeCacheHome } from './check-cache-dir.ts';

const me = process.getuid?.() ?? 0;
const user = { uid: me, root: false };

describe('prepareCacheDir', () => {
  const root = mkdtempSync(join(tmpdir(), 'cache-dir-'));
  chmodSync(root, 0o755);
  after(() => rmSync(root, { recursive: true, force: true }));
  const refused = (dir: string, owner: { uid: number; root: boolean }, pattern: RegExp) =>
    assert.throws(
      () => prepareCacheDir(dir, owner),
      (err: unknown) => err instanceof GatewayError && err.code === 'CONFIG_INVALID' && pattern.test(err.message) && err.message.includes(dir),
    );

  test('creates a missing folder, private (700), and accepts it', () => {
    const dir = join(root, 'made', 'cache');
    prepareCacheDir(dir, user);
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    prepareCacheDir(dir, user);
  });

  test('refuses a folder open to others, not ours, a link or a file', () => {
    const open = join(root, 'open');
    mkdirSync(open, { mode: 0o700 });
    chmodSync(open, 0o770);
    refused(open, user, /has mode 770.*chmod 700/);
    const theirs = join(root, 'theirs');
    mkdirSync(theirs, { mode: 0o700 });
    refused(theirs, { uid: me + 1, root: false }, new RegExp(`owned by uid ${me}, not by uid ${me + 1}.*chown`));
    const readOnly = join(root, 'read-only');
    mkdirSync(readOnly, { mode: 0o700 });
    chmodSync(readOnly, 0o500);
    refused(readOnly, user, /has mode 500: nginx's workers could not keep answers there.*chmod 700/);
    const link = join(root, 'link');
    symlinkSync(join(root, 'made', 'cache'), link);
    refused(link, user, /symbolic link/);
    const file = join(root, 'file');
    writeFileSync(file, '');
    refused(file, user, /is not a folder/);
  });

  test('as root (workers run as nobody): every folder above must let others through', () => {
    const closed = join(root, 'closed');
    mkdirSync(join(closed, 'cache'), { recursive: true, mode: 0o700 });
    chmodSync(closed, 0o700);
    refused(join(closed, 'cache'), { uid: 0, root: true }, new RegExp(`nginx's workers \\(nobody\\): ${closed} has mode 700.*chmod o\\+x`));
    chmodSync(closed, 0o711);
    prepareCacheDir(join(closed, 'cache'), { uid: 0, root: true });
  });
});

describe('checkCacheHome', () => {
  test("not root: nginx's runtime folder; root: a folder of ours others may enter, one per runtime folder, removed at stop", () => {
    assert.deepEqual(checkCacheHome('/var/lib/gw/nginx', false), { home: '/var/lib/gw/nginx', removeOnStop: false });
    if (me !== 0) return;
    const a = checkCacheHome(join(tmpdir(), 'rt-a'), true);
    const b = checkCacheHome(join(tmpdir(), 'rt-b'), true);
    assert.notEqual(a.home, b.home);
    assert.equal(statSync(a.home).mode & 0o777, 0o711);
    assert.equal(a.removeOnStop, true);
    removeCacheHome(a.home);
    removeCacheHome(b.home);
    assert.throws(() => statSync(a.home));
  });
});
