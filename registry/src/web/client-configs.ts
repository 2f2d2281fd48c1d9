/**
 * Ready-to-paste configurations for MCP clients that take a static Authorization header: what
 * the token-created page shows and docs/mcp-clients.md explains. Pure: names, URLs, token in;
 * text out (the page escapes it).
 */
export interface ClientConfig {
  readonly id: string;
  readonly title: string;
  readonly where: string;
  readonly text: string;
}

/** One entry per chosen server, named `<server>` (the token's name is for the person, not the client). */
export function clientConfigs(_name: string, servers: readonly { server: string; url: string }[], token: string): ClientConfig[] {
  const header = `Bearer ${token}`;
  const claude = servers.map((s) => `claude mcp add --transport http ${s.server} ${s.url} --header "Authorization: ${header}"`).join('\n');
  const vscode = { servers: Object.fromEntries(servers.map((s) => [s.server, { type: 'http', url: s.url, headers: { Authorization: header } }])) };
  const cursor = { mcpServers: Object.fromEntries(servers.map((s) => [s.server, { url: s.url, headers: { Authorization: header } }])) };
  const desktop = {
    mcpServers: Object.fromEntries(
      servers.map((s) => [
        s.server,
        { command: 'npx', args: ['mcp-remote', s.url, '--header', 'Authorization: Bearer ${GATEWAY_TOKEN}'], env: { GATEWAY_TOKEN: token } },
      ]),
    ),
  };
  return [
    { id: 'claude-code', title: 'Claude Code', where: 'run in a terminal', text: claude },
    { id: 'vscode', title: 'VS Code', where: '.vscode/mcp.json', text: JSON.stringify(vscode, null, 2) },
    { id: 'cursor', title: 'Cursor', where: '~/.cursor/mcp.json', text: JSON.stringify(cursor, null, 2) },
    { id: 'claude-desktop', title: 'Claude Desktop (through mcp-remote)', where: 'claude_desktop_config.json', text: JSON.stringify(desktop, null, 2) },
  ];
}
