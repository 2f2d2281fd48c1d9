/**
 * A machine client finds the gateway's token endpoint from its authorization server metadata and
 * gets a client-credentials token there for one server: the mapping file's scopes for that client,
 * on that server only.
 */
import assert from 'node:assert/strict';
import { initializeWithBearer } from './oauth-http.ts';
import { after, before, test } from 'node:test';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeJwt } from 'jose';
import { devMachineSecret, DEV_MACHINE_CLIENT_ID } from '../../src/identity/dev.ts';
import { startTestGateway, TEST_SECRET_KEY, type TestGateway } from './harness.ts';

let gw: TestGateway;

before(async () => {
  gw = await startTestGateway({
    env: { OAUTH_REGISTRATIONS_PER_HOUR: '2' },
    mapping: `clients:\n  ${JSON.stringify(DEV_MACHINE_CLIENT_ID)}: ["mcp:server:currenttime:execute", "mcp:server:offline:execute"]\n`,
  });
});
after(async () => {
  await gw?.[Symbol.asyncDispose]();
});

const basic = `Basic ${Buffer.from(`${DEV_MACHINE_CLIENT_ID}:${devMachineSecret(TEST_SECRET_KEY)}`).toString('base64')}`;

async function clientCredentials(tokenEndpoint: string, resource: string, secret = basic): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(tokenEndpoint, {
    method: 'POST',
    headers: { authorization: secret, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'client_credentials', resource }).toString(),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

function initialize(token: string, server: string): Promise<Response> {
  return initializeWithBearer(`${gw.url}/api/streamable/${server}`, token);
}

test('the machine client discovers the token endpoint and gets a token for one server', async () => {
  const metadata = (await (await fetch(`${gw.url}/.well-known/oauth-authorization-server`)).json()) as Record<string, unknown>;
  assert.equal(metadata['issuer'], gw.url);
  assert.ok((metadata['grant_types_supported'] as string[]).includes('client_credentials'));
  assert.deepEqual(metadata['code_challenge_methods_supported'], ['S256']);
  assert.equal(metadata['authorization_response_iss_parameter_supported'], true);
  assert.ok(!(metadata['scopes_supported'] as string[]).includes('offline_access'));
  const tokenEndpoint = String(metadata['token_endpoint']);

  const resource = `${gw.url}/api/streamable/currenttime`;
  const issued = await clientCredentials(tokenEndpoint, resource);
  assert.equal(issued.status, 200, JSON.stringify(issued.body));
  const token = String(issued.body['access_token']);
  const claims = decodeJwt(token);
  assert.equal(claims.aud, resource);
  assert.equal(claims['scope'], 'mcp:server:currenttime:execute');
  assert.equal(claims.sub, DEV_MACHINE_CLIENT_ID);
  assert.equal((await initialize(token, 'currenttime')).status, 200);
  // Another server's scope in the mapping does not make this token good there.
  assert.equal((await initialize(token, 'offline')).status, 401);

  const wrongSecret = await clientCredentials(tokenEndpoint, resource, `Basic ${Buffer.from(`${DEV_MACHINE_CLIENT_ID}:nope`).toString('base64')}`);
  assert.equal(wrongSecret.status, 401);
  assert.equal(wrongSecret.body['error'], 'invalid_client');
  const notOurs = await clientCredentials(tokenEndpoint, 'https://elsewhere.example/api/streamable/currenttime');
  assert.equal(notOurs.status, 400);
  assert.equal(notOurs.body['error'], 'invalid_target');
});

test('dynamic registration is rate-limited per client address', async () => {
  const register = () =>
    fetch(`${gw.url}/oauth2/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ redirect_uris: ['http://127.0.0.1:9/cb'], token_endpoint_auth_method: 'none' }),
    });
  assert.equal((await register()).status, 201);
  assert.equal((await register()).status, 201);
  const refused = await register();
  assert.equal(refused.status, 429);
  assert.ok(Number(refused.headers.get('retry-after')) > 0);
});

test('a dynamically registered confidential client authenticates with its secret, which the state folder holds only sealed', async () => {
  // Its own address for the per-address registration limit (nginx appends to X-Forwarded-For, and
  // the registry trusts it from loopback: the test client's hop), so the test above keeps its count.
  const registered = await fetch(`${gw.url}/oauth2/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-forwarded-for': '192.0.2.77' },
    body: JSON.stringify({
      client_name: 'confidential',
      redirect_uris: ['http://127.0.0.1:9/cb'],
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
    }),
  });
  const client = (await registered.json()) as { client_id?: string; client_secret?: string };
  assert.equal(registered.status, 201, JSON.stringify(client));
  assert.ok(client.client_id && client.client_secret);
  const exchange = (secret: string) =>
    fetch(`${gw.url}/oauth2/token`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        authorization: `Basic ${Buffer.from(`${client.client_id}:${secret}`).toString('base64')}`,
      },
      body: new URLSearchParams({
        grant_type: 'authorization_code',
        code: 'not-a-code',
        redirect_uri: 'http://127.0.0.1:9/cb',
        code_verifier: 'v'.repeat(43),
      }).toString(),
    });
  const right = await exchange(client.client_secret);
  assert.equal(((await right.json()) as { error?: string }).error, 'invalid_grant', 'authenticated: only the code is wrong');
  const wrong = await exchange('not-the-secret');
  assert.equal(wrong.status, 401);
  assert.equal(((await wrong.json()) as { error?: string }).error, 'invalid_client');
  const stored = readdirSync(join(gw.stateDir, 'authserver')).map((name) => readFileSync(join(gw.stateDir, 'authserver', name), 'utf8'));
  assert.ok(stored.length > 0);
  assert.ok(!stored.some((text) => text.includes(client.client_secret!)), 'no record holds the client secret in clear');
});
