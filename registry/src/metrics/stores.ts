/**
 * Which stores the registry depends on, and whether each is reachable now. The composition root
 * names every store here: file stores once as always up, a networked store (Redis) with a probe
 * read at each scrape and readiness check, or with `set()` from its connection events. Both
 * `/readyz` and the `mcp_gateway_store_up` gauge read this one list.
 */
export interface StoreState {
  readonly name: string;
  readonly up: boolean;
}

/** Store names become a metric label: short fixed words chosen in code, never user input. */
const STORE_NAME = /^[a-z][a-z0-9_-]{0,31}$/;

export class StoreHealth {
  readonly #probes = new Map<string, () => boolean>();

  /**
   * Records `name` as up or down from now on (a connection's ready / end events, or `true` once
   * for a file store). Replaces an earlier probe of the same name.
   * @throws TypeError for a name that is not a short lowercase word (a programmer error).
   */
  set(name: string, up: boolean): void {
    this.watch(name, up ? () => true : () => false);
  }

  /**
   * Reads `isUp` whenever the state is asked for: it must be synchronous and cheap (node-redis's
   * `client.isReady`). A probe that throws counts as down.
   * @throws TypeError for a name that is not a short lowercase word (a programmer error).
   */
  watch(name: string, isUp: () => boolean): void {
    if (!STORE_NAME.test(name)) throw new TypeError(`store name ${JSON.stringify(name)} must match ${STORE_NAME}`);
    this.#probes.set(name, isUp);
  }

  /** Every named store and whether it is up now, in the order they were named. */
  list(): StoreState[] {
    const states: StoreState[] = [];
    for (const [name, isUp] of this.#probes) {
      let up: boolean;
      try {
        up = isUp() === true;
      } catch {
        up = false;
      }
      states.push({ name, up });
    }
    return states;
  }
}
