import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { GatewayError } from '../errors.ts';
import {
  assertBackendPath,
  assertBackendUrl,
  assertBodySize,
  assertCorsOrigin,
  assertFilePath,
  assertListenHost,
  assertPort,
  assertServerName,
  assertWorkerUser,
  quoted,
} from './names.ts';

const FIXTURE = new URL('../../test/fixtures/hostile-server-names.txt', import.meta.url);

/** Each non-comment line is a JSON string literal (see the file's header). */
function hostileNames(): string[] {
  return readFileSync(FIXTURE, 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '' && !line.startsWith('#'))
    .map((line) => JSON.parse(line) as string);
}

function rejects(fn: () => unknown, code: string): void {
  assert.throws(fn, (err: unknown) => err instanceof GatewayError && err.code === code);
}

describe('assertServerName', () => {
  const names = hostileNames();

  it('reads a corpus that covers the cases the design names', () => {
    assert.ok(names.length >= 25);
    for (const needed of ['a;b', 'x}', '$host', '../etc', 'a b', 'a\nb', 'A', '-a', '\u0430', 'a{', "a'", 'a"', 'a#', 'a\\', '', 'a/b', 'a.b', 'a_b']) {
      assert.ok(names.includes(needed), `corpus lacks ${JSON.stringify(needed)}`);
    }
    assert.ok(names.some((name) => name.length >= 64 && /^[a-z]+$/.test(name)));
  });

  for (const name of hostileNames()) {
    it(`refuses ${JSON.stringify(name)} with SERVER_NAME_INVALID`, () => {
      rejects(() => assertServerName(name), 'SERVER_NAME_INVALID');
    });
  }

  it('refuses values that are not strings, even ones that stringify to a valid name', () => {
    rejects(() => assertServerName(undefined), 'SERVER_NAME_INVALID');
    rejects(() => assertServerName(42), 'SERVER_NAME_INVALID');
    rejects(() => assertServerName({ toString: () => 'ok' }), 'SERVER_NAME_INVALID');
  });

  it('accepts names of [a-z0-9][a-z0-9-]{0,62} and returns them unchanged', () => {
    for (const name of ['a', '0', 'github', 'my-server-2', 'a-', '9lives', 'x'.repeat(63)]) {
      assert.equal(assertServerName(name), name);
    }
  });

  it('names the offending value, escaped, in the message', () => {
    assert.throws(() => assertServerName('a\nb'), /"a\\nb"/);
  });
});

describe('assertBackendUrl', () => {
  it('accepts http(s) URLs with host, port and path, dropping a trailing slash', () => {
    assert.equal(assertBackendUrl('http://127.0.0.1:8001'), 'http://127.0.0.1:8001');
    assert.equal(assertBackendUrl('https://mcp.example.com/base/'), 'https://mcp.example.com/base');
    assert.equal(assertBackendUrl('http://[::1]:9000'), 'http://[::1]:9000');
  });

  for (const url of [
    '',
    'ftp://h',
    'http://h;x',
    'http://h/$host',
    'http://h/a b',
    'http://h/a"b',
    "http://h/a'b",
    'http://h/{x}',
    'http://h/?q=1',
    'http://h/#f',
    'http://user:pw@h',
    'http://h:0',
    'http://h:70000',
    'http://h\n',
    'http://h/x\nproxy_pass http://evil',
    'http://[zz]',
    'http://h\u0430',
  ]) {
    it(`refuses ${JSON.stringify(url)}`, () => rejects(() => assertBackendUrl(url), 'CATALOG_FILE_INVALID'));
  }
});

describe('assertBackendPath', () => {
  it('accepts /mcp, /sse and /', () => {
    for (const path of ['/mcp', '/sse', '/', '/v1/mcp.x~y_z-']) assert.equal(assertBackendPath(path), path);
  });
  for (const path of ['', 'mcp', '/a;b', '/a b', '/$uri', '/a?b', '/a\n', '/a{', '/a"']) {
    it(`refuses ${JSON.stringify(path)}`, () => rejects(() => assertBackendPath(path), 'CATALOG_FILE_INVALID'));
  }
});

describe('assertListenHost and assertPort', () => {
  it('accepts IPv4, [IPv6], * and host names', () => {
    for (const host of ['127.0.0.1', '0.0.0.0', '[::1]', '*', 'localhost', 'gw.example.com']) assert.equal(assertListenHost(host), host);
  });
  for (const host of ['', '256.0.0.1', '::1', '127.0.0.1:80', 'a b', 'a;b', '$host', 'h\n']) {
    it(`refuses host ${JSON.stringify(host)}`, () => rejects(() => assertListenHost(host), 'CONFIG_INVALID'));
  }
  it('accepts ports 1-65535 only', () => {
    assert.equal(assertPort(8080), 8080);
    for (const port of [0, -1, 65536, 1.5, Number.NaN, '80']) rejects(() => assertPort(port), 'CONFIG_INVALID');
  });
});

describe('assertFilePath', () => {
  it('accepts absolute paths of safe segments', () => {
    for (const path of ['/', '/var/lib/mcp-gateway/nginx', '/usr/lib/nginx/modules/ngx_http_js_module.so', '/tmp/x/']) {
      assert.equal(assertFilePath(path), path);
    }
  });
  for (const path of ['', 'relative/dir', './x', '/a/../etc', '/a/./b', '/a b', '/a;b', '/a$b', '/a"b', '/a\nb', '/caf\u00e9', '/a{b}']) {
    it(`refuses ${JSON.stringify(path)}`, () => rejects(() => assertFilePath(path), 'CONFIG_INVALID'));
  }
});

describe('assertWorkerUser and assertBodySize', () => {
  it('accepts "user" and "user group"', () => {
    assert.equal(assertWorkerUser('nobody nogroup'), 'nobody nogroup');
    assert.equal(assertWorkerUser('www-data'), 'www-data');
    for (const user of ['', 'root;', 'a b c', 'Nobody', 'a\nb']) rejects(() => assertWorkerUser(user), 'CONFIG_INVALID');
  });
  it('accepts nginx sizes', () => {
    for (const size of ['1m', '512k', '65536', '4M']) assert.equal(assertBodySize(size), size);
    for (const size of ['', '0', '1g', '1 m', '1m;', '-1']) rejects(() => assertBodySize(size), 'CONFIG_INVALID');
  });
});

describe('quoted', () => {
  it('double-quotes a checked value', () => {
    assert.equal(quoted(assertServerName('alpha')), '"alpha"');
  });
  it('refuses characters special inside nginx double quotes, even on a mis-branded value', () => {
    for (const bad of ['a"b', 'a\\b', '$host', 'a\nb']) {
      assert.throws(() => quoted(bad as ReturnType<typeof assertServerName>), /refusing to quote/);
    }
  });
});

describe('assertCorsOrigin', () => {
  const corpus = readFileSync(new URL('../../test/fixtures/hostile-origins.txt', import.meta.url), 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '' && !line.startsWith('#'))
    .map((line) => JSON.parse(line) as string);

  it('reads a corpus with wildcards, paths, default ports, upper case and nginx syntax', () => {
    assert.ok(corpus.length >= 25);
    for (const needed of ['*', 'null', 'https://app.example.com/', 'https://app.example.com:443', 'https://App.Example.com', 'https://$host']) {
      assert.ok(corpus.includes(needed), `corpus lacks ${JSON.stringify(needed)}`);
    }
  });

  for (const origin of corpus) {
    it(`refuses ${JSON.stringify(origin)} with CONFIG_INVALID`, () => rejects(() => assertCorsOrigin(origin), 'CONFIG_INVALID'));
  }

  it('accepts serialized origins and returns them unchanged', () => {
    for (const origin of ['https://app.example.com', 'http://localhost:6274', 'http://127.0.0.1:8080', 'https://[::1]:8443', 'https://a-b.c.example']) {
      assert.equal(assertCorsOrigin(origin), origin);
    }
  });
});
