import { createHash, timingSafeEqual } from 'node:crypto';

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
  return Object.freeze([
    { username: admin.user, password: admin.password, groups: ['mcp-admin'], description: 'registry admin: every server, every action' },
    { username: 'operator', password: DEMO_PASSWORD, groups: ['mcp-user', 'mcp-server-currenttime-toggle'], description: 'sees every server, may enable/disable currenttime' },
    { username: 'user', password: DEMO_PASSWORD, groups: ['mcp-server-currenttime'], description: 'reads and calls currenttime' },
    { username: 'tool-user', password: DEMO_PASSWORD, groups: ['mcp-server-currenttime-tool-current_time_by_timezone'], description: 'one tool of currenttime only' },
    { username: 'no-groups', password: DEMO_PASSWORD, groups: [], description: 'signed in, no access to anything' },
  ].map((u) => Object.freeze({ ...u, groups: Object.freeze(u.groups) })));
}

/** Finds the user whose name and password match, comparing passwords in constant time. */
export function authenticateDemoUser(users: readonly DemoUser[], username: string, password: string): DemoUser | undefined {
  const user = users.find((u) => u.username === username);
  // Compare against something even for unknown users so timing does not reveal who exists.
  const ok = constantTimeEqual(password, user?.password ?? '\0unknown-user');
  return user && ok ? user : undefined;
}

/** Compares two strings in constant time for their length (hashes first so lengths match). */
export function constantTimeEqual(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a).digest();
  const hb = createHash('sha256').update(b).digest();
  return timingSafeEqual(ha, hb) && a.length === b.length;
}
