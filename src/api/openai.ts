/**
 * The OpenAI-compatible routes: /v1/chat/completions, /v1/completions, /v1/embeddings, /v1/rerank (and their
 * unprefixed forms), llama-server's model-scoped endpoints, /v1/models. A request that names no agent goes out
 * as the raw bytes received (for a model of the Ollama backend: with "model" renamed), its answer streamed back
 * as it arrives; one that names agents goes through its chain (prompt-pipeline.ts).
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { AgentEndpoint, AgentPlan, JsonObject } from '../agents/index.js';
import type { Config } from '../config/index.js';
import { ClientError } from '../models/index.js';
import type { Pool } from '../pool/pool.js';
import { agentResponseTransform, writeAgentReply } from './agent-exchange.js';
import { bodyObject, clientGone } from './body.js';
import { describeError, openaiError } from './errors.js';
import { endStreamWithError, progressStarted, type ModelResolver } from './model-resolution.js';
import type { OllamaBackend } from './ollama/backend.js';
import { embeddingsModel, keepModelAndStream, routeId, type ModelRoute, type PromptPipeline, type Upstream } from './prompt-pipeline.js';
import type { ProxyApp } from './types.js';
import { forward, OPENAI_ERRORS, writeRawError, type BodyTransform } from './upstream.js';

/** Endpoints that carry a prompt to one model: body JSON with "model". */
export const INFERENCE_PATHS = ['chat/completions', 'completions', 'embeddings', 'rerank'] as const;
/** Of those, the ones whose prompt may run agents (embeddings and rerank never do). */
const AGENT_PATHS: ReadonlySet<string> = new Set<AgentEndpoint>(['chat/completions', 'completions']);
/** Of those, the ones Ollama's OpenAI-compatible API has. */
const BACKEND_PATHS: ReadonlySet<string> = new Set(['chat/completions', 'completions', 'embeddings']);
const MODEL_SCOPED_POST = ['/tokenize', '/detokenize', '/apply-template', '/infill'] as const;
const MODEL_SCOPED_GET = ['/props', '/slots'] as const;

export interface OpenAIRouteDeps {
  config: Config;
  pool: Pool;
  resolver: ModelResolver;
  pipeline: PromptPipeline;
  backend?: OllamaBackend | undefined;
  startedAt: number;
}

/** How proxyTo may differ from a plain pass-through (the agents path). */
interface ProxyOptions {
  /** The body to send instead of the raw bytes received (made for the upstream that serves the request). */
  body?: (upstream: Upstream) => string;
  /** Already listening for the client going away. */
  signal?: AbortSignal;
  /** Told which upstream serves the request. */
  onUpstream?: (upstream: Upstream) => void;
  /** Response rewriting; `upstreamDone` releases the instance early. */
  transform?: (upstreamDone: () => void) => (status: number, contentType: string | undefined) => BodyTransform | undefined;
  /** Extra fields for the request's log line. */
  logFields?: () => Record<string, unknown>;
}

function modelFromBody(request: FastifyRequest): unknown {
  const body = bodyObject(request);
  if (body.model === undefined) throw new ClientError(400, 'model_required', 'request body needs a "model" field');
  return body.model;
}

export function registerOpenAIRoutes(app: ProxyApp, deps: OpenAIRouteDeps): void {
  const { config, pool, resolver, pipeline } = deps;
  const agents = pipeline.agents;

  /** Takes the model's upstream (loading its instance if needed) and forwards the request to it. */
  async function proxyTo(request: FastifyRequest, reply: FastifyReply, route: ModelRoute, target: { method: 'GET' | 'POST'; path: string }, options: ProxyOptions = {}): Promise<void> {
    const signal = options.signal ?? clientGone(reply);
    const started = Date.now();
    let hijacked = false;
    try {
      await pipeline.exchange(
        route,
        signal,
        async (upstream, retryable) => {
          options.onUpstream?.(upstream);
          reply.hijack();
          hijacked = true;
          let body: string | Buffer | undefined;
          if (target.method === 'POST') {
            // The backend knows the model by its own name: the only case where a plain request is re-serialized.
            body = options.body?.(upstream) ?? (upstream.upstreamModel !== undefined ? JSON.stringify({ ...bodyObject(request), model: upstream.upstreamModel }) : request.parsedBody?.raw);
          }
          const result = await forward(
            upstream.target,
            {
              method: target.method,
              path: target.path,
              ...(body ? { body, contentType: 'application/json' } : {}),
              headers: request.headers,
              retryable,
              ...(options.transform ? { transform: options.transform(() => upstream.release()) } : {}),
            },
            reply.raw,
          );
          request.log.info(
            { model: routeId(route), ...upstream.logFields(), path: target.path, status: result.status, outcome: result.outcome, waitedMs: upstream.waitedMs, ms: Date.now() - started, ...options.logFields?.() },
            'proxied',
          );
        },
        request.log as Logger,
      );
    } catch (err) {
      // Before the reply was taken over (the first acquire): fastify's error handler answers.
      if (!hijacked) throw err;
      // A retry's acquire failed after the reply was taken over: answer here, in this family's shape.
      writeRawError(reply.raw, OPENAI_ERRORS, err);
      request.log.info({ url: request.url, reason: (err as Error).message }, 'request failed on its second try');
    }
  }

  /** A chat/completions request: straight through when it names no agent, else through its agent chain. */
  async function proxyPrompt(request: FastifyRequest, reply: FastifyReply, endpoint: AgentEndpoint, target: { method: 'POST'; path: string }): Promise<void> {
    const body = bodyObject(request);
    const signal = clientGone(reply);
    try {
      // The model is resolved before any agent runs: agents never decide which model serves the request. A model
      // being downloaded shows its progress to a streamed request as SSE comments.
      const route = await pipeline.route(modelFromBody(request), { signal, ...(body.stream === true ? { progressTo: reply.raw } : {}) });
      if (progressStarted(reply.raw)) reply.hijack();
      const plan = agents.plan(endpoint, body, routeId(route));
      // No agent: the raw bytes go out exactly as received.
      if (!plan) return await proxyTo(request, reply, route, target, { signal });
      return await proxyWithAgents(request, reply, route, endpoint, target, body, plan, signal);
    } catch (err) {
      if (!progressStarted(reply.raw)) throw err;
      reply.hijack();
      endStreamWithError(reply.raw, describeError(err));
      request.log.info({ url: request.url, reason: (err as Error).message }, 'request failed after download progress');
    }
  }

  async function proxyWithAgents(request: FastifyRequest, reply: FastifyReply, route: ModelRoute, endpoint: AgentEndpoint, target: { method: 'POST'; path: string }, body: JsonObject, plan: AgentPlan, signal: AbortSignal): Promise<void> {
    const stream = body.stream === true;
    // The app's logger is pino (loggerInstance), so the request's child is one too.
    const log = request.log as Logger;
    const { session, served } = pipeline.session({ requestId: String(request.id), route, modelField: body.model, endpoint, plan, stream, log, signal });
    try {
      const outcome = await session.runRequest(plan.body);
      if (outcome.reply) {
        reply.hijack();
        const status = await writeAgentReply(reply.raw, session, outcome.reply, stream, signal).catch((err: Error) => {
          request.log.error({ err, agents: session.names }, 'writing an agent reply failed');
          if (!reply.raw.headersSent) reply.raw.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify(openaiError(500, `agent reply failed: ${err.message}`, 'agent_error')));
          else reply.raw.destroy();
          return 500;
        });
        request.log.info({ model: routeId(route), path: target.path, agents: session.names, answeredBy: outcome.reply.agent, status, agentsFailed: session.failed }, 'answered by agent');
        return;
      }
      const sent = keepModelAndStream(outcome.body, body, log);
      await proxyTo(request, reply, route, target, {
        signal,
        body: (upstream) => JSON.stringify(upstream.upstreamModel === undefined ? sent : { ...sent, model: upstream.upstreamModel }),
        onUpstream: served,
        transform: (upstreamDone) => agentResponseTransform(session, upstreamDone),
        logFields: () => ({ agents: session.names, agentsFailed: session.failed }),
      });
    } finally {
      session.finish();
    }
  }

  for (const suffix of INFERENCE_PATHS) {
    const target = { method: 'POST' as const, path: `/v1/${suffix}` };
    for (const path of [`/v1/${suffix}`, `/${suffix}`]) {
      if (AGENT_PATHS.has(suffix)) {
        app.post(path, (request, reply) => proxyPrompt(request, reply, suffix as AgentEndpoint, target));
        continue;
      }
      app.post(path, async (request, reply) => {
        const route = await pipeline.route(modelFromBody(request));
        if (route.kind === 'backend') {
          if (!BACKEND_PATHS.has(suffix)) throw new ClientError(400, 'unsupported', `model "${route.id}" is served by the Ollama backend, which has no /v1/${suffix}`);
          return proxyTo(request, reply, route, target);
        }
        // Embeddings come from an instance started for them (the model's own when its args say --embeddings).
        const model = suffix === 'embeddings' ? embeddingsModel(route.model) : route.model;
        return proxyTo(request, reply, { kind: 'local', model }, target);
      });
    }
  }

  /** A model of ours for llama-server's own endpoints (the backend has none of them). */
  const localRoute = (field: unknown, path: string): ModelRoute => {
    if (pipeline.backendRoute(field)) throw new ClientError(400, 'unsupported', `${path} is llama-server's; model "${String(field)}" is served by the Ollama backend`);
    return { kind: 'local', model: resolver.sync(field) };
  };

  // llama-server's own endpoints, sent to the instance of the model named in the body (POST) or query (GET).
  for (const path of MODEL_SCOPED_POST) {
    app.post(path, (request, reply) => proxyTo(request, reply, localRoute(modelFromBody(request), path), { method: 'POST', path }));
  }
  for (const path of MODEL_SCOPED_GET) {
    app.get(path, (request, reply) => {
      const query = request.query as Record<string, unknown>;
      if (query.model === undefined) throw new ClientError(400, 'model_required', `${path} needs a ?model= query parameter`);
      return proxyTo(request, reply, localRoute(query.model, path), { method: 'GET', path });
    });
  }

  app.get('/v1/models', async (request) => {
    const running = pool.list();
    const created = Math.floor(deps.startedAt / 1000);
    const data: Record<string, unknown>[] = Object.entries(config.models).map(([id, entry]) => {
      const instance = running.find((r) => r.modelId === id);
      const source = entry.backend ? { backend: entry.backend, name: entry.name ?? id } : entry.path ? { path: entry.path } : { hf: entry.hf };
      return {
        id,
        object: 'model',
        created,
        owned_by: entry.backend ?? 'llama-smart-proxy',
        ...(entry.description ? { description: entry.description } : {}),
        status: entry.backend ? 'remote' : instance ? instance.state : 'unloaded',
        source,
      };
    });
    for (const r of running) {
      if (!config.models[r.modelId]) data.push({ id: r.modelId, object: 'model', created, owned_by: 'llama-smart-proxy', status: r.state, source: { path: r.file } });
    }
    const backend = deps.backend;
    if (backend?.listModels) {
      try {
        for (const m of await backend.tags()) data.push({ id: backend.publicName(m.name), object: 'model', created, owned_by: 'ollama', status: 'remote', source: { backend: 'ollama', name: m.name } });
      } catch (err) {
        request.log.warn({ backend: backend.url, reason: backend.failure(err).message }, 'Ollama backend models not listed');
      }
    }
    return { object: 'list', data };
  });
}
