import type autocannon from 'autocannon';

/** The autocannon 9 client internals this file touches (lib/httpClient.js). */
interface ClientInternals {
  _connect(): void;
  _doRequest(): void;
  _resetConnection(): void;
  on(event: 'connError', listener: () => void): void;
  on(event: 'headers', listener: (info: { shouldKeepAlive?: boolean }) => void): void;
  pipelinedRequests: { size(): number; clear(): void };
  parser: { initialize(type: string): void; constructor: { RESPONSE: string } };
}

/**
 * Makes autocannon 9 behave like an HTTP/1.1 client on connection reuse, for one run. Without
 * this it
 * - ignores `Connection: close` and writes the next request on a socket the server is closing
 *   (nginx does that after `keepalive_requests`, 1000 by default), losing it;
 * - reconnects after a socket error or close without forgetting the request that was in
 *   flight and without resetting its response parser, so every later response of that
 *   connection is matched with the previous request's start time (latencies several times too
 *   long after an nginx reload), and a request lost to a clean close (FIN) is counted nowhere.
 *
 * The `setupClient` hook returned opens a new connection after a response that says close,
 * drops the requests still queued on a failed socket, resets the parser, and counts a request
 * lost without a socket error in `lost.closed` (autocannon counts socket errors itself).
 */
export function reconnectFix(lost: { closed: number }): (client: autocannon.Client) => void {
  return (client) => {
    const c = client as unknown as ClientInternals;
    const connect = c._connect;
    const doRequest = c._doRequest;
    let socketError = false;
    let serverCloses = false;
    c.on('connError', () => {
      socketError = true;
    });
    c.on('headers', (info) => {
      serverCloses = info.shouldKeepAlive === false;
    });
    c._doRequest = function (this: ClientInternals) {
      if (!serverCloses) return doRequest.call(this);
      serverCloses = false;
      this._resetConnection(); // a new socket, whose connect sends the request
    };
    c._connect = function (this: ClientInternals) {
      const inFlight = this.pipelinedRequests.size();
      if (inFlight > 0) {
        if (!socketError) lost.closed += inFlight;
        this.pipelinedRequests.clear();
      }
      socketError = false;
      this.parser.initialize(this.parser.constructor.RESPONSE);
      connect.call(this);
    };
  };
}
