/**
 * What a backend credential may look like once it is a header value. The check hands it to
 * nginx in a header of its answer, and nginx sets it on the upstream request, so a value that
 * could split a header (CR, LF, NUL) or make nginx's header buffer overflow is refused here, at
 * the check, before it goes anywhere.
 */

/** The longest value one credential header may have (the check's answer has a 16 KiB buffer in nginx). */
export const MAX_CREDENTIAL_VALUE_CHARS = 4096;
/** All credential headers of one answer together. */
export const MAX_CREDENTIAL_TOTAL_CHARS = 8192;

/** Visible ASCII, with single spaces or tabs inside: no leading or trailing whitespace, no control characters. */
const VALUE = /^[\x21-\x7e](?:[\x20-\x7e\t]*[\x21-\x7e])?$/;

/** Why `value` cannot be a credential header's value, or undefined when it can. Never echoes the value. */
export function credentialValueProblem(value: string, max: number = MAX_CREDENTIAL_VALUE_CHARS): string | undefined {
  if (value.length === 0) return 'it is empty';
  if (value.length > max) return `it is longer than ${max} characters`;
  if (!VALUE.test(value)) return 'it holds characters a header value cannot (control characters such as CR, LF or NUL, non-ASCII, or leading/trailing spaces)';
  return undefined;
}
