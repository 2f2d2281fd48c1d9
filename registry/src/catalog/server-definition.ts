import { z } from 'zod';
import { backendAuthSchema, freezeBackendAuth } from './backend-auth.ts';

/** `[a-z0-9][a-z0-9-]{0,62}`: the only server names that reach nginx config, scopes and paths. */
export const SERVER_NAME_PATTERN = /^[a-z0-9][a-z0-9-]{0,62}$/;

/** Tool names as the MCP spec allows them (SEP-986): 1-128 of A-Z a-z 0-9 _ - . */
export const TOOL_NAME_PATTERN = /^[A-Za-z0-9_.-]{1,128}$/;

/**
 * A backend base URL that can be written into nginx config unquoted: http(s), a host name,
 * IPv4 or bracketed IPv6 literal, an optional port and a plain path. No query, fragment,
 * userinfo, whitespace, quotes, `;`, `{`, `}` or `$`.
 */
export const BACKEND_URL_PATTERN =
  /^https?:\/\/(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?(?:\/[A-Za-z0-9._~\/-]*)?$/;

/** A backend path for one transport, appended to the backend URL. */
export const BACKEND_PATH_PATTERN = /^\/[A-Za-z0-9._~\/-]{0,200}$/;

export const TRANSPORTS = ['streamable-http', 'sse'] as const;

/** The gateway's legacy messages endpoint is `/api/execute/<name>` + this: no SSE path may be it. */
export const SSE_MESSAGES_PATH = '/messages';
export type Transport = (typeof TRANSPORTS)[number];

const toolSchema = z.strictObject({
  name: z.string().regex(TOOL_NAME_PATTERN, 'tool name must be 1-128 of A-Z a-z 0-9 _ - .'),
  description: z.string().max(4000).default(''),
});

/** One file in the catalog folder: `<name>.json`. Unknown keys are errors, not silent defaults. */
export const serverDefinitionSchema = z.strictObject({
  name: z.string().regex(SERVER_NAME_PATTERN, 'server name must match [a-z0-9][a-z0-9-]{0,62}'),
  description: z.string().max(2000).default(''),
  url: z
    .string()
    .regex(BACKEND_URL_PATTERN, 'url must be http(s)://host[:port][/path] with no query or special characters')
    .refine((u) => {
      const port = /:(\d+)(?:\/|$)/.exec(u.replace(/^https?:\/\/\[[^\]]*\]/, 'x://h'))?.[1];
      return port === undefined || (Number(port) >= 1 && Number(port) <= 65535);
    }, 'url port must be 1-65535'),
  transports: z
    .strictObject({
      'streamable-http': z.string().regex(BACKEND_PATH_PATTERN, 'path must start with / and hold only A-Z a-z 0-9 . _ ~ / -').optional(),
      sse: z
        .string()
        .regex(BACKEND_PATH_PATTERN, 'path must start with / and hold only A-Z a-z 0-9 . _ ~ / -')
        // The gateway's own legacy messages endpoint is /api/execute/<name>/messages.
        .refine((p) => p !== SSE_MESSAGES_PATH, `the sse path cannot be ${SSE_MESSAGES_PATH}: the gateway posts legacy messages there (name the stream /sse)`)
        .optional(),
    })
    .refine((t) => t['streamable-http'] !== undefined || t.sse !== undefined, 'at least one transport is needed'),
  enabled: z.boolean().default(false),
  tags: z
    .array(z.string().regex(/^[A-Za-z0-9 _.-]{1,40}$/))
    .max(20)
    .default([]),
  tools: z.array(toolSchema).max(1000).default([]),
  /** How the gateway authenticates to the backend (backend-auth.ts); absent: none. Never a secret value. */
  backendAuth: backendAuthSchema.optional(),
});

export type ServerDefinition = Readonly<z.infer<typeof serverDefinitionSchema>>;
/** What a definition file may hold before defaults are applied. */
export type ServerDefinitionInput = z.input<typeof serverDefinitionSchema>;

/** Deep-freezes a validated definition; the catalog only ever hands these out. */
export function freezeDefinition(def: z.infer<typeof serverDefinitionSchema>): ServerDefinition {
  for (const tool of def.tools) Object.freeze(tool);
  Object.freeze(def.tools);
  Object.freeze(def.tags);
  Object.freeze(def.transports);
  if (def.backendAuth) freezeBackendAuth(def.backendAuth);
  return Object.freeze(def);
}
