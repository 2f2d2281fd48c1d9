import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connectUrlOn } from './connect-url.ts';

test('a page of the gateway at GATEWAY_PUBLIC_URL is named as is', () => {
  for (const [base, url] of [
    ['https://mcp.example.com', 'https://mcp.example.com/servers/tools/token'],
    ['https://mcp.example.com/', 'https://mcp.example.com/servers/tools/connect'],
    ['https://example.com/gw', 'https://example.com/gw/servers/a-b/connect?return=%2Fservers'],
    ['http://127.0.0.1:8080', 'http://127.0.0.1:8080/servers/x/token'],
  ] as const) {
    assert.equal(connectUrlOn(base, url), url, url);
  }
});

test('anything else is refused: another origin or prefix, a look-alike host, odd characters, dot segments', () => {
  for (const url of [
    'https://evil.example/servers/tools/token',
    'https://mcp.example.com.evil.example/servers/tools/token',
    'https://mcp.example.com@evil.example/x',
    'http://mcp.example.com/servers/tools/token',
    'https://mcp.example.com',
    'https://mcp.example.com/',
    'https://mcp.example.com//evil.example/x',
    'https://mcp.example.com/servers/../admin',
    'https://mcp.example.com/a b',
    'https://mcp.example.com/a"b',
    'https://mcp.example.com/a\r\nX-Injected: 1',
    'https://mcp.example.com/a#frag',
    'https://mcp.example.com/a<script>',
    `https://mcp.example.com/${'a'.repeat(600)}`,
  ]) {
    assert.equal(connectUrlOn('https://mcp.example.com', url), undefined, url);
  }
  assert.equal(connectUrlOn('https://example.com/gw', 'https://example.com/gwx/servers/a/token'), undefined);
});
