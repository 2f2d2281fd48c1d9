/**
 * The trace id of a W3C `traceparent` header (Trace Context, https://www.w3.org/TR/trace-context/
 * section 3.2), for the audit line: 32 lowercase hex digits, or undefined when the header is
 * absent or not valid (an invalid header is never copied into the log).
 */
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}(-|$)/;
const ZERO_TRACE = '0'.repeat(32);
const ZERO_PARENT = '0'.repeat(16);

export function traceIdOf(traceparent: string | undefined): string | undefined {
  if (traceparent === undefined || traceparent.length > 512) return undefined;
  const match = TRACEPARENT.exec(traceparent);
  if (!match) return undefined;
  const [, version, traceId, parentId, more] = match;
  // Version ff is invalid; version 00 has exactly four fields, later versions may add more.
  if (version === 'ff' || (version === '00' && more !== '')) return undefined;
  return traceId === ZERO_TRACE || parentId === ZERO_PARENT ? undefined : traceId;
}
