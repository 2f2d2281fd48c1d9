import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import * as paths from '../authz/paths.ts';
import { credentialHeaders, ROUTE_HEADERS, SESSION_HEADERS } from '../nginx/render-server.ts';
import { backendAuthSchema, forbiddenHeaderReason } from './backend-auth.ts';
import { serverDefinitionSchema } from './server-definition.ts';

const base = { name: 'gh', url: 'https://api.githubcopilot.com', transports: { 'streamable-http': '/mcp/' } };
const problems = (backendAuth: unknown): string[] => {
  const parsed = serverDefinitionSchema.safeParse({ ...base, backendAuth });
  return parsed.success ? [] : parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
};

describe('backendAuth in a definition', () => {
  test('is optional, and none, static headers and client credentials are accepted with their defaults', () => {
    assert.equal(serverDefinitionSchema.parse(base).backendAuth, undefined);
    for (const ok of [
      { type: 'none' },
      { type: 'headers', headers: [{ name: 'Authorization', prefix: 'Bearer ', from: 'vault' }] },
      {
        type: 'headers',
        headers: [
          { name: 'X-API-Key', from: { env: 'MCP_BACKEND_KEY' } },
          { name: 'X-Tenant', from: 'vault' },
        ],
      },
      {
        type: 'client_credentials',
        issuer: 'https://idp.example.com',
        clientId: 'gw',
        scopes: ['mcp.read'],
        resource: 'https://mcp.example.com/mcp',
        audience: 'mcp',
      },
      { type: 'client_credentials', tokenUrl: 'http://127.0.0.1:9000/token', clientId: 'gw', clientSecretFrom: { env: 'MCP_BACKEND_CC' } },
    ])
      assert.deepEqual(problems(ok), [], JSON.stringify(ok));
    const cc = backendAuthSchema.parse({ type: 'client_credentials', tokenUrl: 'https://idp.example.com/token', clientId: 'gw' });
    assert.deepEqual(cc, { type: 'client_credentials', tokenUrl: 'https://idp.example.com/token', clientId: 'gw', clientSecretFrom: 'vault', scopes: [] });
  });

  test('refuses a definition that holds a secret value, saying where secrets go', () => {
    for (const [auth, field] of [
      [{ type: 'headers', headers: [{ name: 'X-API-Key', value: 'k1', from: 'vault' }] }, 'backendAuth.headers.0.value'],
      [{ type: 'headers', headers: [{ name: 'X-API-Key', token: 'k1', from: 'vault' }] }, 'backendAuth.headers.0.token'],
      [{ type: 'client_credentials', tokenUrl: 'https://idp.example.com/token', clientId: 'gw', clientSecret: 's' }, 'backendAuth.clientSecret'],
      [{ type: 'headers', headers: [{ name: 'X-API-Key', from: 'k1-literal' }] }, 'backendAuth.headers.0.from'],
    ] as const) {
      const found = problems(auth);
      assert.ok(
        found.some((p) => p.startsWith(`${field}:`)),
        `${JSON.stringify(auth)}: ${found.join('; ')}`,
      );
    }
    assert.match(problems({ type: 'headers', headers: [{ name: 'X', value: 'v', from: 'vault' }] }).join(), /never holds secret values.*credentials/);
  });

  test('refuses header names that are not tokens, hop-by-hop or framing headers, and the gateway and protocol vocabulary', () => {
    for (const name of [
      'Host',
      'connection',
      'Cookie',
      'Content-Length',
      'Transfer-Encoding',
      'Mcp-Session-Id',
      'MCP-Protocol-Version',
      'Mcp-Method',
      'Mcp-Param-X',
      'X-User',
      'X-Scopes',
      'X-Request-ID',
      'traceparent',
      'X-MCP-Anything',
      'Proxy-Authorization',
      'X-Forwarded-For',
      'a b',
      'a:b',
      'é',
      '',
      'x'.repeat(65),
    ]) {
      assert.notDeepEqual(problems({ type: 'headers', headers: [{ name, from: 'vault' }] }), [], name);
    }
  });

  test('every header the check or nginx uses towards a backend is refused as a credential header', () => {
    const vocabulary = [
      ...SESSION_HEADERS,
      ...ROUTE_HEADERS,
      ...credentialHeaders([]),
      paths.USER_HEADER,
      paths.USERNAME_HEADER,
      paths.SCOPES_HEADER,
      paths.MISSING_SCOPE_HEADER,
      paths.MESSAGES_HEADER,
      paths.TOOL_FILTER_HEADER,
      paths.SERVER_HEADER,
      paths.TRANSPORT_HEADER,
      paths.ORIGINAL_URI_HEADER,
      paths.ORIGINAL_METHOD_HEADER,
      paths.REQUEST_ID_HEADER,
      paths.ERROR_HEADER,
    ];
    for (const header of vocabulary) assert.ok(forbiddenHeaderReason(header), header);
    assert.equal(forbiddenHeaderReason('Authorization'), undefined);
    assert.equal(forbiddenHeaderReason('X-API-Key'), undefined);
  });

  test('client credentials need exactly one of issuer and tokenUrl, https (http on loopback only)', () => {
    assert.match(problems({ type: 'client_credentials', clientId: 'gw' }).join(), /either issuer .* or tokenUrl/);
    assert.match(problems({ type: 'client_credentials', clientId: 'gw', issuer: 'https://a.example', tokenUrl: 'https://a.example/t' }).join(), /not both/);
    assert.match(problems({ type: 'client_credentials', clientId: 'gw', tokenUrl: 'http://idp.example.com/token' }).join(), /https \(http only on loopback\)/);
  });

  test('an unknown mode names the modes there are', () => {
    assert.match(problems({ type: 'magic' }).join(), /one of none, headers, client_credentials, uploaded, user_oauth, token_exchange/);
  });

  test('per-user OAuth: everything but the type is optional (discovered), a client is auto, a named one, or an approach', () => {
    assert.deepEqual(serverDefinitionSchema.parse({ ...base, backendAuth: { type: 'user_oauth' } }).backendAuth, { type: 'user_oauth', client: 'auto' });
    const full = {
      type: 'user_oauth',
      authorizationServer: 'https://github.com/login/oauth',
      resource: 'https://api.githubcopilot.com/mcp/',
      scopes: ['repo', 'read:org'],
      client: { clientId: 'Iv1.abc', clientSecretFrom: 'vault' },
      provider: 'GitHub',
      service: { type: 'headers', headers: [{ name: 'Authorization', prefix: 'Bearer ', from: { env: 'MCP_BACKEND_GITHUB_PAT' } }] },
    };
    assert.deepEqual(serverDefinitionSchema.parse({ ...base, backendAuth: full }).backendAuth, full);
    assert.match(problems({ type: 'user_oauth', client: 'magic' }).join(), /client must be "auto"/);
    assert.match(problems({ type: 'user_oauth', client: { clientId: 'x', clientSecret: 's' } }).join(), /client must be|Unrecognized/);
    assert.match(problems({ type: 'user_oauth', authorizationServer: 'http://as.example.com' }).join(), /https \(http only on loopback\)/);
    assert.match(problems({ type: 'user_oauth', service: { type: 'uploaded' } }).join(), /service.type must be headers or client_credentials/);
  });

  test('token exchange: a client at the exchanging server (issuer or tokenUrl) and the target audience or resource', () => {
    const parsed = serverDefinitionSchema.parse({
      ...base,
      backendAuth: { type: 'token_exchange', issuer: 'https://idp.example.com', clientId: 'gw', audience: 'api://tools' },
    });
    assert.deepEqual(parsed.backendAuth, {
      type: 'token_exchange',
      issuer: 'https://idp.example.com',
      clientId: 'gw',
      clientSecretFrom: 'vault',
      audience: 'api://tools',
      scopes: [],
      subjectTokenType: 'access_token',
    });
    assert.match(problems({ type: 'token_exchange', clientId: 'gw' }).join(), /either issuer .* or tokenUrl/);
    assert.match(
      problems({ type: 'token_exchange', tokenUrl: 'https://idp.example.com/t', clientId: 'gw', clientSecret: 'x' }).join(),
      /never holds secret values/,
    );
  });

  test('uploaded tokens: Authorization by default, another header and prefix, instructions; never a token in the definition', () => {
    assert.deepEqual(serverDefinitionSchema.parse({ ...base, backendAuth: { type: 'uploaded' } }).backendAuth, { type: 'uploaded', header: 'Authorization' });
    const custom = { type: 'uploaded', header: 'X-API-Key', prefix: 'Token ', instructions: 'Create one at https://tools.example.com/settings/tokens' };
    assert.deepEqual(serverDefinitionSchema.parse({ ...base, backendAuth: custom }).backendAuth, custom);
    assert.match(problems({ type: 'uploaded', token: 'x' }).join(), /never holds secret values/);
    assert.match(problems({ type: 'uploaded', header: 'Cookie' }).join(), /cannot carry a backend credential/);
    assert.match(problems({ type: 'uploaded', instructions: 'x'.repeat(2001) }).join(), /at most 2000/);
  });
});
