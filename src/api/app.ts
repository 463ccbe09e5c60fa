/**
 * The HTTP face of the proxy (fastify). Routes resolve the model, take a lease from the pool and forward; they
 * never touch processes themselves.
 */
import Fastify, { LogController, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { Config } from '../config/index.js';
import type { LlamaTools } from '../llamacpp/index.js';
import { ClientError, resolveModel, type ResolvedModel } from '../models/index.js';
import type { Pool } from '../pool/pool.js';
import { describeError, openaiError, sendError } from './errors.js';
import { registerAdminRoutes } from './admin.js';
import { healthReport } from './health.js';
import type { ProxyApp } from './types.js';
import { forward, UpstreamClients } from './upstream.js';

export interface AppDeps {
  config: Config;
  pool: Pool;
  tools: LlamaTools;
  logger: Logger;
  version: string;
  startedAt?: number;
}

/** Endpoints that carry a prompt to one model: body JSON with "model". */
export const INFERENCE_PATHS = ['chat/completions', 'completions', 'embeddings', 'rerank'] as const;
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

export function buildApp(deps: AppDeps): ProxyApp {
  const { config, pool, logger } = deps;
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

  const resolve = (id: unknown): ResolvedModel => resolveModel(config, id);

  /** Takes a lease on the model's instance (loading it if needed) and forwards the request to it. */
  async function proxyToModel(request: FastifyRequest, reply: FastifyReply, modelId: unknown, target: { method: 'GET' | 'POST'; path: string }): Promise<void> {
    const model = resolve(modelId);
    const signal = clientGone(reply);
    const started = Date.now();
    const lease = await pool.acquire(model, signal);
    const waitedMs = Date.now() - started;
    reply.hijack();
    try {
      const client = upstream.get(lease.instance, model.parallel + 1);
      const body = target.method === 'POST' ? request.parsedBody?.raw : undefined;
      const result = await forward(
        client,
        lease.instance,
        { method: target.method, path: target.path, ...(body ? { body, contentType: 'application/json' } : {}), headers: request.headers },
        reply.raw,
      );
      request.log.info({ model: model.id, instance: lease.instance.id, path: target.path, status: result.status, outcome: result.outcome, waitedMs, ms: Date.now() - started }, 'proxied');
    } finally {
      lease.release();
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
      app.post(route, (request, reply) => proxyToModel(request, reply, modelFromBody(request), target));
    }
  }

  // llama-server's own endpoints, sent to the instance of the model named in the body (POST) or query (GET).
  for (const route of MODEL_SCOPED_POST) {
    app.post(route, (request, reply) => proxyToModel(request, reply, modelFromBody(request), { method: 'POST', path: route }));
  }
  for (const route of MODEL_SCOPED_GET) {
    app.get(route, (request, reply) => {
      const query = request.query as Record<string, unknown>;
      if (query.model === undefined) throw new ClientError(400, 'model_required', `${route} needs a ?model= query parameter`);
      return proxyToModel(request, reply, query.model, { method: 'GET', path: route });
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

  app.get('/health', async () => healthReport({ config, pool, tools: deps.tools, version: deps.version, startedAt }));
  registerAdminRoutes(app, { config, pool, resolve });

  app.addHook('onClose', async () => {
    await upstream.close();
  });
  return app;
}
