import type { createClient } from 'redis';

/**
 * The first connection of a node-redis client, which must fail rather than retry: node-redis
 * reports a refused connection as an `error` event (and keeps reconnecting) instead of rejecting
 * `connect()`, so both are raced here, and a client that failed is destroyed. Afterwards the
 * client reconnects by itself.
 */
export async function connectOnce(client: ReturnType<typeof createClient>): Promise<void> {
  try {
    await new Promise<void>((resolve, reject) => {
      client.once('error', reject);
      client.connect().then(() => resolve(), reject);
    });
  } catch (err) {
    if (client.isOpen) client.destroy();
    throw err;
  }
}
