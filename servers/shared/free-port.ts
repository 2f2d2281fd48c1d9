import { createServer } from 'node:net';

/**
 * A loopback port that was free a moment ago: bind port 0, read what the OS chose, release it.
 * For peers that cannot listen on port 0 and report back (nginx, child processes).
 */
export async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve, reject) => {
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => resolve());
  });
  const address = probe.address();
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('could not read the probe port');
  return address.port;
}
