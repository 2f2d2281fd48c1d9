import type { ListenKind, McpMessage } from '../scopes/decide.ts';

const MAX_MESSAGES = 100;
const LISTEN = 'subscriptions/listen';
const LISTEN_KINDS: ReadonlySet<string> = new Set<ListenKind>(['tools', 'prompts', 'resources', 'other']);

/**
 * Reads the X-MCP-Messages header the njs step sets (nginx/njs/mcp.js): comma-separated
 * entries `method`, `tools/call <tool>`, `subscriptions/listen <kinds>` (`none`, or families
 * joined by `+`: `tools+resources`) or `!response`; `-` when the request had no body.
 * Returns undefined for a header that is missing or does not have that shape; the caller
 * refuses such a request (fail closed). njs only writes method and tool characters, so a
 * comma or space can only be a separator.
 */
export function parseMessagesHeader(value: string | undefined): McpMessage[] | undefined {
  if (value === undefined || value === '') return undefined;
  if (value === '-') return [];
  const entries = value.split(',');
  if (entries.length > MAX_MESSAGES) return undefined;
  const messages: McpMessage[] = [];
  for (const entry of entries) {
    if (entry === '!response') {
      messages.push({ kind: 'response' });
      continue;
    }
    const parts = entry.split(' ');
    const method = parts[0];
    if (!method || parts.length > 2) return undefined;
    if (method === LISTEN && parts[1] !== undefined) {
      const kinds = parts[1] === 'none' ? [] : parts[1].split('+');
      if (!kinds.every((k) => LISTEN_KINDS.has(k))) return undefined;
      messages.push({ kind: 'request', method, listen: kinds as ListenKind[] });
      continue;
    }
    messages.push(parts[1] === undefined ? { kind: 'request', method } : { kind: 'request', method, tool: parts[1] });
  }
  return messages;
}
