/**
 * The page a person is sent to when a per-person backend needs them to connect (issue 13): an
 * uploaded token's page, or an OAuth account's connect page. It reaches the client in a
 * JSON-RPC error and, for clients that support it, as a URL-mode elicitation, which a client
 * shows and opens on the person's consent (MCP 2025-11-25, client/elicitation "Safe URL
 * Handling": no pre-authenticated URL, nothing about the person in it). So it must be the
 * gateway's own page, built from configuration: this refuses anything that is not below
 * GATEWAY_PUBLIC_URL or holds more than plain path and query characters (it also goes into a
 * header for njs).
 */

/** Unreserved characters, `/`, `%`-escapes and a plain query: nothing a header or a reader could misread. */
const PAGE_PATH = /^\/[A-Za-z0-9\-._~%][A-Za-z0-9\-._~/%]{0,499}(?:\?[A-Za-z0-9\-._~/%=&]{1,500})?$/;

/** `connect` when it is a page of the gateway at `publicUrl` (GATEWAY_PUBLIC_URL); otherwise undefined. */
export function connectUrlOn(publicUrl: string, connect: string): string | undefined {
  const base = publicUrl.replace(/\/+$/, '');
  if (!connect.startsWith(`${base}/`)) return undefined;
  const rest = connect.slice(base.length);
  if (!PAGE_PATH.test(rest) || rest.includes('//') || /(?:^|\/)\.\.?(?:\/|$|\?)/.test(rest)) return undefined;
  return connect;
}
