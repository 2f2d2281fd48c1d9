import { basename } from 'node:path';
import { freezeDefinition, serverDefinitionSchema, type ServerDefinition } from './server-definition.ts';

export type DefinitionResult = { ok: true; definition: ServerDefinition } | { ok: false; message: string };

/**
 * Parses and validates one catalog file. Pure: the caller reads the file. The file must be
 * named `<name>.json` after the server it defines, so one name has exactly one file.
 */
export function loadServerDefinition(file: string, text: string): DefinitionResult {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    return { ok: false, message: `not valid JSON: ${(err as Error).message}` };
  }
  const parsed = serverDefinitionSchema.safeParse(json);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `${i.path.join('.') || '(file)'}: ${i.message}`);
    return { ok: false, message: lines.join('; ') };
  }
  const expected = `${parsed.data.name}.json`;
  if (basename(file) !== expected) {
    return { ok: false, message: `file name must be ${expected} for server "${parsed.data.name}"` };
  }
  return { ok: true, definition: freezeDefinition(parsed.data) };
}

/** Serializes a definition the way the catalog writes it (stable key order, trailing newline). */
export function formatServerDefinition(def: ServerDefinition): string {
  return `${JSON.stringify(def, null, 2)}\n`;
}
