import { join } from 'node:path';
import { connectOverHttp } from '../../registry/test/integration/backend-connect.ts';
import type { CookieJar } from '../../registry/test/integration/cookie-jar.ts';
import { freePort, waitForHttp, type Processes } from './processes.ts';

/** Row (j)'s server in the gateway's catalog: per-user OAuth, everything discovered (RFC 9728, RFC 8414, DCR). */
export const OAUTH_SERVER = 'protected';
/** The one tool of the protected backend: answers with the verified token's claims. */
export const WHOAMI_BODY = JSON.stringify({ jsonrpc: '2.0', id: '[<id>]', method: 'tools/call', params: { name: 'whoami', arguments: {} } });
/** The person at the backend's authorization server (the fixture's default user). */
const BACKEND_USER = { username: 'alice', password: 'alice-pw' };

export interface OAuthBackendStatus {
  readonly issuer: string;
  readonly mcpUrl: string;
  readonly tokenEndpoint: string;
  readonly client: { readonly clientId: string; readonly clientSecret: string };
  /** MCP requests that reached the protected endpoint with a bearer token, since it started. */
  readonly receivedWithBearer: number;
  readonly tokenRequests: number;
}

export interface RunningOAuthBackend {
  readonly mcpUrl: string;
  status(): Promise<OAuthBackendStatus>;
}

/** Starts scripts/bench/protected-backend.ts as its own process. */
export async function startOAuthBackend(procs: Processes, root: string, dir: string): Promise<RunningOAuthBackend> {
  const port = await freePort();
  const child = procs.start('protected-backend', process.execPath, [join(root, 'scripts', 'bench', 'protected-backend.ts')], {
    cwd: root,
    logFile: join(dir, 'protected-backend.log'),
    env: { PORT: String(port) },
  });
  await waitForHttp(`http://127.0.0.1:${port}/healthz`, child, 15_000);
  const status = async (): Promise<OAuthBackendStatus> => (await (await fetch(`http://127.0.0.1:${port}/status`)).json()) as OAuthBackendStatus;
  return { mcpUrl: (await status()).mcpUrl, status };
}

/** The catalog entry: the backend's MCP URL behind `backendAuth` `user_oauth`. */
export function oauthDefinition(mcpUrl: string): Record<string, unknown> {
  const url = new URL(mcpUrl);
  return {
    name: OAUTH_SERVER,
    description: 'benchmark entry behind per-user OAuth',
    url: url.origin,
    transports: { 'streamable-http': url.pathname },
    enabled: true,
    tools: [{ name: 'whoami', description: "The access token's claims." }],
    backendAuth: { type: 'user_oauth', provider: 'Protected Cloud' },
  };
}

/**
 * Connects the signed-in person (their login's cookie jar) to the backend the way a browser
 * does, over plain HTTP (the tests' connectOverHttp), then checks the connection API says
 * `connected` as the backend's user.
 */
export async function connectPerson(gatewayUrl: string, jar: CookieJar): Promise<void> {
  await connectOverHttp(jar, gatewayUrl, OAUTH_SERVER, BACKEND_USER.username, BACKEND_USER.password);
  const status = (await (await fetch(`${gatewayUrl}/api/registry/servers/${OAUTH_SERVER}/connection`, { headers: { cookie: jar.header() } })).json()) as {
    state?: string;
    account?: string;
  };
  if (status.state !== 'connected' || status.account !== BACKEND_USER.username)
    throw new Error(`after the connect flow the connection is ${JSON.stringify(status)}, not connected as ${BACKEND_USER.username}`);
}

/** A client-credentials token of the backend's machine client, for its MCP URL (the direct reference run). */
export async function backendMachineToken(backend: RunningOAuthBackend): Promise<string> {
  const { tokenEndpoint, client, mcpUrl } = await backend.status();
  const res = await fetch(tokenEndpoint, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: `Basic ${Buffer.from(`${client.clientId}:${client.clientSecret}`).toString('base64')}`,
    },
    body: new URLSearchParams({ grant_type: 'client_credentials', resource: mcpUrl, scope: 'mcp:tools' }).toString(),
  });
  const body = (await res.json()) as { access_token?: string };
  if (res.status !== 200 || !body.access_token) throw new Error(`the backend's token endpoint answered ${res.status}: ${JSON.stringify(body)}`);
  return body.access_token;
}
