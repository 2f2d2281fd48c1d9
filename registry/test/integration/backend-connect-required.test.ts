/*
 * A person who calls a per-person server they have not connected (issue 13): the unmodified MCP
 * SDK client, through the real nginx + njs, is told where to connect. A client that declared
 * URL-mode elicitation on 2025-11-25 gets URLElicitationRequiredError (-32042) with the page;
 * any other gets a JSON-RPC error whose message names it; a 2026-07-28 request that declares it
 * gets an InputRequiredResult. Once the person uploads a token, the same session goes on.
 * The `uploaded` mode names its upload page today; `user_oauth` names its connect page the same way.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ErrorCode, McpError, UrlElicitationRequiredError } from '@modelcontextprotocol/sdk/types.js';
import { guardedBackend, type GuardedBackend } from './guarded-backend.ts';
import { ApiClient, type Caller } from './api-client.ts';
import { startTestGateway, type TestGateway } from './harness.ts';
import { login } from './login.ts';

const TOKEN = 'alice-opaque-token-0001';

let gw: TestGateway;
let api: ApiClient;
let backend: GuardedBackend;
let alice: Caller & { cookie: string; csrf: string };
let page = '';

before(async () => {
  backend = await guardedBackend((headers) => (headers.authorization === `Bearer ${TOKEN}` ? undefined : 'this backend wants its token'));
  gw = await startTestGateway({
    definitions: [{ name: 'uploads', url: backend.url, transports: { 'streamable-http': '/mcp' }, enabled: true, backendAuth: { type: 'uploaded' } }],
    users: [{ username: 'alice', password: 'pw-alice', groups: ['mcp-server-uploads'] }],
  });
  api = new ApiClient(gw.url);
  const { cookie } = await login(gw.url, 'alice', 'pw-alice');
  alice = { cookie, csrf: (await api.call('getMe', { as: { cookie } })).body.csrfToken };
  page = `${gw.url}/servers/uploads/token`;
});

after(async () => {
  if (process.exitCode) process.stderr.write(`nginx error.log:\n${gw?.errorLog()}\n`);
  await gw?.[Symbol.asyncDispose]();
  await backend?.close();
});

const URL_ELICITATION = { elicitation: { url: {} } };

function transport(): StreamableHTTPClientTransport {
  return new StreamableHTTPClientTransport(new URL(`${gw.url}/api/streamable/uploads`), { requestInit: { headers: { cookie: alice.cookie } } });
}

async function connect(capabilities: Record<string, unknown>): Promise<Client> {
  const client = new Client({ name: 'connect-test', version: '1.0.0' }, { capabilities });
  await client.connect(transport());
  return client;
}

const callTool = (client: Client) => client.callTool({ name: 'get_stock_aggregates', arguments: { ticker: 'AAPL' } });
const upload = async () => assert.equal((await api.call('setMyToken', { params: { name: 'uploads' }, body: { token: TOKEN }, as: alice })).status, 200);
const clear = async () => assert.equal((await api.call('clearMyToken', { params: { name: 'uploads' }, as: alice })).status, 200);

/** The URLElicitationRequiredError of MCP 2025-11-25, as the SDK surfaces it, naming the upload page. */
function assertElicitation(err: unknown): true {
  assert.ok(err instanceof UrlElicitationRequiredError, String(err));
  assert.equal(err.code, ErrorCode.UrlElicitationRequired);
  assert.equal(err.code, -32042);
  assert.equal(err.elicitations.length, 1);
  const [elicitation] = err.elicitations;
  assert.equal(elicitation?.mode, 'url');
  assert.equal(elicitation?.url, page);
  assert.match(elicitation?.elicitationId ?? '', /^[0-9a-f]{32}$/);
  assert.match(elicitation?.message ?? '', /no token uploaded for uploads/);
  return true;
}

/** A plain JSON-RPC error (not -32042) whose message names the page. */
function assertNamesPage(err: unknown): true {
  assert.ok(err instanceof McpError && !(err instanceof UrlElicitationRequiredError), String(err));
  assert.equal(err.code, -32001);
  assert.ok(err.message.includes(page), err.message);
  assert.deepEqual(err.data, { error: 'BACKEND_CONNECT_REQUIRED', server: 'uploads', url: page });
  return true;
}

async function post(body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${gw.url}/api/streamable/uploads`, {
    method: 'POST',
    headers: { cookie: alice.cookie, 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
    body: JSON.stringify(body),
  });
}

describe('BACKEND_CONNECT_REQUIRED', () => {
  test('without a token, initialize already tells the person where: -32042 to a 2025-11-25 client that declared URL elicitation, -32001 naming the page to one that did not', async () => {
    const before = backend.seen.length;
    await assert.rejects(connect(URL_ELICITATION), assertElicitation);
    await assert.rejects(connect({}), assertNamesPage);
    // Form-only elicitation (`elicitation: {}`) is not URL mode.
    await assert.rejects(connect({ elicitation: {} }), assertNamesPage);
    assert.equal(backend.seen.length, before, 'nothing reached the backend');
  });

  test('URL elicitation declared on an older revision is not used: the plain error', async () => {
    const res = await post({
      jsonrpc: '2.0',
      id: 3,
      method: 'initialize',
      params: { protocolVersion: '2025-06-18', capabilities: URL_ELICITATION, clientInfo: { name: 't', version: '1' } },
    });
    assert.equal(res.status, 200);
    const body = (await res.json()) as { id: number; error: { code: number; message: string; data: unknown } };
    assert.equal(body.id, 3);
    assert.equal(body.error.code, -32001);
    assert.ok(body.error.message.includes(page));
  });

  test('a token that goes away mid-session: the same sessions are told (each as it declared at initialize), and go on once the person uploads again', async () => {
    await upload();
    const elicits = await connect(URL_ELICITATION);
    const plain = await connect({});
    try {
      await callTool(elicits);
      await callTool(plain);
      await clear();
      const before = backend.seen.length;
      await assert.rejects(callTool(elicits), assertElicitation);
      await assert.rejects(callTool(plain), assertNamesPage);
      await assert.rejects(plain.listTools(), assertNamesPage);
      assert.equal(backend.seen.length, before, 'nothing reached the backend');
      await upload();
      const result = (await callTool(elicits)) as { isError?: boolean };
      assert.notEqual(result.isError, true);
      assert.notEqual(((await callTool(plain)) as { isError?: boolean }).isError, true);
    } finally {
      await elicits.close();
      await plain.close();
    }
  });

  test('MCP 2026-07-28: a request whose _meta declares URL elicitation gets an InputRequiredResult with the page; one without, the plain error', async () => {
    await clear();
    const call = (capabilities: Record<string, unknown>, id: number) =>
      post(
        {
          jsonrpc: '2.0',
          id,
          method: 'tools/call',
          params: {
            name: 'get_stock_aggregates',
            arguments: { ticker: 'AAPL' },
            _meta: { 'io.modelcontextprotocol/protocolVersion': '2026-07-28', 'io.modelcontextprotocol/clientCapabilities': capabilities },
          },
        },
        { 'mcp-protocol-version': '2026-07-28', 'mcp-method': 'tools/call', 'mcp-name': 'get_stock_aggregates' },
      );
    const input = await call(URL_ELICITATION, 11);
    assert.equal(input.status, 200);
    assert.deepEqual(await input.json(), {
      jsonrpc: '2.0',
      id: 11,
      result: {
        resultType: 'input_required',
        inputRequests: {
          gateway_connect: {
            method: 'elicitation/create',
            params: { mode: 'url', url: page, message: `no token uploaded for uploads: upload one at ${page}` },
          },
        },
      },
    });
    const plain = await call({}, 12);
    assert.equal(plain.status, 200);
    const body = (await plain.json()) as { id: number; error: { code: number; message: string; data: unknown } };
    assert.equal(body.error.code, -32001);
    assert.deepEqual(body.error.data, { error: 'BACKEND_CONNECT_REQUIRED', server: 'uploads', url: page });
  });

  test('nothing to answer in JSON-RPC (a notification, a batch, the GET stream): 403 with the page', async () => {
    for (const res of [
      await post({ jsonrpc: '2.0', method: 'notifications/initialized' }),
      await post([{ jsonrpc: '2.0', id: 1, method: 'tools/list' }]),
      await fetch(`${gw.url}/api/streamable/uploads`, { headers: { cookie: alice.cookie, accept: 'text/event-stream' } }),
    ]) {
      assert.equal(res.status, 403);
      assert.equal(res.headers.get('x-mcp-connect-url'), null, "the check's header stays inside nginx");
      assert.deepEqual(await res.json(), {
        error: 'BACKEND_CONNECT_REQUIRED',
        message: `no token uploaded for uploads: upload one at ${page}`,
        server: 'uploads',
        url: page,
      });
    }
  });

  test('a client cannot set the URL or the session flag: its own X-MCP-Connect-Url and X-MCP-Session-Elicitation are ignored', async () => {
    const res = await post(
      { jsonrpc: '2.0', id: 5, method: 'tools/list' },
      { 'x-mcp-connect-url': 'https://evil.example/', 'x-mcp-session-elicitation': 'url', 'mcp-protocol-version': '2025-11-25' },
    );
    const body = (await res.json()) as { error: { code: number; data: { url: string } } };
    assert.equal(body.error.code, -32001);
    assert.equal(body.error.data.url, page);
  });
});
