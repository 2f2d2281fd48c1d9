import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isLoopback, metricsAccess } from './access.ts';
import { CLIENT_ADDRESS_HEADER } from './paths.ts';
import { readiness } from './readiness.ts';

const TOKEN = 'scrape-token-0123456789abcdef';
const from = (address: string | undefined, authorization?: string) => ({
  ...(address === undefined ? {} : { [CLIENT_ADDRESS_HEADER]: address }),
  ...(authorization === undefined ? {} : { authorization }),
});

describe('metricsAccess', () => {
  it('knows loopback addresses as nginx writes $remote_addr', () => {
    for (const address of ['127.0.0.1', '127.1.2.3', '::1', '::ffff:127.0.0.1']) assert.equal(isLoopback(address), true, address);
    for (const address of [undefined, '', '10.0.0.1', '192.0.2.2', '::2', '1127.0.0.1', '127.0.0.1.example', 'fe80::1'])
      assert.equal(isLoopback(address), false, address);
  });

  it('allows loopback with or without a token configured', () => {
    assert.equal(metricsAccess(from('127.0.0.1'), undefined), 'allow');
    assert.equal(metricsAccess(from('::1'), TOKEN), 'allow');
  });

  it('answers 404 to anyone else when no token is configured, whatever they send', () => {
    assert.equal(metricsAccess(from('192.0.2.2'), undefined), 'not-found');
    assert.equal(metricsAccess(from('192.0.2.2', `Bearer ${TOKEN}`), undefined), 'not-found');
  });

  it('treats a request that did not come through nginx (no address header) as remote', () => {
    assert.equal(metricsAccess(from(undefined), undefined), 'not-found');
    assert.equal(metricsAccess(from(undefined), TOKEN), 'unauthorized');
  });

  it('with a token configured, allows exactly that bearer token from anywhere and answers 401 otherwise', () => {
    assert.equal(metricsAccess(from('192.0.2.2', `Bearer ${TOKEN}`), TOKEN), 'allow');
    assert.equal(metricsAccess(from('192.0.2.2', `bearer ${TOKEN}`), TOKEN), 'allow');
    for (const authorization of [undefined, '', 'Bearer', `Bearer ${TOKEN}x`, `Bearer ${TOKEN.slice(1)}`, `Basic ${TOKEN}`, `Bearer ${TOKEN} extra`])
      assert.equal(metricsAccess(from('192.0.2.2', authorization), TOKEN), 'unauthorized', String(authorization));
  });
});

describe('readiness', () => {
  it('is ready when nginx has a config and every store is up', () => {
    assert.deepEqual(readiness(true, [{ name: 'sessions', up: true }]), { ready: true, body: { status: 'ready' } });
  });

  it('names what is not ready: nginx before its first config, each store that is down', () => {
    assert.deepEqual(
      readiness(false, [
        { name: 'sessions', up: true },
        { name: 'redis', up: false },
      ]),
      { ready: false, body: { status: 'not-ready', notReady: ['nginx', 'store:redis'] } },
    );
  });
});
