/** For tests only: the catalog's public API (list / get / 'changed') over a list the test sets. */
import { EventEmitter } from 'node:events';
import type { ServerDefinition } from './server-definition.ts';

export class TestCatalog extends EventEmitter<{ changed: [readonly ServerDefinition[]] }> {
  #defs: readonly ServerDefinition[];

  constructor(defs: readonly ServerDefinition[] = []) {
    super();
    this.#defs = defs;
  }

  list(): readonly ServerDefinition[] {
    return this.#defs;
  }

  get(name: string): ServerDefinition | undefined {
    return this.#defs.find((d) => d.name === name);
  }

  /** Replaces the list and announces it, as the catalog does after a change. */
  set(defs: readonly ServerDefinition[]): void {
    this.#defs = defs;
    this.emit('changed', defs);
  }
}
