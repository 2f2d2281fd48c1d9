import { z } from 'zod';
import { constantTimeEqual } from '../crypto/constant-time.ts';

/** A user of the built-in development identity provider. */
export interface DemoUser {
  readonly username: string;
  readonly password: string;
  readonly groups: readonly string[];
  readonly description: string;
}

/** Password of every demo user but the admin. Development only: the dev provider says so at start. */
export const DEMO_PASSWORD = 'demo';

/**
 * Demo users whose groups exercise the scope convention (docs/scopes.md): an admin, an
 * operator who may toggle currenttime, a user who may use it, a user with one tool only,
 * and a user with no groups at all.
 */
export function demoUsers(admin: { user: string; password: string }): readonly DemoUser[] {
  return Object.freeze(
    [
      { username: admin.user, password: admin.password, groups: ['mcp-admin'], description: 'registry admin: every server, every action' },
      {
        username: 'operator',
        password: DEMO_PASSWORD,
        groups: ['mcp-user', 'mcp-server-currenttime-toggle'],
        description: 'sees every server, may enable/disable currenttime',
      },
      {
        username: 'user',
        password: DEMO_PASSWORD,
        groups: ['mcp-server-currenttime', 'mcp-server-fininfo'],
        description: 'uses currenttime and fininfo fully',
      },
      {
        username: 'tool-user',
        password: DEMO_PASSWORD,
        groups: ['mcp-server-currenttime-tool-current_time_by_timezone'],
        description: 'one tool of currenttime only',
      },
      {
        username: 'analyst',
        password: DEMO_PASSWORD,
        groups: ['mcp-server-fininfo-tool-get_stock_aggregates'],
        description: "fininfo's get_stock_aggregates only (sees only that tool)",
      },
      {
        username: 'researcher',
        password: DEMO_PASSWORD,
        groups: ['mcp-server-fininfo-resources', 'mcp-server-fininfo-prompts'],
        description: "fininfo's resources and prompts, no tools",
      },
      { username: 'no-groups', password: DEMO_PASSWORD, groups: [], description: 'signed in, no access to anything' },
    ].map((u) => Object.freeze({ ...u, groups: Object.freeze(u.groups) })),
  );
}

/** Finds the user whose name and password match, comparing passwords in constant time. */
export function authenticateDemoUser(users: readonly DemoUser[], username: string, password: string): DemoUser | undefined {
  const user = users.find((u) => u.username === username);
  // Compare against something even for unknown users so timing does not reveal who exists.
  const ok = constantTimeEqual(password, user?.password ?? '\0unknown-user');
  return user && ok ? user : undefined;
}

const extraUsersSchema = z
  .array(
    z.strictObject({
      username: z.string().regex(/^[A-Za-z0-9._@-]{1,64}$/, 'username must be 1-64 of A-Z a-z 0-9 . _ @ -'),
      password: z.string().min(4, 'password must be at least 4 characters'),
      groups: z.array(z.string().min(1).max(256)).max(100),
      description: z.string().max(200).default(''),
    }),
  )
  .max(100);

/**
 * Users from DEV_IDP_USERS_FILE (a JSON array of { username, password, groups }) replace the
 * demo users of the same name and add the rest: try the gateway with your IdP's group names.
 * Returns the problems, one line each, for the start to report.
 */
export function mergeDevUsers(base: readonly DemoUser[], fileText: string, file: string): { users: readonly DemoUser[] } | { errors: string[] } {
  let json: unknown;
  try {
    json = JSON.parse(fileText);
  } catch (err) {
    return { errors: [`DEV_IDP_USERS_FILE ${file} is not valid JSON: ${(err as Error).message}`] };
  }
  const parsed = extraUsersSchema.safeParse(json);
  if (!parsed.success) return { errors: parsed.error.issues.map((i) => `DEV_IDP_USERS_FILE ${file}: [${i.path.join('.')}] ${i.message}`) };
  const byName = new Map(base.map((u) => [u.username, u]));
  for (const u of parsed.data) byName.set(u.username, Object.freeze({ ...u, groups: Object.freeze([...u.groups]) }));
  return { users: Object.freeze([...byName.values()]) };
}
