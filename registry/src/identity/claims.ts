/** Reading identity claims the way IdPs spell them; shared by sign-in and bearer tokens. */

/** Groups as an array of strings, or a comma/space-separated string; anything else is none. */
export function readGroups(value: unknown): string[] {
  if (Array.isArray(value)) return value.filter((g): g is string => typeof g === 'string');
  if (typeof value === 'string') return value.split(/[,\s]+/).filter(Boolean);
  return [];
}

/** The first non-empty string, for names spread over several claims (preferred_username, ...). */
export function firstString(...values: unknown[]): string {
  for (const v of values) if (typeof v === 'string' && v.length > 0) return v;
  return '';
}
