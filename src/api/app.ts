/**
 * The HTTP face of the proxy (fastify). Routes resolve the model, take a lease from the pool and forward; they
 * never touch processes themselves.
 */
import Fastify, { LogController, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { AgentRegistry, AgentSession, toJsonSafe, type AgentEndpoint, type AgentPlan, type JsonObject, type ServingInstance } from '../agents/index.js';
import type { Config } from '../config/index.js';
import type { GpuMonitor } from '../gpu/index.js';
import type { LlamaTools } from '../llamacpp/index.js';
import { ClientError, type ModelHub, type ResolvedModel } from '../models/index.js';
import type { PlacementService } from '../placement/service.js';
import type { Lease, Pool } from '../pool/pool.js';
import { agentResponseTransform, writeAgentReply } from './agent-exchange.js';
import { describeError, openaiError, sendError } from './errors.js';
import { registerAdminRoutes } from './admin.js';
import { healthReport } from './health.js';
import { endStreamWithError, modelResolver, progressStarted } from './model-resolution.js';
import type { ProxyApp } from './types.js';
import { forward, requestJson, UpstreamClients, type BodyTransform } from './upstream.js';

export interface AppDeps {
  config: Config;
  pool: Pool;
  tools: LlamaTools;
  logger: Logger;
  version: string;
  startedAt?: number;
  /** Loaded agents (none when absent). */
  agents?: AgentRegistry;
  /** GPU readings for /health (absent: no GPU section). */
  monitor?: GpuMonitor;
  /** Downloads Hugging Face models on demand (absent: only models already on disk). */
  hub?: ModelHub;
  /** Refuses a model that can never fit before it is downloaded. */
  placer?: PlacementService;
}

/** Endpoints that carry a prompt to one model: body JSON with "model". */
export const INFERENCE_PATHS = ['chat/completions', 'completions', 'embeddings', 'rerank'] as const;
/** Of those, the ones whose prompt may run agents (embeddings and rerank never do). */
const AGENT_PATHS: ReadonlySet<string> = new Set<AgentEndpoint>(['chat/completions', 'completions']);

/** How proxyToModel may differ from a plain pass-through (the agents path). */
interface ProxyOptions {
  /** The body to send instead of the raw bytes received. */
  body?: string;
  /** Already listening for the client going away. */
  signal?: AbortSignal;
  /** Told which lease serves the request. */
  onLease?: (lease: Lease) => void;
  /** Response rewriting; `upstreamDone` releases the lease early. */
  transform?: (upstreamDone: () => void) => (status: number, contentType: string | undefined) => BodyTransform | undefined;
  /** Extra fields for the request's log line. */
  logFields?: () => Record<string, unknown>;
}
const MODEL_SCOPED_POST = ['/tokenize', '/detokenize', '/apply-template', '/infill'] as const;
const MODEL_SCOPED_GET = ['/props', '/slots'] as const;

interface ParsedBody {
  raw: Buffer;
  json: unknown;
}

declare module 'fastify' {
  interface FastifyRequest {
    parsedBody?: ParsedBody;
  }
}

function bodyObject(request: FastifyRequest): Record<string, unknown> {
  const json = request.parsedBody?.json;
  if (json === undefined) throw new ClientError(400, 'invalid_json', 'request body must be a JSON object (Content-Type: application/json)');
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new ClientError(400, 'invalid_json', 'request body must be a JSON object');
  return json as Record<string, unknown>;
}

/** An AbortSignal that fires when the client goes away before its response is complete. */
function clientGone(reply: FastifyReply): AbortSignal {
  const controller = new AbortController();
  reply.raw.once('close', () => {
    if (!reply.raw.writableFinished) controller.abort();
  });
  return controller.signal;
}

/**
 * Request hooks may rewrite anything but the model (resolved before them) and `stream` (the client's choice of
 * format): those two are put back, with a warning. To use another model, an agent calls context.complete.
 */
function keepModelAndStream(out: JsonObject, original: JsonObject, log: Logger): JsonObject {
  if (out.model === original.model && out.stream === original.stream) return out;
  log.warn({ from: { model: original.model, stream: original.stream }, to: { model: out.model, stream: out.stream } }, 'a request hook changed "model" or "stream"; restored');
  const fixed: JsonObject = { ...out, model: original.model };
  if ('stream' in original) fixed.stream = original.stream;
  else delete fixed.stream;
  return fixed;
}

export function buildApp(deps: AppDeps): ProxyApp {
  const { config, pool, logger } = deps;
  const agents = deps.agents ?? AgentRegistry.empty();
  const startedAt = deps.startedAt ?? Date.now();
  const upstream = new UpstreamClients();
  const app = Fastify({
    loggerInstance: logger,
    // One line per proxied request is logged by the route itself; fastify's two per request are noise.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: Math.round(config.server.bodyLimitMiB * 1024 * 1024),
    // Long generations: never time a request out on the proxy side.
    requestTimeout: 0,
    keepAliveTimeout: 65_000,
    // At shutdown the instances are gone already: close every client connection instead of waiting on them.
    forceCloseConnections: true,
  });

  // Keep the raw bytes so a request is forwarded exactly as it came.
  app.addContentTypeParser(['application/json', 'text/plain'], { parseAs: 'buffer' }, (request, body, done) => {
    const raw = body as Buffer;
    if (raw.length === 0) {
      request.parsedBody = { raw, json: undefined };
      done(null, undefined);
      return;
    }
    try {
      const json: unknown = JSON.parse(raw.toString('utf8'));
      request.parsedBody = { raw, json };
      done(null, json);
    } catch (err) {
      done(new ClientError(400, 'invalid_json', `request body is not valid JSON: ${(err as Error).message}`), undefined);
    }
  });

  app.setErrorHandler((err, request, reply) => {
    const { status, message } = describeError(err);
    if (status >= 500) request.log.error({ err, url: request.url }, 'request failed');
    else request.log.info({ status, url: request.url, reason: message }, 'request refused');
    void sendError(reply, err);
  });
  app.setNotFoundHandler((request, reply) => {
    void reply.code(404).send(openaiError(404, `no route for ${request.method} ${request.url}`, 'route_not_found'));
  });

  const resolver = modelResolver({ config, pool, hub: deps.hub, placer: deps.placer });
  const resolve = resolver.sync;

  /** Takes a lease on the model's instance (loading it if needed) and forwards the request to it. */
  async function proxyToModel(request: FastifyRequest, reply: FastifyReply, model: ResolvedModel, target: { method: 'GET' | 'POST'; path: string }, options: ProxyOptions = {}): Promise<void> {
    const signal = options.signal ?? clientGone(reply);
    const started = Date.now();
    const lease = await pool.acquire(model, signal);
    const waitedMs = Date.now() - started;
    options.onLease?.(lease);
    reply.hijack();
    try {
      const client = upstream.get(lease.instance, model.parallel + 1);
      const body = target.method === 'POST' ? (options.body ?? request.parsedBody?.raw) : undefined;
      const result = await forward(
        client,
        lease.instance,
        {
          method: target.method,
          path: target.path,
          ...(body ? { body, contentType: 'application/json' } : {}),
          headers: request.headers,
          ...(options.transform ? { transform: options.transform(() => lease.release()) } : {}),
        },
        reply.raw,
      );
      request.log.info({ model: model.id, instance: lease.instance.id, path: target.path, status: result.status, outcome: result.outcome, waitedMs, ms: Date.now() - started, ...options.logFields?.() }, 'proxied');
    } finally {
      lease.release();
    }
  }

  /** context.complete: one model call through the pool, no agents, not streamed. */
  async function callModel(endpoint: AgentEndpoint, body: JsonObject, signal: AbortSignal): Promise<JsonObject> {
    const model = await resolver.async(body.model, { signal });
    const lease = await pool.acquire(model, signal);
    try {
      const { stream: _stream, stream_options: _streamOptions, ...rest } = body;
      return await requestJson(upstream.get(lease.instance, model.parallel + 1), lease.instance, `/v1/${endpoint}`, rest, signal);
    } finally {
      lease.release();
    }
  }

  /** A chat/completions request: straight through when it names no agent, else through its agent chain. */
  async function proxyPrompt(request: FastifyRequest, reply: FastifyReply, endpoint: AgentEndpoint, target: { method: 'POST'; path: string }): Promise<void> {
    const body = bodyObject(request);
    const signal = clientGone(reply);
    try {
      // The model is resolved before any agent runs: agents never decide which model serves the request. A model
      // being downloaded shows its progress to a streamed request as SSE comments.
      const model = await resolver.async(modelFromBody(request), { signal, ...(body.stream === true ? { progressTo: reply.raw } : {}) });
      if (progressStarted(reply.raw)) reply.hijack();
      const plan = agents.plan(endpoint, body, model.id);
      // No agent: the raw bytes go out exactly as received.
      if (!plan) return await proxyToModel(request, reply, model, target, { signal });
      return await proxyWithAgents(request, reply, model, endpoint, target, body, plan, signal);
    } catch (err) {
      if (!progressStarted(reply.raw)) throw err;
      reply.hijack();
      endStreamWithError(reply.raw, describeError(err));
      request.log.info({ url: request.url, reason: (err as Error).message }, 'request failed after download progress');
    }
  }

  async function proxyWithAgents(request: FastifyRequest, reply: FastifyReply, model: ResolvedModel, endpoint: AgentEndpoint, target: { method: 'POST'; path: string }, body: JsonObject, plan: AgentPlan, signal: AbortSignal): Promise<void> {
    const stream = body.stream === true;
    let served: Lease['instance'] | undefined;
    // Read when an agent asks (not before: the record can be large), fresh from the pool, every field as the pool
    // reports it, made JSON-friendly (its per-GPU byte counts are Maps). An instance gone since is described by
    // what its process object still knows.
    const instanceInfo = (instance: Lease['instance']): ServingInstance => {
      const info = pool.list().find((i) => i.id === instance.id);
      if (info) return toJsonSafe(info) as ServingInstance;
      return { id: instance.id, modelId: instance.spec.modelId, state: instance.state, pid: instance.pid ?? null, exitedAt: instance.exitedAt ?? null };
    };
    const session = new AgentSession(plan.chain, {
      requestId: String(request.id),
      model: model.id,
      modelField: body.model,
      endpoint,
      stream,
      // The app's logger is pino (loggerInstance), so the request's child is one too.
      log: request.log as Logger,
      signal,
      complete: callModel,
      instance: () => (served ? instanceInfo(served) : undefined),
      onFailure: (name, hook, reason) => agents.recordFailure(name, hook, reason),
    });
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
        request.log.info({ model: model.id, path: target.path, agents: session.names, answeredBy: outcome.reply.agent, status, agentsFailed: session.failed }, 'answered by agent');
        return;
      }
      await proxyToModel(request, reply, model, target, {
        body: JSON.stringify(keepModelAndStream(outcome.body, body, request.log as Logger)),
        signal,
        onLease: (lease) => {
          served = lease.instance;
        },
        transform: (upstreamDone) => agentResponseTransform(session, upstreamDone),
        logFields: () => ({ agents: session.names, agentsFailed: session.failed }),
      });
    } finally {
      session.finish();
    }
  }

  function modelFromBody(request: FastifyRequest): unknown {
    const body = bodyObject(request);
    if (body.model === undefined) throw new ClientError(400, 'model_required', 'request body needs a "model" field');
    return body.model;
  }

  for (const suffix of INFERENCE_PATHS) {
    const target = { method: 'POST' as const, path: `/v1/${suffix}` };
    for (const route of [`/v1/${suffix}`, `/${suffix}`]) {
      if (AGENT_PATHS.has(suffix)) app.post(route, (request, reply) => proxyPrompt(request, reply, suffix as AgentEndpoint, target));
      else app.post(route, async (request, reply) => proxyToModel(request, reply, await resolver.async(modelFromBody(request)), target));
    }
  }

  // llama-server's own endpoints, sent to the instance of the model named in the body (POST) or query (GET).
  for (const route of MODEL_SCOPED_POST) {
    app.post(route, (request, reply) => proxyToModel(request, reply, resolve(modelFromBody(request)), { method: 'POST', path: route }));
  }
  for (const route of MODEL_SCOPED_GET) {
    app.get(route, (request, reply) => {
      const query = request.query as Record<string, unknown>;
      if (query.model === undefined) throw new ClientError(400, 'model_required', `${route} needs a ?model= query parameter`);
      return proxyToModel(request, reply, resolve(query.model), { method: 'GET', path: route });
    });
  }

  app.get('/v1/models', async () => {
    const running = pool.list();
    const created = Math.floor(startedAt / 1000);
    const data = Object.entries(config.models).map(([id, entry]) => {
      const instance = running.find((r) => r.modelId === id);
      return {
        id,
        object: 'model',
        created,
        owned_by: 'llama-smart-proxy',
        ...(entry.description ? { description: entry.description } : {}),
        status: instance ? instance.state : 'unloaded',
        source: entry.path ? { path: entry.path } : { hf: entry.hf },
      };
    });
    for (const r of running) {
      if (!config.models[r.modelId]) data.push({ id: r.modelId, object: 'model', created, owned_by: 'llama-smart-proxy', status: r.state, source: { path: r.file } });
    }
    return { object: 'list', data };
  });

  app.get('/health', async () => healthReport({ config, pool, tools: deps.tools, version: deps.version, startedAt, agents: agents.health(), monitor: deps.monitor }));
  registerAdminRoutes(app, { config, pool, resolve, resolveAsync: (id) => resolver.async(id), monitor: deps.monitor });

  app.addHook('onClose', async () => {
    await upstream.close();
  });
  return app;
}
