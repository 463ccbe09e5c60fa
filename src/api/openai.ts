/**
 * The OpenAI-compatible routes: /v1/chat/completions, /v1/completions, /v1/embeddings, /v1/rerank (and their
 * unprefixed forms), llama-server's model-scoped endpoints, /v1/models. A request that names no agent goes out
 * as the raw bytes received (for a model of the Ollama backend: with "model" renamed), its answer streamed back
 * as it arrives; one that names agents goes through its chain (serve-prompt.ts, the flow every family shares).
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { AgentEndpoint } from '../agents/index.js';
import type { Cluster } from '../cluster/cluster.js';
import type { Config } from '../config/index.js';
import { ClientError } from '../models/index.js';
import type { Pool } from '../pool/pool.js';
import { bodyObject } from './body.js';
import { embeddingsModel, type ModelResolver } from './model-resolution.js';
import type { OllamaBackend } from './ollama/backend.js';
import type { ModelRoute, PromptPipeline } from './prompt-pipeline.js';
import { modelOf, proxyTo as forwardTo, servePrompt, type PromptFamily, type Target } from './serve-prompt.js';
import type { ProxyApp } from './types.js';
import { OPENAI_ERRORS } from './upstream.js';
import { localCatalog } from '../sources/catalog.js';
import { estimateView, type ModelEstimator } from './model-estimates.js';

/** Endpoints that carry a prompt to one model: body JSON with "model". */
export const INFERENCE_PATHS = ['chat/completions', 'completions', 'embeddings', 'rerank'] as const;
/** Of those, the ones whose prompt may run agents (embeddings and rerank never do). */
const AGENT_PATHS: ReadonlySet<string> = new Set<AgentEndpoint>(['chat/completions', 'completions']);
/** Of those, the ones Ollama's OpenAI-compatible API has. */
const BACKEND_PATHS: ReadonlySet<string> = new Set(['chat/completions', 'completions', 'embeddings']);
const MODEL_SCOPED_POST = ['/tokenize', '/detokenize', '/apply-template', '/infill'] as const;
const MODEL_SCOPED_GET = ['/props', '/slots'] as const;
/** llama-server endpoints that use no slot: they never wait in the fair queue for one. */
const GENERATES_NOTHING = new Set<string>(['/tokenize', '/detokenize', '/apply-template', '/props', '/slots']);

export interface OpenAIRouteDeps {
  config: Config;
  pool: Pool;
  resolver: ModelResolver;
  pipeline: PromptPipeline;
  backend?: OllamaBackend | undefined;
  startedAt: number;
  /** Other nodes' running models are listed too. */
  cluster?: Cluster | undefined;
  /** Estimates of the listed models of Ollama's store and LM Studio's folder. */
  estimator?: ModelEstimator | undefined;
}

function modelFromBody(request: FastifyRequest): unknown {
  return modelOf(bodyObject(request));
}

export function registerOpenAIRoutes(app: ProxyApp, deps: OpenAIRouteDeps): void {
  const { config, pool, resolver, pipeline } = deps;
  const proxyTo = (request: FastifyRequest, reply: FastifyReply, route: ModelRoute, target: Target) =>
    forwardTo(pipeline, request, reply, route, target, GENERATES_NOTHING.has(target.path) ? { takesSlot: false } : {});

  for (const suffix of INFERENCE_PATHS) {
    const target = { method: 'POST' as const, path: `/v1/${suffix}` };
    for (const path of [`/v1/${suffix}`, `/${suffix}`]) {
      if (AGENT_PATHS.has(suffix)) {
        const family: PromptFamily = { endpoint: suffix as AgentEndpoint, path: target.path, errors: OPENAI_ERRORS };
        app.post(path, (request, reply) => servePrompt(pipeline, request, reply, family));
        continue;
      }
      app.post(path, async (request, reply) => {
        const route = await pipeline.route(modelFromBody(request));
        if (route.kind === 'backend') {
          if (!BACKEND_PATHS.has(suffix)) throw new ClientError(400, 'unsupported', `model "${route.id}" is served by the Ollama backend, which has no /v1/${suffix}`);
          return proxyTo(request, reply, route, target);
        }
        // Another node holds it: that node makes its embeddings instance.
        if (route.kind === 'peer') return proxyTo(request, reply, route, target);
        // Embeddings come from an instance started for them (the model's own when its args say --embeddings).
        const model = suffix === 'embeddings' ? embeddingsModel(route.model) : route.model;
        return proxyTo(request, reply, { kind: 'local', model }, target);
      });
    }
  }

  /**
   * A model of ours for llama-server's own endpoints (the backend has none of them): a configured or local model
   * (never downloaded for them), or in a cluster one that another node holds (served there, where it runs).
   */
  const llamaRoute = (field: unknown, path: string): ModelRoute => {
    if (pipeline.backendRoute(field)) throw new ClientError(400, 'unsupported', `${path} is llama-server's; model "${String(field)}" is served by the Ollama backend`);
    return pipeline.heldRoute(field) ?? { kind: 'local', model: resolver.sync(field) };
  };

  // llama-server's own endpoints, sent to the instance of the model named in the body (POST) or query (GET).
  for (const path of MODEL_SCOPED_POST) {
    app.post(path, (request, reply) => proxyTo(request, reply, llamaRoute(modelFromBody(request), path), { method: 'POST', path }));
  }
  for (const path of MODEL_SCOPED_GET) {
    app.get(path, (request, reply) => {
      const query = request.query as Record<string, unknown>;
      if (query.model === undefined) throw new ClientError(400, 'model_required', `${path} needs a ?model= query parameter`);
      return proxyTo(request, reply, llamaRoute(query.model, path), { method: 'GET', path });
    });
  }

  /** What /v1/models lists: configured models, running instances (variants by their own id), the backend's. */
  async function listModels(request: FastifyRequest): Promise<Record<string, unknown>[]> {
    const running = pool.list();
    const created = Math.floor(deps.startedAt / 1000);
    const cluster = deps.cluster;
    // In a cluster: where each model runs (this node's name, another's, or null), and other nodes' own models.
    const elsewhere = cluster?.peerInstances().filter((p) => p.instance.state !== 'stopping') ?? [];
    const nodeOf = (id: string) => (cluster ? { node: running.some((r) => r.modelId === id) ? cluster.name : (elsewhere.find((p) => p.instance.modelId === id)?.node ?? null) } : {});
    const data: Record<string, unknown>[] = Object.entries(config.models).map(([id, entry]) => {
      const instance = running.find((r) => r.modelId === id) ?? elsewhere.find((p) => p.instance.modelId === id)?.instance;
      const source = entry.backend ? { backend: entry.backend, name: entry.name ?? id } : entry.path ? { path: entry.path } : { hf: entry.hf };
      return {
        id,
        object: 'model',
        created,
        owned_by: entry.backend ?? 'llama-smart-proxy',
        ...(entry.description ? { description: entry.description } : {}),
        status: entry.backend ? 'remote' : instance ? instance.state : 'unloaded',
        source,
        ...nodeOf(id),
      };
    });
    // Models of Ollama's store and LM Studio's folder: named as a request names them.
    for (const e of localCatalog(config)) {
      if ((e.source !== 'ollama' && e.source !== 'lmstudio') || data.some((m) => m.id === e.name)) continue;
      const instance = running.find((r) => r.modelId === e.name);
      data.push({
        id: e.name, object: 'model', created, owned_by: 'llama-smart-proxy', status: instance ? instance.state : 'unloaded',
        source: { [e.source]: e.file, ...(e.mmproj ? { mmproj: e.mmproj } : {}) }, size_bytes: e.sizeBytes, estimate: estimateView(deps.estimator?.(e)), ...nodeOf(e.name),
      });
    }
    for (const r of running) {
      if (!config.models[r.modelId] && !data.some((m) => m.id === r.modelId)) data.push({ id: r.modelId, object: 'model', created, owned_by: 'llama-smart-proxy', status: r.state, source: { path: r.file }, ...nodeOf(r.modelId) });
    }
    for (const { node, instance } of elsewhere) {
      if (!data.some((m) => m.id === instance.modelId)) data.push({ id: instance.modelId, object: 'model', created, owned_by: 'llama-smart-proxy', status: instance.state, node });
    }
    const backend = deps.backend;
    if (backend?.listModels) {
      try {
        for (const m of await backend.tags()) data.push({ id: backend.publicName(m.name), object: 'model', created, owned_by: 'ollama', status: 'remote', source: { backend: 'ollama', name: m.name } });
      } catch (err) {
        request.log.warn({ backend: backend.url, reason: backend.failure(err).message }, 'Ollama backend models not listed');
      }
    }
    return data;
  }

  app.get('/v1/models', async (request) => ({ object: 'list', data: await listModels(request) }));

  // One model (the openai SDK's models.retrieve): a listed id, else any id a request could name (a file in
  // modelsDir, a cached Hugging Face model), else 404. Ids hold "/" (Hugging Face) and "#" (variants, sent as %23).
  app.get('/v1/models/*', async (request) => {
    const id = (request.params as { '*': string })['*'];
    const listed = (await listModels(request)).find((m) => m.id === id);
    if (listed) return listed;
    const model = pipeline.backendRoute(id) ? undefined : resolver.sync(id);
    if (!model) throw new ClientError(404, 'model_not_found', `model "${id}" is not listed by the Ollama backend`);
    return { id, object: 'model', created: Math.floor(deps.startedAt / 1000), owned_by: 'llama-smart-proxy', status: 'unloaded', source: { path: model.file } };
  });
}
