import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import { runServer } from '../shared/run-server.ts';

export const TOOL_NAME = 'current_time_by_timezone';
const DEFAULT_TIME_ZONE = 'America/New_York';

/**
 * Builds the example "currenttime" MCP server with one tool, `current_time_by_timezone`.
 * A new instance is needed per session: an McpServer connects to exactly one transport.
 */
export function buildServer(): McpServer {
  const server = new McpServer({ name: 'currenttime', version: '0.1.0' });
  server.registerTool(
    TOOL_NAME,
    {
      title: 'Current time by time zone',
      description: 'Returns the current date and time in the given IANA time zone.',
      inputSchema: {
        tz_name: z.string().default(DEFAULT_TIME_ZONE).describe('IANA time zone name such as "America/New_York" or "Europe/Berlin"'),
      },
      annotations: { readOnlyHint: true, openWorldHint: false },
    },
    ({ tz_name }) => currentTimeResult(tz_name, new Date()),
  );
  return server;
}

/**
 * The tool's answer for `timeZone` at `now`. An unknown zone is a tool error (`isError`),
 * not a protocol error, so the calling model sees the message and can retry with a valid name.
 */
export function currentTimeResult(timeZone: string, now: Date): CallToolResult {
  const formatted = formatInTimeZone(now, timeZone);
  if (formatted === undefined) {
    return {
      isError: true,
      content: [{ type: 'text', text: `Unknown time zone "${timeZone}". Use an IANA name such as "Europe/Berlin".` }],
    };
  }
  return { content: [{ type: 'text', text: `Current time in ${timeZone}: ${formatted}` }] };
}

/**
 * Formats `date` as `YYYY-MM-DDTHH:mm:ss±HH:MM` in `timeZone`, or returns undefined when
 * Intl rejects the zone (it throws RangeError for names outside the IANA database).
 */
export function formatInTimeZone(date: Date, timeZone: string): string | undefined {
  let format: Intl.DateTimeFormat;
  try {
    format = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
      timeZoneName: 'longOffset',
    });
  } catch (err) {
    if (err instanceof RangeError) return undefined;
    throw err;
  }
  const parts = format.formatToParts(date);
  const part = (type: Intl.DateTimeFormatPartTypes): string => parts.find((p) => p.type === type)?.value ?? '';
  // longOffset renders "GMT+02:00", or plain "GMT" at offset zero.
  const offset = part('timeZoneName').replace('GMT', '') || '+00:00';
  return `${part('year')}-${part('month')}-${part('day')}T${part('hour')}:${part('minute')}:${part('second')}${offset}`;
}

if (import.meta.main) {
  await runServer('currenttime', buildServer, 8001);
}
