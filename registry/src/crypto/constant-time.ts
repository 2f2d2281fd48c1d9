import { createHash, timingSafeEqual } from 'node:crypto';

/**
 * Compares two secrets in constant time for their length: both are hashed first, so the
 * comparison never stops early and unequal lengths take as long as equal ones (node-oidc-provider's
 * `constant_equals` does the same with padding). Used for passwords, CSRF tokens and MACs.
 */
export function constantTimeEqual(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a).digest();
  const hb = createHash('sha256').update(b).digest();
  return timingSafeEqual(ha, hb) && a.length === b.length;
}
