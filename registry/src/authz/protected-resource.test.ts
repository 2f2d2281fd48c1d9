import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { bearerChallenge, gatewayResourceMetadata, metadataUrl, resourceUrl, serverResourceMetadata, serverScopesSupported } from './protected-resource.ts';

const PUBLIC = 'https://mcp.example.com';
const server = {
  name: 'github',
  transports: { 'streamable-http': '/mcp', sse: '/events' },
  tools: [
    { name: 'create_issue', description: '' },
    { name: 'search.code', description: '' },
  ],
};

describe('RFC 9728 protected-resource metadata', () => {
  test('a server URL per transport is its own resource, exactly the URL the client is given', () => {
    assert.equal(resourceUrl(PUBLIC, server, 'streamable-http'), 'https://mcp.example.com/api/streamable/github');
    assert.equal(resourceUrl(PUBLIC, server, 'sse'), 'https://mcp.example.com/api/execute/github/events');
    assert.equal(resourceUrl(PUBLIC, { name: 'x', transports: { sse: '/sse' } }, 'streamable-http'), undefined);
  });

  test('the metadata URL inserts the well-known segment between host and path (RFC 9728 section 3.1)', () => {
    assert.equal(
      metadataUrl('https://mcp.example.com/api/streamable/github'),
      'https://mcp.example.com/.well-known/oauth-protected-resource/api/streamable/github',
    );
    assert.equal(metadataUrl('https://mcp.example.com'), 'https://mcp.example.com/.well-known/oauth-protected-resource');
    assert.equal(metadataUrl('http://127.0.0.1:8080/api/execute/a/sse'), 'http://127.0.0.1:8080/.well-known/oauth-protected-resource/api/execute/a/sse');
  });

  test("a server's document: its resource, the gateway as authorization server, the scopes that exist for it, never offline_access", () => {
    assert.deepEqual(serverResourceMetadata(PUBLIC, server, 'streamable-http'), {
      resource: 'https://mcp.example.com/api/streamable/github',
      authorization_servers: ['https://mcp.example.com'],
      scopes_supported: [
        'mcp:server:github:execute',
        'mcp:server:github:tool:create_issue:execute',
        'mcp:server:github:tool:search.code:execute',
        'mcp:server:github:resources:read',
        'mcp:server:github:prompts:read',
      ],
      bearer_methods_supported: ['header'],
      resource_name: 'MCP server github',
    });
    assert.equal(serverResourceMetadata(PUBLIC, server, 'sse')?.resource, 'https://mcp.example.com/api/execute/github/events');
    assert.equal(serverResourceMetadata(PUBLIC, { ...server, transports: { sse: '/sse' } }, 'streamable-http'), undefined);
    assert.ok(!serverScopesSupported(server).includes('offline_access'));
  });

  test("the gateway's own document names the registry scopes", () => {
    assert.deepEqual(gatewayResourceMetadata(PUBLIC), {
      resource: PUBLIC,
      authorization_servers: [PUBLIC],
      scopes_supported: ['mcp:registry:read', 'mcp:registry:admin'],
      bearer_methods_supported: ['header'],
      resource_name: 'MCP Gateway Registry',
    });
  });
});

describe('the Bearer challenge', () => {
  test('401 without credentials: realm, scope and resource_metadata, no error', () => {
    assert.equal(
      bearerChallenge({
        realm: 'mcp-gateway',
        scope: 'mcp:server:a:execute',
        resourceMetadata: `${PUBLIC}/.well-known/oauth-protected-resource/api/streamable/a`,
      }),
      'Bearer realm="mcp-gateway", scope="mcp:server:a:execute", resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/api/streamable/a"',
    );
  });

  test('403: insufficient_scope naming the scope', () => {
    assert.equal(
      bearerChallenge({
        error: 'insufficient_scope',
        scope: 'mcp:server:a:tool:t:execute',
        resourceMetadata: 'https://h/.well-known/oauth-protected-resource',
      }),
      'Bearer error="insufficient_scope", scope="mcp:server:a:tool:t:execute", resource_metadata="https://h/.well-known/oauth-protected-resource"',
    );
  });

  test('quoted values are escaped: a quote, a backslash or CR/LF cannot end the value or split the header', () => {
    const value = bearerChallenge({ realm: 'a"b\\c\r\nX-Injected: 1', error: 'invalid_token' });
    assert.equal(value, 'Bearer realm="a\\"b\\\\c??X-Injected: 1", error="invalid_token"');
    assert.ok(!/[\r\n]/.test(value));
  });
});
