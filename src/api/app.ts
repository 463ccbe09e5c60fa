/**
 * The HTTP face of the proxy (fastify): the OpenAI routes (openai.ts), Ollama's API (ollama/routes.ts), health
 * and admin. Routes resolve the model, take a lease from the pool (or the Ollama backend) and forward; they never
 * touch processes themselves.
 */
import Fastify, { LogController } from 'fastify';
import type { Logger } from 'pino';
import { AgentRegistry } from '../agents/index.js';
import type { Config } from '../config/index.js';
import type { ConfigHolder } from '../config/holder.js';
import type { GpuMonitor } from '../gpu/index.js';
import type { LlamaTools } from '../llamacpp/index.js';
import type { ModelHub } from '../models/index.js';
import type { Cluster } from '../cluster/cluster.js';
import { registerClusterRoutes } from '../cluster/routes.js';
import { registerRpcRoutes, type RpcRoutesOptions } from '../cluster/rpc-routes.js';
import type { RpcServers } from '../cluster/rpc-servers.js';
import type { PlacementService } from '../placement/service.js';
import type { Pool } from '../pool/pool.js';
import { registerAdminRoutes } from './admin.js';
import { RequestLog } from '../requests/index.js';
import type { LogLines } from '../util/log-lines.js';
import { registerLogRoutes } from './logs.js';
import { registerPlanRoutes } from './plan.js';
import { noteError, registerRequestRecords } from './request-records.js';
import { SseFeeds } from './sse-feed.js';
import { registerAnthropicRoutes } from './anthropic.js';
import { registerDashboard } from './dashboard.js';
import { registerApiKeys } from './auth.js';
import { jsonBodyParser } from './body.js';
import { connectionOptions, guardConnections } from './connections.js';
import { registerCors } from './cors.js';
import { configReport, registerReloadRoute } from './reload.js';
import { describeError, errorBodyFor, sendError } from './errors.js';
import { healthReport } from './health.js';
import { METRICS_PREFIX, registerMetrics } from './metrics.js';
import { registerKeyPolicy } from './policy-hook.js';
import { modelResolver, neverFitsCheck, type ModelResolver } from './model-resolution.js';
import { modelEstimator } from './model-estimates.js';
import type { OllamaPuller } from '../sources/index.js';
import { OllamaBackend } from './ollama/backend.js';
import { registerOllamaRoutes } from './ollama/routes.js';
import { registerOpenAIRoutes } from './openai.js';
import { registerResponsesRoutes } from './responses.js';
import { registerTranscriptionRoutes } from './transcriptions.js';
import { PromptPipeline } from './prompt-pipeline.js';
import type { ProxyApp } from './types.js';
import { UpstreamClients } from './upstream.js';

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
  /** Pulls Ollama names from Ollama's registry (absent: /api/pull takes Hugging Face models only). */
  puller?: OllamaPuller;
  /** The other nodes, when this proxy is one of a cluster. */
  cluster?: Cluster;
  /** How request models are resolved (made here when absent); the server shares its own with pinned models' start. */
  resolver?: ModelResolver;
  /** The reloadable config (POST /admin/reload, /health's config section); absent: not reloadable. */
  reloads?: ConfigHolder;
  /** rpc-servers this node runs for other nodes' instances (absent: it lends none, and says why). */
  rpc?: { servers: RpcServers | undefined; options: RpcRoutesOptions };
  /** The proxy's own recent log lines (GET /logs/proxy). */
  logLines?: LogLines;
}

export function buildApp(deps: AppDeps): ProxyApp {
  const { config, pool, logger } = deps;
  const agents = deps.agents ?? AgentRegistry.empty();
  const startedAt = deps.startedAt ?? Date.now();
  const clients = new UpstreamClients(config.llamaServer.readTimeout * 1000);
  const backend = config.backends.ollama ? new OllamaBackend(config.backends.ollama, () => config.models) : undefined;
  const app = Fastify({
    loggerInstance: logger,
    // One line per proxied request is logged by the route itself; fastify's two per request are noise.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: Math.round(config.server.bodyLimitMiB * 1024 * 1024),
    // Deadlines for receiving a request (never for its answer: generations are long), keep-alive, client errors.
    ...connectionOptions(config.server),
    // At shutdown the instances are gone already: close every client connection instead of waiting on them.
    forceCloseConnections: true,
  });

  // First: a connection over its client's cap, or a request in another HTTP version, goes no further.
  guardConnections(app, config.server);

  // Keep the raw bytes so a request is forwarded exactly as it came.
  app.addContentTypeParser(['application/json', 'text/plain'], { parseAs: 'buffer' }, jsonBodyParser({ maxJsonDepth: config.server.maxJsonDepth }));

  app.setErrorHandler((err, request, reply) => {
    const { status, message } = describeError(err);
    noteError(reply.raw, message);
    if (status >= 500) request.log.error({ err, url: request.url }, 'request failed');
    else request.log.info({ status, url: request.url, reason: message }, 'request refused');
    void sendError(reply, err);
  });
  app.setNotFoundHandler((request, reply) => {
    void reply.code(404).send(errorBodyFor(request.url, 404, `no route for ${request.method} ${request.url}`, 'route_not_found'));
  });

  // Before the routes, so their request hooks see all of them; metrics first, so refused requests count too.
  const placer = deps.placer;
  const registry = registerMetrics(app, { pool, monitor: deps.monitor, version: deps.version, cluster: deps.cluster, ...(placer ? { runtimeOverhead: () => placer.runtime.byGpu() } : {}) });
  // Before the key check: a preflight carries no key.
  registerCors(app, () => config.server.cors.origins);
  // Before the key check too: a request another node forwards carries the cluster token, not a client's key.
  const cluster = deps.cluster;
  const trusted = cluster ? registerClusterRoutes(app, cluster, config.cluster.token) : undefined;
  const hasKey = registerApiKeys(app, () => config.server, trusted);
  // After the key check: each key's role, models and limits; its accounting (/usage, per-key /metrics).
  registerKeyPolicy(app, config, registry, METRICS_PREFIX);
  if (cluster && deps.rpc) registerRpcRoutes(app, deps.rpc.servers, deps.rpc.options);

  // Every proxied request's record (GET /requests, the dashboard); live feeds (requests, logs) end at shutdown.
  const feeds = new SseFeeds();
  const requestLog = config.server.requestLog > 0 ? new RequestLog(config.server.requestLog) : undefined;
  if (requestLog) registerRequestRecords(app, { log: requestLog, feeds, captureBytes: config.server.captureBodies ? Math.round(config.server.captureBodyKiB * 1024) : undefined });
  else app.get('/requests', async () => ({ capacity: 0, kept: 0, requests: [] }));

  const resolver = deps.resolver ?? modelResolver({ config, pool, hub: deps.hub, placer: deps.placer, cluster, log: (msg, fields) => logger.info(fields, msg) });
  const estimator = placer ? modelEstimator(placer, deps.monitor) : undefined;
  const pipeline = new PromptPipeline({ pool, resolver, agents, clients, backend, cluster, loadingProgress: config.server.loadingProgress });
  registerOpenAIRoutes(app, { config, pool, resolver, pipeline, backend, startedAt, cluster, estimator });
  registerAnthropicRoutes(app, pipeline);
  registerResponsesRoutes(app, pipeline);
  registerTranscriptionRoutes(app, pipeline);
  registerOllamaRoutes(app, { config, pool, resolver, pipeline, hub: deps.hub, puller: deps.puller, backend, startedAt, cluster, estimator, checkFits: neverFitsCheck({ placer, pool }) });

  // Open to liveness probes; what runs where (ports, pids, files) only for a client with a key.
  app.get('/health', async (request) => hasKey(request) ? ({
    ...healthReport({ config, pool, tools: deps.tools, version: deps.version, startedAt, agents: agents.health(), monitor: deps.monitor, runtimeOverhead: deps.placer?.runtime.byGpu() }),
    backends: backend ? { ollama: await backend.status() } : {},
    ...(deps.reloads ? { config: configReport(deps.reloads) } : {}),
    ...(cluster ? { cluster: { node: cluster.name, nodes: await cluster.report() } } : {}),
  }) : { status: 'ok', version: deps.version });
  registerAdminRoutes(app, { config, pool, resolve: resolver.sync, resolveAsync: (id) => resolver.async(id), monitor: deps.monitor, cluster });
  if (deps.reloads) registerReloadRoute(app, deps.reloads);
  registerLogRoutes(app, { pool, feeds, proxyLines: deps.logLines });
  registerPlanRoutes(app, { config, pool, resolver, placer, hub: deps.hub, keysSet: () => config.server.apiKeys.length + config.server.keys.length > 0 });
  registerDashboard(app);

  // Before connections are closed: streams under way get a last event saying the proxy shuts down.
  app.addHook('preClose', async () => {
    feeds.closeAll();
    await clients.shutdown();
  });
  app.addHook('onClose', async () => {
    await clients.close();
    await backend?.close();
  });
  return app;
}
