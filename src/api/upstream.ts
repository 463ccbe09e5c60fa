/**
 * Forwarding one request to an instance and streaming its answer back as it arrives. One undici connection pool
 * per instance, bounded near its slot count: idle keep-alive sockets beyond that would only hold llama-server's
 * HTTP threads.
 */
import { once } from 'node:events';
import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { Pool as UndiciPool } from 'undici';
import type { Instance } from '../pool/instance.js';
import { describeExit } from '../pool/instance.js';
import { openaiError } from './errors.js';

const EXIT_GRACE_MS = 500;
const PASSED_RESPONSE_HEADERS = ['content-type', 'cache-control', 'x-accel-buffering', 'content-encoding'];

export class UpstreamClients {
  private readonly pools = new Map<string, UndiciPool>();

  get(instance: Instance, connections: number): UndiciPool {
    let pool = this.pools.get(instance.id);
    if (!pool) {
      pool = new UndiciPool(instance.url, { connections, pipelining: 1, keepAliveTimeout: 10_000 });
      this.pools.set(instance.id, pool);
      const created = pool;
      instance.once('exit', () => {
        if (this.pools.get(instance.id) === created) this.pools.delete(instance.id);
        void created.destroy().catch(() => {});
      });
    }
    return pool;
  }

  async close(): Promise<void> {
    await Promise.all([...this.pools.values()].map((p) => p.destroy().catch(() => {})));
    this.pools.clear();
  }
}

/** Rewrites an answer's body on its way to the client (agents' response hooks). */
export type BodyTransform = (body: AsyncIterable<Buffer>) => AsyncIterable<Buffer | string>;

export interface ForwardRequest {
  method: 'GET' | 'POST';
  /** Path and query on the instance. */
  path: string;
  body?: string | Buffer;
  contentType?: string;
  headers?: IncomingHttpHeaders;
  /** Chosen once the upstream status and content type are known; undefined passes the body through as is. */
  transform?: (status: number, contentType: string | undefined) => BodyTransform | undefined;
}

export interface ForwardResult {
  status: number;
  /** Bytes sent to the client. */
  bytes: number;
  /** How the exchange ended. */
  outcome: 'ok' | 'client_closed' | 'upstream_error';
}

/**
 * llama-server closes the connection after a streamed (SSE) answer although it announced keep-alive, so the
 * next request undici sends on that socket fails before any answer ("other side closed", UND_ERR_SOCKET): the
 * server never read it, and it is sent once more on a fresh connection.
 */
function isStaleConnection(err: unknown): boolean {
  const code = (err as { code?: string }).code;
  return code === 'UND_ERR_SOCKET' || code === 'ECONNRESET';
}

type RequestOptions = Parameters<UndiciPool['request']>[0];

async function requestRetryingStale(pool: UndiciPool, options: RequestOptions & { signal: AbortSignal }): Promise<Awaited<ReturnType<UndiciPool['request']>>> {
  try {
    return await pool.request(options);
  } catch (err) {
    if (!isStaleConnection(err) || options.signal.aborted) throw err;
    return await pool.request(options);
  }
}

/** Why an upstream exchange broke, naming the model and the instance's exit when it died. */
function upstreamFailure(instance: Instance, err: unknown): string {
  const exit = instance.exit;
  const how = exit ? `llama-server exited (${describeExit(exit)})` : (err as Error).message;
  return `instance ${instance.id} of model "${instance.spec.modelId}" failed: ${how}`;
}

function isEventStream(contentType: string | undefined): boolean {
  return !!contentType && contentType.includes('text/event-stream');
}

/**
 * Sends `req` to the instance and pipes the answer into `res` (a raw, hijacked response) chunk by chunk.
 * A client that disconnects aborts the upstream request, which frees the llama-server slot.
 */
export async function forward(pool: UndiciPool, instance: Instance, req: ForwardRequest, res: ServerResponse): Promise<ForwardResult> {
  const abort = new AbortController();
  const onClose = () => {
    if (!res.writableFinished) abort.abort();
  };
  res.on('close', onClose);
  let bytes = 0;
  try {
    const headers: Record<string, string> = { accept: req.headers?.accept ?? '*/*' };
    if (req.contentType) headers['content-type'] = req.contentType;
    let upstream;
    try {
      upstream = await requestRetryingStale(pool, {
        method: req.method,
        path: req.path,
        headers,
        body: req.body ?? null,
        signal: abort.signal,
        headersTimeout: 0,
        bodyTimeout: 0,
      });
    } catch (err) {
      if (abort.signal.aborted) return { status: 499, bytes, outcome: 'client_closed' };
      const error = openaiError(502, upstreamFailure(instance, err), 'upstream_error');
      // Headers already out (download progress was streamed): the error goes as an SSE event.
      if (res.headersSent) {
        res.end(`data: ${JSON.stringify(error)}\n\n`);
        return { status: 502, bytes, outcome: 'upstream_error' };
      }
      const body = JSON.stringify(error);
      res.writeHead(502, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
      return { status: 502, bytes: body.length, outcome: 'upstream_error' };
    }
    const outHeaders: Record<string, string> = {};
    for (const name of PASSED_RESPONSE_HEADERS) {
      const v = upstream.headers[name];
      if (typeof v === 'string') outHeaders[name] = v;
    }
    const sse = isEventStream(outHeaders['content-type']);
    if (res.headersSent) {
      // Download progress already opened an SSE stream with 200: an upstream error becomes an error event.
      if (upstream.statusCode >= 400) {
        const text = await upstream.body.text();
        res.end(`data: ${JSON.stringify(openaiError(upstream.statusCode, text.slice(0, 2000), 'upstream_error'))}\n\n`);
        return { status: upstream.statusCode, bytes, outcome: 'upstream_error' };
      }
    } else {
      res.writeHead(upstream.statusCode, outHeaders);
      if (sse) res.flushHeaders();
    }
    const transform = req.transform?.(upstream.statusCode, outHeaders['content-type']);
    const body: AsyncIterable<Buffer | string> = transform ? transform(upstream.body) : upstream.body;
    try {
      for await (const chunk of body) {
        bytes += typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length;
        // Respect the client's pace: stop reading upstream while the client's buffer is full.
        if (!res.write(chunk) && !res.destroyed) await once(res, 'drain', { signal: abort.signal });
      }
    } catch (err) {
      if (abort.signal.aborted || res.destroyed) return { status: upstream.statusCode, bytes, outcome: 'client_closed' };
      // A dying instance closes its sockets a moment before its exit is seen: wait briefly to name the exit.
      await Promise.race([instance.waitExit(), sleep(EXIT_GRACE_MS)]);
      // The instance died mid-answer: tell an SSE client with an error event, then close.
      if (sse) {
        res.end(`data: ${JSON.stringify(openaiError(502, upstreamFailure(instance, err), 'upstream_error'))}\n\n`);
      } else {
        res.destroy();
      }
      return { status: upstream.statusCode, bytes, outcome: 'upstream_error' };
    }
    res.end();
    return { status: upstream.statusCode, bytes, outcome: 'ok' };
  } finally {
    res.off('close', onClose);
  }
}

/** A model call that failed: the status it answered (502 when it could not be reached) and why. */
export class UpstreamCallError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'UpstreamCallError';
  }
}

/**
 * One JSON request to an instance, its JSON answer returned whole (for agents calling a model through the
 * proxy). Throws UpstreamCallError for a non-2xx answer or a body that is not a JSON object.
 */
export async function requestJson(pool: UndiciPool, instance: Instance, path: string, body: Record<string, unknown>, signal: AbortSignal): Promise<Record<string, unknown>> {
  let upstream;
  try {
    upstream = await requestRetryingStale(pool, {
      method: 'POST',
      path,
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify(body),
      signal,
      headersTimeout: 0,
      bodyTimeout: 0,
    });
  } catch (err) {
    if (signal.aborted) throw err;
    throw new UpstreamCallError(502, upstreamFailure(instance, err));
  }
  const text = await upstream.body.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  const ok = upstream.statusCode >= 200 && upstream.statusCode < 300;
  if (!ok || typeof json !== 'object' || json === null || Array.isArray(json)) {
    const detail = (json as { error?: { message?: unknown } } | undefined)?.error?.message;
    throw new UpstreamCallError(ok ? 502 : upstream.statusCode, `model "${instance.spec.modelId}" answered ${upstream.statusCode}: ${typeof detail === 'string' ? detail : text.slice(0, 300)}`);
  }
  return json as Record<string, unknown>;
}
