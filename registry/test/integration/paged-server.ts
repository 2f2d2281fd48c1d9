import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { CallToolRequestSchema, ListToolsRequestSchema } from '@modelcontextprotocol/sdk/types.js';

export const PAGED_TOOLS = ['p1', 'p2', 'p3', 'p4', 'p5'] as const;
const PAGE_SIZE = 2;

/**
 * A real MCP server (the SDK's low-level handlers) whose tools/list is paged, two tools a page,
 * so the gateway's filtering is tested page by page with the cursor kept.
 */
export function buildPagedServer(): McpServer {
  const mcp = new McpServer({ name: 'paged', version: '1.0.0' }, { capabilities: { tools: {} } });
  const tools = PAGED_TOOLS.map((name) => ({ name, description: `tool ${name}`, inputSchema: { type: 'object' as const, properties: {} } }));
  mcp.server.setRequestHandler(ListToolsRequestSchema, async (request) => {
    const start = Number(request.params?.cursor ?? 0);
    const next = start + PAGE_SIZE;
    return { tools: tools.slice(start, next), ...(next < tools.length ? { nextCursor: String(next) } : {}) };
  });
  mcp.server.setRequestHandler(CallToolRequestSchema, async (request) => ({ content: [{ type: 'text' as const, text: `called ${request.params.name}` }] }));
  return mcp;
}
