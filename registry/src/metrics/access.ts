/**
 * Who may read /metrics. The registry listens on loopback behind nginx, so every socket it sees
 * is nginx's own: the client's address comes from CLIENT_ADDRESS_HEADER, which nginx sets from
 * `$remote_addr` on every request it proxies here and which replaces any copy the client sent.
 * The registry decides (not nginx) so the one rule - loopback, or the scrape token - lives in
 * one place and is tested with the token comparison it needs; nginx only reports the address.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { constantTimeEqual } from '../crypto/constant-time.ts';
import { CLIENT_ADDRESS_HEADER } from './paths.ts';

/** 127.0.0.0/8, ::1 and IPv4-mapped loopback, as nginx writes `$remote_addr`. */
export function isLoopback(address: string | undefined): boolean {
  if (address === undefined) return false;
  const v4 = address.startsWith('::ffff:') ? address.slice(7) : address;
  return /^127(?:\.\d{1,3}){3}$/.test(v4) || address === '::1';
}

export type MetricsAccess = 'allow' | 'not-found' | 'unauthorized';

/**
 * Decides a scrape:
 * - a client on loopback (as nginx saw it) is allowed;
 * - with a `token` configured (METRICS_TOKEN), `Authorization: Bearer <token>` is allowed from
 *   anywhere (compared in constant time), and anyone else gets 401 (`unauthorized`);
 * - without a token, anyone else gets 404 (`not-found`): the endpoint does not exist for them.
 * A request that did not come through nginx (no address header) counts as remote.
 */
export function metricsAccess(headers: IncomingMessage['headers'], token: string | undefined): MetricsAccess {
  const address = headers[CLIENT_ADDRESS_HEADER];
  if (isLoopback(typeof address === 'string' ? address : undefined)) return 'allow';
  if (token === undefined) return 'not-found';
  const match = /^Bearer +(\S+) *$/i.exec(headers.authorization ?? '');
  return match?.[1] !== undefined && constantTimeEqual(match[1], token) ? 'allow' : 'unauthorized';
}

/** The /metrics handler: the exposition for who may read it, 404 or 401 (no body beyond a word) for anyone else. */
export function metricsRoute(metrics: { render(): Promise<string>; readonly contentType: string }, token: string | undefined) {
  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const access = metricsAccess(req.headers, token);
    if (access === 'not-found') return void res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('Not Found\n');
    if (access === 'unauthorized')
      return void res.writeHead(401, { 'content-type': 'text/plain; charset=utf-8', 'www-authenticate': 'Bearer realm="metrics"' }).end('Unauthorized\n');
    const body = await metrics.render();
    res.writeHead(200, { 'content-type': metrics.contentType, 'cache-control': 'no-store' }).end(body);
  };
}
