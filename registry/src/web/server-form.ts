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
  /** backendAuth's mode: none, headers, client_credentials, uploaded, user_oauth or token_exchange. */
  readonly authType: string;
  /** backendAuth's other settings as JSON (without `type`); never a secret (the schema refuses them). */
  readonly authSettings: string;
}

/** What the settings box starts with when an operator picks a mode (docs/backend-credentials.md). */
export const AUTH_SETTINGS_EXAMPLES: Readonly<Record<string, string>> = Object.freeze({
  headers: '{ "headers": [{ "name": "Authorization", "prefix": "Bearer ", "from": "vault" }] }',
  client_credentials: '{ "tokenUrl": "https://idp.example.com/oauth2/token", "clientId": "mcp-gateway", "scopes": [], "clientSecretFrom": "vault" }',
  uploaded: '{ "header": "Authorization", "prefix": "Bearer ", "instructions": "Create a token at https://tools.example.com/settings/tokens" }',
  user_oauth: '{ "provider": "GitHub" }',
  token_exchange:
    '{ "issuer": "https://idp.example.com/oauth2/default", "clientId": "mcp-gateway-exchange", "audience": "api://backend", "scopes": [], "clientSecretFrom": "vault" }',
});

export const EMPTY_FORM: ServerFormValues = Object.freeze({
  name: '',
  description: '',
  url: 'http://127.0.0.1:',
  streamable: '/mcp',
  sse: '/sse',
  enabled: true,
  tags: '',
  tools: '',
  authType: 'none',
  authSettings: '',
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
    ...authFields(def),
  };
}

function authFields(def: ServerDefinition): { authType: string; authSettings: string } {
  const auth = def.backendAuth;
  if (auth === undefined || auth.type === 'none') return { authType: 'none', authSettings: '' };
  const { type, ...settings } = auth;
  return { authType: type, authSettings: JSON.stringify(settings, null, 2) };
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
    authType: text('authType').trim() || 'none',
    authSettings: text('authSettings').trim(),
  };
}

/** Why the backend authentication settings box cannot be read, by form field; empty when it can. */
export function authSettingsErrors(form: ServerFormValues): Record<string, string> {
  if (form.authType === 'none' || form.authSettings === '') return {};
  try {
    const settings: unknown = JSON.parse(form.authSettings);
    if (settings !== null && typeof settings === 'object' && !Array.isArray(settings)) return {};
  } catch {
    // reported below
  }
  return { authSettings: 'write the settings as one JSON object, such as ' + (AUTH_SETTINGS_EXAMPLES[form.authType] ?? '{}') };
}

/** The form's backendAuth: absent for none; settings that are not a JSON object are left for the schema to name. */
function authFromForm(form: ServerFormValues): Record<string, unknown> | undefined {
  if (form.authType === 'none' || form.authType === '') return undefined;
  let settings: unknown = {};
  if (form.authSettings !== '') {
    try {
      settings = JSON.parse(form.authSettings);
    } catch {
      settings = {};
    }
  }
  return { ...(settings !== null && typeof settings === 'object' && !Array.isArray(settings) ? settings : {}), type: form.authType };
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
    ...(authFromForm(form) ? { backendAuth: authFromForm(form) as ServerDefinitionInput['backendAuth'] } : {}),
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
    else if (head === 'backendAuth') key = second === 'type' ? 'authType' : 'authSettings';
    else if (!['name', 'description', 'url', 'enabled'].includes(key)) key = 'form';
    const where =
      head === 'backendAuth' && second !== undefined && second !== 'type'
        ? `${field.split('.').slice(1).join('.')}: `
        : head === 'tools' && second !== undefined
          ? `line ${Number(second) + 1}${third ? ` (${third})` : ''}: `
          : head === 'tags' && second !== undefined
            ? `tag ${Number(second) + 1}: `
            : '';
    errors[key] = errors[key] ? `${errors[key]}; ${where}${message}` : `${where}${message}`;
  }
  return errors;
}
