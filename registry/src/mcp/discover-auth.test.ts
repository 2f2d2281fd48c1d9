import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { bearerChallenge, discoverBackendAuth, MAX_METADATA_BYTES, metadataUrlProblem, parseWwwAuthenticate } from './discover-auth.ts';

describe('parseWwwAuthenticate', () => {
  test('a Bearer challenge with quoted values (RFC 9728 §5.1)', () => {
    assert.deepEqual(
      parseWwwAuthenticate('Bearer resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp", scope="files:read files:write"'),
      [
        {
          scheme: 'Bearer',
          params: { resource_metadata: 'https://mcp.example.com/.well-known/oauth-protected-resource/mcp', scope: 'files:read files:write' },
        },
      ],
    );
  });

  test('several challenges; commas, equals signs and escaped quotes inside quoted values', () => {
    const challenges = parseWwwAuthenticate(
      'Basic realm="a, b=c", DPoP algs="ES256 PS256", Bearer realm="say \\"hi\\", then go", error="invalid_token", error_description="expired, renew"',
    );
    assert.deepEqual(
      challenges.map((c) => c.scheme),
      ['Basic', 'DPoP', 'Bearer'],
    );
    assert.equal(challenges[0]?.params['realm'], 'a, b=c');
    assert.equal(challenges[1]?.params['algs'], 'ES256 PS256');
    assert.deepEqual(challenges[2]?.params, { realm: 'say "hi", then go', error: 'invalid_token', error_description: 'expired, renew' });
  });

  test('token68, a scheme without parameters, case-insensitive names, extra commas and spaces', () => {
    const challenges = parseWwwAuthenticate('Negotiate YII=, ,Bearer,  bearer  Error = invalid_token ,Scope=mcp:tools');
    assert.deepEqual(challenges, [
      { scheme: 'Negotiate', params: {}, token68: 'YII=' },
      { scheme: 'Bearer', params: {} },
      { scheme: 'bearer', params: { error: 'invalid_token', scope: 'mcp:tools' } },
    ]);
  });

  test('an unquoted URL (not a token, but sent by servers) is taken up to the next comma', () => {
    assert.equal(
      bearerChallenge('Bearer resource_metadata=https://x.example/.well-known/oauth-protected-resource, scope=a')?.params['resource_metadata'],
      'https://x.example/.well-known/oauth-protected-resource',
    );
  });

  test('malformed input ends the parse without throwing; what was read is kept', () => {
    assert.deepEqual(parseWwwAuthenticate(''), []);
    assert.deepEqual(parseWwwAuthenticate('Bearer realm="unterminated'), [{ scheme: 'Bearer', params: {} }]);
    assert.deepEqual(parseWwwAuthenticate('Bearer error="x", ==='), [{ scheme: 'Bearer', params: { error: 'x' } }]);
    assert.deepEqual(parseWwwAuthenticate('"quoted"'), []);
    // A repeated parameter keeps its first value.
    assert.equal(bearerChallenge('Bearer error="first", error="second"')?.params['error'], 'first');
    assert.equal(bearerChallenge('Basic realm="x"'), undefined);
    assert.equal(bearerChallenge(null), undefined);
  });
});

describe('metadataUrlProblem', () => {
  test('https anywhere, http only to a loopback host, never credentials in the URL', () => {
    assert.equal(metadataUrlProblem('https://as.example.com/'), undefined);
    assert.equal(metadataUrlProblem('http://127.0.0.1:9000/x'), undefined);
    assert.equal(metadataUrlProblem('http://localhost/x'), undefined);
    assert.equal(metadataUrlProblem('http://[::1]:80/x'), undefined);
    assert.match(metadataUrlProblem('http://as.example.com/') ?? '', /only fetched over https/);
    assert.match(metadataUrlProblem('ftp://as.example.com/') ?? '', /only fetched over https/);
    assert.match(metadataUrlProblem('https://u:p@as.example.com/') ?? '', /credentials in the URL/);
    assert.match(metadataUrlProblem('not a url') ?? '', /not a URL/);
  });
});

describe('discoverBackendAuth', () => {
  const servers: ReturnType<typeof createServer>[] = [];
  after(async () => {
    for (const s of servers) {
      s.closeAllConnections();
      await new Promise<void>((resolve) => s.close(() => resolve()));
    }
  });
  const seen: { url: string; headers: IncomingMessage['headers'] }[] = [];
  async function serve(handler: (path: string, origin: string, res: ServerResponse) => void): Promise<string> {
    const server = createServer((req, res) => {
      seen.push({ url: req.url ?? '', headers: req.headers });
      handler(new URL(req.url ?? '/', 'http://x').pathname, origin, res);
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return origin;
  }
  const json = (res: ServerResponse, status: number, body: unknown) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  const never = new AbortController().signal;

  /** An AS at `as` path `/tenant` (RFC 8414 path insertion) and a resource naming it. */
  async function authorizationServer(): Promise<string> {
    return serve((path, origin, res) => {
      if (path === '/.well-known/oauth-authorization-server/tenant') {
        return json(res, 200, {
          issuer: `${origin}/tenant`,
          authorization_endpoint: `${origin}/tenant/authorize`,
          token_endpoint: `${origin}/tenant/token`,
          response_types_supported: ['code'],
          code_challenge_methods_supported: ['S256'],
          client_id_metadata_document_supported: true,
        });
      }
      json(res, 404, { error: 'not_found' });
    });
  }

  test('without resource_metadata: the well-known URL derived from the MCP URL (path form), then RFC 8414 with path insertion; no credential sent', async () => {
    const as = await authorizationServer();
    const rs = await serve((path, origin, res) => {
      if (path === '/.well-known/oauth-protected-resource/mcp') return json(res, 200, { resource: `${origin}/mcp`, authorization_servers: [`${as}/tenant`] });
      json(res, 404, {});
    });
    seen.length = 0;
    const finding = await discoverBackendAuth(`${rs}/mcp`, 'Bearer realm="mcp", scope="a b"', never);
    assert.equal(finding.problem, undefined);
    assert.deepEqual(finding.challenge, { scope: 'a b' });
    assert.equal(finding.discovered?.issuer, `${as}/tenant`);
    assert.equal(finding.discovered?.tokenEndpoint, `${as}/tenant/token`);
    assert.equal(finding.discovered?.registrationEndpoint, undefined);
    assert.equal(finding.discovered?.clientIdMetadataDocumentSupported, true);
    assert.deepEqual(finding.discovered?.scopesSupported, ['a', 'b'], "the challenge's scope when the metadata has none");
    assert.ok(seen.length >= 2);
    for (const r of seen) {
      assert.equal(r.headers.authorization, undefined);
      assert.equal(r.headers.cookie, undefined);
    }
  });

  test('metadata whose resource is another server is refused, with the reason (RFC 9728 §3.3)', async () => {
    const as = await authorizationServer();
    const rs = await serve((path, _origin, res) => {
      if (path.startsWith('/.well-known/oauth-protected-resource'))
        return json(res, 200, { resource: 'https://elsewhere.example/mcp', authorization_servers: [`${as}/tenant`] });
      json(res, 404, {});
    });
    const finding = await discoverBackendAuth(`${rs}/mcp`, `Bearer resource_metadata="${rs}/.well-known/oauth-protected-resource/mcp"`, never);
    assert.equal(finding.discovered, undefined);
    assert.match(
      finding.problem ?? '',
      /refused the protected resource metadata: its resource https:\/\/elsewhere\.example\/mcp is not this backend's URL .*RFC 9728 §3\.3/,
    );
    assert.equal(finding.resourceMetadataUrl, `${rs}/.well-known/oauth-protected-resource/mcp`);
  });

  test('authorization server metadata whose issuer is not the server asked is refused (RFC 8414 §3.3)', async () => {
    const as = await serve((path, _origin, res) => {
      if (path === '/.well-known/oauth-authorization-server')
        return json(res, 200, {
          issuer: 'https://evil.example',
          authorization_endpoint: 'https://evil.example/a',
          token_endpoint: 'https://evil.example/t',
          response_types_supported: ['code'],
        });
      json(res, 404, {});
    });
    const rs = await serve((path, origin, res) => {
      if (path === '/.well-known/oauth-protected-resource/mcp') return json(res, 200, { resource: `${origin}/mcp`, authorization_servers: [as] });
      json(res, 404, {});
    });
    const finding = await discoverBackendAuth(`${rs}/mcp`, null, never);
    assert.match(finding.problem ?? '', /issuer https:\/\/evil\.example is not .*RFC 8414 §3\.3/);
  });

  test('a non-https resource_metadata URL is refused without a request', async () => {
    seen.length = 0;
    const finding = await discoverBackendAuth('https://mcp.example.com/mcp', 'Bearer resource_metadata="http://metadata.example.com/prm"', never);
    assert.match(finding.problem ?? '', /resource_metadata refused http:\/\/metadata\.example\.com\/prm: metadata is only fetched over https/);
    assert.equal(seen.length, 0);
  });

  test('no metadata anywhere: a clear reason; an oversized document is not read past the bound; a slow one times out', async () => {
    const none = await serve((_path, _origin, res) => json(res, 404, {}));
    const a = await discoverBackendAuth(`${none}/mcp`, 'Basic realm="x"', never);
    assert.equal(a.challenge, undefined);
    assert.match(a.problem ?? '', /^no Bearer challenge, and no protected resource metadata \(RFC 9728\) at the well-known URLs/);

    const big = await serve((_path, _origin, res) =>
      res.writeHead(200, { 'content-type': 'application/json' }).end(`{"resource":"${'x'.repeat(MAX_METADATA_BYTES)}"}`),
    );
    const b = await discoverBackendAuth(`${big}/mcp`, `Bearer resource_metadata="${big}/prm"`, never);
    assert.match(b.problem ?? '', /sent more than 65536 bytes/);

    const slow = await serve(() => {});
    const c = await discoverBackendAuth(`${slow}/mcp`, `Bearer resource_metadata="${slow}/prm"`, never, 200);
    assert.match(c.problem ?? '', /timed out after 200 ms/);
  });
});
