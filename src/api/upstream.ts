/**
 * Forwarding one request upstream and streaming its answer back as it arrives. Upstream is a target: one of our
 * llama-server instances (one undici connection pool per instance, bounded near its slot count: idle keep-alive
 * sockets beyond that would only hold llama-server's HTTP threads) or a backend server (Ollama). Nothing here
 * knows which; a target says how long to wait and how to name a failure.
 */
import { once, setMaxListeners } from 'node:events';
import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { Pool as UndiciPool, type Dispatcher } from 'undici';
import type { Instance } from '../pool/instance.js';
import { describeExit } from '../pool/instance.js';
import { describeError, openaiError, UpstreamCallError } from './errors.js';

export { UpstreamCallError };

const EXIT_GRACE_MS = 500;
// x-llama-smart-proxy-node: the cluster node that served a forwarded request.
const PASSED_RESPONSE_HEADERS = ['content-type', 'cache-control', 'x-accel-buffering', 'content-encoding', 'x-llama-smart-proxy-node'];
/** Stale keep-alive sockets one request may run into before a fresh connection (one per pooled connection, bounded). */
const STALE_RETRIES = 4;
/** How long shutdown waits for the exchanges under way to write their last event. */
const SHUTDOWN_GRACE_MS = 3000;
const SHUTTING_DOWN = 'the proxy is shutting down';

/** Where a request goes. */
export interface UpstreamTarget {
  readonly dispatcher: Dispatcher;
  /** What the logs and error messages call it. */
  readonly name: string;
  /** Milliseconds to wait for the answer's headers, and between two pieces of its body; 0 = no limit. */
  readonly headersTimeout: number;
  readonly bodyTimeout: number;
  /** Headers every request to it carries (an instance's API key). */
  readonly headers?: Readonly<Record<string, string>>;
  /** Fires when the proxy shuts down: exchanges under way end with a last error event. */
  readonly closing?: AbortSignal;
  /** Why an exchange failed (connection refused, timeout, a process that died): status and message for the client. */
  failure(err: unknown): { status: number; message: string };
  /**
   * Whether a request that failed this way before any answer may go once more to a fresh upstream: true for an
   * instance of ours whose connection broke (it died or was killed), never for a timeout.
   */
  unsent?(err: unknown): boolean;
  /** Waits (briefly) until a failure can be named: a dying instance closes its sockets before its exit is seen. */
  settle?(): Promise<unknown>;
  /**
   * Whether an answer with this status, before anything was written, means "not here" (another node of the
   * cluster may take it): the exchange then goes once more elsewhere, like an unsent request.
   */
  refused?(status: number): boolean;
  /**
   * It closes the connection after a streamed answer although it announced keep-alive (llama-server does): a
   * streamed request then says `connection: close` (undici's `reset`), so undici never sends the next request on
   * that socket. Sent there, it failed and went again behind every request queued since: a flood's requests were
   * overtaken by later ones.
   */
  readonly closesAfterStream?: boolean;
}

/**
 * Failures of the connection itself (refused, reset, closed; or the instance's connection pool already closed
 * because its process exited), not of a timeout or of the answer.
 */
export function isConnectionFailure(err: unknown): boolean {
  const code = (err as { code?: string }).code;
  return code === 'ECONNREFUSED' || code === 'ECONNRESET' || code === 'UND_ERR_SOCKET' || code === 'EPIPE' || code === 'UND_ERR_CLOSED' || code === 'UND_ERR_DESTROYED';
}

export interface InstanceTargetOptions {
  /** Milliseconds for the answer to begin and between its pieces (llamaServer.readTimeout); 0 = no limit. */
  readTimeoutMs: number;
  closing?: AbortSignal;
}

/** An instance of ours: its API key on every request, failures named by the process's exit. */
export function instanceTarget(dispatcher: Dispatcher, instance: Instance, options: InstanceTargetOptions): UpstreamTarget {
  return {
    dispatcher,
    name: `instance ${instance.id}`,
    headersTimeout: options.readTimeoutMs,
    bodyTimeout: options.readTimeoutMs,
    headers: instance.authHeaders,
    ...(options.closing ? { closing: options.closing } : {}),
    failure: (err) => (options.closing?.aborted ? { status: 503, message: SHUTTING_DOWN } : { status: 502, message: upstreamFailure(instance, err, options.readTimeoutMs) }),
    unsent: (err) => !options.closing?.aborted && isConnectionFailure(err),
    closesAfterStream: true,
    settle: () => Promise.race([instance.waitExit(), sleep(EXIT_GRACE_MS)]),
  };
}

/**
 * A request that failed before its upstream answered anything, on a target that allows another try: the caller
 * (PromptPipeline.exchange) sends it once more to a fresh instance. Nothing was written to the client.
 */
export class UpstreamUnsent extends UpstreamCallError {
  constructor(status: number, message: string) {
    super(status, message);
    this.name = 'UpstreamUnsent';
  }
}

export class UpstreamClients {
  private readonly pools = new Map<string, UndiciPool>();
  private readonly closing = new AbortController();
  private readonly active = new Set<Promise<unknown>>();

  constructor(private readonly readTimeoutMs = 0) {
    // Every exchange under way listens to it (removed when it ends): as many as there are requests in flight.
    setMaxListeners(0, this.closing.signal);
  }

  get(instance: Instance, connections: number): UndiciPool {
    let pool = this.pools.get(instance.id);
    if (!pool) {
      pool = new UndiciPool(instance.url, { connections, pipelining: 1, keepAliveTimeout: 10_000, connectTimeout: 10_000 });
      this.pools.set(instance.id, pool);
      const created = pool;
      instance.once('exit', () => {
        if (this.pools.get(instance.id) === created) this.pools.delete(instance.id);
        void created.destroy().catch(() => {});
      });
    }
    return pool;
  }

  /** The target for a lease's instance. */
  target(instance: Instance, connections: number): UpstreamTarget {
    return instanceTarget(this.get(instance, connections), instance, { readTimeoutMs: this.readTimeoutMs, closing: this.closing.signal });
  }

  /** Fires at shutdown (targets made elsewhere, e.g. a cluster peer, end their streams with it too). */
  get closingSignal(): AbortSignal {
    return this.closing.signal;
  }

  /** Counts an exchange as under way until `done` settles (shutdown waits for it to write its end). */
  track<T>(done: Promise<T>): Promise<T> {
    this.active.add(done);
    const forget = () => this.active.delete(done);
    done.then(forget, forget);
    return done;
  }

  /**
   * Ends the exchanges under way: each stream gets a last error event saying the proxy shuts down, each
   * waiting answer a 503; waits for them to be written (bounded), so clients see a clean end.
   */
  async shutdown(): Promise<void> {
    this.closing.abort();
    if (this.active.size === 0) return;
    await Promise.race([Promise.allSettled([...this.active]), sleep(SHUTDOWN_GRACE_MS)]);
  }

  async close(): Promise<void> {
    this.closing.abort();
    await Promise.all([...this.pools.values()].map((p) => p.destroy().catch(() => {})));
    this.pools.clear();
  }
}

/** Rewrites an answer's body on its way to the client (agents' response hooks). */
export type BodyTransform = (body: AsyncIterable<Buffer>) => AsyncIterable<Buffer | string>;

/** How errors are written to the client: a whole body, or one more event of a stream already under way. */
export interface ErrorFormat {
  /** `code`: the proxy's error code where the family's shape has one (default upstream_error). */
  body(status: number, message: string, code?: string | null): string;
  streamEvent(status: number, message: string, code?: string | null): string;
}

export const OPENAI_ERRORS: ErrorFormat = {
  body: (status, message, code) => JSON.stringify(openaiError(status, message, code ?? 'upstream_error')),
  streamEvent: (status, message, code) => `data: ${JSON.stringify(openaiError(status, message, code ?? 'upstream_error'))}\n\n`,
};

/** Answers an error on a raw response taken over from fastify: a whole body, or a last event once headers are out. */
export function writeRawError(res: ServerResponse, errors: ErrorFormat, err: unknown): void {
  if (res.writableEnded || res.destroyed) return;
  const { status, message, retryAfter } = describeError(err);
  if (res.headersSent) {
    res.end(errors.streamEvent(status, message));
    return;
  }
  const body = errors.body(status, message);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...(retryAfter !== undefined ? { 'retry-after': String(retryAfter) } : {}) }).end(body);
}

export interface ForwardRequest {
  method: 'GET' | 'POST';
  /** Path and query upstream. */
  path: string;
  body?: string | Buffer;
  contentType?: string;
  headers?: IncomingHttpHeaders;
  /** The body asks for a streamed answer (see UpstreamTarget.closesAfterStream). */
  stream?: boolean;
  /** Chosen once the upstream status and content type are known; undefined passes the body through as is. */
  transform?: (status: number, contentType: string | undefined) => BodyTransform | undefined;
  /** How failures reach the client (default: OpenAI's shape, SSE events mid-stream). */
  errors?: ErrorFormat;
  /**
   * A failure before any answer throws UpstreamUnsent (nothing written) when the target allows another try,
   * instead of writing the error: the caller sends the request again.
   */
  retryable?: boolean;
  /** Sees every chunk sent to the client (token accounting reads the end of the answer). */
  tap?: (chunk: Buffer | string) => void;
  /**
   * A whole (not streamed) error answer read before it goes out: what to answer instead (a status and a JSON
   * body), or undefined to pass it on as it came.
   */
  rewriteError?: (status: number, text: string) => { status: number; body: string } | undefined;
}

export interface ForwardResult {
  status: number;
  /** Bytes sent to the client. */
  bytes: number;
  /** How the exchange ended. */
  outcome: 'ok' | 'client_closed' | 'upstream_error';
}

/**
 * A socket the server closed just as undici sent the next request on it: that request fails before any answer
 * ("other side closed", UND_ERR_SOCKET), the server never read it, and it is sent again. A stream asked without
 * its flag (see UpstreamTarget.closesAfterStream) or a server's idle close can still leave one. Each pooled socket
 * can be stale once, so a few tries (a fresh connection comes after the stale ones are gone). A dead instance
 * fails them all at once (connection refused).
 */
function isStaleConnection(err: unknown): boolean {
  const code = (err as { code?: string }).code;
  return code === 'UND_ERR_SOCKET' || code === 'ECONNRESET';
}

type RequestOptions = Parameters<Dispatcher['request']>[0];
export type UpstreamResponse = Dispatcher.ResponseData<unknown>;

async function requestRetryingStale(dispatcher: Dispatcher, options: RequestOptions & { signal: AbortSignal }): Promise<UpstreamResponse> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await dispatcher.request(options);
    } catch (err) {
      if (!isStaleConnection(err) || options.signal.aborted || attempt >= STALE_RETRIES) throw err;
    }
  }
}

/**
 * The signal an upstream request listens to: the client going away, or the proxy shutting down. Listeners, not
 * AbortSignal.any: Node 20 keeps every signal made by any() from a long-lived source (the shutdown signal) alive.
 * `dispose` once the exchange is over.
 */
function exchangeSignal(target: UpstreamTarget, signal: AbortSignal): { signal: AbortSignal; dispose: () => void } {
  const closing = target.closing;
  if (!closing) return { signal, dispose: () => {} };
  const linked = new AbortController();
  const abort = () => linked.abort();
  if (signal.aborted || closing.aborted) linked.abort();
  signal.addEventListener('abort', abort, { once: true });
  closing.addEventListener('abort', abort, { once: true });
  return {
    signal: linked.signal,
    dispose: () => {
      signal.removeEventListener('abort', abort);
      closing.removeEventListener('abort', abort);
    },
  };
}

/** Why an upstream exchange broke, naming the model and the instance's exit when it died. */
function upstreamFailure(instance: Instance, err: unknown, readTimeoutMs: number): string {
  const exit = instance.exit;
  const code = (err as { code?: string }).code;
  const timedOut = code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT';
  const how = instance.hung
    ? instance.hung
    : exit
      ? `llama-server exited (${describeExit(exit)})`
      : timedOut
        ? `no answer for ${Math.round(readTimeoutMs / 1000)} s (llamaServer.readTimeout)`
        : (err as Error).message;
  return `instance ${instance.id} of model "${instance.spec.modelId}" failed: ${how}`;
}

function isStream(contentType: string | undefined): boolean {
  return !!contentType && (contentType.includes('text/event-stream') || contentType.includes('ndjson'));
}


export interface OpenRequest {
  method?: 'GET' | 'POST';
  path: string;
  body?: string;
  /** Accept header (default application/json). */
  accept?: string;
  /** More headers (after the target's own). */
  headers?: Record<string, string>;
}

/**
 * Sends a request and returns the answer with its body unread (the caller reads or dumps it). Throws
 * UpstreamCallError when the target cannot be reached; an answer with an error status is returned as it is.
 */
export async function openUpstream(target: UpstreamTarget, req: OpenRequest, signal: AbortSignal): Promise<UpstreamResponse> {
  const linked = exchangeSignal(target, signal);
  try {
    const res = await requestRetryingStale(target.dispatcher, {
      method: req.method ?? 'POST',
      path: req.path,
      headers: { ...target.headers, ...req.headers, accept: req.accept ?? 'application/json', ...(req.body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: req.body ?? null,
      reset: target.closesAfterStream === true && req.accept === 'text/event-stream',
      signal: linked.signal,
      headersTimeout: target.headersTimeout,
      bodyTimeout: target.bodyTimeout,
    });
    // Read by the caller: the shutdown stays linked until the body is done.
    res.body.once('close', linked.dispose);
    return res;
  } catch (err) {
    linked.dispose();
    if (signal.aborted) throw err;
    if (!target.closing?.aborted) await target.settle?.();
    const { status, message } = target.failure(err);
    throw target.unsent?.(err) ? new UpstreamUnsent(status, message) : new UpstreamCallError(status, message);
  }
}

/**
 * Sends `req` to the target and pipes the answer into `res` (a raw, hijacked response) chunk by chunk.
 * A client that disconnects aborts the upstream request, which frees the llama-server slot.
 */
export async function forward(target: UpstreamTarget, req: ForwardRequest, res: ServerResponse): Promise<ForwardResult> {
  const errors = req.errors ?? OPENAI_ERRORS;
  // One controller for both ends of the exchange: the client going away, or the proxy shutting down (the client
  // then gets its last event, not a cut). `clientLeft` tells them apart.
  const abort = new AbortController();
  let clientLeft = false;
  const onClose = () => {
    if (res.writableFinished) return;
    clientLeft = true;
    abort.abort();
  };
  res.on('close', onClose);
  const closing = target.closing;
  const onClosing = () => abort.abort();
  if (closing?.aborted) abort.abort();
  closing?.addEventListener('abort', onClosing, { once: true });
  const upstreamSignal = abort.signal;
  let bytes = 0;
  try {
    const headers: Record<string, string> = { ...target.headers, accept: req.headers?.accept ?? '*/*' };
    if (req.contentType) headers['content-type'] = req.contentType;
    let upstream;
    try {
      upstream = await requestRetryingStale(target.dispatcher, {
        method: req.method,
        path: req.path,
        headers,
        body: req.body ?? null,
        reset: target.closesAfterStream === true && req.stream === true,
        signal: upstreamSignal,
        headersTimeout: target.headersTimeout,
        bodyTimeout: target.bodyTimeout,
      });
    } catch (err) {
      if (clientLeft) return { status: 499, bytes, outcome: 'client_closed' };
      if (!target.closing?.aborted) await target.settle?.();
      const { status, message } = target.failure(err);
      if (req.retryable && !res.headersSent && target.unsent?.(err)) throw new UpstreamUnsent(status, message);
      // Headers already out (download progress was streamed): the error goes as a stream event.
      if (res.headersSent) {
        res.end(errors.streamEvent(status, message));
        return { status, bytes, outcome: 'upstream_error' };
      }
      const body = errors.body(status, message);
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
      return { status, bytes: body.length, outcome: 'upstream_error' };
    }
    if (req.retryable && !res.headersSent && target.refused?.(upstream.statusCode)) {
      const text = await upstream.body.text().catch(() => '');
      throw new UpstreamUnsent(upstream.statusCode, `${target.name} answered ${upstream.statusCode}: ${errorMessageOf(text)}`);
    }
    const outHeaders: Record<string, string> = {};
    for (const name of PASSED_RESPONSE_HEADERS) {
      const v = upstream.headers[name];
      if (typeof v === 'string') outHeaders[name] = v;
    }
    const streaming = isStream(outHeaders['content-type']);
    if (res.headersSent) {
      // Download progress already opened an SSE stream with 200: an upstream error becomes an error event.
      if (upstream.statusCode >= 400) {
        const text = await upstream.body.text();
        res.end(errors.streamEvent(upstream.statusCode, text.slice(0, 2000)));
        return { status: upstream.statusCode, bytes, outcome: 'upstream_error' };
      }
    }
    if (req.rewriteError && upstream.statusCode >= 400 && !streaming && !res.headersSent) {
      const text = await upstream.body.text();
      const rewritten = req.rewriteError(upstream.statusCode, text);
      const status = rewritten?.status ?? upstream.statusCode;
      const body = rewritten?.body ?? text;
      req.tap?.(body);
      res.writeHead(status, { ...outHeaders, 'content-type': rewritten ? 'application/json' : (outHeaders['content-type'] ?? 'application/json'), 'content-length': String(Buffer.byteLength(body)) }).end(body);
      return { status, bytes: Buffer.byteLength(body), outcome: 'ok' };
    }
    const transform = req.transform?.(upstream.statusCode, outHeaders['content-type']);
    if (!res.headersSent) {
      // An answer passed through as it is keeps its length: the client then gets headers and body in one write,
      // instead of chunked framing and a last write for its terminator.
      const length = upstream.headers['content-length'];
      if (!transform && typeof length === 'string') outHeaders['content-length'] = length;
      res.writeHead(upstream.statusCode, outHeaders);
      if (streaming) res.flushHeaders();
    }
    const body: AsyncIterable<Buffer | string> = transform ? transform(upstream.body) : upstream.body;
    try {
      for await (const chunk of body) {
        bytes += typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length;
        req.tap?.(chunk);
        // Respect the client's pace: stop reading upstream while the client's buffer is full.
        if (!res.write(chunk) && !res.destroyed) await once(res, 'drain', { signal: upstreamSignal });
      }
    } catch (err) {
      if (clientLeft || res.destroyed) return { status: upstream.statusCode, bytes, outcome: 'client_closed' };
      if (!target.closing?.aborted) await target.settle?.();
      // Upstream broke mid-answer (or the proxy shuts down): tell a streaming client with an error event, then close.
      const failure = target.failure(err);
      if (streaming) {
        res.end(errors.streamEvent(failure.status, failure.message));
        // At shutdown the connections are closed next, which drops what is still buffered: wait for the last
        // event to be flushed (shutdown's own grace bounds the wait).
        if (target.closing?.aborted && !res.writableFinished) await Promise.race([once(res, 'finish'), once(res, 'close')]).catch(() => {});
      } else res.destroy();
      return { status: upstream.statusCode, bytes, outcome: 'upstream_error' };
    }
    res.end();
    return { status: upstream.statusCode, bytes, outcome: 'ok' };
  } finally {
    res.off('close', onClose);
    closing?.removeEventListener('abort', onClosing);
  }
}

/** The message of an error answer: OpenAI's `error.message`, Ollama's `error`, else the start of the text. */
export function errorMessageOf(text: string): string {
  try {
    const json = JSON.parse(text) as { error?: unknown };
    const e = json.error;
    if (typeof e === 'string') return e;
    if (typeof e === 'object' && e !== null && typeof (e as { message?: unknown }).message === 'string') return (e as { message: string }).message;
  } catch {
    // not JSON
  }
  return text.slice(0, 300);
}

/**
 * One JSON request to a target, its JSON answer returned whole (for agents calling a model through the proxy).
 * Throws UpstreamCallError for a non-2xx answer or a body that is not a JSON object. `model` names the model in
 * messages.
 */
export async function requestJson(target: UpstreamTarget, path: string, body: Record<string, unknown>, signal: AbortSignal, model: string): Promise<Record<string, unknown>> {
  const upstream = await openUpstream(target, { path, body: JSON.stringify(body) }, signal);
  const text = await upstream.body.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  const ok = upstream.statusCode >= 200 && upstream.statusCode < 300;
  if (!ok || typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new UpstreamCallError(ok ? 502 : upstream.statusCode, `model "${model}" answered ${upstream.statusCode}: ${errorMessageOf(text)}`);
  }
  return json as Record<string, unknown>;
}
