/**
 * The register/edit form of the page, as plain fields, and its translation to and from a
 * server definition. The definition schema does the validating; this only maps its problems
 * back to the form fields they belong next to. Pure.
 */
import type { ServerDefinition, ServerDefinitionInput } from '../catalog/server-definition.ts';
import type { FieldProblem } from '../errors.ts';

export interface ServerFormValues {
  readonly name: string;
  readonly description: string;
  readonly url: string;
  readonly streamable: string;
  readonly sse: string;
  readonly enabled: boolean;
  /** Comma-separated. */
  readonly tags: string;
  /** One tool per line: `name: description`. */
  readonly tools: string;
}

export const EMPTY_FORM: ServerFormValues = Object.freeze({
  name: '',
  description: '',
  url: 'http://127.0.0.1:',
  streamable: '/mcp',
  sse: '/sse',
  enabled: true,
  tags: '',
  tools: '',
});

export function formFromDefinition(def: ServerDefinition): ServerFormValues {
  return {
    name: def.name,
    description: def.description,
    url: def.url,
    streamable: def.transports['streamable-http'] ?? '',
    sse: def.transports.sse ?? '',
    enabled: def.enabled,
    tags: def.tags.join(', '),
    tools: def.tools.map((t) => (t.description ? `${t.name}: ${t.description}` : t.name)).join('\n'),
  };
}

/** What the browser posted, as strings (missing fields are empty; an unchecked box is absent). */
export function formFromBody(body: Record<string, unknown> | undefined): ServerFormValues {
  const text = (key: string) => (typeof body?.[key] === 'string' ? (body[key] as string) : '');
  return {
    name: text('name').trim(),
    description: text('description').trim(),
    url: text('url').trim(),
    streamable: text('streamable').trim(),
    sse: text('sse').trim(),
    enabled: text('enabled') === 'on' || text('enabled') === 'true',
    tags: text('tags'),
    tools: text('tools'),
  };
}

export function definitionInputFromForm(form: ServerFormValues): ServerDefinitionInput {
  const tools = form.tools
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter(Boolean)
    .map((line) => {
      const colon = line.indexOf(':');
      return colon < 0 ? { name: line, description: '' } : { name: line.slice(0, colon).trim(), description: line.slice(colon + 1).trim() };
    });
  return {
    name: form.name,
    description: form.description,
    url: form.url,
    transports: {
      ...(form.streamable ? { 'streamable-http': form.streamable } : {}),
      ...(form.sse ? { sse: form.sse } : {}),
    },
    enabled: form.enabled,
    tags: form.tags
      .split(',')
      .map((t) => t.trim())
      .filter(Boolean),
    tools,
  };
}

/** Maps the schema's field paths to the form's fields: `transports.sse` -> sse, `tags.2` -> tags. */
export function formErrors(problems: readonly FieldProblem[]): Record<string, string> {
  const errors: Record<string, string> = {};
  for (const { field, message } of problems) {
    const [head, second, third] = field.split('.');
    let key = head ?? '';
    if (head === 'transports') key = second === 'sse' ? 'sse' : 'streamable';
    else if (head === 'tags') key = 'tags';
    else if (head === 'tools') key = 'tools';
    else if (!['name', 'description', 'url', 'enabled'].includes(key)) key = 'form';
    const where =
      head === 'tools' && second !== undefined
        ? `line ${Number(second) + 1}${third ? ` (${third})` : ''}: `
        : head === 'tags' && second !== undefined
          ? `tag ${Number(second) + 1}: `
          : '';
    errors[key] = errors[key] ? `${errors[key]}; ${where}${message}` : `${where}${message}`;
  }
  return errors;
}
