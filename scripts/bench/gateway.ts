import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEV_MACHINE_CLIENT_ID, devMachineSecret } from '../../registry/src/identity/dev.ts';
import { freePort, waitForHttp, type Processes } from './processes.ts';

export const FULL_USER = {
  username: 'bench-full',
  password: 'bench-full-password',
  groups: ['mcp-server-fininfo', 'mcp-server-fininfo-keyed', 'mcp-server-protected'],
};
export const TOOL_USER = { username: 'bench-tool', password: 'bench-tool-password', groups: ['mcp-server-fininfo-tool-get_stock_aggregates'] };

export interface RunningGateway {
  /** The public URL: nginx in front of the registry. */
  readonly url: string;
  /** The registry's own loopback URL (what nginx's auth subrequests reach). */
  readonly registryUrl: string;
  readonly stateDir: string;
  readonly catalogDir: string;
  readonly secretKey: string;
}

/** A catalog entry for the fininfo backend at `backendUrl`, in registry/servers/fininfo.json's format. */
export function definition(name: string, backendUrl: string, enabled: boolean): Record<string, unknown> {
  return {
    name,
    description: `benchmark entry ${name}`,
    url: backendUrl,
    transports: { 'streamable-http': '/mcp', sse: '/sse' },
    enabled,
    tools: [{ name: 'get_stock_aggregates', description: 'Daily aggregates for a ticker.' }],
  };
}

/** Writes a catalog file the way the registry does: temp file (ignored: leading dot) + rename. */
export function writeDefinition(catalogDir: string, def: Record<string, unknown>): void {
  const name = String(def['name']);
  const tmp = join(catalogDir, `.${name}.json.bench.tmp`);
  writeFileSync(tmp, JSON.stringify(def, null, 2));
  renameSync(tmp, join(catalogDir, `${name}.json`));
}

/**
 * Starts the registry (`registry/src/main.ts`, which runs its own nginx) as a child process
 * with a catalog of `fininfo` and a disabled `other` and `spare`, two users and a machine client.
 */
export interface GatewayOptions {
  /** The process name and the log file's (default `registry`). */
  readonly name?: string;
  /** Its nginx port (default: a free one). */
  readonly port?: number;
  /** GATEWAY_PUBLIC_URL (default: its own URL); replicas behind a balancer share the balancer's. */
  readonly publicUrl?: string;
  /** Replicas share one. */
  readonly secretKey?: string;
  /** More environment, e.g. REDIS_URL. */
  readonly env?: Readonly<Record<string, string>>;
  /** More catalog entries (row (j)'s per-user OAuth server). */
  readonly definitions?: readonly Record<string, unknown>[];
}

export async function startGateway(procs: Processes, root: string, dir: string, backendUrl: string, options: GatewayOptions = {}): Promise<RunningGateway> {
  const stateDir = join(dir, 'state');
  const catalogDir = join(dir, 'servers');
  mkdirSync(catalogDir, { recursive: true });
  writeDefinition(catalogDir, definition('fininfo', backendUrl, true));
  writeDefinition(catalogDir, definition('other', backendUrl, false));
  writeDefinition(catalogDir, definition('spare', backendUrl, false));
  // Row (i): the same backend behind a static secret the gateway injects (X-API-Key from the
  // environment; fininfo ignores it, so the row measures the gateway's side of the cost).
  writeDefinition(catalogDir, {
    ...definition('fininfo-keyed', backendUrl, true),
    backendAuth: { type: 'headers', headers: [{ name: 'X-API-Key', from: { env: 'MCP_BACKEND_BENCH_KEY' } }] },
  });
  for (const def of options.definitions ?? []) writeDefinition(catalogDir, def);
  const usersFile = join(dir, 'users.json');
  writeFileSync(usersFile, JSON.stringify([FULL_USER, TOOL_USER]));
  const mappingFile = join(dir, 'scope-mapping.yaml');
  writeFileSync(mappingFile, `clients:\n  "${DEV_MACHINE_CLIENT_ID}": ["mcp:server:fininfo:execute"]\n`);

  const port = options.port ?? (await freePort());
  const url = `http://127.0.0.1:${port}`;
  const secretKey = options.secretKey ?? randomBytes(32).toString('hex');
  const name = options.name ?? 'registry';
  const child = procs.start(name, process.execPath, [join(root, 'registry', 'src', 'main.ts')], {
    cwd: root,
    logFile: join(dir, `${name}.log`),
    env: {
      GATEWAY_PORT: String(port),
      GATEWAY_PUBLIC_URL: options.publicUrl ?? url,
      STATE_DIR: stateDir,
      CATALOG_DIR: catalogDir,
      SECRET_KEY: secretKey,
      ADMIN_PASSWORD: randomBytes(12).toString('hex'),
      LOGGING_LEVEL: 'warn',
      DEV_IDP_USERS_FILE: usersFile,
      MCP_AUTH_SCOPE_MAPPING_FILE: mappingFile,
      MCP_BACKEND_BENCH_KEY: randomBytes(24).toString('base64url'),
      ...options.env,
    },
  });
  await waitForHttp(`${url}/healthz`, child, 30_000);
  return { url, registryUrl: `http://127.0.0.1:${registryPort(stateDir)}`, stateDir, catalogDir, secretKey };
}

/** The registry does not print its loopback port; the nginx config it rendered names it. */
export function registryPort(stateDir: string): number {
  const conf = readFileSync(join(stateDir, 'nginx', 'nginx.conf'), 'utf8');
  const match = /upstream\s+mcp_registry\s*\{[^}]*?server\s+"?127\.0\.0\.1:(\d+)"?/.exec(conf);
  if (!match?.[1]) throw new Error('no `upstream mcp_registry { server 127.0.0.1:PORT }` in the rendered nginx.conf');
  return Number(match[1]);
}

/** A client-credentials access token of the dev IdP's machine client. */
export async function machineToken(gateway: RunningGateway): Promise<string> {
  const basic = Buffer.from(`${DEV_MACHINE_CLIENT_ID}:${devMachineSecret(gateway.secretKey)}`).toString('base64');
  const res = await fetch(`${gateway.url}/idp/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${basic}` },
    body: 'grant_type=client_credentials',
  });
  const body = (await res.json()) as { access_token?: string };
  if (res.status !== 200 || !body.access_token) throw new Error(`token endpoint answered ${res.status}: ${JSON.stringify(body)}`);
  return body.access_token;
}

/** A client-credentials token from the gateway's own authorization server, for fininfo's MCP URL. */
export async function gatewayMachineToken(gateway: RunningGateway): Promise<string> {
  const basic = Buffer.from(`${DEV_MACHINE_CLIENT_ID}:${devMachineSecret(gateway.secretKey)}`).toString('base64');
  const res = await fetch(`${gateway.url}/oauth2/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${basic}` },
    body: new URLSearchParams({ grant_type: 'client_credentials', resource: `${gateway.url}/api/streamable/fininfo` }).toString(),
  });
  const body = (await res.json()) as { access_token?: string };
  if (res.status !== 200 || !body.access_token) throw new Error(`gateway token endpoint answered ${res.status}: ${JSON.stringify(body)}`);
  return body.access_token;
}

/** How many times nginx was told to reload so far (its error log, at `notice`). */
export function nginxReloads(gateway: RunningGateway): number {
  try {
    return readFileSync(join(gateway.stateDir, 'nginx', 'error.log'), 'utf8').split('signal 1 (SIGHUP) received').length - 1;
  } catch {
    return 0;
  }
}

/** What row (f)'s churn did during the measured run. */
export interface ChurnCounts {
  /** Catalog changes made (each file written or removed counts once). */
  readonly changes: number;
  readonly added: number;
  readonly edited: number;
  readonly toggled: number;
  readonly deleted: number;
}

/**
 * Row (f): real catalog changes every `everyMs`, the kinds that used to reload nginx and the
 * one that never did, while the load runs on `fininfo`: a server registered on a new backend
 * port (a new origin each time), `other` edited (description and backend port moved), `spare`
 * enabled or disabled, and the previous new server deleted. Through the catalog files, as an
 * operator's edit or the API's atomic write would land.
 */
export function startCatalogChurn(gateway: RunningGateway, backendUrl: string, everyMs = 1000): { stop(): ChurnCounts } {
  const base = new URL(backendUrl);
  const at = (port: number): string => {
    const url = new URL(base.origin);
    url.port = String(port);
    return url.origin;
  };
  let tick = 0;
  const counts = { changes: 0, added: 0, edited: 0, toggled: 0, deleted: 0 };
  const timer = setInterval(() => {
    tick++;
    // Ports above the backend's: nothing listens there, and no request is sent to them; each is a
    // backend origin nginx did not start with.
    writeDefinition(gateway.catalogDir, definition(`churn-${tick}`, at(Number(base.port) + 100 + tick), true));
    counts.added++;
    writeDefinition(gateway.catalogDir, { ...definition('other', at(Number(base.port) + 1 + (tick % 2)), false), description: `edited ${tick}` });
    counts.edited++;
    writeDefinition(gateway.catalogDir, definition('spare', backendUrl, tick % 2 === 1));
    counts.toggled++;
    if (tick > 1) {
      rmSync(join(gateway.catalogDir, `churn-${tick - 1}.json`), { force: true });
      counts.deleted++;
    }
    counts.changes = counts.added + counts.edited + counts.toggled + counts.deleted;
  }, everyMs);
  return {
    stop() {
      clearInterval(timer);
      return { ...counts };
    },
  };
}
