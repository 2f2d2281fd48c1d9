/**
 * The OpenAPI 3.1 document of the REST API, generated from the route table and the zod schemas
 * that validate requests and responses (routes.ts, schemas.ts). Pure.
 */
import { z } from 'zod';
import { API_PREFIX, type ApiRoute } from './routes.ts';
import { errorSchema } from './schemas.ts';

type JsonSchema = Record<string, unknown>;

const ERROR_TEXT: Record<number, string> = {
  400: 'The request is invalid: REQUEST_INVALID (with `fields`) or SERVER_NAME_INVALID.',
  401: 'No credentials, or a session or token that does not verify (AUTH_NO_CREDENTIALS). WWW-Authenticate names the scope mcp:registry:read and the RFC 9728 metadata (resource_metadata).',
  403: 'A scope is missing (AUTH_SCOPE_MISSING, with `missing_scope`), or a cookie write without a valid X-CSRF-Token (CSRF_TOKEN_INVALID).',
  404: 'No server by that name that the caller may read (SERVER_UNKNOWN).',
  409: 'A server by that name already exists (SERVER_EXISTS).',
  412: 'The definition changed since the version in If-Match (SERVER_CHANGED).',
};

/** Collects named schemas into components and points every `$ref` there. */
class Components {
  readonly schemas: Record<string, JsonSchema> = {};

  add(schema: z.ZodType, io: 'input' | 'output'): JsonSchema {
    const json = z.toJSONSchema(schema, { io, unrepresentable: 'any' }) as JsonSchema;
    const defs = (json['$defs'] ?? {}) as Record<string, JsonSchema>;
    const renamed = new Map<string, string>();
    for (const [id, def] of Object.entries(defs)) {
      const existing = this.schemas[id];
      const key = existing === undefined || JSON.stringify(existing) === JSON.stringify(def) ? id : `${id}${io === 'input' ? 'Input' : 'Output'}`;
      renamed.set(id, key);
    }
    const rewrite = (value: unknown): unknown => {
      if (Array.isArray(value)) return value.map(rewrite);
      if (value === null || typeof value !== 'object') return value;
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(value)) {
        if (k === '$ref' && typeof v === 'string' && v.startsWith('#/$defs/')) out[k] = `#/components/schemas/${renamed.get(v.slice(8)) ?? v.slice(8)}`;
        else if (k !== '$defs' && k !== '$schema') out[k] = rewrite(v);
      }
      return out;
    };
    for (const [id, def] of Object.entries(defs)) this.schemas[renamed.get(id)!] = rewrite(def) as JsonSchema;
    return rewrite(json) as JsonSchema;
  }
}

function parametersOf(route: ApiRoute, components: Components): JsonSchema[] {
  const list: JsonSchema[] = [];
  const add = (schema: z.ZodType | undefined, where: 'path' | 'query') => {
    if (!schema) return;
    const json = components.add(schema, 'input');
    const properties = (json['properties'] ?? {}) as Record<string, JsonSchema>;
    const required = new Set((json['required'] ?? []) as string[]);
    for (const [name, property] of Object.entries(properties)) {
      const { description, ...rest } = property;
      list.push({ name, in: where, required: where === 'path' || required.has(name), schema: rest, ...(description ? { description } : {}) });
    }
  };
  add(route.params, 'path');
  add(route.query, 'query');
  if (route.method === 'put' || route.method === 'delete') {
    list.push({
      name: 'If-Match',
      in: 'header',
      required: false,
      schema: { type: 'string' },
      description: 'The `version` (ETag) you read; the change is refused with 412 if the definition changed since.',
    });
  }
  return list;
}

/** The whole document; `serverUrl` is the gateway's public URL. */
export function openApiDocument(routes: readonly ApiRoute[], serverUrl: string): JsonSchema {
  const components = new Components();
  const errorRef = components.add(errorSchema, 'output');
  const paths: Record<string, Record<string, JsonSchema>> = {};
  for (const route of routes) {
    const path = `${API_PREFIX}${route.path.replace(/:([A-Za-z]+)/g, '{$1}')}`;
    const responses: Record<string, JsonSchema> = {
      [String(route.status)]: {
        description: route.summary,
        ...(route.method === 'get' && route.path === '/servers/:name'
          ? { headers: { ETag: { schema: { type: 'string' }, description: "The definition's version." } } }
          : {}),
        content: { 'application/json': { schema: components.add(route.response, 'output') } },
      },
    };
    for (const status of [401, ...route.errors])
      responses[String(status)] = { description: ERROR_TEXT[status] ?? 'Error', content: { 'application/json': { schema: errorRef } } };
    const write = route.method !== 'get';
    paths[path] ??= {};
    paths[path][route.method] = {
      operationId: route.operationId,
      summary: route.summary,
      description: `Needs: ${route.access}.${write ? ' Cookie callers must send X-CSRF-Token (from GET /api/registry/me).' : ''}`,
      parameters: parametersOf(route, components),
      ...(route.body ? { requestBody: { required: true, content: { 'application/json': { schema: components.add(route.body, 'input') } } } } : {}),
      responses,
    };
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'MCP Gateway Registry API',
      version: '1',
      description:
        'Manage the MCP servers behind the gateway. Every call needs a bearer access token from the identity provider, or the session cookie of the web page (then writes also need the X-CSRF-Token header). Errors are JSON: `{"error": CODE, "message": ...}`; codes are listed in docs/errors.md.',
    },
    servers: [{ url: serverUrl }],
    security: [{ bearer: [] }, { session: [] }],
    paths,
    components: {
      schemas: components.schemas,
      securitySchemes: {
        bearer: {
          type: 'http',
          scheme: 'bearer',
          bearerFormat: 'JWT',
          description: 'An access token from the identity provider; scopes come from its groups or, for machine clients, the mapping file.',
        },
        session: { type: 'apiKey', in: 'cookie', name: 'mcp_gateway_session', description: "The web page's session; writes also need X-CSRF-Token." },
      },
    },
  };
}
