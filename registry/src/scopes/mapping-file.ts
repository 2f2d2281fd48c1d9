import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { validateMappedScope } from './convention.ts';

/** Scopes for IdP groups and for machine clients that the naming convention cannot express. */
export interface ScopeMapping {
  /** Group name -> scopes; adds to the convention. */
  readonly groups: Readonly<Record<string, readonly string[]>>;
  /** Machine (client-credentials) client id -> scopes; a client not listed gets none. */
  readonly clients: Readonly<Record<string, readonly string[]>>;
}

export const EMPTY_MAPPING: ScopeMapping = Object.freeze({ groups: Object.freeze({}), clients: Object.freeze({}) });

const scopeList = z
  .array(z.string().refine(validateMappedScope, { error: (issue) => `"${String(issue.input)}" is not a scope (see docs/scopes.md)` }))
  .max(500);
const schema = z.strictObject({
  groups: z.record(z.string().min(1).max(256), scopeList).default({}),
  clients: z.record(z.string().min(1).max(256), scopeList).default({}),
});

export type MappingResult = { ok: true; mapping: ScopeMapping } | { ok: false; errors: string[] };

/**
 * Parses a mapping file (YAML, or JSON, which is YAML too). Every problem is reported, one
 * line each, with its place in the file; a file with any problem is refused whole.
 */
export function parseScopeMapping(text: string): MappingResult {
  let data: unknown;
  try {
    // failsafe: every scalar is a string, so a group named 0123 or 1e5 stays that name.
    data = parseYaml(text, { schema: 'failsafe', uniqueKeys: true, maxAliasCount: 0 });
  } catch (err) {
    return { ok: false, errors: [`not valid YAML/JSON: ${(err as Error).message.split('\n')[0]}`] };
  }
  const parsed = schema.safeParse(data ?? {});
  if (!parsed.success) return { ok: false, errors: parsed.error.issues.map((i) => `${i.path.join('.') || '(file)'}: ${i.message}`) };
  const freeze = (r: Record<string, string[]>) => Object.freeze(Object.fromEntries(Object.entries(r).map(([k, v]) => [k, Object.freeze([...new Set(v)])])));
  // null prototypes: a group named "constructor" must not find Object.prototype's.
  const groups = Object.assign(Object.create(null) as Record<string, readonly string[]>, freeze(parsed.data.groups));
  const clients = Object.assign(Object.create(null) as Record<string, readonly string[]>, freeze(parsed.data.clients));
  return { ok: true, mapping: Object.freeze({ groups: Object.freeze(groups), clients: Object.freeze(clients) }) };
}
