/**
 * The check's decisions, cached by nginx (docs/performance.md, "Cached decisions"). Pure.
 *
 * nginx keeps a check answer in `proxy_cache` only when the answer says for how long
 * (`X-Accel-Expires`; the rendered config honours nothing else), under a key njs computes: a
 * SHA-256 of the generation, the credential headers and everything else the check reads
 * (nginx/njs/mcp.js `checkKey`). So the cache files hold no cookie or token, and a new generation
 * (check-generation.ts: a toggle, a sign-out, a revocation, a session's end) makes every cached
 * answer unreachable at once.
 *
 * A cached answer served to a later request never reaches the registry, so the answer carries
 * its own audit line (`X-MCP-Audit`, the fields below, base64url JSON); njs logs it for each
 * request the cache answers and the registry reads that log into the audit
 * (nginx/audit-tail.ts).
 */
import type { AccessAuditEntry } from '../audit/audit-log.ts';

/** nginx's own header: seconds nginx may keep the answer (never sent on to anyone). */
export const CACHE_SECONDS_HEADER = 'x-accel-expires';
/** The audit line of a cacheable answer, for the requests the cache answers (base64url JSON). */
export const AUDIT_HEADER = 'x-mcp-audit';

/**
 * How long nginx may keep an answer for this principal: CHECK_CACHE_SECONDS, never past the
 * credential's end (a session's expiry, a token's `exp`), in whole seconds rounded down. 0: not
 * at all.
 */
export function cacheSeconds(maxSeconds: number, expiresAt: number | undefined, now: number): number {
  if (!(maxSeconds > 0)) return 0;
  if (expiresAt === undefined) return Math.floor(maxSeconds);
  return Math.max(0, Math.min(Math.floor(maxSeconds), Math.floor((expiresAt - now) / 1000)));
}

/** What a cached answer says of itself for the audit: the decision, not the request. */
export type AuditSummary = Pick<AccessAuditEntry, 'user' | 'method' | 'tool' | 'messages' | 'decision' | 'status' | 'missingScope' | 'reason'>;

interface Wire {
  u: string;
  m: string;
  t?: string;
  n: number;
  d: 'allow' | 'deny';
  s: number;
  ms?: string;
  r?: string;
}

/** The X-MCP-Audit value of an entry: base64url of a short JSON, safe in a header and a log line. */
export function encodeAuditSummary(entry: AuditSummary): string {
  const wire: Wire = { u: entry.user, m: entry.method, n: entry.messages, d: entry.decision, s: entry.status };
  if (entry.tool !== undefined) wire.t = entry.tool;
  if (entry.missingScope !== undefined) wire.ms = entry.missingScope;
  if (entry.reason !== undefined) wire.r = entry.reason;
  return Buffer.from(JSON.stringify(wire)).toString('base64url');
}

const FIELD = 512;

function text(value: unknown): value is string {
  return typeof value === 'string' && value.length <= FIELD;
}

/**
 * Reads an X-MCP-Audit value back (from nginx's log); undefined for anything that is not one:
 * the log is nginx's and the value came through a cache file, so every field is checked.
 */
export function decodeAuditSummary(value: string): AuditSummary | undefined {
  if (!/^[A-Za-z0-9_-]{1,4096}$/.test(value)) return undefined;
  let wire: Partial<Record<keyof Wire, unknown>>;
  try {
    wire = JSON.parse(Buffer.from(value, 'base64url').toString('utf8')) as typeof wire;
  } catch {
    return undefined;
  }
  if (wire === null || typeof wire !== 'object') return undefined;
  const { u, m, t, n, d, s, ms, r } = wire;
  if (!text(u) || !text(m) || (t !== undefined && !text(t)) || (ms !== undefined && !text(ms)) || (r !== undefined && !text(r))) return undefined;
  if (!Number.isInteger(n) || (n as number) < 0 || (n as number) > 1000) return undefined;
  if (d !== 'allow' && d !== 'deny') return undefined;
  if (!Number.isInteger(s) || (s as number) < 100 || (s as number) > 599) return undefined;
  return { user: u, method: m, tool: t, messages: n as number, decision: d, status: s as number, missingScope: ms, reason: r };
}
