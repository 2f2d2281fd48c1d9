import { freePort } from '../../../servers/shared/free-port.ts';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildServer } from '../../../servers/currenttime/server.ts';
import { serveMcp, type ReceivedRequest, type RunningMcpServer } from '../../../servers/shared/serve-mcp.ts';
import { loadConfig } from '../../src/config/load.ts';
import { startGateway, type GatewayTestHooks, type RunningGateway, type SharedState } from '../../src/gateway.ts';
import { createLogger } from '../../src/log.ts';

export const ADMIN_PASSWORD = 'test-admin-password';
export const TEST_SECRET_KEY = 'test-secret-key-test-secret-key-0123456789';
const projectRoot = join(import.meta.dirname, '..', '..', '..');

export interface TestGateway extends AsyncDisposable {
  readonly url: string;
  readonly gateway: RunningGateway;
  readonly backend: RunningMcpServer;
  /** Every request the currenttime backend received, in order. */
  readonly received: ReceivedRequest[];
  readonly catalogDir: string;
  readonly stateDir: string;
  /** Where MCP_AUTH_SCOPE_MAPPING_FILE is (written only when the options gave a mapping). */
  readonly mappingFile: string;
  writeDefinition(name: string, definition: Record<string, unknown>): void;
  /** Stops the registry and its nginx and starts them again on the same state and port. */
  restart(): Promise<void>;
  errorLog(): string;
}

export interface TestGatewayOptions {
  /** More catalog entries, for backends the test file started itself. */
  readonly definitions?: readonly Record<string, unknown>[];
  /** Users the dev IdP knows besides the demo users (DEV_IDP_USERS_FILE). */
  readonly users?: readonly { username: string; password: string; groups: string[] }[];
  /** The nginx port, when the test must know it before the start (an IdP's redirect URI). */
  readonly port?: number;
  /** More environment, e.g. MCP_AUTH_* for another identity provider. */
  readonly env?: Readonly<Record<string, string>>;
  /** The text of MCP_AUTH_SCOPE_MAPPING_FILE (YAML or JSON). */
  readonly mapping?: string;
  /** Programmatic hooks for startGateway (never environment): e.g. a client metadata document fetch. */
  readonly hooks?: GatewayTestHooks;
  /** What this gateway shares with other replicas (issue 12): stores, an audit sink, a lease. */
  readonly shared?: SharedState;
  /** Another gateway's CATALOG_DIR, used as it is (replicas seeded from the same files). */
  readonly catalogDir?: string;
  /** Where the registry's log lines go (default stdout, silenced by LOGGING_LEVEL unless TEST_LOG_LEVEL). */
  readonly logDestination?: { write(line: string): void };
}

/**
 * Starts the real thing on ephemeral loopback ports: the currenttime MCP server, the registry
 * with the built-in IdP, and the registry's own nginx (with njs). One per test file.
 */
export async function startTestGateway(options: TestGatewayOptions = {}): Promise<TestGateway> {
  const root = mkdtempSync(join(tmpdir(), 'mcpgw-it-'));
  const catalogDir = options.catalogDir ?? join(root, 'servers');
  const stateDir = join(root, 'state');
  writeFileSync(join(root, '.keep'), '');
  const received: ReceivedRequest[] = [];
  const backend = await serveMcp(buildServer, { port: 0, onRequest: (r) => received.push(r) });
  const writeDefinition = (name: string, definition: Record<string, unknown>) =>
    writeFileSync(join(catalogDir, `${name}.json`), JSON.stringify(definition, null, 2));
  // A replica of another test gateway reads that one's folder as it is.
  if (options.catalogDir === undefined) {
    mkdirSync(catalogDir);
    writeDefinition('currenttime', {
      name: 'currenttime',
      description: 'Current time in any time zone',
      url: backend.url,
      transports: { 'streamable-http': '/mcp', sse: '/sse' },
      enabled: true,
      tools: [{ name: 'current_time_by_timezone', description: 'time' }],
    });
    writeDefinition('offline', { name: 'offline', url: backend.url, transports: { 'streamable-http': '/mcp', sse: '/sse' }, enabled: false });
    for (const definition of options.definitions ?? []) writeDefinition(String(definition['name']), definition);
  }
  const usersFile = join(root, 'users.json');
  writeFileSync(usersFile, JSON.stringify(options.users ?? []));

  const port = options.port ?? (await freePort());
  const mappingFile = join(root, 'scope-mapping.yaml');
  if (options.mapping !== undefined) writeFileSync(mappingFile, options.mapping);
  const loaded = loadConfig(
    {
      GATEWAY_PORT: String(port),
      GATEWAY_PUBLIC_URL: `http://127.0.0.1:${port}`,
      STATE_DIR: stateDir,
      CATALOG_DIR: catalogDir,
      SECRET_KEY: TEST_SECRET_KEY,
      ADMIN_PASSWORD,
      DEV_IDP_USERS_FILE: usersFile,
      LOGGING_LEVEL: process.env['TEST_LOG_LEVEL'] ?? 'silent',
      ...(options.mapping === undefined ? {} : { MCP_AUTH_SCOPE_MAPPING_FILE: mappingFile }),
      ...options.env,
    },
    projectRoot,
  );
  if (!loaded.ok) {
    await backend.close();
    throw new Error(loaded.errors.join('\n'));
  }
  const log = createLogger(loaded.config.logLevel, options.logDestination);
  let gateway: RunningGateway;
  try {
    gateway = await startGateway(loaded.config, log, options.hooks, options.shared);
  } catch (err) {
    await backend.close();
    throw err;
  }

  const handle: TestGateway = {
    url: `http://127.0.0.1:${port}`,
    get gateway() {
      return gateway;
    },
    backend,
    received,
    catalogDir,
    stateDir,
    mappingFile,
    writeDefinition,
    async restart() {
      await gateway.stop();
      gateway = await startGateway(loaded.config, log, options.hooks, options.shared);
    },
    errorLog() {
      try {
        return readFileSync(join(gateway.runtimeDir, 'error.log'), 'utf8');
      } catch {
        return '(no error.log)';
      }
    },
    async [Symbol.asyncDispose]() {
      await gateway.stop();
      await backend.close();
      rmSync(root, { recursive: true, force: true });
    },
  };
  return handle;
}

/** Polls until `check` passes or `ms` runs out; returns how long it took. */
export async function eventually(check: () => Promise<boolean>, ms = 2000): Promise<number> {
  const start = Date.now();
  while (!(await check())) {
    if (Date.now() - start > ms) throw new Error(`condition not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
  return Date.now() - start;
}

export { freePort };
