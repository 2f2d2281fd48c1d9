import { readFileSync } from 'node:fs';
/**
 * The unmodified @modelcontextprotocol/server-everything (2026.8.31), one child process per transport.
 * Names used here, as that version spells them:
 * - tools: `echo` (argument `message`, answers "Echo: <message>"), `get-env`, `gzip-file-as-resource`;
 * - resources: `demo://resource/static/document/instructions.md` (static, listed; 7 such documents,
 *   all on one page: this version's resources/list is NOT paged, no `nextCursor`) and the template
 *   `demo://resource/dynamic/text/{resourceId}` (read as `demo://resource/dynamic/text/1`);
 * - prompts: `simple-prompt` (no arguments) and `args-prompt` (`city` required, `state` optional).
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { networkInterfaces } from 'node:os';
import { after, before, describe, test } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { EVERYTHING_SSE_MESSAGES_PATH, startEverything, type EverythingTransport, type RunningEverything } from './run-everything.ts';

const STATIC_RESOURCE = 'demo://resource/static/document/instructions.md';
const TEMPLATE_RESOURCE = 'demo://resource/dynamic/text/1';

const clientTransports: Record<EverythingTransport, (url: URL) => Transport> = {
  'streamable-http': (url) => new StreamableHTTPClientTransport(url),
  sse: (url) => new SSEClientTransport(url),
};

function firstText(result: CallToolResult): string {
  const item = result.content[0];
  assert.equal(item?.type, 'text');
  return item.text;
}

/** Resolves true when something accepts a TCP connection at host:port. */
function accepts(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

for (const transport of ['streamable-http', 'sse'] as const) {
  describe(`server-everything over ${transport}`, () => {
    let everything: RunningEverything;
    let client: Client;
    before(async () => {
      everything = await startEverything({ transport });
      client = new Client({ name: 'everything-test', version: '0.0.0' });
      await client.connect(clientTransports[transport](new URL(`${everything.url}${everything.paths[transport]}`)));
    });
    after(async () => {
      await client?.close();
      await everything?.close();
    });

    test('serves only its own transport path', () => {
      assert.deepEqual(Object.keys(everything.paths), [transport]);
      assert.equal(everything.paths[transport], transport === 'sse' ? '/sse' : '/mcp');
    });

    test('lists echo among its tools and echoes', async () => {
      const { tools } = await client.listTools();
      const names = tools.map((t) => t.name);
      for (const expected of ['echo', 'get-env', 'get-sum', 'gzip-file-as-resource']) assert.ok(names.includes(expected), `missing ${expected} in ${names}`);
      const result = (await client.callTool({ name: 'echo', arguments: { message: 'through the gateway' } })) as CallToolResult;
      assert.equal(firstText(result), 'Echo: through the gateway');
    });

    test('lists its static resources on one page and reads one', async () => {
      const page = await client.listResources();
      assert.equal(page.nextCursor, undefined, 'this version does not page resources/list');
      assert.ok(
        page.resources.some((r) => r.uri === STATIC_RESOURCE),
        `missing ${STATIC_RESOURCE}`,
      );
      const { contents } = await client.readResource({ uri: STATIC_RESOURCE });
      assert.equal(contents[0]?.uri, STATIC_RESOURCE);
      assert.ok(contents[0] && 'text' in contents[0] && contents[0].text.length > 0);
    });

    test('reads a resource through its template', async () => {
      const { contents } = await client.readResource({ uri: TEMPLATE_RESOURCE });
      assert.match(contents[0] && 'text' in contents[0] ? contents[0].text : '', /^Resource 1: This is a plaintext resource/);
    });

    test('lists and gets prompts, with and without arguments', async () => {
      const { prompts } = await client.listPrompts();
      const args = prompts.find((p) => p.name === 'args-prompt')?.arguments?.map((a) => [a.name, a.required]);
      assert.ok(prompts.some((p) => p.name === 'simple-prompt'));
      assert.deepEqual(args, [
        ['city', true],
        ['state', false],
      ]);
      const simple = await client.getPrompt({ name: 'simple-prompt' });
      assert.deepEqual(simple.messages[0]?.content, { type: 'text', text: 'This is a simple prompt without arguments.' });
      const withArgs = await client.getPrompt({ name: 'args-prompt', arguments: { city: 'Lisbon' } });
      assert.deepEqual(withArgs.messages[0]?.content, { type: 'text', text: "What's weather in Lisbon?" });
    });

    test('sees none of our environment through get-env', async () => {
      const result = (await client.callTool({ name: 'get-env', arguments: {} })) as CallToolResult;
      const env = JSON.parse(firstText(result)) as Record<string, string>;
      assert.deepEqual(Object.keys(env).sort(), ['GZIP_ALLOWED_DOMAINS', 'NODE_ENV', 'PORT']);
    });

    test('refuses to fetch from the network in gzip-file-as-resource', async () => {
      const result = (await client.callTool({ name: 'gzip-file-as-resource', arguments: {} })) as CallToolResult;
      assert.equal(result.isError, true);
      assert.match(firstText(result), /not in the allowed domains list/);
    });

    test('listens on loopback only', async () => {
      assert.equal(await accepts('127.0.0.1', everything.port), true);
      // The kernel's own table of listening sockets says which address the port is bound to,
      // whatever interfaces this machine has (state 0A = LISTEN; 0100007F = 127.0.0.1).
      const hex = everything.port.toString(16).toUpperCase().padStart(4, '0');
      const listening = ['/proc/net/tcp', '/proc/net/tcp6']
        .flatMap((file) => readFileSync(file, 'utf8').split('\n').slice(1))
        .map((line) => line.trim().split(/\s+/))
        .filter((cols) => cols[1]?.endsWith(`:${hex}`) && cols[3] === '0A')
        .map((cols) => cols[1]?.split(':')[0]);
      assert.deepEqual(listening, ['0100007F'], `port ${everything.port} is bound to ${listening.join(', ')}`);
      const external = Object.values(networkInterfaces())
        .flat()
        .find((a) => a !== undefined && !a.internal && a.family === 'IPv4');
      if (external) assert.equal(await accepts(external.address, everything.port), false, `reachable on ${external.address}`);
    });
  });
}

describe('server-everything SSE wire details', () => {
  test(`announces ${EVERYTHING_SSE_MESSAGES_PATH}?sessionId=… (singular) as its message endpoint`, async () => {
    const everything = await startEverything({ transport: 'sse' });
    const abort = new AbortController();
    try {
      const res = await fetch(`${everything.url}/sse`, { headers: { accept: 'text/event-stream' }, signal: abort.signal });
      assert.equal(res.status, 200);
      const reader = res.body!.getReader();
      const { value } = await reader.read();
      assert.match(new TextDecoder().decode(value), /^event: endpoint\ndata: \/message\?sessionId=[0-9a-f-]+\n/);
    } finally {
      abort.abort();
      await everything.close();
    }
  });
});

describe('startEverything close()', () => {
  test('stops the process so the port refuses connections', async () => {
    const everything = await startEverything({ transport: 'streamable-http' });
    assert.equal(await accepts('127.0.0.1', everything.port), true);
    await everything.close();
    assert.equal(await accepts('127.0.0.1', everything.port), false);
    await everything.close(); // idempotent
  });
});
