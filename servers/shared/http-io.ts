import type { IncomingMessage, ServerResponse } from 'node:http';

/** Same ceiling the SDK's own SSE transport applies to a message body. */
const MAX_BODY_BYTES = 4 * 1024 * 1024;

/** JSON-RPC error codes used by the HTTP layer (the SDK uses the same values). */
export const JSONRPC_PARSE_ERROR = -32700;
export const JSONRPC_INVALID_REQUEST = -32600;
export const JSONRPC_INTERNAL_ERROR = -32603;
/** Spec-reserved implementation-defined server error, used by the SDK for "session not found". */
export const JSONRPC_SERVER_ERROR = -32000;

/** Why a request body could not be turned into JSON. */
export type BodyResult = { ok: true; body: unknown } | { ok: false; status: number; message: string };

/**
 * Reads the whole request body and parses it as JSON.
 *
 * An empty body yields `{ ok: true, body: undefined }`. Content-Type is deliberately not
 * checked here: the SDK transports check it themselves and answer with their own status
 * codes, and they accept an already parsed body instead of re-reading the stream.
 * Fails with 413 above 4 MiB and 400 for malformed JSON.
 */
export async function readJsonBody(req: IncomingMessage): Promise<BodyResult> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) return { ok: false, status: 413, message: 'Request body too large' };
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') return { ok: true, body: undefined };
  try {
    return { ok: true, body: JSON.parse(text) as unknown };
  } catch {
    return { ok: false, status: 400, message: 'Parse error: body is not valid JSON' };
  }
}

/** Writes a JSON body with the given status; a no-op if headers already went out. */
export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

/**
 * Writes a JSON-RPC error object with `id: null`, which is what the spec prescribes when
 * the request id could not be determined (or the failure is at the transport layer).
 */
export function sendJsonRpcError(res: ServerResponse, status: number, code: number, message: string): void {
  sendJson(res, status, { jsonrpc: '2.0', error: { code, message }, id: null });
}
