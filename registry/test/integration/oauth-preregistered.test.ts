/**
 * Clients an operator registers ahead of time (OAUTH_CLIENTS_FILE), with an upstream IdP other
 * than the dev one (Cognito-shaped): a person's public client completes the code flow without
 * registering, and a confidential machine client finds the token endpoint in the metadata, gets a
 * client-credentials token there with the mapping file's scopes for it, and calls MCP.
 */
import assert from 'node:assert/strict';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { decodeJwt } from 'jose';
import { startTestIdp, type TestIdp } from '../idp/test-idp.ts';
import { freePort, startTestGateway, type TestGateway } from './harness.ts';
import { login } from './login.ts';
import { authorizeOverHttp, tokenRequest } from './oauth-http.ts';

const REDIRECT_URI = 'http://127.0.0.1:9/callback';
const MACHINE_SECRET = 'reporting-bot-secret-0123456789-abcdefghij';
let idp: TestIdp;
let gw: TestGateway;

before(async () => {
  const port = await freePort();
  idp = await startTestIdp('cognito', {
    redirectUri: `http://127.0.0.1:${port}/oauth/callback/cognito`,
    users: [{ username: 'alice', password: 'alice-pw', groups: ['mcp-server-currenttime'] }],
  });
  const clientsFile = join(mkdtempSync(join(tmpdir(), 'mcpgw-clients-')), 'oauth-clients.yaml');
  writeFileSync(
    clientsFile,
    [
      'clients:',
      '  - client_id: team-cli',
      '    client_name: Team CLI',
      `    redirect_uris: [${JSON.stringify(REDIRECT_URI)}]`,
      '  - client_id: reporting-bot',
      '    grant_types: [client_credentials]',
      '    token_endpoint_auth_method: client_secret_basic',
      '    client_secret_env: REPORTING_BOT_SECRET',
      '',
    ].join('\n'),
  );
  gw = await startTestGateway({
    port,
    env: {
      MCP_AUTH_PROVIDER_TYPE: 'cognito',
      MCP_AUTH_ALLOW_INSECURE_HTTP: 'true',
      MCP_AUTH_COGNITO_ENDPOINT: idp.origin,
      MCP_AUTH_COGNITO_REGION: 'us-east-1',
      MCP_AUTH_COGNITO_USER_POOL_ID: 'us-east-1_TestPool1',
      MCP_AUTH_COGNITO_CLIENT_ID: idp.clientId,
      MCP_AUTH_COGNITO_CLIENT_SECRET: idp.clientSecret,
      OAUTH_CLIENTS_FILE: clientsFile,
      REPORTING_BOT_SECRET: MACHINE_SECRET,
    },
    mapping: 'clients:\n  reporting-bot: ["mcp:server:currenttime:execute"]\n',
  });
});
after(async () => {
  await gw?.[Symbol.asyncDispose]();
  await idp?.close();
});

function call(token: string, method: string, params: Record<string, unknown>): Promise<Response> {
  return fetch(`${gw.url}/api/streamable/currenttime`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
  });
}
const initialize = (token: string) =>
  call(token, 'initialize', { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'preregistered', version: '1' } });

test('a pre-registered public client completes the code flow without registering, and refreshes', async () => {
  const { jar } = await login(gw.url, 'alice', 'alice-pw');
  const resource = `${gw.url}/api/streamable/currenttime`;
  const tokens = await authorizeOverHttp(gw.url, jar, { clientId: 'team-cli', redirectUri: REDIRECT_URI }, resource);
  assert.equal(tokens.status, 200, JSON.stringify(tokens.body));
  assert.match(String(tokens.body['scope']), /mcp:server:currenttime:execute/);
  assert.equal((await initialize(String(tokens.body['access_token']))).status, 200);
  const refreshed = await tokenRequest(gw.url, {
    grant_type: 'refresh_token',
    refresh_token: String(tokens.body['refresh_token']),
    client_id: 'team-cli',
    resource,
  });
  assert.equal(refreshed.status, 200, JSON.stringify(refreshed.body));

  // Its redirect URIs are fixed by the operator: another one is refused before any sign-in.
  const other = await fetch(
    `${gw.url}/oauth2/authorize?${new URLSearchParams({ response_type: 'code', client_id: 'team-cli', redirect_uri: 'http://127.0.0.1:10/other', code_challenge: 'x'.repeat(43), code_challenge_method: 'S256', resource })}`,
    { redirect: 'manual' },
  );
  assert.equal(other.status, 400);
  assert.match(await other.text(), /redirect_uri/);
});

test('a pre-registered machine client discovers the token endpoint, gets a token with its mapped scopes and calls MCP', async () => {
  const metadata = (await (await fetch(`${gw.url}/.well-known/oauth-authorization-server`)).json()) as Record<string, unknown>;
  const tokenEndpoint = String(metadata['token_endpoint']);
  assert.equal(tokenEndpoint, `${gw.url}/oauth2/token`);
  const basic = (secret: string) => `Basic ${Buffer.from(`reporting-bot:${secret}`).toString('base64')}`;
  const resource = `${gw.url}/api/streamable/currenttime`;
  const issued = await tokenRequest(gw.url, { grant_type: 'client_credentials', resource }, basic(MACHINE_SECRET));
  assert.equal(issued.status, 200, JSON.stringify(issued.body));
  const token = String(issued.body['access_token']);
  const claims = decodeJwt(token);
  assert.equal(claims['sub'], 'reporting-bot');
  assert.equal(claims['aud'], resource);
  assert.equal(claims['scope'], 'mcp:server:currenttime:execute');
  const initialized = await initialize(token);
  assert.equal(initialized.status, 200);

  const wrong = await tokenRequest(gw.url, { grant_type: 'client_credentials', resource }, basic('not-the-secret-0123456789-abcdefghijkl'));
  assert.equal(wrong.status, 401);
  assert.equal(wrong.body['error'], 'invalid_client');
});
