import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { createLogger } from '../log.ts';
import { Catalog } from './catalog.ts';
import { loadServerDefinition } from './load-definition.ts';

const log = createLogger('silent');
const good = (name: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ name, url: 'http://127.0.0.1:9000', transports: { 'streamable-http': '/mcp' }, enabled: true, ...extra });

function folder(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'mcpgw-catalog-'));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

test('rejects invalid files with a message naming the problem', () => {
  const cases: Array<[string, string, RegExp]> = [
    ['x.json', '{ not json', /not valid JSON/],
    ['a;b.json', good('a;b'), /name: server name must match/],
    ['x.json', good('../x'), /name: server name must match/],
    ['x.json', good('x', { enabeld: true }), /Unrecognized key.*enabeld/i],
    ['x.json', good('x', { url: 'http://h;evil' }), /url:/],
    ['x.json', good('x', { url: 'http://h/$host' }), /url:/],
    ['x.json', good('x', { transports: { 'streamable-http': '/mcp;' } }), /transports/],
    ['x.json', good('x', { transports: {} }), /at least one transport/],
    ['y.json', good('x'), /file name must be x.json/],
  ];
  for (const [file, text, pattern] of cases) {
    const result = loadServerDefinition(file, text);
    assert.equal(result.ok, false, `${file}: ${text}`);
    assert.match((result as { message: string }).message, pattern);
  }
});

test('loads valid files, reports invalid ones and keeps going', async () => {
  const dir = folder({ 'good.json': good('good'), 'bad.json': '{', 'a;b.json': good('a;b') });
  const catalog = await Catalog.open(dir, log);
  assert.deepEqual(
    catalog.list().map((d) => d.name),
    ['good'],
  );
  assert.deepEqual(
    catalog
      .problems()
      .map((p) => p.file)
      .sort(),
    ['a;b.json', 'bad.json'],
  );
  assert.ok(Object.isFrozen(catalog.get('good')));
});

test('setEnabled rewrites the file atomically, announces the change and persists it', async () => {
  const dir = folder({ 'svc.json': good('svc') });
  const catalog = await Catalog.open(dir, log);
  const changed = once(catalog, 'changed');
  await catalog.setEnabled('svc', false);
  const [defs] = (await changed) as [Array<{ enabled: boolean }>];
  assert.equal(defs[0]?.enabled, false);
  assert.equal(JSON.parse(readFileSync(join(dir, 'svc.json'), 'utf8')).enabled, false);
  assert.deepEqual(readdirSync(dir), ['svc.json'], 'no temp file is left behind');
  const reopened = await Catalog.open(dir, log);
  assert.equal(reopened.get('svc')?.enabled, false);
  await assert.rejects(catalog.setEnabled('nope', true), { code: 'SERVER_UNKNOWN' });
  await assert.rejects(catalog.setEnabled('../x', true), { code: 'SERVER_NAME_INVALID' });
});

test('the watcher applies edits on disk and keeps the last good definition when an edit is invalid', async () => {
  const dir = folder({ 'svc.json': good('svc') });
  const catalog = await Catalog.open(dir, log);
  catalog.watch();
  try {
    await new Promise((r) => setTimeout(r, 200));
    let changed = once(catalog, 'changed');
    writeFileSync(join(dir, 'svc.json'), good('svc', { description: 'edited' }));
    await changed;
    assert.equal(catalog.get('svc')?.description, 'edited');

    writeFileSync(join(dir, 'svc.json'), '{ "name": "svc", broken');
    await waitFor(() => catalog.problems().length === 1);
    assert.equal(catalog.get('svc')?.description, 'edited', 'last good definition stays');

    changed = once(catalog, 'changed');
    writeFileSync(join(dir, 'other.json'), good('other'));
    await changed;
    assert.deepEqual(
      catalog.list().map((d) => d.name),
      ['other', 'svc'],
    );
  } finally {
    await catalog.close();
  }
});

async function waitFor(predicate: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 20));
  }
}
