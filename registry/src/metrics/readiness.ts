import type { StoreState } from './stores.ts';

export interface Readiness {
  readonly ready: boolean;
  /** The /readyz body: `status`, and when not ready what is missing. Names only, never an address or an error text. */
  readonly body: { readonly status: 'ready' | 'not-ready'; readonly notReady?: readonly string[] };
}

/**
 * Ready, as a Kubernetes readiness probe means it: nginx has taken a configuration (it routes
 * MCP requests) and every store is reachable. A refused later configuration does not make the
 * gateway unready: the last good one keeps serving. `nginx` in notReady: no configuration
 * applied yet; `store:<name>`: that store is unreachable.
 */
export function readiness(nginxApplied: boolean, stores: readonly StoreState[]): Readiness {
  const notReady = [...(nginxApplied ? [] : ['nginx']), ...stores.filter((s) => !s.up).map((s) => `store:${s.name}`)];
  return notReady.length === 0 ? { ready: true, body: { status: 'ready' } } : { ready: false, body: { status: 'not-ready', notReady } };
}
