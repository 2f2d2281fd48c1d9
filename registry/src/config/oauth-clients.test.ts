import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseStaticClients } from './oauth-clients.ts';

const SECRET = 'a-machine-secret-of-at-least-32-characters';

test('pre-registered clients: a public client and a machine client whose secret comes from the environment', () => {
  const result = parseStaticClients(
    [
      'clients:',
      '  - client_id: my-cli',
      '    client_name: My CLI',
      '    redirect_uris: ["http://127.0.0.1/callback", "vscode://cb"]',
      '  - client_id: reporting-bot',
      '    grant_types: [client_credentials]',
      '    token_endpoint_auth_method: client_secret_basic',
      '    client_secret_env: REPORTING_BOT_SECRET',
    ].join('\n'),
    { REPORTING_BOT_SECRET: SECRET },
    ['vscode'],
  );
  assert.ok(result.ok, JSON.stringify(result));
  assert.deepEqual(result.clients[0], {
    client_id: 'my-cli',
    client_name: 'My CLI',
    redirect_uris: ['http://127.0.0.1/callback', 'vscode://cb'],
    response_types: ['code'],
    grant_types: ['authorization_code', 'refresh_token'],
    token_endpoint_auth_method: 'none',
  });
  assert.equal(result.clients[1]?.client_secret, SECRET);
  assert.deepEqual(result.clients[1]?.grant_types, ['client_credentials']);
});

test('pre-registered clients: every problem is reported, one line each, and no secret is echoed', () => {
  const result = parseStaticClients(
    [
      'clients:',
      '  - client_id: web',
      '    redirect_uris: ["http://evil.example/cb"]',
      '  - client_id: web',
      '    redirect_uris: ["cursor://cb"]',
      '  - client_id: bot',
      '    grant_types: [client_credentials]',
      '    token_endpoint_auth_method: client_secret_basic',
      '    client_secret_env: BOT_SECRET',
      '  - client_id: bot2',
      '    grant_types: [client_credentials, refresh_token]',
      '  - client_id: mcp-dev-machine',
      '    redirect_uris: ["https://ok.example/cb"]',
    ].join('\n'),
    { BOT_SECRET: 'short-secret' },
    [],
    ['mcp-dev-machine'],
  );
  assert.ok(!result.ok);
  const text = result.errors.join('\n');
  for (const expected of [
    /clients\.0 \(web\): http:\/\/evil\.example\/cb: http redirect URIs must be loopback/,
    /clients\.1 \(web\): client_id is already taken/,
    /clients\.1 \(web\): cursor:\/\/cb: the cursor: scheme is not allowed/,
    /clients\.2 \(bot\): the secret in BOT_SECRET must be at least 32 characters/,
    /clients\.3 \(bot2\): client_credentials cannot be combined/,
    /clients\.3 \(bot2\): a client_credentials client must use token_endpoint_auth_method client_secret_basic/,
    /clients\.4 \(mcp-dev-machine\): client_id is already taken/,
  ])
    assert.match(text, expected);
  assert.ok(!text.includes('short-secret'));

  // A secret literal in the file is refused by the schema (strict: only client_secret_env).
  const literal = parseStaticClients('clients:\n  - client_id: leaky\n    client_secret: literal\n    redirect_uris: ["https://ok.example/cb"]\n', {}, []);
  assert.ok(!literal.ok);
  assert.match(literal.errors.join('\n'), /clients\.0: Unrecognized key: "client_secret"/);
  assert.ok(!literal.errors.join('\n').includes('literal'));
});
