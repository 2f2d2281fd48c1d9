/**
 * Client ID Metadata Documents (on by default, OAUTH_CLIENT_METADATA_DOCUMENTS): advertised in the
 * metadata, and with the real fetch (no test hook) the fetch of a client_id URL is refused before
 * any request leaves for a loopback address (oidc-provider's SSRF guard), as it is for anything
 * but https. OAUTH_CLIENT_METADATA_DOCUMENTS=false turns it off. The accepted case, through a
 * test hook, is test/browser/oauth-cimd.test.ts.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import { getCACertificates, setDefaultCACertificates } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { startTestGateway, type TestGateway } from './harness.ts';

const TLS = join(import.meta.dirname, '..', 'fixtures', 'tls');
let gw: TestGateway;
let documentServer: Server;
let documentUrl: string;
let fetched = 0;
let handshakes = 0;

before(async () => {
  // The defaults: no test hook, so oidc-provider's guarded fetch.
  gw = await startTestGateway();
  documentServer = createServer({ cert: readFileSync(join(TLS, 'localhost-cert.pem')), key: readFileSync(join(TLS, 'localhost-key.pem')) }, (_req, res) => {
    fetched++;
    res
      .writeHead(200, { 'content-type': 'application/json' })
      .end(JSON.stringify({ client_id: documentUrl, client_name: 'cimd', redirect_uris: ['http://127.0.0.1:9/cb'] }));
  });
  documentServer.on('secureConnection', () => handshakes++);
  // Trust the fixture's certificate, so only the SSRF guard can stop the fetch.
  setDefaultCACertificates([...getCACertificates('default'), readFileSync(join(TLS, 'localhost-cert.pem'), 'utf8')]);
  await new Promise<void>((resolve) => documentServer.listen(0, '127.0.0.1', resolve));
  documentUrl = `https://localhost:${(documentServer.address() as AddressInfo).port}/client.json`;
});
after(async () => {
  documentServer?.close();
  await gw?.[Symbol.asyncDispose]();
});

function authorize(clientId: string, on: TestGateway = gw): Promise<Response> {
  const url = new URL(`${on.url}/oauth2/authorize`);
  url.search = new URLSearchParams({
    response_type: 'code',
    client_id: clientId,
    redirect_uri: 'http://127.0.0.1:9/cb',
    code_challenge: createHash('sha256').update('v'.repeat(43)).digest('base64url'),
    code_challenge_method: 'S256',
    resource: `${on.url}/api/streamable/currenttime`,
  }).toString();
  return fetch(url, { redirect: 'manual' });
}

test('the metadata advertises client_id metadata documents', async () => {
  const metadata = (await (await fetch(`${gw.url}/.well-known/oauth-authorization-server`)).json()) as Record<string, unknown>;
  assert.equal(metadata['client_id_metadata_document_supported'], true);
});

test('a client_id URL on a loopback address is never fetched; a non-https one neither', async () => {
  const loopback = await authorize(documentUrl);
  assert.equal(loopback.status, 400);
  assert.match(await loopback.text(), /invalid_client/);
  const plain = await authorize(`http://localhost:${(documentServer.address() as AddressInfo).port}/client.json`);
  assert.equal(plain.status, 400);
  assert.equal(fetched, 0, 'the document server received no request');
  // The certificate is trusted (a fetch without the guard gets the document): what stopped the
  // gateway's fetch is the SSRF guard, before any TLS handshake.
  assert.equal(handshakes, 0);
  assert.equal((await fetch(documentUrl)).status, 200);
  assert.equal(fetched, 1);
});

test('OAUTH_CLIENT_METADATA_DOCUMENTS=false: not advertised, and a URL client_id is an unknown client', async () => {
  await using off = await startTestGateway({ env: { OAUTH_CLIENT_METADATA_DOCUMENTS: 'false' } });
  const metadata = (await (await fetch(`${off.url}/.well-known/oauth-authorization-server`)).json()) as Record<string, unknown>;
  assert.notEqual(metadata['client_id_metadata_document_supported'], true);
  const before = fetched;
  const response = await authorize(documentUrl, off);
  assert.equal(response.status, 400);
  assert.match(await response.text(), /invalid_client/);
  assert.equal(fetched, before);
});
