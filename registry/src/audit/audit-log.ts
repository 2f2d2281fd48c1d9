import { once } from 'node:events';
import { pino } from 'pino';

/** One access decision of the check. Never holds a token, cookie or request body. */
export interface AccessAuditEntry {
  readonly event: 'access';
  readonly requestId: string | undefined;
  readonly user: string;
  readonly server: string;
  readonly transport: string | undefined;
  /** The first method of the request (or of the refused message in a batch); '' without a body. */
  readonly method: string;
  readonly tool: string | undefined;
  /** How many JSON-RPC messages the body held (batches hold several). */
  readonly messages: number;
  readonly decision: 'allow' | 'deny';
  readonly status: number;
  readonly missingScope: string | undefined;
  readonly reason: string | undefined;
}

/** A change to the registry made by a person (enable, disable; more with the page work). */
export interface ChangeAuditEntry {
  readonly event: 'change';
  readonly user: string;
  readonly server: string;
  readonly action: 'enable' | 'disable';
}

export type AuditEntry = AccessAuditEntry | ChangeAuditEntry;

export interface AuditLog {
  record(entry: AuditEntry): void;
  flush(): Promise<void>;
}

/**
 * Appends one JSON line per entry (with `time`) to `file`. Writes are asynchronous and
 * batched by pino's sonic-boom, so the check never waits on the disk. `undefined` fields are
 * left out of the line.
 */
export function createAuditLog(file: string): AuditLog & { close(): Promise<void> } {
  // Batched: lines collect until 4 KiB or the next second, so a busy check makes few writes.
  const destination = pino.destination({ dest: file, sync: false, mkdir: true, minLength: 4096 });
  let open = false;
  let closed = false;
  const timer = setInterval(() => {
    if (open && !closed) destination.flush(() => undefined);
  }, 1000).unref();
  // The file opens asynchronously; flush and close wait for it.
  const ready = once(destination, 'ready').then(() => {
    open = true;
  });
  return {
    record(entry) {
      destination.write(`${JSON.stringify({ time: new Date().toISOString(), ...entry })}\n`);
    },
    async flush() {
      await ready;
      await new Promise<void>((resolve) => destination.flush(() => resolve()));
    },
    async close() {
      clearInterval(timer);
      closed = true;
      await ready;
      const ended = once(destination, 'close');
      destination.end();
      await ended;
    },
  };
}
