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

export interface ForwardRequest {
  method: 'GET' | 'POST';
  /** Path and query on the instance. */
  path: string;
  body?: string | Buffer;
  contentType?: string;
  headers?: IncomingHttpHeaders;
}

export interface ForwardResult {
  status: number;
  /** Bytes sent to the client. */
  bytes: number;
  /** How the exchange ended. */
  outcome: 'ok' | 'client_closed' | 'upstream_error';
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
      upstream = await pool.request({
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
      const body = JSON.stringify(openaiError(502, upstreamFailure(instance, err), 'upstream_error'));
      res.writeHead(502, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
      return { status: 502, bytes: body.length, outcome: 'upstream_error' };
    }
    const outHeaders: Record<string, string> = {};
    for (const name of PASSED_RESPONSE_HEADERS) {
      const v = upstream.headers[name];
      if (typeof v === 'string') outHeaders[name] = v;
    }
    const sse = isEventStream(outHeaders['content-type']);
    res.writeHead(upstream.statusCode, outHeaders);
    if (sse) res.flushHeaders();
    try {
      for await (const chunk of upstream.body) {
        bytes += (chunk as Buffer).length;
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
