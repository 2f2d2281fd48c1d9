import { parse as parseYaml } from 'yaml';
import { z } from 'zod';

/** A client an operator registered in OAUTH_CLIENTS_FILE, as oidc-provider's static client metadata. */
export interface StaticClient {
  readonly client_id: string;
  readonly client_name?: string;
  readonly client_secret?: string;
  readonly redirect_uris: readonly string[];
  readonly response_types: readonly string[];
  readonly grant_types: readonly string[];
  readonly token_endpoint_auth_method: 'none' | 'client_secret_basic';
}

/** Loopback hosts a redirect URI may use over plain http, on any port (RFC 8252 section 7.3). */
const LOOPBACK_HOSTS = new Set(['127.0.0.1', '[::1]', 'localhost']);

/** Secrets shorter than this are refused: they are the only thing a machine client proves. */
const MIN_SECRET_LENGTH = 32;

const clientSchema = z.strictObject({
  client_id: z
    .string()
    .min(1)
    .max(200)
    .regex(/^[A-Za-z0-9._~:-]+$/, 'client_id may hold only letters, digits and . _ ~ : -'),
  client_name: z.string().min(1).max(200).optional(),
  redirect_uris: z.array(z.string().min(1).max(2000)).max(20).default([]),
  grant_types: z
    .array(z.enum(['authorization_code', 'refresh_token', 'client_credentials']))
    .min(1)
    .default(['authorization_code', 'refresh_token']),
  token_endpoint_auth_method: z.enum(['none', 'client_secret_basic']).default('none'),
  /** The name of the environment variable holding the secret: never the secret itself in the file. */
  client_secret_env: z
    .string()
    .regex(/^[A-Z_][A-Z0-9_]*$/, 'client_secret_env must name an environment variable (A-Z, 0-9, _)')
    .optional(),
});
const fileSchema = z.strictObject({ clients: z.array(clientSchema).max(1000) });

export type StaticClientsResult = { ok: true; clients: StaticClient[] } | { ok: false; errors: string[] };

/**
 * Parses OAUTH_CLIENTS_FILE (YAML, or JSON): the MCP clients an operator registers ahead of time.
 * Every problem is reported, one line each, with its place in the file; a file with any problem
 * is refused whole. Rules: a client is either a person's client (authorization_code, optionally
 * refresh_token; at least one redirect URI, under the same rule as dynamic registration,
 * {@link redirectUriProblem}) or a machine client
 * (client_credentials only, client_secret_basic, no redirect URIs). A confidential client's
 * secret comes from the environment variable `client_secret_env` names (at least 32 characters).
 */
export function parseStaticClients(
  text: string,
  env: Readonly<Record<string, string | undefined>>,
  redirectSchemes: readonly string[],
  reservedIds: readonly string[] = [],
): StaticClientsResult {
  let data: unknown;
  try {
    data = parseYaml(text, { schema: 'failsafe', uniqueKeys: true, maxAliasCount: 0 });
  } catch (err) {
    return { ok: false, errors: [`not valid YAML/JSON: ${(err as Error).message.split('\n')[0]}`] };
  }
  const parsed = fileSchema.safeParse(data ?? {});
  if (!parsed.success) return { ok: false, errors: parsed.error.issues.map((i) => `${i.path.join('.') || '(file)'}: ${i.message}`) };
  const errors: string[] = [];
  const clients: StaticClient[] = [];
  const seen = new Set<string>();
  parsed.data.clients.forEach((c, index) => {
    const at = `clients.${index} (${c.client_id})`;
    if (seen.has(c.client_id) || reservedIds.includes(c.client_id)) errors.push(`${at}: client_id is already taken`);
    seen.add(c.client_id);
    const machine = c.grant_types.includes('client_credentials');
    if (machine && c.grant_types.length > 1) errors.push(`${at}: client_credentials cannot be combined with other grant types`);
    if (!machine && !c.grant_types.includes('authorization_code')) errors.push(`${at}: grant_types must include authorization_code (or be client_credentials)`);
    if (machine && c.redirect_uris.length > 0) errors.push(`${at}: a client_credentials client has no redirect_uris`);
    if (!machine && c.redirect_uris.length === 0) errors.push(`${at}: redirect_uris is required for authorization_code`);
    for (const uri of c.redirect_uris) {
      const problem = redirectUriProblem(uri, redirectSchemes);
      if (problem) errors.push(`${at}: ${uri}: ${problem}`);
    }
    const confidential = c.token_endpoint_auth_method === 'client_secret_basic';
    if (machine && !confidential) errors.push(`${at}: a client_credentials client must use token_endpoint_auth_method client_secret_basic`);
    let secret: string | undefined;
    if (confidential) {
      if (c.client_secret_env === undefined) errors.push(`${at}: client_secret_basic needs client_secret_env (the secret never goes in the file)`);
      else {
        secret = env[c.client_secret_env];
        if (secret === undefined || secret === '') errors.push(`${at}: environment variable ${c.client_secret_env} is not set`);
        else if (secret.length < MIN_SECRET_LENGTH) errors.push(`${at}: the secret in ${c.client_secret_env} must be at least ${MIN_SECRET_LENGTH} characters`);
      }
    } else if (c.client_secret_env !== undefined) errors.push(`${at}: client_secret_env is only for client_secret_basic`);
    clients.push({
      client_id: c.client_id,
      ...(c.client_name === undefined ? {} : { client_name: c.client_name }),
      ...(secret === undefined ? {} : { client_secret: secret }),
      redirect_uris: [...c.redirect_uris],
      response_types: machine ? [] : ['code'],
      grant_types: [...new Set(c.grant_types)],
      token_endpoint_auth_method: c.token_endpoint_auth_method,
    });
  });
  return errors.length > 0 ? { ok: false, errors } : { ok: true, clients };
}

/**
 * The redirect URI rule: http only to a loopback host (any port), https anywhere, a custom
 * scheme only when OAUTH_REDIRECT_SCHEMES lists it. Returns why a URI is refused, or undefined.
 */
export function redirectUriProblem(uri: string, schemes: readonly string[]): string | undefined {
  const parsed = URL.parse(uri);
  if (!parsed) return 'redirect_uris must be absolute URIs';
  const scheme = parsed.protocol.slice(0, -1).toLowerCase();
  if (scheme === 'https') return undefined;
  if (scheme === 'http')
    return LOOPBACK_HOSTS.has(parsed.hostname) ? undefined : 'http redirect URIs must be loopback (127.0.0.1, [::1] or localhost); use https otherwise';
  return schemes.includes(scheme) ? undefined : `the ${scheme}: scheme is not allowed for redirect URIs here (OAUTH_REDIRECT_SCHEMES)`;
}
