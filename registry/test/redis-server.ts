import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createConnection } from 'node:net';
import { freePort } from '../../servers/shared/free-port.ts';

/** Debian's redis-server (scripts/ensure-system-deps.ts installs it for the tests). Missing: the tests fail, never skip. */
export const REDIS_SERVER = '/usr/bin/redis-server';

export interface RedisServerOptions {
  /**
   * A folder for the data: with one, the server keeps an append-only file there (fsync always),
   * so a stop and start on the same port and folder keeps every acknowledged write. Without one
   * the server keeps nothing (a start is an empty server).
   */
  readonly dataDir?: string;
}

/**
 * A throwaway redis-server for a test file: loopback, an ephemeral port chosen once, so `stop()`
 * and `start()` model an outage and a return at the same address. SIGKILL on stop (what a crash
 * looks like to the clients).
 */
export class RedisServer {
  readonly #options: RedisServerOptions;
  #child: ChildProcess | undefined;
  port = 0;

  constructor(options: RedisServerOptions = {}) {
    this.#options = options;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    if (this.port === 0) this.port = await freePort();
    const persistence = this.#options.dataDir
      ? ['--dir', this.#options.dataDir, '--appendonly', 'yes', '--appendfsync', 'always', '--save', '']
      : ['--save', '', '--appendonly', 'no'];
    const child = spawn(REDIS_SERVER, [...persistence, '--port', String(this.port), '--bind', '127.0.0.1'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    await new Promise<void>((resolve, reject) => {
      const onData = (chunk: Buffer) => {
        output += chunk.toString();
        if (output.includes('Ready to accept connections')) resolve();
      };
      child.stdout.on('data', onData);
      child.stderr.on('data', onData);
      child.once('error', (err) => reject(new Error(`could not start ${REDIS_SERVER} (apt-get install redis-server): ${err.message}`)));
      child.once('exit', (code) => reject(new Error(`${REDIS_SERVER} exited (${code}) before it was ready:\n${output}`)));
    });
    this.#child = child;
  }

  async stop(): Promise<void> {
    const child = this.#child;
    this.#child = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.kill('SIGKILL');
    await exited;
  }

  /** One command on a fresh connection (RESP, inline arguments), the reply as text. For INFO, CLIENT KILL, DEL behind a store's back. */
  async command(...args: string[]): Promise<string> {
    const socket = createConnection(this.port, '127.0.0.1');
    const request = `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`;
    socket.write(request);
    let reply = '';
    for await (const chunk of socket) {
      reply += String(chunk);
      if (complete(reply)) break;
    }
    socket.destroy();
    return reply;
  }
}

/** Whether a RESP reply is whole (simple strings, errors, integers, one bulk string). */
function complete(reply: string): boolean {
  if (/^[+\-:]/.test(reply)) return reply.endsWith('\r\n');
  const bulk = /^\$(-?\d+)\r\n/.exec(reply);
  if (bulk) return Number(bulk[1]) < 0 || Buffer.byteLength(reply) >= bulk[0].length + Number(bulk[1]) + 2;
  return false;
}
