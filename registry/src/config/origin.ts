/**
 * A browser origin as the `Origin` header carries it (RFC 6454 serialization): `scheme://host[:port]`,
 * lowercase, no default port, no path, no trailing slash. Used by the CORS allow-list, which is
 * written into nginx config (nginx/names.ts checks it again) and compared with what browsers send,
 * so anything that is not already in that exact form is refused rather than normalized.
 */
const ORIGIN_PATTERN =
  /^https?:\/\/(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*|\[[0-9a-f:.]{2,45}\])(?::[1-9][0-9]{0,4})?$/;

/** True when `value` is exactly a serialized http(s) origin (and parses back to itself). */
export function isSerializedOrigin(value: string): boolean {
  if (!ORIGIN_PATTERN.test(value)) return false;
  try {
    return new URL(value).origin === value;
  } catch {
    return false;
  }
}
