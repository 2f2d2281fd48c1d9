import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { ensureSystemDeps } from './ensure-system-deps.ts';

/**
 * `npm start`: the gateway on its embedded defaults. Installs nginx + njs where it can, starts
 * the example MCP servers, then the registry (which runs nginx as its own child). Ctrl-C stops
 * everything.
 *
 * START_EXAMPLE_SERVERS=false skips the example servers: deployments whose catalog points at
 * them as services of their own (docker-compose.yml, deploy/kubernetes) set it, so every
 * replica reaches the same backends instead of a private copy on its own 127.0.0.1.
 */
const root = join(import.meta.dirname, '..');
const EXAMPLE_SERVERS = [
  { name: 'currenttime', entry: 'servers/currenttime/server.ts', port: '8001' },
  { name: 'fininfo', entry: 'servers/fininfo/server.ts', port: '8002' },
] as const;

ensureSystemDeps({ browser: false });

const children: ChildProcess[] = [];
let stopping = false;

function run(name: string, entry: string, env: Record<string, string>): ChildProcess {
  const child = spawn(process.execPath, [join(root, entry)], { cwd: root, env: { ...process.env, ...env }, stdio: 'inherit' });
  child.on('exit', (code, signal) => {
    if (stopping) return;
    process.stderr.write(`${name} stopped unexpectedly (${signal ?? `exit code ${code}`}); stopping the gateway\n`);
    stop(code ?? 1);
  });
  children.push(child);
  return child;
}

function stop(code: number): void {
  if (stopping) return;
  stopping = true;
  for (const child of children) child.kill('SIGTERM');
  let left = children.filter((c) => c.exitCode === null && c.signalCode === null).length;
  if (left === 0) process.exit(code);
  for (const child of children) child.once('exit', () => --left === 0 && process.exit(code));
  setTimeout(() => process.exit(code), 8000).unref();
}

const startExamples = !['false', '0', 'no', 'off'].includes((process.env['START_EXAMPLE_SERVERS'] ?? '').trim().toLowerCase());
for (const server of startExamples ? EXAMPLE_SERVERS : []) {
  run(server.name, server.entry, { HOST: '127.0.0.1', PORT: server.port });
}
// With the built-in dev IdP and no mapping file of your own, the demo machine client gets
// `mcp:server:currenttime:execute` (scripts/demo-scope-mapping.yaml): the README's example.
const devProvider = ['', 'dev'].includes(process.env['MCP_AUTH_PROVIDER_TYPE'] ?? '');
const demoMapping: Record<string, string> =
  devProvider && process.env['MCP_AUTH_SCOPE_MAPPING_FILE'] === undefined
    ? { MCP_AUTH_SCOPE_MAPPING_FILE: join(import.meta.dirname, 'demo-scope-mapping.yaml') }
    : {};
run('registry', 'registry/src/main.ts', demoMapping);

process.on('SIGINT', () => stop(0));
process.on('SIGTERM', () => stop(0));
