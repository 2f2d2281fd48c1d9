/**
 * Makes a value safe for an HTTP header: anything outside printable ASCII (CR, LF, NUL,
 * non-ASCII) becomes `?`, so an identity claim can never split or forge a header that nginx
 * copies to a backend. Quoted values also escape `\` and `"` (RFC 9110 quoted-string).
 */
export function headerValue(value: string): string {
  return value.replace(/[^\x20-\x7e]/g, '?');
}

export function headerQuotedValue(value: string): string {
  return headerValue(value).replace(/[\\"]/g, (c) => `\\${c}`);
}
