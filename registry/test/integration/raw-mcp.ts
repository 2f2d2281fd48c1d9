/**
 * A Streamable HTTP MCP session spoken by hand (fetch), as the benchmark's load does: for tests
 * that count or time single requests, where an SDK client would add its own.
 */
import assert from 'node:assert/strict';

export const rpc = (id: number, method: string, params?: unknown) =>
  JSON.stringify({ jsonrpc: '2.0', id, method, ...(params === undefined ? {} : { params }) });
export const MCP_HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2025-06-18' };
/** currenttime's tool, with arguments. */
export const TIME_CALL = rpc(7, 'tools/call', { name: 'current_time_by_timezone', arguments: { timezone: 'UTC' } });

/** Opens an MCP session of `who` at `url` (initialize + initialized); returns the headers of its requests. */
export async function openRawSession(url: string, who: Record<string, string>): Promise<Record<string, string>> {
  const init = await fetch(url, {
    method: 'POST',
    headers: { ...MCP_HEADERS, ...who },
    body: rpc(1, 'initialize', { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } }),
  });
  const text = await init.text();
  assert.equal(init.status, 200, text);
  const session = init.headers.get('mcp-session-id');
  assert.ok(session, 'no Mcp-Session-Id');
  const headers = { ...MCP_HEADERS, ...who, 'mcp-session-id': session };
  const initialized = await fetch(url, { method: 'POST', headers, body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }) });
  assert.equal(initialized.status, 202);
  return headers;
}

/** One POST in the session; the status and the body's text. */
export async function rawCall(url: string, headers: Record<string, string>, body = TIME_CALL): Promise<{ status: number; text: string }> {
  const res = await fetch(url, { method: 'POST', headers, body });
  return { status: res.status, text: await res.text() };
}
