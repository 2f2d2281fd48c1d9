/** Where Prometheus scrapes the registry (through nginx's `location /`). */
export const METRICS_PATH = '/metrics';
/** Liveness and readiness, as Kubernetes probes mean them (docs/operations.md). */
export const HEALTHZ_PATH = '/healthz';
export const READYZ_PATH = '/readyz';

/**
 * The client's address as nginx saw it (`$remote_addr`), set by nginx on every request it
 * proxies to the registry. nginx's `proxy_set_header` replaces a client-sent header of the same
 * name, so a client cannot forge it; a request without it did not come through nginx's
 * registry locations and is treated as remote (nginx/render.ts sets it, metrics/access.ts reads it).
 */
export const CLIENT_ADDRESS_HEADER = 'x-gateway-client-address';
