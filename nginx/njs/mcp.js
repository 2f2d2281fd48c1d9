/*
 * The MCP request check, inside nginx (njs 0.7.9: ES5 plus a little ES6; no destructuring).
 *
 * nginx `auth_request` subrequests carry no body, so the tool a `tools/call` names cannot reach
 * the registry that way. This content handler reads the whole JSON-RPC body (it is in memory:
 * client_body_buffer_size equals client_max_body_size), refuses what it cannot read exactly,
 * tells the registry's check which methods and tools the body holds, and on a 200 redirects to
 * the named location that proxies the SAME buffered body: the bytes authorized are the bytes
 * forwarded. Every other answer of the check denies (fail closed).
 *
 * The location sets $mcp_server from the name its regex matched on the normalized URI, and
 * $mcp_transport as a literal; nothing here parses the server name from the raw URI. nginx has
 * no location per server: the check answers where the request goes (X-MCP-Route, built and
 * checked by registry/src/nginx/route.ts), and this copies it into the variables of a generic
 * named location (`proxy_pass $mcp_backend_scheme://$mcp_backend_upstream$mcp_backend_uri`).
 *
 * MCP session ids are bound to the principal (registry/src/authz/session-binding.ts): the
 * check opens the client's sealed id and hands back the backend's; the response filters below
 * seal the backend's Mcp-Session-Id and the legacy `endpoint` event with the key it sent.
 */

/* njs 0.7.9's JSON.parse refuses 32 levels or more; refuse those bodies first, with a clear message. */
var MAX_DEPTH = 31;
var MAX_BATCH = 100;
var METHOD_PATTERN = /^[A-Za-z0-9_\/.$-]{1,128}$/;
var TOOL_PATTERN = /^[A-Za-z0-9_.-]{1,128}$/;
// ignoreBOM keeps a byte order mark in the text, so JSON.parse refuses it as a backend would.
var DECODER = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
/* The body field the Mcp-Name header mirrors, by method (MCP 2026-07-28 and the v2 SDK's tasks extension). */
var NAMED_METHODS = {
    'tools/call': 'name',
    'prompts/get': 'name',
    'resources/read': 'uri',
    'resources/subscribe': 'uri',
    'resources/unsubscribe': 'uri',
    'tasks/get': 'taskId',
    'tasks/update': 'taskId',
    'tasks/cancel': 'taskId',
};
/* The methods whose requests MUST carry Mcp-Name under MCP 2026-07-28 (the spec's table). */
var NAME_REQUIRED = { 'tools/call': true, 'prompts/get': true, 'resources/read': true };
/* The first revision that mirrors the body into headers and carries its version in `_meta`. */
var FIRST_HEADER_REVISION = '2026-07-28';
var PROTOCOL_VERSION_META = 'io.modelcontextprotocol/protocolVersion';
var STANDARD_HEADERS = { 'mcp-method': 'Mcp-Method', 'mcp-name': 'Mcp-Name', 'mcp-protocol-version': 'MCP-Protocol-Version' };
/* A subscriptions/listen filter key, by the family of notifications it opens. */
var LISTEN_FILTER = { toolsListChanged: 'tools', promptsListChanged: 'prompts', resourcesListChanged: 'resources', resourceSubscriptions: 'resources' };
var LISTEN_ORDER = ['tools', 'prompts', 'resources', 'other'];

/* JSON-RPC error codes (https://www.jsonrpc.org/specification#error_object); -32001 is ours,
 * -32020 is MCP 2026-07-28's HeaderMismatch, -32042 MCP 2025-11-25's URLElicitationRequiredError. */
var PARSE_ERROR = -32700;
var INVALID_REQUEST = -32600;
var FORBIDDEN = -32001;
var HEADER_MISMATCH = -32020;
var INTERNAL_ERROR = -32603;
var URL_ELICITATION_REQUIRED = -32042;
/* What the MCP SDK's servers answer for an unknown session; a session of someone else is one. */
var SESSION_NOT_FOUND = -32001;

var crypto = require('crypto');
var fs = require('fs');

/* The characters a definition's path may hold (BACKEND_PATH_PATTERN); any other path is one no server has. */
var ROUTE_PATH = /^(?:\/[A-Za-z0-9._~\/-]{0,200})?$/;
var ROUTE_KIND = { streamable: 'streamable-http', sse: 'sse', 'sse-messages': 'sse' };

/* URL-mode elicitation (issue 13): the first revision that has it, and where 2026-07-28 puts capabilities. */
var FIRST_URL_ELICITATION_REVISION = '2025-11-25';
var CLIENT_CAPABILITIES_META = 'io.modelcontextprotocol/clientCapabilities';
/* MCP 2026-07-28 basic/patterns/mrtr "Supported Requests": the only requests that may get an InputRequiredResult. */
var INPUT_REQUIRED_METHODS = { 'tools/call': true, 'prompts/get': true, 'resources/read': true };

function handle(r) {
    var parsed = { messages: [], ids: [], single: null };
    if (r.variables.mcp_transport === 'sse') {
        var path = r.variables.mcp_path || '';
        if (!ROUTE_PATH.test(path)) path = '/!';
        r.variables.mcp_route_path = path || '-';
        var messagesPath = path === '/messages';
        // The sealed session rides on the messages URL only.
        if (!messagesPath) r.variables.mcp_session = '';
        if (r.method !== 'GET' && !(messagesPath && r.method === 'POST')) {
            // No legacy endpoint takes this method here: the check answers 404 or 405 from the
            // path and method alone, before any credential; the body is not read.
            r.variables.mcp_messages = '-';
            return ask(r, parsed);
        }
    } else {
        r.variables.mcp_route_path = '-';
    }
    // nginx has read any body by now, whatever the method, and would forward it: only POST may
    // carry one (and it is checked); GET opens a stream, DELETE ends a session, nothing else.
    if (r.method === 'POST') {
        var problem = readBody(r, parsed);
        if (problem) {
            unchecked(r, parsed, problem.status, problem.error);
            return refuse(r, problem.status, jsonRpcError(problem.id, problem.code, problem.message, { error: problem.error }));
        }
        // Recorded in the session id the response hands out (sessionHeaders): later requests carry no capabilities.
        if (parsed.single && parsed.single.method === 'initialize' && urlElicitationDeclared(paramsOf(parsed.single).capabilities))
            r.variables.mcp_elicitation = 'u';
    } else if (r.method !== 'GET' && r.method !== 'DELETE') {
        r.headersOut['Allow'] = 'GET, POST, DELETE';
        unchecked(r, parsed, 405, 'METHOD_NOT_ALLOWED');
        return refuse(r, 405, { error: 'METHOD_NOT_ALLOWED', message: 'MCP endpoints take GET, POST and DELETE' });
    } else if (hasBody(r)) {
        unchecked(r, parsed, 400, 'MCP_REQUEST_INVALID');
        return refuse(r, 400, { error: 'MCP_REQUEST_INVALID', message: r.method + ' must not carry a body' });
    }
    r.variables.mcp_messages = parsed.messages.length ? parsed.messages.join(',') : '-';
    return ask(r, parsed);
}

function ask(r, parsed) {
    var server = r.variables.mcp_server;
    var transport = r.variables.mcp_transport;
    checkKey(r, server, transport);
    r.subrequest('/_mcp_auth', { method: 'GET' }, function (reply) {
        decide(r, reply, parsed, server, transport);
    });
}

/* ---- cached decisions (registry/src/authz/check-cache.ts, docs/performance.md "Cached decisions") ---- */

/*
 * The key nginx caches the check's answer under ($mcp_check_key): SHA-256 over the generation
 * the registry wrote ($mcp_check_generation names the file; a toggle, a sign-out, a revocation
 * or a session's end writes a new one) and every header the check reads to decide, exactly as
 * the subrequest sends them. A hash: the cache files never hold a cookie or a token. Without
 * a readable generation nothing is cached or served from the cache for this request.
 */
function checkKey(r, server, transport) {
    var v = r.variables;
    var file = v.mcp_check_generation;
    if (!file) return;
    var generation;
    try {
        generation = fs.readFileSync(file, 'utf8');
    } catch (e) {
        r.error('mcp check cache: cannot read the generation file ' + file + ' (' + e.message + '); asking the check without the cache');
        v.mcp_check_nocache = '1';
        return;
    }
    // The registry suspended caching (its folder became unusable: check-generation.ts CacheDirWatch).
    if (generation === '-') {
        v.mcp_check_nocache = '1';
        return;
    }
    // NUL cannot occur in a header value (nginx refuses it), so the parts cannot run into each other.
    v.mcp_check_key = crypto
        .createHash('sha256')
        .update(
            generation +
                '\u0000' +
                (v.http_cookie || '') +
                '\u0000' +
                (v.http_authorization || '') +
                '\u0000' +
                server +
                '\u0000' +
                transport +
                '\u0000' +
                v.mcp_route_path +
                '\u0000' +
                r.method +
                '\u0000' +
                v.mcp_messages +
                '\u0000' +
                (v.mcp_session || '')
        )
        .digest('base64url');
}

/*
 * A request answered from the cache never reached the registry: its audit line is the cached
 * answer's own (X-MCP-Audit), logged by nginx for the registry to read (nginx/audit-tail.ts).
 * Every other answer was recorded by the check itself.
 */
function auditCached(r, reply, h) {
    var status;
    try {
        status = reply.variables.upstream_cache_status;
    } catch (e) {
        status = '';
    }
    if (status === 'HIT') r.variables.mcp_audit = 'c' + (typeof h['X-MCP-Audit'] === 'string' ? h['X-MCP-Audit'] : '');
}

/*
 * A request refused here, before the check was asked: nginx logs it for the audit ('n' then the
 * same base64url JSON as the check's X-MCP-Audit), so malformed requests are counted too.
 */
function unchecked(r, parsed, status, error) {
    var first = parsed.messages.length ? String(parsed.messages[0]).split(' ') : [];
    var summary = { u: '', m: first[0] || '', n: parsed.messages.length, d: 'deny', s: status, r: error };
    if (first[1]) summary.t = first[1];
    r.variables.mcp_audit = 'n' + Buffer.from(JSON.stringify(summary)).toString('base64url');
}

function decide(r, reply, parsed, server, transport) {
    var h = reply.headersOut;
    auditCached(r, reply, h);
    if (reply.status === 200) {
        r.variables.mcp_user = h['X-User'] || '';
        r.variables.mcp_username = h['X-Username'] || '';
        r.variables.mcp_scopes = h['X-Scopes'] || '';
        var filter = h['X-MCP-Tool-Filter'];
        r.variables.mcp_tool_filter = filter || '';
        // The principal's sealing key, for the response filters below; nginx forwards no variable.
        r.variables.mcp_session_key = h['X-MCP-Session-Key'] || '';
        var backendSession = h['X-MCP-Backend-Session'];
        if (backendSession !== undefined) {
            if (!SESSION_VALUE.test(backendSession)) return checkFault(r, server, 'a bad backend session id');
            r.variables.mcp_unsealed_session = backendSession;
        }
        // `<kind> <scheme> <upstream> <host> <uri>`, every part checked by the registry.
        var route = String(h['X-MCP-Route'] || '').split(' ');
        var kind = route[0];
        if (route.length !== 5 || ROUTE_KIND[kind] !== transport) return checkFault(r, server, 'no route');
        r.variables.mcp_backend_scheme = route[1];
        r.variables.mcp_backend_upstream = route[2];
        r.variables.mcp_backend_host = route[3];
        r.variables.mcp_backend_sni = route[3].replace(/:\d+$/, '');
        // The gateway's own credential for this backend (issue 13), for the upstream request only.
        var credential = h['X-MCP-Backend-Credential'];
        if (credential !== undefined && !setCredential(r, h, credential)) return checkFault(r, server, 'a bad backend credential');
        if (kind === 'sse-messages') {
            // A legacy message goes to exactly the endpoint its sealed id named.
            var target = h['X-MCP-Backend-Target'];
            if (target === undefined) return sessionUnknown(r, parsed);
            if (!SSE_TARGET.test(target)) return checkFault(r, server, 'a bad messages target');
            r.variables.mcp_backend_uri = target;
            return r.internalRedirect('@mcp_sse_messages');
        }
        var uri = route[4];
        if (kind === 'sse') {
            // The backend gets exactly its SSE path (no client query); njs seals the endpoint event against its URL.
            r.variables.mcp_backend_uri = uri;
            r.variables.mcp_backend_sse = route[1] + '://' + route[3] + uri;
            r.variables.mcp_messages_url = '/api/execute/' + server + '/messages';
            return r.internalRedirect(filter ? '@mcp_sse_filtered' : '@mcp_sse');
        }
        // With variables, proxy_pass sends the URI as set: the client's query string is added here.
        var args = r.variables.args;
        r.variables.mcp_backend_uri = args ? uri + '?' + args : uri;
        // Without a sealing key (anything but an initialize) nginx itself puts the client's sealed
        // id back on the response (renderSessionEchoMap): no second VM for a header filter.
        if (filter) return r.internalRedirect('@mcp_streamable_filtered');
        return r.internalRedirect(h['X-MCP-Session-Key'] ? '@mcp_streamable' : '@mcp_streamable_session');
    }
    if (reply.status === 403 && h['X-MCP-Error'] === 'BACKEND_CONNECT_REQUIRED') return connectRequired(r, parsed, server, h);
    if (reply.status === 502 && h['X-MCP-Error'] === 'BACKEND_CREDENTIAL_FAILED') return credentialFailed(r, parsed, server, h['X-MCP-Error-Detail']);
    var refused = h['X-MCP-Route-Refused'];
    if (refused === 'NOT_FOUND') return refuse(r, 404, { error: 'NOT_FOUND', message: 'no such endpoint of ' + server });
    if (refused === 'METHOD_NOT_ALLOWED') {
        var get = h['X-MCP-Route-Allow'] === 'GET';
        r.headersOut['Allow'] = get ? 'GET' : 'POST';
        return refuse(r, 405, { error: 'METHOD_NOT_ALLOWED', message: get ? 'the SSE stream takes GET only' : 'the messages endpoint takes POST only' });
    }
    if (refused === 'BACKEND_UNAVAILABLE') return refuse(r, 502, { error: 'BACKEND_UNAVAILABLE', message: 'the MCP server cannot be reached' });
    if (reply.status === 404 && h['X-MCP-Session-Unknown']) return sessionUnknown(r, parsed);
    if (reply.status === 401) {
        if (h['WWW-Authenticate']) r.headersOut['WWW-Authenticate'] = h['WWW-Authenticate'];
        return refuse(r, 401, { error: 'AUTH_NO_CREDENTIALS', message: 'sign in or send a valid token' });
    }
    if (reply.status === 403) {
        // insufficient_scope with the scope and the metadata URL: MCP clients step up from it.
        if (h['WWW-Authenticate']) r.headersOut['WWW-Authenticate'] = h['WWW-Authenticate'];
        var scope = h['X-Missing-Scope'] || '';
        var message = 'missing scope ' + scope;
        if (parsed.single && parsed.single.id !== undefined) {
            return refuse(r, 403, jsonRpcError(parsed.single.id, FORBIDDEN, message, { error: 'AUTH_SCOPE_MISSING', missing_scope: scope }));
        }
        return refuse(r, 403, { error: 'AUTH_SCOPE_MISSING', message: message, missing_scope: scope });
    }
    if (reply.status === 404) return refuse(r, 404, { error: 'SERVER_UNKNOWN', message: 'no such MCP server' });
    if (reply.status === 503 && h['X-MCP-Error'] === 'STORE_UNAVAILABLE') {
        return refuse(r, 503, { error: 'STORE_UNAVAILABLE', message: 'the gateway cannot read its state store; try again shortly' });
    }
    if (reply.status === 503) return refuse(r, 503, { error: 'SERVER_DISABLED', message: 'server ' + server + ' is disabled' });
    return checkFault(r, server, 'status ' + reply.status);
}

/* ---- the gateway's own credential for the backend (registry/src/credentials/backend-credentials.ts) ---- */

var CREDENTIAL_SLOT = /^(?:authorization|h[1-8])$/;
/* As the check enforces: visible ASCII with inner spaces or tabs, no CR, LF or NUL, bounded. */
/* 8192: an uploaded token may be that long (a static secret at most 4096; the check enforces each). */
var CREDENTIAL_VALUE = /^[\x21-\x7e](?:[\x20-\x7e\t]{0,8190}[\x21-\x7e])?$/;
/* Long enough for an upload page's URL in the message. */
var DETAIL_VALUE = /^[\x20-\x7e]{1,1000}$/;

/*
 * Copies each slot the check named (`authorization h1`) from X-MCP-Backend-<slot> into
 * $mcp_backend_<slot>, which the backend location sends as that slot's header. The check's
 * answer never reaches the client (it is a subrequest's), and nothing here is logged.
 */
function setCredential(r, h, slots) {
    var list = String(slots).split(' ');
    for (var i = 0; i < list.length; i++) {
        var slot = list[i];
        if (!CREDENTIAL_SLOT.test(slot)) return false;
        var value = h['X-MCP-Backend-' + slot];
        if (typeof value !== 'string' || !CREDENTIAL_VALUE.test(value)) return false;
        try {
            r.variables['mcp_backend_' + slot] = value;
        } catch (e) {
            // A slot nginx does not declare (BACKEND_CREDENTIAL_HEADERS changed without a restart).
            return false;
        }
    }
    return true;
}

/* 502 BACKEND_CREDENTIAL_FAILED: the gateway has no credential for the backend now; nothing was forwarded. */
function credentialFailed(r, parsed, server, detail) {
    var message = 'the gateway could not get its credential for ' + server + (typeof detail === 'string' && DETAIL_VALUE.test(detail) ? ': ' + detail : '');
    var data = { error: 'BACKEND_CREDENTIAL_FAILED', server: server };
    if (parsed.single && parsed.single.id !== undefined) return refuse(r, 502, jsonRpcError(parsed.single.id, INTERNAL_ERROR, message, data));
    return refuse(r, 502, { error: 'BACKEND_CREDENTIAL_FAILED', message: message, server: server });
}

/* ---- a person who has not connected a per-person backend (issue 13) ---- */

/* What the check names (authz/connect-url.ts allows less): an http(s) URL of visible ASCII. */
var CONNECT_URL = /^https?:\/\/[\x21-\x7e]{1,1100}$/;

/*
 * How a request may be told to go connect, from its own body and headers (worked out only when
 * the check asks for it: nothing of this runs on the path of an allowed request):
 * - 'input': MCP 2026-07-28 (stateless). The request's `_meta` carries the client's capabilities
 *   (client/elicitation "Capabilities": declared "on each request"), and elicitation comes back
 *   as an InputRequiredResult (basic/patterns/mrtr), on tools/call, prompts/get, resources/read only;
 * - 'error': an initialize of 2025-11-25 or later that declares `capabilities.elicitation.url`;
 * - 'session': a later request of 2025-11-25 or later (its MCP-Protocol-Version header, which the
 *   transport requires after initialize): what its session declared at initialize is sealed in
 *   the session id, and the check says it (X-MCP-Session-Elicitation);
 * - 'none': an older revision, or a client that declared no URL elicitation.
 */
function connectMode(r, m) {
    if (m.method === undefined || m.id === undefined) return 'none';
    var params = paramsOf(m);
    var version = r.headersIn['MCP-Protocol-Version'];
    if (isHeaderRevision(version) || isHeaderRevision(protocolClaim(m))) {
        var declared = isObject(params._meta) && urlElicitationDeclared(params._meta[CLIENT_CAPABILITIES_META]);
        return declared && INPUT_REQUIRED_METHODS[m.method] === true ? 'input' : 'none';
    }
    if (m.method === 'initialize')
        return isRevisionFrom(params.protocolVersion, FIRST_URL_ELICITATION_REVISION) && urlElicitationDeclared(params.capabilities) ? 'error' : 'none';
    return isRevisionFrom(version, FIRST_URL_ELICITATION_REVISION) ? 'session' : 'none';
}

/* `capabilities.elicitation.url` is an object (MCP 2025-11-25 client/elicitation "Capabilities"; `elicitation: {}` is form only). */
function urlElicitationDeclared(capabilities) {
    var e = isObject(capabilities) ? capabilities.elicitation : undefined;
    return isObject(e) && isObject(e.url);
}

function isObject(v) {
    return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function paramsOf(m) {
    return isObject(m.params) ? m.params : {};
}

function isRevisionFrom(version, first) {
    return typeof version === 'string' && /^\d{4}-\d{2}-\d{2}$/.test(version) && version >= first;
}

/*
 * The check said BACKEND_CONNECT_REQUIRED: the person fixes it at the page it names (their own
 * token, their own account). Nothing was forwarded. A JSON-RPC request gets a JSON-RPC answer
 * with HTTP 200, as any server's own error would come: a non-2xx makes the SDK's Streamable
 * HTTP transport throw a generic HTTP error (and a 401/403 sends clients into MCP
 * authorization, which cannot fix this: client/elicitation says URL mode "is *not* for
 * authorizing the MCP client's access to the MCP server"). By what the client declared:
 * - 2025-11-25 with URL elicitation: URLElicitationRequiredError, -32042 (client/elicitation
 *   "URL Elicitation Required Error": data.elicitations of URL-mode elicitations, each with an
 *   elicitationId; the SDK surfaces it as UrlElicitationRequiredError);
 * - 2026-07-28 with URL elicitation, on a request that may get one: an InputRequiredResult
 *   carrying a URL-mode elicitation/create (basic/patterns/mrtr; that revision has no -32042,
 *   no elicitationId). No requestState: the retry is simply checked again;
 * - anyone else: -32001, as for a missing scope, the message naming the page.
 * Without a request to answer (a notification, a response, a batch, the GET stream, DELETE)
 * and on the legacy transport (whose POST answers are read as HTTP only): 403 and the same words.
 */
function connectRequired(r, parsed, server, h) {
    var url = h['X-MCP-Connect-Url'];
    if (typeof url !== 'string' || !CONNECT_URL.test(url)) return checkFault(r, server, 'a bad connect URL');
    var detail = h['X-MCP-Error-Detail'];
    var message = typeof detail === 'string' && DETAIL_VALUE.test(detail) && detail.indexOf(url) !== -1 ? detail : 'connect to ' + server + ' at ' + url;
    var m = parsed.single;
    var data = { error: 'BACKEND_CONNECT_REQUIRED', server: server, url: url };
    if (!m || m.method === undefined || m.id === undefined)
        return refuse(r, 403, { error: 'BACKEND_CONNECT_REQUIRED', message: message, server: server, url: url });
    if (r.variables.mcp_transport === 'sse') return refuse(r, 403, jsonRpcError(m.id, FORBIDDEN, message, data));
    var mode = connectMode(r, m);
    if (mode === 'session') mode = h['X-MCP-Session-Elicitation'] === 'url' ? 'error' : 'none';
    if (mode === 'error') {
        // $request_id: unique per request, so the elicitation is this request's.
        var elicitation = { mode: 'url', elicitationId: r.variables.request_id, url: url, message: message };
        return refuse(r, 200, jsonRpcError(m.id, URL_ELICITATION_REQUIRED, message, { elicitations: [elicitation] }));
    }
    if (mode === 'input') {
        var request = { method: 'elicitation/create', params: { mode: 'url', url: url, message: message } };
        return refuse(r, 200, { jsonrpc: '2.0', id: m.id, result: { resultType: 'input_required', inputRequests: { gateway_connect: request } } });
    }
    return refuse(r, 200, jsonRpcError(m.id, FORBIDDEN, message, data));
}

function checkFault(r, server, what) {
    r.error('mcp check answered ' + what + ' for ' + server + '; denying');
    return refuse(r, 500, { error: 'INTERNAL', message: 'the access check failed' });
}

/* As if the session did not exist: the answer an MCP server gives for an id it does not know. */
function sessionUnknown(r, parsed) {
    var id = parsed.single && parsed.single.id !== undefined ? parsed.single.id : null;
    return refuse(r, 404, jsonRpcError(id, SESSION_NOT_FOUND, 'Session not found', { error: 'MCP_SESSION_UNKNOWN' }));
}

function hasBody(r) {
    try {
        var buffer = r.requestBuffer;
        return buffer !== undefined && buffer.length > 0;
    } catch (e) {
        return true;
    }
}

/* Reads and classifies the body. Returns a refusal, or null with parsed.messages filled. */
function readBody(r, parsed) {
    var buffer;
    try {
        buffer = r.requestBuffer;
    } catch (e) {
        return bad(413, null, INVALID_REQUEST, 'request body too large', 'BODY_TOO_LARGE');
    }
    if (buffer === undefined || buffer.length === 0) return bad(400, null, INVALID_REQUEST, 'empty request body', 'MCP_REQUEST_INVALID');
    var text;
    try {
        text = DECODER.decode(buffer);
    } catch (e) {
        return bad(400, null, PARSE_ERROR, 'request body is not valid UTF-8', 'MCP_REQUEST_INVALID');
    }
    var structure = scanStructure(text);
    if (structure) return bad(400, null, PARSE_ERROR, structure, 'MCP_REQUEST_INVALID');
    var body;
    try {
        body = JSON.parse(text);
    } catch (e) {
        return bad(400, null, PARSE_ERROR, 'request body is not valid JSON', 'MCP_REQUEST_INVALID');
    }
    var list = Array.isArray(body) ? body : [body];
    if (list.length === 0 || list.length > MAX_BATCH)
        return bad(400, null, INVALID_REQUEST, 'a batch holds 1 to ' + MAX_BATCH + ' messages', 'MCP_REQUEST_INVALID');
    for (var i = 0; i < list.length; i++) {
        var entry = classify(list[i]);
        if (typeof entry !== 'string') return bad(400, idOf(list[i]), INVALID_REQUEST, entry.message, 'MCP_REQUEST_INVALID');
        parsed.messages.push(entry);
    }
    if (!Array.isArray(body)) parsed.single = body;
    return checkHeaders(r, body);
}

/*
 * One JSON-RPC message as the check's header entry: `method`, `tools/call tool`,
 * `subscriptions/listen kinds` (see listenKinds), or `!response`.
 */
function classify(m) {
    if (m === null || typeof m !== 'object' || Array.isArray(m)) return { message: 'a JSON-RPC message must be an object' };
    if (m.jsonrpc !== '2.0') return { message: 'jsonrpc must be "2.0"' };
    if (m.method === undefined) {
        if (m.id !== undefined && (m.result !== undefined || m.error !== undefined)) return '!response';
        return { message: 'a JSON-RPC request needs a method' };
    }
    if (typeof m.method !== 'string') return { message: 'method must be a string' };
    if (m.params !== undefined && (m.params === null || typeof m.params !== 'object')) return { message: 'params must be an object or array' };
    // A method the check could not read safely is passed as a name no rule grants but execute.
    var method = METHOD_PATTERN.test(m.method) ? m.method : '!invalid';
    if (method === 'subscriptions/listen') return method + ' ' + listenKinds(m.params);
    if (method !== 'tools/call') return method;
    var tool = m.params && m.params.name;
    return typeof tool === 'string' && TOOL_PATTERN.test(tool) ? method + ' ' + tool : method;
}

/*
 * What a subscriptions/listen filter (`params.notifications`) opts in to: `none`, or families
 * joined by `+` in a fixed order (`tools+resources`). A key the revision does not define, or a
 * filter that is not an object, is `other`, which only execute covers (fail closed).
 */
function listenKinds(params) {
    var filter = params && !Array.isArray(params) ? params.notifications : undefined;
    if (filter === null || typeof filter !== 'object' || Array.isArray(filter)) return 'other';
    var found = {};
    var keys = Object.keys(filter);
    for (var i = 0; i < keys.length; i++) {
        var value = filter[keys[i]];
        if (value === false || value === null || (Array.isArray(value) && value.length === 0)) continue;
        found[Object.prototype.hasOwnProperty.call(LISTEN_FILTER, keys[i]) ? LISTEN_FILTER[keys[i]] : 'other'] = true;
    }
    var kinds = LISTEN_ORDER.filter(function (kind) {
        return found[kind] === true;
    });
    return kinds.length ? kinds.join('+') : 'none';
}

/*
 * MCP 2026-07-28 mirrors the body into headers (Mcp-Method, Mcp-Name, MCP-Protocol-Version) so
 * components can route without reading it. We decide on the body; a header that disagrees with
 * it, or one the revision requires that is missing, is refused with 400 and HeaderMismatch
 * (-32020), so nothing behind us can be told something other than what we checked.
 * Mcp-Param-* headers mirror tool arguments by the tool's schema, which we do not know: they
 * are forwarded untouched and the backend, which reads the body, checks them.
 */
function checkHeaders(r, body) {
    var duplicate = repeatedHeader(r);
    if (duplicate) return mismatch(Array.isArray(body) ? null : body, duplicate + ' header appears more than once');
    var method = r.headersIn['Mcp-Method'];
    var name = r.headersIn['Mcp-Name'];
    var version = r.headersIn['MCP-Protocol-Version'];
    if (Array.isArray(body)) {
        if (
            isHeaderRevision(version) ||
            body.some(function (m) {
                return isHeaderRevision(protocolClaim(m));
            })
        ) {
            return bad(400, null, INVALID_REQUEST, 'MCP ' + FIRST_HEADER_REVISION + ' takes one JSON-RPC message per POST, not a batch', 'MCP_REQUEST_INVALID');
        }
        if (method !== undefined || name !== undefined) return mismatch(null, 'Mcp-Method / Mcp-Name headers cannot describe a batch');
        return null;
    }
    var claim = protocolClaim(body);
    if (claim !== undefined && claim !== version) return mismatch(body, 'MCP-Protocol-Version header does not match the protocol version in the body');
    var field = Object.prototype.hasOwnProperty.call(NAMED_METHODS, body.method) ? NAMED_METHODS[body.method] : undefined;
    var actual = field && body.params && !Array.isArray(body.params) ? body.params[field] : undefined;
    if (isHeaderRevision(version) || isHeaderRevision(claim)) {
        var request = body.method !== undefined && body.id !== undefined;
        if (request && method === undefined) return mismatch(body, 'the Mcp-Method header is required');
        if (request && name === undefined && NAME_REQUIRED[body.method] === true && typeof actual === 'string')
            return mismatch(body, 'the Mcp-Name header is required for ' + body.method);
    }
    if (method !== undefined && method !== body.method) return mismatch(body, 'Mcp-Method header does not match the body');
    if (name !== undefined) {
        var decoded = headerText(name);
        if (decoded === null) return mismatch(body, 'Mcp-Name header is not a valid header value');
        if (typeof actual !== 'string' || decoded !== actual) return mismatch(body, 'Mcp-Name header does not match the body');
    }
    return null;
}

function mismatch(body, message) {
    return bad(400, body ? idOf(body) : null, HEADER_MISMATCH, 'Header mismatch: ' + message, 'MCP_HEADER_MISMATCH');
}

/* The standard header sent more than once, if any: components may read different copies. */
function repeatedHeader(r) {
    var seen = {};
    var raw = r.rawHeadersIn;
    for (var i = 0; i < raw.length; i++) {
        var key = String(raw[i][0]).toLowerCase();
        if (!Object.prototype.hasOwnProperty.call(STANDARD_HEADERS, key)) continue;
        if (seen[key] === true) return STANDARD_HEADERS[key];
        seen[key] = true;
    }
    return null;
}

/* `params._meta`'s protocol version (MCP 2026-07-28 per-request envelope), or undefined. */
function protocolClaim(m) {
    var meta = m && typeof m === 'object' && m.params && typeof m.params === 'object' ? m.params._meta : undefined;
    if (meta === null || typeof meta !== 'object' || !Object.prototype.hasOwnProperty.call(meta, PROTOCOL_VERSION_META)) return undefined;
    return meta[PROTOCOL_VERSION_META];
}

/* True for a revision of 2026-07-28 or later: one whose clients must send the standard headers. */
function isHeaderRevision(version) {
    return typeof version === 'string' && /^\d{4}-\d{2}-\d{2}$/.test(version) && version >= FIRST_HEADER_REVISION;
}

/*
 * A header value as text: plain visible ASCII as is, or the spec's `=?base64?...?=` sentinel
 * decoded (canonical Base64 of UTF-8 only). null when it is neither.
 */
function headerText(value) {
    var v = String(value);
    if (v.indexOf('=?base64?') === 0 && v.length >= 11 && v.slice(-2) === '?=') {
        var payload = v.slice(9, -2);
        if (!/^[A-Za-z0-9+\/]*={0,2}$/.test(payload)) return null;
        try {
            var bytes = Buffer.from(payload, 'base64');
            if (bytes.toString('base64') !== payload) return null;
            return DECODER.decode(bytes);
        } catch (e) {
            return null;
        }
    }
    return /^[\x20-\x7e\t]*$/.test(v) ? v : null;
}

/*
 * Refuses nesting deeper than MAX_DEPTH and duplicate keys in any object. JSON.parse keeps the
 * last of two `"method"` keys while other parsers keep the first: a backend must never read a
 * different request than the one we checked. Keys are compared decoded (`"m\u0065thod"`).
 * This runs on every MCP request: string contents (most of a body) are skipped with native
 * indexOf; the interpreted loop only walks the characters between strings. (A regex tokenizer
 * measured 4x slower on njs 0.7.9.)
 */
function scanStructure(text) {
    var stack = [];
    var n = text.length;
    for (var i = 0; i < n; i++) {
        var c = text.charCodeAt(i);
        if (c === 34) {
            var j = closingQuote(text, i);
            if (j === -1) return 'request body is not valid JSON';
            var top = stack[stack.length - 1];
            if (top && top.object && top.expectKey) {
                var key = text.slice(i + 1, j);
                if (key.indexOf('\\') !== -1) {
                    try {
                        key = JSON.parse(text.slice(i, j + 1));
                    } catch (e) {
                        return 'request body is not valid JSON';
                    }
                }
                if (top.keys['$' + key] === true) return 'duplicate key "' + key.slice(0, 64) + '" in the request body';
                top.keys['$' + key] = true;
                top.expectKey = false;
            }
            i = j;
        } else if (c === 123 || c === 91) {
            stack.push({ object: c === 123, expectKey: c === 123, keys: {} });
            if (stack.length > MAX_DEPTH) return 'request body nests deeper than ' + MAX_DEPTH + ' levels';
        } else if (c === 125 || c === 93) {
            stack.pop();
        } else if (c === 44) {
            var t = stack[stack.length - 1];
            if (t && t.object) t.expectKey = true;
        }
    }
    return null;
}

/* The index of the quote that ends the string opening at `start`: one not escaped by an odd run of backslashes. */
function closingQuote(text, start) {
    var j = text.indexOf('"', start + 1);
    while (j !== -1) {
        var k = j - 1;
        while (text.charCodeAt(k) === 92) k--;
        if ((j - 1 - k) % 2 === 0) return j;
        j = text.indexOf('"', j + 1);
    }
    return -1;
}

function idOf(m) {
    return m && typeof m === 'object' && (typeof m.id === 'string' || typeof m.id === 'number') ? m.id : null;
}

function bad(status, id, code, message, error) {
    return { status: status, id: id, code: code, message: message, error: error };
}

function jsonRpcError(id, code, message, data) {
    return { jsonrpc: '2.0', id: id === undefined ? null : id, error: { code: code, message: message, data: data } };
}

function refuse(r, status, body) {
    r.headersOut['Content-Type'] = 'application/json';
    r.headersOut['Cache-Control'] = 'no-store';
    r.return(status, JSON.stringify(body));
}

/* ---- MCP sessions bound to their principal (registry/src/authz/session-binding.ts) ---- */

/* What a sealed id may wrap, as the check enforces too: visible ASCII, bounded. */
var SESSION_VALUE = /^[\x21-\x7e]{1,256}$/;
var SSE_TARGET = /^\/(?:[\x21\x24-\x2e\x30-\x7e][\x21\x24-\x7e]{0,1022})?$/;

/*
 * base64url(value) '.' base64url(HMAC-SHA256(K_p, kind NUL server NUL value)) cut to 22
 * characters; with flags (`u`: the initialize declared URL-mode elicitation) the MAC also
 * covers NUL flags and the id ends in '.' flags. K_p came from the check for this request's
 * principal; the check opens the id on every later request and finds it only under the same
 * principal's key. Null without a key.
 */
function seal(r, kind, value, flags) {
    var key = r.variables.mcp_session_key;
    if (!key) return null;
    var tag = crypto
        .createHmac('sha256', Buffer.from(key, 'base64url'))
        .update(kind + '\u0000' + r.variables.mcp_server + '\u0000' + value + (flags ? '\u0000' + flags : ''))
        .digest('base64url');
    return Buffer.from(value).toString('base64url') + '.' + tag.slice(0, 22) + (flags ? '.' + flags : '');
}

/* Header filter of the Streamable HTTP backend locations: the client sees only the sealed id. */
function sessionHeaders(r) {
    var id = r.headersOut['Mcp-Session-Id'];
    if (id === undefined) return;
    // The backend echoes the id the client sent on every response of a session: the client's
    // sealed id (which the check just opened to this value for this principal) is the seal.
    var sealed =
        id === r.variables.mcp_unsealed_session && r.variables.mcp_session
            ? r.variables.mcp_session
            : SESSION_VALUE.test(id)
              ? seal(r, 'streamable', id, r.variables.mcp_elicitation === 'u' ? 'u' : '')
              : null;
    if (sealed === null) {
        // Fail closed: a session the gateway cannot bind is not handed out.
        r.error('backend of ' + r.variables.mcp_server + ' sent an Mcp-Session-Id the gateway cannot seal; dropped');
        delete r.headersOut['Mcp-Session-Id'];
        return;
    }
    r.headersOut['Mcp-Session-Id'] = sealed;
}

/*
 * The backend path and query a legacy `endpoint` event names, resolved against the backend's
 * SSE URL ($mcp_backend_sse). Another origin, or anything but visible ASCII, is null.
 */
function endpointTarget(base, ref) {
    var origin = /^[a-z]+:\/\/[^\/]+/i.exec(base)[0];
    var hash = ref.indexOf('#');
    if (hash !== -1) ref = ref.slice(0, hash);
    var path;
    if (/^[A-Za-z][A-Za-z0-9+.-]*:/.test(ref) || ref.indexOf('//') === 0) {
        var absolute = ref.indexOf('//') === 0 ? origin.slice(0, origin.indexOf(':') + 1) + ref : ref;
        var m = /^([A-Za-z][A-Za-z0-9+.-]*:\/\/[^\/?]+)(.*)$/.exec(absolute);
        if (!m || m[1].toLowerCase() !== origin.toLowerCase()) return null;
        path = m[2].charAt(0) === '/' ? m[2] : '/' + m[2];
    } else if (ref.charAt(0) === '/') {
        path = ref;
    } else {
        var basePath = base.slice(origin.length) || '/';
        path = ref === '' || ref.charAt(0) === '?' ? basePath + ref : basePath.slice(0, basePath.lastIndexOf('/') + 1) + ref;
    }
    return SSE_TARGET.test(path) ? path : null;
}

/* The first `endpoint` event, with the backend's messages URL sealed into the gateway's. */
function sealEndpoint(r, event) {
    var parts = splitEvent(event);
    var data = parts.data;
    var rest = parts.rest;
    var target = endpointTarget(r.variables.mcp_backend_sse, data.join('\n'));
    var sealed = target === null ? null : seal(r, 'sse', target);
    if (sealed === null) {
        r.error('the legacy endpoint event of ' + r.variables.mcp_server + ' names no path on its backend; dropped');
        return ': endpoint dropped by the gateway';
    }
    return rest.concat(['data: ' + r.variables.mcp_messages_url + '?session=' + sealed]).join('\n');
}

function isEndpointEvent(event) {
    var lines = event.split('\n');
    for (var i = 0; i < lines.length; i++) {
        if (lines[i] === 'event: endpoint' || lines[i] === 'event:endpoint') return true;
    }
    return false;
}

/* ---- tools/list filtering for principals that hold tool scopes only, and the legacy endpoint ---- */

var filterState = null;

/* The body changes length, so drop Content-Length and remember the type. `allowed` null: no tool filter. */
function startFilter(r, allowed) {
    delete r.headersOut['Content-Length'];
    var type = String(r.headersOut['Content-Type'] || '');
    filterState = { sse: type.indexOf('text/event-stream') === 0, pending: '', allowed: allowed, endpoint: r.variables.mcp_transport === 'sse' };
}

/* Header filter of the `_filtered` locations. */
function filterHeaders(r) {
    startFilter(r, allowedTools(r));
    sessionHeaders(r);
}

/* Header filter of the legacy stream for everyone else: only the endpoint event changes. */
function sseHeaders(r) {
    startFilter(r, null);
}

/*
 * Body filter: seals the legacy endpoint event, and for a tool-limited principal removes the
 * tools it may not call from every tools/list result, in a JSON response (buffered whole) or
 * an SSE stream (event by event, streaming preserved). What it cannot read is not passed on if
 * it may hold tools: it fails closed, like the check.
 */
function filterBody(r, data, flags) {
    var state = filterState;
    if (!state) return r.sendBuffer(data, flags);
    if (!state.sse && state.allowed === null) return r.sendBuffer(data, flags);
    state.pending += data;
    if (!state.sse) {
        if (!flags.last) return;
        var whole = state.pending;
        state.pending = '';
        return r.sendBuffer(filterJson(whole, state.allowed), flags);
    }
    if (state.allowed === null && !state.endpoint) {
        // Endpoint sealed and nothing to filter: the rest of the stream passes as it comes.
        var rest = state.pending;
        state.pending = '';
        return r.sendBuffer(rest, flags);
    }
    // SSE lines end in CRLF, LF or CR. Normalise to LF, holding back a final CR that may be
    // the first half of a CRLF split across chunks.
    var text = state.pending;
    var hold = '';
    if (!flags.last && text.charAt(text.length - 1) === '\r') {
        hold = '\r';
        text = text.slice(0, -1);
    }
    var events = text.replace(/\r\n?/g, '\n').split('\n\n');
    var tail = events.pop();
    state.pending = tail + hold;
    var out = '';
    for (var i = 0; i < events.length; i++) out += filterStreamEvent(r, state, events[i]) + '\n\n';
    if (flags.last && tail !== '') {
        out += filterStreamEvent(r, state, tail);
        state.pending = '';
    }
    if (out !== '' || flags.last) r.sendBuffer(out, flags);
}

function filterStreamEvent(r, state, event) {
    if (state.endpoint && isEndpointEvent(event)) {
        state.endpoint = false;
        return sealEndpoint(r, event);
    }
    return state.allowed === null ? event : filterEvent(event, state.allowed);
}

function allowedTools(r) {
    var set = {};
    try {
        var list = JSON.parse(r.variables.mcp_tool_filter || '[]');
        for (var i = 0; i < list.length; i++) set['$' + list[i]] = true;
    } catch (e) {
        /* An unreadable filter allows nothing (fail closed). */
    }
    return set;
}

/* An SSE event's `data:` payload lines and its other lines (event:, id:, comments), in order. */
function splitEvent(event) {
    var lines = event.split('\n');
    var data = [];
    var rest = [];
    for (var i = 0; i < lines.length; i++) {
        if (lines[i].indexOf('data:') === 0) data.push(lines[i].slice(lines[i].charAt(5) === ' ' ? 6 : 5));
        else rest.push(lines[i]);
    }
    return { data: data, rest: rest };
}

function filterEvent(event, allowed) {
    var parts = splitEvent(event);
    var data = parts.data;
    var rest = parts.rest;
    if (data.length === 0) return event;
    var joined = data.join('\n');
    var filtered = filterJson(joined, allowed);
    if (filtered === joined) return event;
    return rest.concat(['data: ' + filtered]).join('\n');
}

/*
 * Filters `result.tools` of every JSON-RPC response in `text`. Text that does not parse (too
 * deep for njs, or not JSON) passes only if it cannot be a tools list; otherwise it becomes a
 * JSON-RPC error for the same id, so a hidden tool's name or schema never leaks. A filtered
 * list's `cacheScope` (MCP 2026-07-28) of `public` becomes `private`.
 */
function filterJson(text, allowed) {
    // No "tools" key can be in a text that spells neither `"tools"` nor any \u escape (the only
    // other way JSON can write those letters): it passes without being parsed.
    if (text.indexOf('"tools"') === -1 && text.indexOf('\\u') === -1) return text;
    var body;
    try {
        body = JSON.parse(text);
    } catch (e) {
        if (text.indexOf('"tools"') === -1) return text;
        var id = /"id"\s*:\s*("(?:[^"\\]|\\.)*"|-?\d+)/.exec(text);
        return JSON.stringify({
            jsonrpc: '2.0',
            id: id ? JSON.parse(id[1]) : null,
            error: { code: -32603, message: 'the gateway could not filter this response for your tool scopes' },
        });
    }
    var list = Array.isArray(body) ? body : [body];
    var changed = false;
    for (var i = 0; i < list.length; i++) {
        var result = list[i] && list[i].result;
        if (!result || !Array.isArray(result.tools)) continue;
        result.tools = result.tools.filter(function (tool) {
            return tool && typeof tool.name === 'string' && allowed['$' + tool.name] === true;
        });
        // MCP 2026-07-28 lets a list say shared caches may keep it; a filtered list is this principal's only.
        if (result.cacheScope === 'public') result.cacheScope = 'private';
        changed = true;
    }
    return changed ? JSON.stringify(body) : text;
}

export default { handle: handle, filterHeaders: filterHeaders, filterBody: filterBody, sessionHeaders: sessionHeaders, sseHeaders: sseHeaders };
