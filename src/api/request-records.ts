/**
 * Every proxied request gets a record (src/requests): opened when it arrives (onRequest, for the routes
 * recordedRoute names), noted by the one pipeline while it is served (where it went, how long it waited, what
 * the answer said about tokens and speed), closed and kept when its response ends. The record carries the API
 * key's name, never the key; bodies only with server.captureBodies (bounded; no header that carries a secret).
 * GET /requests (JSON), GET /requests/stream (SSE, every new record), GET /requests/:id.
 */
import type { ServerResponse } from 'node:http';
import type { FastifyRequest } from 'fastify';
import { ClientError } from '../models/index.js';
import { buildRecord, recordedRoute, safeHeaders, type AnswerFacts, type RequestDraft, type RequestLog, type RequestRecord, type UpstreamNote } from '../requests/index.js';
import { requestedModel } from './policy-hook.js';
import { requestKey } from './request-key.js';
import type { SseFeeds } from './sse-feed.js';
import type { ProxyApp } from './types.js';

/** The response header naming a request's record (the playground reads it to show where its answer ran). */
export const REQUEST_ID_HEADER = 'x-llama-smart-proxy-request';

const drafts = new WeakMap<ServerResponse, RequestDraft>();
/** A record as listed and streamed: without its bodies (GET /requests/:id has them), serialised once. */
const summaries = new WeakMap<RequestRecord, string>();

function summary(record: RequestRecord): RequestRecord & { has_bodies?: true } {
  if (!record.bodies) return record;
  const { bodies: _bodies, ...rest } = record;
  return { ...rest, has_bodies: true };
}

function summaryJson(record: RequestRecord): string {
  let json = summaries.get(record);
  if (json === undefined) summaries.set(record, (json = JSON.stringify(summary(record))));
  return json;
}

/** The draft of the request `res` answers, if it is recorded. */
export function draftOf(res: ServerResponse | undefined): RequestDraft | undefined {
  return res ? drafts.get(res) : undefined;
}

/** Where the request went (the pipeline, when it took the upstream). */
export function noteUpstream(res: ServerResponse | undefined, note: UpstreamNote): void {
  const d = draftOf(res);
  if (d) d.upstream = note;
}

/** What the answer said (tokens, timings) and when its first piece went out. */
export function noteAnswer(res: ServerResponse | undefined, facts: AnswerFacts, firstAt?: number): void {
  const d = draftOf(res);
  if (!d) return;
  d.answer = facts;
  if (firstAt) d.firstByteAt = firstAt;
}

export function noteError(res: ServerResponse | undefined, message: string): void {
  const d = draftOf(res);
  if (d && d.error === undefined) d.error = message.slice(0, 2000);
}

export function noteAgents(res: ServerResponse | undefined, names: readonly string[]): void {
  const d = draftOf(res);
  if (d) d.agents = [...names];
}

export interface RequestRecordsOptions {
  log: RequestLog;
  feeds: SseFeeds;
  /** Keep request and response bodies, each up to this many bytes (undefined: keep none). */
  captureBytes?: number | undefined;
}

/** Whether the body asks for a streamed answer (Ollama's chat and generate stream unless told not to). */
function streamOf(request: FastifyRequest, endpoint: string): boolean | undefined {
  const json = request.parsedBody?.json;
  if (!json || typeof json !== 'object' || Array.isArray(json)) return undefined;
  const stream = (json as Record<string, unknown>).stream;
  if (endpoint === 'api/chat' || endpoint === 'api/generate') return stream !== false;
  return stream === true;
}

/** Copies the first `limit` bytes of what is written to `res` (captureBodies). */
function captureResponse(res: ServerResponse, limit: number, into: { response: string; truncated: boolean }): void {
  const parts: Buffer[] = [];
  let kept = 0;
  const keep = (chunk: unknown) => {
    if (chunk === undefined || chunk === null || typeof chunk === 'function') return;
    const buf = typeof chunk === 'string' ? Buffer.from(chunk) : Buffer.isBuffer(chunk) ? chunk : chunk instanceof Uint8Array ? Buffer.from(chunk) : undefined;
    if (!buf) return;
    if (kept >= limit) {
      into.truncated = true;
      return;
    }
    const take = buf.subarray(0, limit - kept);
    if (take.length < buf.length) into.truncated = true;
    parts.push(take);
    kept += take.length;
  };
  const write = res.write.bind(res) as (...args: unknown[]) => boolean;
  const end = res.end.bind(res) as (...args: unknown[]) => ServerResponse;
  res.write = ((...args: unknown[]) => {
    keep(args[0]);
    return write(...args);
  }) as typeof res.write;
  res.end = ((...args: unknown[]) => {
    keep(args[0]);
    into.response = Buffer.concat(parts).toString('utf8');
    return end(...args);
  }) as typeof res.end;
}

export function registerRequestRecords(app: ProxyApp, { log, feeds, captureBytes }: RequestRecordsOptions): void {
  // A callback hook, not an async one: it runs on every request, and a promise each time shows in bench:requests.
  app.addHook('onRequest', (request, reply, done) => {
    const route = recordedRoute(request.method, request.url);
    if (!route) return done();
    const res = reply.raw;
    const q = request.url.indexOf('?');
    const draft: RequestDraft = { id: log.nextId(), startedAt: Date.now(), route, method: request.method, path: q < 0 ? request.url : request.url.slice(0, q) };
    drafts.set(res, draft);
    res.setHeader(REQUEST_ID_HEADER, draft.id);
    if (captureBytes !== undefined) {
      draft.bodies = { request: '', requestHeaders: safeHeaders(request.headers), response: '', truncated: false };
      captureResponse(res, captureBytes, draft.bodies);
    }
    res.once('close', () => {
      draft.model ??= requestedModel(request);
      draft.stream ??= streamOf(request, route.endpoint);
      draft.key = requestKey(request).name;
      if (draft.bodies) {
        const raw = request.parsedBody?.raw;
        if (raw) {
          draft.bodies.request = raw.subarray(0, captureBytes).toString('utf8');
          if (raw.length > captureBytes!) draft.bodies.truncated = true;
        }
      }
      log.add(buildRecord(draft, { endedAt: Date.now(), statusCode: res.statusCode, headersSent: res.headersSent, finished: res.writableFinished }));
    });
    done();
  });

  app.get('/requests', async (request) => {
    const q = request.query as Record<string, unknown>;
    let limit = 100;
    if (q.limit !== undefined) {
      limit = Number(q.limit);
      if (!Number.isInteger(limit) || limit < 1) throw new ClientError(400, 'invalid_limit', `limit must be a positive whole number, got "${String(q.limit)}"`);
    }
    if (q.model !== undefined && typeof q.model !== 'string') throw new ClientError(400, 'invalid_model', 'model must be given once');
    const model = typeof q.model === 'string' && q.model !== '' ? q.model : undefined;
    return { capacity: log.capacity, kept: log.size, requests: log.list({ limit, ...(model ? { model } : {}) }).map(summary) };
  });

  app.get('/requests/stream', async (request, reply) => {
    const q = request.query as Record<string, unknown>;
    const model = typeof q.model === 'string' && q.model !== '' ? q.model : undefined;
    const feed = feeds.start(reply);
    const unsubscribe = log.subscribe((record) => {
      if (model === undefined || record.model === model) feed.send(summaryJson(record), 'request');
    });
    feed.onClose(unsubscribe);
  });

  app.get('/requests/:id', async (request) => {
    const { id } = request.params as { id: string };
    const record = log.get(id);
    if (!record) throw new ClientError(404, 'request_not_found', `no request "${id}" among the last ${log.size} kept (server.requestLog: ${log.capacity})`);
    return record;
  });
}
