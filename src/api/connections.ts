/**
 * What a client connection may cost the proxy before it has sent a request: bounded time and a bounded count
 * per client address, so that slow or idle clients (slowloris) cannot hold file descriptors for minutes.
 *
 * - `headersTimeout`: the whole head of a request within it, counted from the first byte of the request, or
 *   from the connection for its first one (Node tracks a socket from the accept, so one that never sends a
 *   byte is closed at the same deadline: checked on a real socket, Node 20.19);
 * - `requestTimeout`: the whole request, body included. Node stops counting once the request is received, so a
 *   response may take as long as a generation takes (a minutes-long stream, or minutes of prompt processing
 *   before the first byte) and is never cut by it;
 * - `keepAliveTimeout`: an idle connection between two requests;
 * - `maxConnectionsPerClient`: open connections per remote address; one more is answered 503 and closed before
 *   any HTTP parsing (nothing it sends reaches a route).
 *
 * A request line naming a version other than HTTP/1.0 or 1.1 gets 505: llhttp refuses most of them itself
 * (HTTP/1.2, HTTP/3.0: a client error), but passes HTTP/0.9 and HTTP/2.0 through as if they were HTTP/1.x.
 */
import type { IncomingMessage, ServerOptions, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { ConnectionError } from 'fastify';
import type { Config } from '../config/index.js';
import { openaiError } from './errors.js';
import type { ProxyApp } from './types.js';

type ServerSettings = Pick<Config['server'], 'headersTimeout' | 'requestTimeout' | 'keepAliveTimeout' | 'maxConnectionsPerClient'>;

/** How long a refused connection may linger while its 503 is read (the client normally closes at once). */
const REFUSED_LINGER_MS = 1000;

/**
 * Node checks the header and request deadlines on an interval (30 s by default, which would double a 30 s
 * timeout): a quarter of the shortest deadline, between 100 ms and 1 s. The check walks the open connections only.
 */
function checkingInterval(headersMs: number, requestMs: number): number {
  const shortest = Math.min(...[headersMs, requestMs].filter((ms) => ms > 0), 4000);
  return Math.round(Math.min(1000, Math.max(100, shortest / 4)));
}

/** Fastify options (milliseconds). */
export interface ConnectionOptions {
  http: ServerOptions;
  requestTimeout: number;
  keepAliveTimeout: number;
  connectionTimeout: number;
  clientErrorHandler: (error: ConnectionError, socket: Socket) => void;
}

/** The Fastify options for these limits (spread into `Fastify({...})`). */
export function connectionOptions(settings: ServerSettings): ConnectionOptions {
  const headersTimeout = Math.round(settings.headersTimeout * 1000);
  const requestTimeout = Math.round(settings.requestTimeout * 1000);
  return {
    // Handed to http.createServer: Node validates headersTimeout against requestTimeout there.
    http: { headersTimeout, requestTimeout, connectionsCheckingInterval: checkingInterval(headersTimeout, requestTimeout) },
    requestTimeout,
    keepAliveTimeout: Math.round(settings.keepAliveTimeout * 1000),
    // No socket inactivity timeout: a non-streamed answer sends nothing while a long prompt is processed.
    connectionTimeout: 0,
    clientErrorHandler: answerClientError,
  };
}

/** Status and message for an error of the HTTP parser or of Node's deadlines. */
function clientErrorStatus(err: ConnectionError): { status: number; code: string; message: string } {
  switch (err.code) {
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return { status: 408, code: 'request_timeout', message: 'the request was not received in time' };
    case 'HPE_HEADER_OVERFLOW':
      return { status: 431, code: 'headers_too_large', message: 'the request headers are too large' };
    case 'HPE_INVALID_VERSION':
    // The HTTP/2 connection preface (PRI * HTTP/2.0) of a client that assumes HTTP/2 without negotiating it.
    case 'HPE_PAUSED_H2_UPGRADE':
      return { status: 505, code: 'http_version_not_supported', message: versionMessage() };
    default:
      return { status: 400, code: 'bad_request', message: `malformed request (${err.code})` };
  }
}

function versionMessage(version?: string): string {
  return `${version ? `HTTP/${version} is` : 'this HTTP version is'} not supported: this server speaks HTTP/1.1 (and HTTP/1.0)`;
}

/** Answers what the HTTP parser refused, then closes the connection (nothing more can be read from it). */
function answerClientError(err: ConnectionError, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  // A deadline can pass while a response is already being written (a request body still trickling in under a
  // streamed answer): raw bytes would corrupt it, so the connection is only closed.
  const inFlight = (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage;
  if (socket.writable && !inFlight?.headersSent) {
    const { status, code, message } = clientErrorStatus(err);
    const body = JSON.stringify(openaiError(status, message, code));
    socket.write(`HTTP/1.1 ${status} ${STATUS_TEXT[status]}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
  }
  socket.destroy();
}

const STATUS_TEXT: Record<number, string> = { 400: 'Bad Request', 408: 'Request Timeout', 431: 'Request Header Fields Too Large', 503: 'Service Unavailable', 505: 'HTTP Version Not Supported' };

/** IPv4 clients of a dual-stack listener show as ::ffff:a.b.c.d; they are the same client as a.b.c.d. */
function clientKey(socket: Socket): string {
  const address = socket.remoteAddress ?? '';
  return address.startsWith('::ffff:') ? address.slice(7) : address;
}

/**
 * Counts open connections per client address in front of the HTTP layer: Node's own 'connection' listener (the
 * one that attaches the HTTP parser) runs only for connections within the cap. A refused one gets a 503 with
 * `Connection: close`; what it sends is read and discarded (closing with unread data would reset the connection
 * and could destroy the answer before the client reads it), and it is destroyed after REFUSED_LINGER_MS.
 */
function limitConnectionsPerClient(app: ProxyApp, max: number): void {
  const server = app.server;
  const parsers = server.listeners('connection') as Array<(socket: Socket) => void>;
  for (const listener of parsers) server.removeListener('connection', listener);
  const open = new Map<string, number>();
  // Logged once per episode: a flood of refusals must not become a flood of log lines.
  const warned = new Set<string>();
  const body = JSON.stringify(openaiError(503, `too many connections from this address (at most ${max}); close some or reuse them`, 'too_many_connections'));
  const refusal = `HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n${body}`;

  server.on('connection', (socket: Socket) => {
    const key = clientKey(socket);
    const count = open.get(key) ?? 0;
    if (count >= max) {
      if (!warned.has(key)) {
        warned.add(key);
        app.log.warn({ client: key, max }, 'connection refused: too many connections from this client');
      }
      socket.on('error', () => {});
      socket.setTimeout(REFUSED_LINGER_MS, () => socket.destroy());
      socket.resume();
      socket.end(refusal);
      return;
    }
    open.set(key, count + 1);
    socket.once('close', () => {
      const left = (open.get(key) ?? 1) - 1;
      if (left > 0) open.set(key, left);
      else open.delete(key);
      if (left < max) warned.delete(key);
    });
    for (const listener of parsers) listener.call(server, socket);
  });
}

/** Requests whose line names a version other than HTTP/1.0 and 1.1 (the ones llhttp lets through) get 505. */
function refuseOtherVersions(app: ProxyApp): void {
  // Callback hooks on every request, not async ones: each promise shows in the proxy's added latency (bench:proxy).
  app.addHook('onRequest', (request, reply, done) => {
    const raw: IncomingMessage = request.raw;
    if (raw.httpVersionMajor === 1 && (raw.httpVersionMinor === 0 || raw.httpVersionMinor === 1)) return done();
    const message = versionMessage(raw.httpVersion);
    void reply.code(505).header('connection', 'close');
    // Ollama's routes answer {"error": "..."}, the rest OpenAI's shape
    void reply.send(request.url.startsWith('/api/') ? { error: message } : openaiError(505, message, 'http_version_not_supported'));
  });
}

/** Adds the per-client cap (when set) and the HTTP version check; call it right after creating the app. */
export function guardConnections(app: ProxyApp, settings: ServerSettings): void {
  if (settings.maxConnectionsPerClient > 0) limitConnectionsPerClient(app, settings.maxConnectionsPerClient);
  refuseOtherVersions(app);
}
