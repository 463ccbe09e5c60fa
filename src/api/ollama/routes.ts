/**
 * Ollama's API, served by the proxy: /api/chat, /api/generate, /api/embed, /api/embeddings, /api/tags, /api/ps,
 * /api/show, /api/version, /api/pull (Hugging Face models into the cache, Ollama names from Ollama's registry into the
 * store), and `GET /` / `HEAD /`. For our models
 * each request is translated to llama-server's OpenAI-compatible API (translate.ts), always streamed from it so
 * that the last line carries its timings, and the answer translated back (respond.ts), through the request's
 * agents when its prompt names some. Models of the Ollama backend get the request as it came (model renamed), their
 * answer passed through; with agents they go through Ollama's /v1 endpoints like ours. Errors are Ollama's
 * `{"error": "..."}` with the HTTP status.
 */
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import type { ServerResponse } from 'node:http';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { Cluster } from '../../cluster/cluster.js';
import { forwardedFrom, keepAliveHeaders } from '../../cluster/forwarded.js';
import { requestKey } from '../request-key.js';
import { assembleCompletion, completionEvents, parseSseStream, type AgentEndpoint, type AgentPlan, type AgentReply, type AgentSession, type JsonObject, type SseEvent } from '../../agents/index.js';
import type { Config } from '../../config/index.js';
import { ClientError, pullTarget, withoutHfHost, withRunningContext, type ModelHub, type ResolvedModel } from '../../models/index.js';
import type { IdleTimeout, Pool } from '../../pool/pool.js';
import { whenDone } from '../agent-exchange.js';
import { bodyObject, clientGone, jsonBodyParser } from '../body.js';
import { describeError, UpstreamCallError } from '../errors.js';
import { countTokens, modelRefusal } from '../policy-hook.js';
import { AnswerTail, readAnswer } from '../../requests/index.js';
import { noteAgents, noteAnswer, noteError } from '../request-records.js';
import { embeddingsModel, type ModelResolver } from '../model-resolution.js';
import { applyRequestRules } from '../request-rules.js';
import { keepModelAndStream, routeId, routeRules, type BackendRoute, type ExchangeOptions, type ModelRoute, type PromptPipeline, type Upstream } from '../prompt-pipeline.js';
import type { ProxyApp } from '../types.js';
import { errorMessageOf, forward, openUpstream, requestJson, type ErrorFormat, type UpstreamTarget } from '../upstream.js';
import type { OllamaBackend } from './backend.js';
import type { OllamaPuller } from '../../sources/index.js';
import type { ModelEstimator } from '../model-estimates.js';
import { pullOllamaName, streamPull, type OllamaPullDeps } from './pull.js';
import { hasProjector, localTags, peerRunningEntries, runningEntries, showModel } from './catalog.js';
import { completionToOllama, createdAt, embeddingVectors, embedResponse, errorText, StreamTranslator, type OllamaKind, type RequestTimes } from './respond.js';
import { chatRequest, contextSize, generateRequest, hasImages, parseKeepAlive, type KeepAlive, type OllamaMessage } from './translate.js';

/** The Ollama version /api/version reports: the API level this translation follows (clients gate features on it). */
export const OLLAMA_API_VERSION = '0.12.6';

export interface OllamaRouteDeps {
  config: Config;
  pool: Pool;
  resolver: ModelResolver;
  pipeline: PromptPipeline;
  hub?: ModelHub | undefined;
  backend?: OllamaBackend | undefined;
  startedAt: number;
  /** Other nodes' instances and models are listed too. */
  cluster?: Cluster | undefined;
  /** Pulls Ollama names from Ollama's registry. */
  puller?: OllamaPuller | undefined;
  /** Estimates shown in /api/tags. */
  estimator?: ModelEstimator | undefined;
  /** Refuses a model that can never fit, from its header, before it is pulled. */
  checkFits?: OllamaPullDeps['checkFits'];
}

export const OLLAMA_ERRORS: ErrorFormat = {
  body: (_status, message) => JSON.stringify({ error: message }),
  streamEvent: (_status, message) => `${JSON.stringify({ error: message })}\n`,
};

const NDJSON = 'application/x-ndjson';

/** The model a request names (older clients say "name"); Ollama's message when there is none. */
function modelField(body: Record<string, unknown>): string {
  const m = body.model ?? body.name;
  if (typeof m !== 'string' || m.trim() === '') throw new ClientError(400, 'model_required', 'model is required');
  return m;
}

/** Ollama's spellings of our names: `hf.co/owner/repo:Q4_K_M` is a Hugging Face id, `alias:latest` the alias. */
export function canonicalModel(name: string, aliases: Readonly<Record<string, unknown>>): string {
  let n = withoutHfHost(name);
  if (n.endsWith(':latest') && !(n in aliases) && n.slice(0, -':latest'.length) in aliases) n = n.slice(0, -':latest'.length);
  return n;
}

function idleTimeout(k: KeepAlive): IdleTimeout {
  switch (k.kind) {
    case 'default':
      return 'default';
    case 'unload':
      return 'unload';
    case 'forever':
      return 'forever';
    case 'seconds':
      return { seconds: k.seconds };
  }
}

/** keep_alive as a number of seconds (the model's default: undefined, so the other node uses its own). */
function keepAliveSeconds(k: KeepAlive): number | undefined {
  return k.kind === 'unload' ? 0 : k.kind === 'forever' ? -1 : k.kind === 'seconds' ? k.seconds : undefined;
}

function nanosSince(startNs: bigint): number {
  return Number(process.hrtime.bigint() - startNs);
}

/** The request translated for llama-server: path, agent endpoint, body (always streamed). */
interface Translated {
  path: string;
  endpoint: AgentEndpoint;
  body: JsonObject;
}

function translate(kind: OllamaKind, body: Record<string, unknown>): Translated {
  if (kind === 'chat') return { path: '/v1/chat/completions', endpoint: 'chat/completions', body: chatRequest(body) };
  return generateRequest(body);
}

/** Whether the request has nothing to say: Ollama then only loads (or, with keep_alive 0, unloads) the model. */
function isEmptyPrompt(kind: OllamaKind, body: Record<string, unknown>): boolean {
  if (kind === 'chat') return !Array.isArray(body.messages) || body.messages.length === 0;
  return (body.prompt === undefined || body.prompt === null || body.prompt === '') && !hasImages(undefined, body.images);
}

function wantsImages(kind: OllamaKind, body: Record<string, unknown>): boolean {
  return kind === 'chat' ? Array.isArray(body.messages) && hasImages(body.messages as OllamaMessage[]) : hasImages(undefined, body.images);
}

/**
 * Passes SSE batches on; the last `usage` seen (include_usage's final chunk) is counted once they end, and the
 * request's record told it with the last `timings` and when the first batch came.
 */
async function* usageOf(batches: AsyncIterable<SseEvent[]>, count: (prompt: number, completion: number) => void, res?: ServerResponse): AsyncGenerator<SseEvent[]> {
  let usage: { prompt_tokens?: unknown; completion_tokens?: unknown } | undefined;
  let timings: unknown;
  let firstAt = 0;
  try {
    for await (const batch of batches) {
      if (firstAt === 0) firstAt = Date.now();
      for (const e of batch) {
        if (!e.data) continue;
        if (typeof e.data.usage === 'object' && e.data.usage !== null) usage = e.data.usage as typeof usage;
        if (typeof e.data.timings === 'object' && e.data.timings !== null) timings = e.data.timings;
      }
      yield batch;
    }
  } finally {
    if (usage) count(Number(usage.prompt_tokens) || 0, Number(usage.completion_tokens) || 0);
    if (usage || timings) {
      const facts = readAnswer(JSON.stringify({ usage, timings }));
      noteAnswer(res, facts, firstAt);
    }
  }
}

async function* fromArray<T>(items: readonly T[]): AsyncGenerator<T> {
  yield* items;
}

/** Writes Ollama's NDJSON stream from SSE event batches; returns how it ended. */
async function writeNdjson(res: ServerResponse, batches: AsyncIterable<SseEvent[]>, translator: StreamTranslator, times: () => RequestTimes, signal: AbortSignal, failure: (err: unknown) => string): Promise<'ok' | 'client_closed' | 'upstream_error'> {
  if (!res.headersSent) {
    res.writeHead(200, { 'content-type': NDJSON, 'cache-control': 'no-cache' });
    res.flushHeaders();
  }
  try {
    for await (const batch of batches) {
      let text = '';
      for (const event of batch) {
        if (!event.data) continue;
        for (const line of translator.event(event.data)) text += `${JSON.stringify(line)}\n`;
        if (translator.error !== undefined) break;
      }
      if (translator.error !== undefined) {
        res.end(`${text}${JSON.stringify({ error: translator.error })}\n`);
        return 'upstream_error';
      }
      if (res.destroyed) return 'client_closed';
      if (text && !res.write(text)) await once(res, 'drain', { signal });
    }
  } catch (err) {
    if (signal.aborted || res.destroyed) return 'client_closed';
    res.end(`${JSON.stringify({ error: failure(err) })}\n`);
    return 'upstream_error';
  }
  res.end(translator.final(times()).map((line) => `${JSON.stringify(line)}\n`).join(''));
  return 'ok';
}

/** The data objects of a whole SSE answer; an error event becomes an UpstreamCallError. */
async function gather(batches: AsyncIterable<SseEvent[]>, failure: (err: unknown) => UpstreamCallError): Promise<JsonObject[]> {
  const chunks: JsonObject[] = [];
  try {
    for await (const batch of batches) for (const e of batch) if (e.data) chunks.push(e.data);
  } catch (err) {
    throw failure(err);
  }
  for (const c of chunks) {
    const message = errorText(c);
    if (message !== undefined) throw new UpstreamCallError(500, message);
  }
  return chunks;
}

/** A request another node forwarded is served here; every answer names its node. */
function here(request: FastifyRequest, reply: FastifyReply): ExchangeOptions {
  return { stay: forwardedFrom(request) !== undefined, res: reply.raw, key: requestKey(request) };
}

export function registerOllamaRoutes(app: ProxyApp, deps: OllamaRouteDeps): void {
  const { config, pool, pipeline } = deps;
  const agents = pipeline.agents;

  // Ollama answers its root like this; clients (and people) use it to see that the server is up. HEAD too.
  app.get('/', async (_request, reply) => reply.type('text/plain; charset=utf-8').send('Ollama is running'));

  void app.register(
    async (api) => {
      // Ollama reads any body as JSON: `curl -d` sends it as a form.
      api.addContentTypeParser('*', { parseAs: 'buffer' }, jsonBodyParser({ maxJsonDepth: config.server.maxJsonDepth }));
      api.setErrorHandler((err, request, reply) => {
        const { status, message, retryAfter } = describeError(err);
        noteError(reply.raw, message);
        if (status >= 500) request.log.error({ err, url: request.url }, 'request failed');
        else request.log.info({ status, url: request.url, reason: message }, 'request refused');
        if (reply.raw.headersSent) {
          if (!reply.raw.writableEnded) reply.raw.end(`${JSON.stringify({ error: message })}\n`);
          return;
        }
        if (retryAfter !== undefined) void reply.header('retry-after', String(retryAfter));
        void reply.code(status).send({ error: message });
      });
      api.setNotFoundHandler((request, reply) => {
        void reply.code(404).send({ error: `no route for ${request.method} ${request.url}` });
      });

      /** A request for a model of the Ollama backend, sent as it came (model renamed), its answer passed through. */
      async function passthrough(request: FastifyRequest, reply: FastifyReply, route: BackendRoute, path: string, body: Record<string, unknown>): Promise<void> {
        const started = Date.now();
        const signal = clientGone(reply);
        // The backend is not ours to restart: one try (its target never asks for another).
        await pipeline.exchange(route, signal, async (upstream) => {
          reply.hijack();
          const sent = { ...body, model: route.name, ...(body.name !== undefined ? { name: route.name } : {}) };
          const tail = new AnswerTail();
          const result = await forward(upstream.target, { method: 'POST', path, body: JSON.stringify(sent), contentType: 'application/json', headers: request.headers, errors: OLLAMA_ERRORS, tap: (chunk) => tail.push(chunk) }, reply.raw);
          noteAnswer(reply.raw, tail.read(), tail.firstAt);
          request.log.info({ model: route.id, ...upstream.logFields(), path, status: result.status, outcome: result.outcome, ms: Date.now() - started }, 'proxied');
        }, undefined, { res: reply.raw });
      }

      /** The model of ours a request names, at the context size it asks for. */
      async function localModel(name: string, body: Record<string, unknown>, signal: AbortSignal): Promise<ResolvedModel> {
        const model = await deps.resolver.async(name, { signal });
        const ctx = contextSize(body.options);
        // A running instance with room enough serves it: clients that send num_ctx on every call (LlamaIndex)
        // would otherwise start a #ctx instance per size and evict others.
        return ctx === undefined ? model : withRunningContext(model, ctx, pool.list().filter((i) => i.state !== 'stopping'));
      }

      /**
       * No prompt: load the model (keep_alive applies) or, with keep_alive 0, unload it. In a cluster a load may be
       * placed on another node (the request goes there), and an unload reaches every node that runs the model.
       */
      async function loadOrUnload(request: FastifyRequest, kind: OllamaKind, reply: FastifyReply, model: ResolvedModel, field: string, keepAlive: KeepAlive, stream: boolean, signal: AbortSignal): Promise<void> {
        let reason: 'load' | 'unload';
        const cluster = deps.cluster;
        const forwarded = forwardedFrom(request) !== undefined;
        // The same prompt-less request, to the node that serves the model there.
        const onPeer = (target: UpstreamTarget, keep: number | undefined) => requestJson(target, `/api/${kind}`, { model: field, keep_alive: keep, stream: false }, signal, field);
        if (keepAlive.kind === 'unload') {
          const id = model.variantOf ?? model.id;
          await pool.unload(id);
          if (cluster && !forwarded) {
            const nodes = new Set(cluster.peerInstances().filter(({ instance }) => instance.modelId === id || instance.modelId.startsWith(`${id}#`)).map((p) => p.node));
            await Promise.all([...nodes].map((node) => onPeer(cluster.target(node), 0).catch((err: Error) => request.log.warn({ node, model: id, reason: err.message }, 'unload on another node failed'))));
          }
          reason = 'unload';
        } else {
          const upstream = await pipeline.acquire({ kind: 'local', model }, signal, undefined, forwarded, requestKey(request), false);
          try {
            if (upstream.node !== undefined) await onPeer(upstream.target, keepAliveSeconds(keepAlive));
            else upstream.lease?.keepAlive(idleTimeout(keepAlive));
          } finally {
            upstream.release();
          }
          reason = 'load';
        }
        const head = { model: field, created_at: createdAt() };
        const line = kind === 'chat' ? { ...head, message: { role: 'assistant', content: '' }, done_reason: reason, done: true } : { ...head, response: '', done: true, done_reason: reason };
        if (stream) void reply.type(NDJSON).send(`${JSON.stringify(line)}\n`);
        else void reply.send(line);
      }

      /** An agent answered by itself: through the response hooks, in Ollama's format. */
      async function writeAgentAnswer(reply: FastifyReply, session: AgentSession, answer: AgentReply, kind: OllamaKind, field: string, stream: boolean, startNs: bigint, signal: AbortSignal): Promise<number> {
        const times = () => ({ totalNs: nanosSince(startNs), loadNs: 0 });
        if (answer.status !== 200) {
          const message = errorText(answer.body) ?? JSON.stringify(answer.body);
          void reply.code(answer.status).send({ error: message });
          return answer.status;
        }
        if (!stream) {
          void reply.send(completionToOllama(await session.runResponse(answer.body), kind, field, times()));
          return 200;
        }
        reply.hijack();
        const batches = session.streamStages(fromArray([completionEvents(answer.body)]));
        await writeNdjson(reply.raw, batches, new StreamTranslator(kind, field), times, signal, (err) => (err as Error).message);
        return 200;
      }

      /** A prompt through llama-server (or Ollama's /v1), its agents, and back in Ollama's format. */
      async function runPrompt(
        request: FastifyRequest,
        reply: FastifyReply,
        kind: OllamaKind,
        route: ModelRoute,
        translated: Translated,
        plan: AgentPlan | undefined,
        ctx: { field: string; name: string; stream: boolean; keepAlive: KeepAlive; signal: AbortSignal; startNs: bigint },
      ): Promise<void> {
        const { field, name, stream, keepAlive, signal, startNs } = ctx;
        const log = request.log as Logger;
        // What agents see: the OpenAI request as the client's choice of streaming would have it.
        const agentBody: JsonObject = { ...translated.body, stream };
        const refusal = modelRefusal(request);
        const caller = { key: requestKey(request), ...(refusal ? { refusal } : {}) };
        const served = plan ? pipeline.session({ requestId: String(request.id), route, modelField: name, endpoint: translated.endpoint, plan, stream, log, signal, caller }) : undefined;
        const session = served?.session;
        if (session) noteAgents(reply.raw, session.names);
        const logFields = () => (session ? { agents: session.names, agentsFailed: session.failed } : {});
        try {
          let sent = agentBody;
          if (session && plan) {
            const outcome = await session.runRequest(plan.body);
            if (outcome.reply) {
              const status = await writeAgentAnswer(reply, session, outcome.reply, kind, field, stream, startNs, signal);
              log.info({ model: routeId(route), path: request.url, answeredBy: outcome.reply.agent, status, ...logFields() }, 'answered by agent');
              return;
            }
            sent = keepModelAndStream(outcome.body, agentBody, log);
          }
          await pipeline.exchange(route, signal, async (upstream: Upstream) => {
            served?.served(upstream);
            upstream.lease?.keepAlive(idleTimeout(keepAlive));
            // The model's request rules on the translated body; the stream is the proxy's to set.
            const body = { ...applyRequestRules({ ...sent, model: upstream.upstreamModel ?? sent.model }, routeRules(route)), stream: true, stream_options: { include_usage: true } };
            // Served by another node: its instance gets the client's keep_alive (a header, the body is OpenAI's).
            const headers = upstream.node !== undefined ? keepAliveHeaders(idleTimeout(keepAlive)) : undefined;
            const res = await openUpstream(upstream.target, { path: translated.path, body: JSON.stringify(body), accept: 'text/event-stream', ...(headers ? { headers } : {}) }, signal);
            if (res.statusCode < 200 || res.statusCode >= 300) {
              throw new UpstreamCallError(res.statusCode, errorMessageOf(await res.body.text()));
            }
            const times = () => ({ totalNs: nanosSince(startNs), loadNs: upstream.waitedMs * 1e6 });
            // The instance is free as soon as its answer has been read (before whole-answer hooks run).
            const batches = usageOf(parseSseStream(whenDone(res.body as AsyncIterable<Buffer>, () => upstream.release())), (p, c) => countTokens(request, p, c), reply.raw);
            let outcome: string;
            if (stream) {
              reply.hijack();
              outcome = await writeNdjson(reply.raw, session ? session.streamStages(batches) : batches, new StreamTranslator(kind, field), times, signal, (err) => upstream.target.failure(err).message);
            } else {
              const chunks = await gather(batches, (err) => {
                const f = upstream.target.failure(err);
                return new UpstreamCallError(f.status, f.message);
              });
              let completion = assembleCompletion(chunks);
              if (session?.hasResponseHooks(false)) completion = await session.runResponse(completion);
              void reply.send(completionToOllama(completion, kind, field, times()));
              outcome = 'ok';
            }
            log.info({ model: routeId(route), ...upstream.logFields(), path: request.url, upstreamPath: translated.path, stream, outcome, waitedMs: upstream.waitedMs, ms: Math.round(nanosSince(startNs) / 1e6), ...logFields() }, 'proxied');
          }, log, here(request, reply));
        } finally {
          session?.finish();
        }
      }

      async function servePrompt(kind: OllamaKind, request: FastifyRequest, reply: FastifyReply): Promise<void> {
        const startNs = process.hrtime.bigint();
        const body = bodyObject(request);
        const field = modelField(body);
        const name = canonicalModel(field, config.models);
        const stream = body.stream !== false;
        const keepAlive = parseKeepAlive(body.keep_alive);
        const signal = clientGone(reply);
        const ctx = { field, name, stream, keepAlive, signal, startNs };
        const empty = isEmptyPrompt(kind, body);

        const backend = pipeline.backendRoute(name);
        if (backend) {
          // Ollama's own API unless agents are asked for (they work on the OpenAI shape, through Ollama's /v1).
          let translated: Translated | undefined;
          try {
            translated = empty ? undefined : translate(kind, body);
          } catch {
            translated = undefined; // what we cannot translate, Ollama may still take
          }
          const plan = translated && !forwardedFrom(request) ? agents.plan(translated.endpoint, { ...translated.body, stream }, routeId(backend)) : undefined;
          if (!translated || !plan) return passthrough(request, reply, backend, `/api/${kind}`, body);
          return runPrompt(request, reply, kind, backend, translated, plan, ctx);
        }

        const model = await localModel(name, body, signal);
        if (empty) return loadOrUnload(request, kind, reply, model, field, keepAlive, stream, signal);
        if (wantsImages(kind, body) && !hasProjector(model)) {
          throw new ClientError(400, 'no_vision', `model "${field}" cannot read images: it has no multimodal projector (an mmproj file beside it on Hugging Face, or --mmproj in its args)`);
        }
        const translated = translate(kind, body);
        const route: ModelRoute = { kind: 'local', model };
        // A request another node forwarded had its agents run there.
        const plan = forwardedFrom(request) ? undefined : agents.plan(translated.endpoint, { ...translated.body, stream }, routeId(route));
        return runPrompt(request, reply, kind, route, translated, plan, ctx);
      }

      api.post('/chat', (request, reply) => servePrompt('chat', request, reply));
      api.post('/generate', (request, reply) => servePrompt('generate', request, reply));

      /** /api/embed (`input`: a string or strings -> unit vectors) and the older /api/embeddings (`prompt` -> one vector). */
      async function serveEmbeddings(legacy: boolean, request: FastifyRequest, reply: FastifyReply): Promise<unknown> {
        const startNs = process.hrtime.bigint();
        const body = bodyObject(request);
        const field = modelField(body);
        const name = canonicalModel(field, config.models);
        const backend = pipeline.backendRoute(name);
        if (backend) return passthrough(request, reply, backend, legacy ? '/api/embeddings' : '/api/embed', body);
        const raw = legacy ? body.prompt : body.input;
        const inputs = raw === undefined || raw === null ? [] : typeof raw === 'string' ? (raw === '' ? [] : [raw]) : raw;
        if (!Array.isArray(inputs) || inputs.some((i) => typeof i !== 'string')) {
          throw new ClientError(400, 'invalid_input', legacy ? '"prompt" must be a string' : '"input" must be a string or a list of strings');
        }
        const dimensions = body.dimensions;
        if (dimensions !== undefined && (typeof dimensions !== 'number' || !Number.isInteger(dimensions) || dimensions <= 0)) {
          throw new ClientError(400, 'invalid_dimensions', '"dimensions" must be a positive whole number');
        }
        const keepAlive = parseKeepAlive(body.keep_alive);
        const signal = clientGone(reply);
        const model = embeddingsModel(await localModel(name, body, signal));
        return pipeline.exchange({ kind: 'local', model }, signal, async (upstream) => {
          upstream.lease?.keepAlive(idleTimeout(keepAlive));
          const times = () => ({ totalNs: nanosSince(startNs), loadNs: upstream.waitedMs * 1e6 });
          // Nothing to embed: the model is loaded, nothing else (as Ollama does).
          const json = inputs.length === 0 ? { data: [] } : await requestJson(upstream.target, '/v1/embeddings', { model: field, input: inputs }, signal, model.id);
          request.log.info({ model: model.id, ...upstream.logFields(), path: request.url, inputs: inputs.length, waitedMs: upstream.waitedMs, ms: Math.round(nanosSince(startNs) / 1e6) }, 'proxied');
          if (legacy) return { embedding: embeddingVectors(json)[0] ?? [] };
          return embedResponse(json, field, times(), dimensions as number | undefined);
        }, request.log as Logger, here(request, reply));
      }

      api.post('/embed', (request, reply) => serveEmbeddings(false, request, reply));
      api.post('/embeddings', (request, reply) => serveEmbeddings(true, request, reply));

      api.get('/tags', async (request) => {
        const models: Record<string, unknown>[] = localTags(config, deps.hub, deps.startedAt, deps.estimator).map((m) => ({ ...m }));
        const backend = deps.backend;
        if (backend) {
          let listed: Awaited<ReturnType<OllamaBackend['tags']>> = [];
          try {
            listed = await backend.tags();
          } catch (err) {
            request.log.warn({ backend: backend.url, reason: backend.failure(err).message }, 'Ollama backend models not listed');
          }
          // Configured aliases first, with what Ollama says of the model they name.
          for (const [alias, remote] of backend.configured()) {
            const found = listed.find((m) => m.name === remote || m.model === remote);
            models.push({ ...(found ?? {}), name: alias, model: alias });
          }
          if (backend.listModels) for (const m of listed) models.push({ ...m, name: backend.publicName(m.name), model: backend.publicName(m.model ?? m.name) });
        }
        // Models only other nodes of the cluster hold: a request for one is served there.
        if (deps.cluster) {
          const here = new Set(models.map((m) => m.name));
          for (const [id, nodes] of deps.cluster.peerModels()) {
            if (!here.has(id)) models.push({ name: id, model: id, modified_at: new Date(deps.startedAt).toISOString(), size: 0, digest: '', details: {}, nodes });
          }
        }
        return { models };
      });

      api.get('/ps', async (request) => {
        const models: Record<string, unknown>[] = runningEntries(pool.list()).map((m) => ({ ...m, ...(deps.cluster ? { node: deps.cluster.name } : {}) }));
        if (deps.cluster) models.push(...peerRunningEntries(config, deps.cluster.peerInstances()).map((m) => ({ ...m })));
        const backend = deps.backend;
        if (backend?.listModels) {
          try {
            for (const m of await backend.running()) models.push({ ...m, name: backend.publicName(m.name), model: backend.publicName(m.model ?? m.name) });
          } catch (err) {
            request.log.warn({ backend: backend.url, reason: backend.failure(err).message }, 'Ollama backend models not listed');
          }
        }
        return { models };
      });

      api.post('/show', async (request, reply) => {
        const body = bodyObject(request);
        const name = canonicalModel(modelField(body), config.models);
        const backend = pipeline.backendRoute(name);
        if (backend) return passthrough(request, reply, backend, '/api/show', body);
        // Only what is on disk: showing a model does not download it.
        return showModel(deps.resolver.sync(name));
      });

      api.get('/version', async () => ({ version: OLLAMA_API_VERSION }));

      // Downloads a Hugging Face model (`hf.co/owner/repo:QUANT` as Ollama users write it) into the cache, with
      // Ollama's progress lines: what `ollama pull` shows. A model of the Ollama backend is pulled there.
      api.post('/pull', async (request, reply) => {
        const body = bodyObject(request);
        const name = canonicalModel(modelField(body), config.models);
        const backend = pipeline.backendRoute(name);
        if (backend) return passthrough(request, reply, backend, '/api/pull', body);
        const pulled = pullTarget(config, name);
        if (pulled.kind === 'ollama') {
          if (!deps.puller) throw new ClientError(501, 'not_supported', 'this proxy runs without an Ollama registry client: Ollama names cannot be pulled');
          const signal = clientGone(reply);
          if (body.stream !== false) reply.hijack();
          return pullOllamaName({ config, puller: deps.puller, checkFits: deps.checkFits }, pulled.name, body.stream !== false, reply.raw, signal);
        }
        const hub = deps.hub;
        if (!hub) throw new ClientError(501, 'not_supported', 'this proxy runs without a Hugging Face hub: nothing can be pulled');
        const target = pulled;
        const signal = clientGone(reply);
        if (body.stream === false) {
          const resolution = await hub.resolve(target.repo, target.variant);
          await hub.ensureDownloaded(resolution, { signal });
          return { status: 'success' };
        }
        reply.hijack();
        await streamPull(reply.raw, async (send) => {
          const resolution = await hub.resolve(target.repo, target.variant);
          // The whole model (every part, and the projector) counts as one layer: one progress bar.
          const first = resolution.parts[0]!;
          const digest = `sha256:${first.sha256 ?? createHash('sha256').update(first.etag).digest('hex')}`;
          const progress = (completed: number) => send({ status: `pulling ${digest.slice(7, 19)}`, digest, total: resolution.totalBytes, completed });
          progress(resolution.totalBytes - resolution.missingBytes);
          await hub.ensureDownloaded(resolution, { signal, onProgress: (p) => progress(p.receivedBytes) });
          progress(resolution.totalBytes);
        });
      });

      for (const path of ['/push', '/create', '/copy', '/delete']) {
        api.route({
          method: path === '/delete' ? 'DELETE' : 'POST',
          url: path,
          handler: async () => {
            throw new ClientError(
              501,
              'not_supported',
              `/api${path} is not supported by llama-smart-proxy: models come from its config, its models folder, Ollama's store, LM Studio's folder and Hugging Face (named "owner/repo:QUANT", downloaded on first use or with \`llama-smart-proxy pull\`)`,
            );
          },
        });
      }
    },
    { prefix: '/api' },
  );
}
