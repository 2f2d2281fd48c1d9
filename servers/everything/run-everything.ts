import { spawn, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import { freePort } from '../shared/free-port.ts';
import { fileURLToPath } from 'node:url';

/**
 * Runs the unmodified `@modelcontextprotocol/server-everything` package as a child process,
 * so tests can put a third-party MCP server behind the gateway.
 *
 * How the package starts (dist/index.js): `node dist/index.js <stdio|sse|streamableHttp>`, port
 * from `PORT` (default 3001). One process serves ONE transport, so each needs its own process:
 * - `streamableHttp`: `POST|GET|DELETE /mcp` (a POST with an unknown session id is a 400, not a 404);
 * - `sse`: `GET /sse` opens the stream, `POST /message?sessionId=…` (singular "message") carries
 *   client messages; a POST for an unknown session is never answered.
 *
 * It calls `app.listen(PORT)` with no host, i.e. on every interface, and has no setting to change
 * that. {@link LOOPBACK_ONLY_PRELOAD} pins it to 127.0.0.1 without touching the package's files.
 */

export type EverythingTransport = 'streamable-http' | 'sse';

export type RunningEverything = {
  /** Base URL, e.g. `http://127.0.0.1:40123`; append a path from `paths`. */
  url: string;
  port: number;
  /** Only the started transport's path is present. */
  paths: { 'streamable-http'?: string; sse?: string };
  /** SIGTERM, then SIGKILL after a grace period; resolves once the process has exited. */
  close(): Promise<void>;
};

export const EVERYTHING_STREAMABLE_PATH = '/mcp';
export const EVERYTHING_SSE_PATH = '/sse';
/** Where its SSE transport tells clients to POST (announced in the `endpoint` event). */
export const EVERYTHING_SSE_MESSAGES_PATH = '/message';

const CLI_ARG: Record<EverythingTransport, string> = { 'streamable-http': 'streamableHttp', sse: 'sse' };
const START_TIMEOUT_MS = 15_000;
const POLL_INTERVAL_MS = 50;
const KILL_GRACE_MS = 3_000;
const LOG_TAIL_CHARS = 8_192;

/**
 * Loaded with `--import` before the package: makes a `listen(port[, cb])` without a host bind
 * 127.0.0.1 instead of every interface, so a test server is never reachable from the network.
 */
const LOOPBACK_ONLY_PRELOAD = `
import net from 'node:net';
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  const portOnly = (typeof args[0] === 'number' || /^\\d+$/.test(String(args[0]))) && typeof args[1] !== 'string';
  if (portOnly) args.splice(1, 0, '127.0.0.1');
  return listen.apply(this, args);
};
`;

/**
 * The child's whole environment. Nothing is inherited from ours: its `get-env` tool returns
 * `process.env` to any caller, so our secrets must never be there.
 * `GZIP_ALLOWED_DOMAINS=invalid` (a reserved TLD, RFC 6761) makes `gzip-file-as-resource` refuse
 * every http(s) URL; that tool's fetch is the package's only outbound network call (none at startup).
 */
function childEnv(port: number): NodeJS.ProcessEnv {
  return { PORT: String(port), GZIP_ALLOWED_DOMAINS: 'invalid', NODE_ENV: 'test' };
}

/**
 * Starts server-everything for `transport` on a free loopback port and waits until it accepts
 * connections. Rejects after 15 s, or as soon as the process exits, with its output in the message.
 */
export async function startEverything(options: { transport: EverythingTransport }): Promise<RunningEverything> {
  const entry = fileURLToPath(import.meta.resolve('@modelcontextprotocol/server-everything/dist/index.js'));
  const port = await freePort();
  const preload = `data:text/javascript,${encodeURIComponent(LOOPBACK_ONLY_PRELOAD)}`;
  const child = spawn(process.execPath, ['--import', preload, entry, CLI_ARG[options.transport]], {
    env: childEnv(port),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output = collectOutput(child);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  // A test that forgets close() must not leave the server running after we exit.
  const killOnExit = (): void => void child.kill('SIGKILL');
  process.once('exit', killOnExit);

  async function close(): Promise<void> {
    process.off('exit', killOnExit);
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), KILL_GRACE_MS);
    await exited;
    clearTimeout(timer);
  }

  try {
    await waitForPort(port, child);
  } catch (err) {
    await close();
    throw new Error(`server-everything (${options.transport}) did not start: ${(err as Error).message}\n--- its output ---\n${output()}`);
  }
  const path = options.transport === 'sse' ? EVERYTHING_SSE_PATH : EVERYTHING_STREAMABLE_PATH;
  return { url: `http://127.0.0.1:${port}`, port, paths: { [options.transport]: path }, close };
}

async function waitForPort(port: number, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`it exited (code ${child.exitCode}, signal ${child.signalCode})`);
    }
    if (await accepts(port)) return;
    await new Promise((resolve) => setTimeout(resolve, POLL_INTERVAL_MS));
  }
  throw new Error(`127.0.0.1:${port} refused connections for ${START_TIMEOUT_MS / 1000} s`);
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1' });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** Keeps the last few KiB of stdout and stderr (read, so a full pipe never blocks the child). */
function collectOutput(child: ChildProcess): () => string {
  let tail = '';
  const append = (chunk: Buffer): void => {
    tail = (tail + chunk.toString('utf8')).slice(-LOG_TAIL_CHARS);
  };
  child.stdout?.on('data', append);
  child.stderr?.on('data', append);
  return () => tail;
}
