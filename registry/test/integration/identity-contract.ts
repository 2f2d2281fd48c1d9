import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { buildServer as buildFininfo } from '../../../servers/fininfo/server.ts';
import { serveMcp, type RunningMcpServer } from '../../../servers/shared/serve-mcp.ts';
import { forgeTokens } from '../idp/forged-tokens.ts';
import { startTestIdp, type IdpProfile, type TestIdpUser } from '../idp/test-idp.ts';
import { jarFetch } from './cookie-jar.ts';
import { freePort, startTestGateway, type TestGateway } from './harness.ts';
import { login } from './login.ts';

/** What the contract needs from one identity provider set-up. */
export interface ProviderFixture {
  readonly gw: TestGateway;
  /** The upstream IdP's issuer, where the fixture runs one. */
  readonly idpIssuer?: string;
  /** A client-credentials access token of the machine client listed in the mapping file. */
  machineToken(): Promise<string>;
  /** A user's own access token, where the provider hands one out to tests. */
  userAccessToken?(username: string): Promise<string>;
  /** Changes a user's groups at the IdP (for the refresh test), where supported. */
  setGroups?(username: string, groups: string[]): void;
  /** Tokens that must be refused, by name. */
  forged(): Promise<Array<{ name: string; token: string }>>;
  close(): Promise<void>;
}

async function eventuallyStatus(call: () => Promise<number>, ok: (status: number) => boolean): Promise<void> {
  const start = Date.now();
  while (!ok(await call())) {
    if (Date.now() - start > 3000) throw new Error('the mapping change did not take effect within 3 s');
    await new Promise((r) => setTimeout(r, 50));
  }
}

export const USERS: TestIdpUser[] = [
  { username: 'alice', password: 'alice-pw', groups: ['mcp-server-fininfo'] },
  { username: 'bob', password: 'bob-pw', groups: ['Finance Analysts'] },
  { username: 'carol', password: 'carol-pw', groups: [] },
  // A person whose chosen name looks like Keycloak's service-account users: still a person.
  { username: 'service-account-x', password: 'sax-pw', groups: ['mcp-server-fininfo'] },
];

/** The mapping file: a group that cannot follow the convention, and the machine client. */
export function mappingFor(machineClientId: string): string {
  return [
    'groups:',
    '  Finance Analysts: ["mcp:server:fininfo:tool:get_stock_aggregates:execute"]',
    'clients:',
    `  ${JSON.stringify(machineClientId)}: ["mcp:server:fininfo:tool:get_stock_aggregates:execute"]`,
    '',
  ].join('\n');
}

const ACCESS_TOKEN_TTL_SECONDS = 6;

/** A gateway signed in through one of the test IdPs shaped like Cognito, Okta or a generic provider. */
export async function externalFixture(profile: IdpProfile, backend: RunningMcpServer): Promise<ProviderFixture> {
  const port = await freePort();
  const name = profile;
  const idp = await startTestIdp(profile, {
    redirectUri: `http://127.0.0.1:${port}/oauth/callback/${name}`,
    users: USERS,
    accessTokenTtlSeconds: ACCESS_TOKEN_TTL_SECONDS,
  });
  const other = await startTestIdp(profile === 'okta' ? 'generic' : 'okta', { redirectUri: 'http://127.0.0.1:1/cb', users: USERS });
  const env: Record<string, string> = { MCP_AUTH_PROVIDER_TYPE: profile, MCP_AUTH_ALLOW_INSECURE_HTTP: 'true' };
  if (profile === 'cognito') {
    Object.assign(env, {
      MCP_AUTH_COGNITO_ENDPOINT: idp.origin,
      MCP_AUTH_COGNITO_REGION: 'us-east-1',
      MCP_AUTH_COGNITO_USER_POOL_ID: 'us-east-1_TestPool1',
      MCP_AUTH_COGNITO_CLIENT_ID: idp.clientId,
      MCP_AUTH_COGNITO_CLIENT_SECRET: idp.clientSecret,
    });
  } else if (profile === 'okta') {
    // Okta issues refresh tokens only for offline_access.
    Object.assign(env, {
      MCP_AUTH_OKTA_TENANT_URL: idp.origin,
      MCP_AUTH_OKTA_CLIENT_ID: idp.clientId,
      MCP_AUTH_OKTA_CLIENT_SECRET: idp.clientSecret,
      MCP_AUTH_SCOPES: 'openid profile email offline_access',
      MCP_AUTH_AUDIENCE: idp.audience!,
    });
  } else {
    // Explicit endpoints: this IdP serves no discovery document.
    Object.assign(env, {
      MCP_AUTH_ISSUER: idp.issuer,
      MCP_AUTH_CLIENT_ID: idp.clientId,
      MCP_AUTH_CLIENT_SECRET: idp.clientSecret,
      MCP_AUTH_AUTHORIZE_URL: idp.endpoints.authorization,
      MCP_AUTH_TOKEN_URL: idp.endpoints.token,
      MCP_AUTH_JWKS_URL: idp.endpoints.jwks,
      MCP_AUTH_USERINFO_URL: idp.endpoints.userinfo,
      MCP_AUTH_AUDIENCE: 'mcp-gateway',
    });
  }
  const gw = await startTestGateway({ port, env, mapping: mappingFor(idp.m2mClientId), definitions: [fininfoDefinition(backend)] });
  return {
    gw,
    idpIssuer: idp.issuer,
    machineToken: () => idp.clientCredentialsToken(),
    userAccessToken: async (username) => (await idp.userTokens(username)).accessToken,
    setGroups: (username, groups) => idp.setGroups(username, groups),
    forged: () => forgeTokens(idp, other, 'alice'),
    async close() {
      await gw[Symbol.asyncDispose]();
      await idp.close();
      await other.close();
    },
  };
}

export function fininfoDefinition(backend: RunningMcpServer): Record<string, unknown> {
  return { name: 'fininfo', url: backend.url, transports: { 'streamable-http': '/mcp' }, enabled: true };
}

/**
 * The identity-provider contract, run against every implementation (oauth2-proxy's pattern):
 * the same sign-in, scope, bearer, refresh and bad-token expectations for each provider.
 */
export function runIdentityProviderContract(
  label: string,
  setup: (backend: RunningMcpServer) => Promise<ProviderFixture>,
  /** What this provider does beyond the common contract (the dev IdP issues no refresh tokens). */
  can: { userAccessTokens: boolean; refresh: boolean },
): void {
  describe(`identity provider contract: ${label}`, () => {
    let backend: RunningMcpServer;
    let fx: ProviderFixture;
    before(async () => {
      backend = await serveMcp(buildFininfo, { port: 0 });
      fx = await setup(backend);
    });
    after(async () => {
      if (process.exitCode) process.stderr.write(`nginx error.log:\n${fx?.gw.errorLog()}\n`);
      await fx?.close();
      await backend?.close();
    });

    const mcp = async (headers: Record<string, string>, fn: (c: Client) => Promise<void>) => {
      const client = new Client({ name: 'contract', version: '1' });
      await client.connect(new StreamableHTTPClientTransport(new URL(`${fx.gw.url}/api/streamable/fininfo`), { requestInit: { headers } }));
      try {
        await fn(client);
      } finally {
        await client.close();
      }
    };
    const aggregates = { name: 'get_stock_aggregates', arguments: { ticker: 'AAPL' } };
    const printStuff = { name: 'print_stuff', arguments: { stuff: 'x' } };

    test('a person signs in through the provider; groups from its claim become scopes in the session', async () => {
      const alice = await login(fx.gw.url, 'alice', 'alice-pw');
      const page = await (await jarFetch(alice.jar, `${fx.gw.url}/`)).text();
      assert.match(page, /mcp:server:fininfo:execute/);
      await mcp({ cookie: alice.cookie }, async (c) => {
        assert.equal((await c.listTools()).tools.length, 4);
        await c.callTool(printStuff);
      });
    });

    test('a group that cannot follow the convention gets the scopes the mapping file gives it', async () => {
      const bob = await login(fx.gw.url, 'bob', 'bob-pw');
      await mcp({ cookie: bob.cookie }, async (c) => {
        assert.deepEqual(
          (await c.listTools()).tools.map((t) => t.name),
          ['get_stock_aggregates'],
        );
        await c.callTool(aggregates);
        await assert.rejects(c.callTool(printStuff), /mcp:server:fininfo:tool:print_stuff:execute/);
      });
    });

    test('a signed-in person without groups gets no access', async () => {
      const carol = await login(fx.gw.url, 'carol', 'carol-pw');
      await assert.rejects(
        mcp({ cookie: carol.cookie }, async () => {}),
        /mcp:server:fininfo:execute/,
      );
    });

    test('a machine client (client credentials) gets exactly the scopes the mapping file lists for its client id', async () => {
      const token = await fx.machineToken();
      await mcp({ authorization: `Bearer ${token}` }, async (c) => {
        assert.deepEqual(
          (await c.listTools()).tools.map((t) => t.name),
          ['get_stock_aggregates'],
        );
        await c.callTool(aggregates);
        await assert.rejects(c.callTool(printStuff), /mcp:server:fininfo:tool:print_stuff:execute/);
      });
    });

    if (can.userAccessTokens)
      test("a person's own access token as a bearer token gets the scopes of their groups", async () => {
        const token = await fx.userAccessToken!('alice');
        await mcp({ authorization: `Bearer ${token}` }, async (c) => {
          await c.callTool(printStuff);
        });
      });

    if (can.userAccessTokens)
      test("a person whose username starts with service-account- stays a person: their token gets their groups' scopes, not a machine client's", async () => {
        const token = await fx.userAccessToken!('service-account-x');
        await mcp({ authorization: `Bearer ${token}` }, async (c) => {
          assert.equal((await c.listTools()).tools.length, 4, 'mcp-server-fininfo: every tool');
          await c.callTool(printStuff);
        });
      });

    test('bad tokens are refused with 401, WWW-Authenticate invalid_token, and nothing more', async () => {
      const forged = await fx.forged();
      assert.ok(forged.length >= 4);
      for (const { name, token } of forged) {
        const res = await fetch(`${fx.gw.url}/api/streamable/fininfo`, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
          body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: aggregates }),
        });
        assert.equal(res.status, 401, name);
        assert.equal(
          res.headers.get('www-authenticate'),
          `Bearer realm="mcp-gateway", error="invalid_token", scope="mcp:server:fininfo:tool:${aggregates.name}:execute", resource_metadata="${fx.gw.url}/.well-known/oauth-protected-resource/api/streamable/fininfo"`,
          name,
        );
        assert.deepEqual(await res.json(), { error: 'AUTH_NO_CREDENTIALS', message: 'sign in or send a valid token' }, name);
      }
      const malformed = await fetch(`${fx.gw.url}/api/streamable/fininfo`, {
        method: 'POST',
        headers: { authorization: 'Bearer not a token', 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: aggregates }),
      });
      assert.equal(malformed.status, 401);
      assert.match(malformed.headers.get('www-authenticate') ?? '', /^Bearer realm="mcp-gateway", error="invalid_request", scope="/);
    });

    test('an edit of the mapping file applies to the next bearer request; a bad edit keeps the last good mapping', async () => {
      const token = await fx.machineToken();
      const original = readFileSync(fx.gw.mappingFile, 'utf8');
      const call = async () =>
        (
          await fetch(`${fx.gw.url}/api/streamable/fininfo`, {
            method: 'POST',
            headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
            body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: printStuff }),
          })
        ).status;
      assert.equal(await call(), 403);
      try {
        // The machine client now gets the whole server.
        writeFileSync(fx.gw.mappingFile, original.replace(/(clients:\n  "[^"]+": )\[[^\]]*\]/, '$1["mcp:server:fininfo:execute"]'));
        await eventuallyStatus(call, (s) => s !== 403);
        writeFileSync(fx.gw.mappingFile, 'clients: [not, a, mapping');
        await new Promise((r) => setTimeout(r, 400));
        assert.notEqual(await call(), 403, 'the last good mapping stays in force');
      } finally {
        writeFileSync(fx.gw.mappingFile, original);
      }
      await eventuallyStatus(call, (s) => s === 403);
    });

    if (can.refresh)
      test('removing a user from a group at the IdP removes the scope at the next refresh, without signing in again', async () => {
        const alice = await login(fx.gw.url, 'alice', 'alice-pw');
        await mcp({ cookie: alice.cookie }, async (c) => void (await c.callTool(printStuff)));
        fx.setGroups!('alice', []);
        try {
          const start = Date.now();
          let status = 200;
          while (status !== 403 && Date.now() - start < (ACCESS_TOKEN_TTL_SECONDS + 8) * 1000) {
            await new Promise((r) => setTimeout(r, 250));
            status = (
              await fetch(`${fx.gw.url}/api/streamable/fininfo`, {
                method: 'POST',
                headers: { cookie: alice.cookie, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
                body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: printStuff }),
              })
            ).status;
          }
          assert.equal(status, 403, 'the scope is gone within one access-token lifetime');
          assert.ok(Date.now() - start <= (ACCESS_TOKEN_TTL_SECONDS + 8) * 1000);
        } finally {
          fx.setGroups!('alice', ['mcp-server-fininfo']);
        }
      });
  });
}
