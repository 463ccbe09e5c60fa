/**
 * Wiring: config -> llama.cpp tools -> pool -> HTTP app. Used by `serve` and by the integration tests.
 */
import os from 'node:os';
import type { Logger } from 'pino';
import { loadAgentRegistry } from './agents/index.js';
import { buildApp } from './api/app.js';
import { modelResolver } from './api/model-resolution.js';
import { localTags } from './api/ollama/catalog.js';
import { Cluster } from './cluster/cluster.js';
import type { ProxyApp } from './api/types.js';
import { loadConfig, type Config } from './config/index.js';
import { ConfigHolder, type ReloadOutcome } from './config/holder.js';
import { watchConfigFile } from './config/watch.js';
import { GpuMonitor, openGpuSource, SimulatedSource } from './gpu/index.js';
import { ensureLlamaTools, supportsRpc, type LlamaTools } from './llamacpp/index.js';
import { RpcServers } from './cluster/rpc-servers.js';
import { createModelHub } from './models/index.js';
import { createOllamaPuller } from './sources/index.js';
import { DEMO_ALIAS, ensureDemoModel } from './models/demo.js';
import { LlamaServerLauncher } from './pool/launcher.js';
import { Pool } from './pool/pool.js';
import { OS_HOST_MEMORY, PlacementService } from './placement/service.js';
import { PortAllocator } from './pool/ports.js';
import { createLogger } from './util/logger.js';
import { LogLines } from './util/log-lines.js';
import { PACKAGE_VERSION } from './util/version.js';

export interface ProxyServer {
  app: ProxyApp;
  pool: Pool;
  monitor: GpuMonitor;
  config: Config;
  tools: LlamaTools;
  url: string;
  /** True when the built-in demo model was added because there was no configuration. */
  demo: boolean;
  /** The other nodes, when cluster.peers names any. */
  cluster: Cluster | undefined;
  /** Re-reads the config and applies it without a restart (an invalid file keeps the running config). */
  reload(): Promise<ReloadOutcome>;
  close(): Promise<void>;
}

export interface StartOptions {
  logger?: Logger;
  /** Progress lines of a llama.cpp build, for a person (default: stderr). */
  progress?: (line: string) => void;
  /** How a reload reads the config again (SIGHUP, POST /admin/reload, --watch); default: the config's file. */
  reload?: () => Config | Promise<Config>;
  /** Reload when the config file changes (`serve --watch`). */
  watch?: boolean;
  /** Where the proxy's own recent log lines are kept for the dashboard (default: lines of the logger made here). */
  logLines?: LogLines;
}

/** With no config file and no models, serve the generated demo model under the alias "demo". */
async function withDemoModel(config: Config): Promise<{ config: Config; demo: boolean }> {
  if (config.source !== null || Object.keys(config.models).length > 0) return { config, demo: false };
  const file = await ensureDemoModel(config.cacheDir);
  return {
    config: { ...config, models: { [DEMO_ALIAS]: { path: file, args: [], aliases: [], env: {}, pinned: false, ctx: 2048, description: 'built-in tiny demo model (random weights)' } } },
    demo: true,
  };
}

export async function startProxy(baseConfig: Config, options: StartOptions = {}): Promise<ProxyServer> {
  // A logger given by the caller keeps its lines where it writes them: the dashboard shows those of `logLines`.
  const logLines = options.logLines ?? (options.logger ? undefined : new LogLines(1000));
  const logger = options.logger ?? createLogger(baseConfig.log.level, { format: baseConfig.log.format, ...(logLines ? { lines: logLines } : {}) });
  const progress = options.progress ?? ((line: string) => process.stderr.write(`${line}\n`));
  const tools = await ensureLlamaTools({ cacheDir: baseConfig.cacheDir, llamaServer: baseConfig.llamaServer, log: progress });
  logger.info({ binary: tools.server, source: tools.source }, 'llama-server located');
  const started = await withDemoModel(baseConfig);
  // The live config: everything below holds this one object, and a reload replaces its sections in place.
  const config: Config = { ...started.config };
  const demo = started.demo;
  const readAgain = options.reload ?? (config.source ? () => loadConfig({ file: config.source! }) : undefined);
  const holder = new ConfigHolder(config, async () => {
    if (!readAgain) throw new Error('this proxy was started from a config given in code, not from a file: there is nothing to re-read');
    return (await withDemoModel(await readAgain())).config;
  });

  const log = (msg: string, fields?: Record<string, unknown>) => logger.info(fields ?? {}, msg);
  const source = await openGpuSource(config.gpu);
  logger.info({ source: source.kind, detail: source.description }, source.kind === 'none' ? 'no GPU: models run on the CPU' : 'GPU source');
  const monitor = new GpuMonitor(source, config.gpu.monitorInterval * 1000, log);
  await monitor.start();
  const placer = new PlacementService(monitor, config.gpu, log);
  const pool = new Pool({
    ...poolSettings(config),
    launcher: new LlamaServerLauncher(tools.server, config),
    ports: new PortAllocator(config.pool.portRange[0], config.pool.portRange[1]),
    placer,
    log,
  });
  // Simulated GPUs show as used exactly what the ledger charges the proxy's instances.
  if (source instanceof SimulatedSource) source.charged = (index) => pool.chargedOn(index);
  const agents = await loadAgentRegistry(config, logger);
  const hub = createModelHub(config, process.env, (msg, fields) => logger.info({ ...fields, component: 'hub' }, msg), { inUse: () => pool.filesInUse() });
  const puller = createOllamaPuller(config, process.env, (msg, fields) => logger.info({ ...fields, component: 'ollama-registry' }, msg));
  const startedAt = Date.now();
  let url = '';
  const clustered = config.cluster.peers.length > 0;
  // Lending devices over RPC needs rpc-server and an address to bind it to; heading needs llama-server's --rpc.
  const rpcHost = config.cluster.rpcHost;
  const rpcServers = clustered && rpcHost && tools.rpcServer ? new RpcServers({ binary: tools.rpcServer, host: rpcHost, portRange: config.cluster.rpcPortRange }) : undefined;
  const rpcDisabled = !rpcHost ? 'cluster.rpcHost is not set' : !tools.rpcServer ? 'no rpc-server (ggml-rpc-server) beside llama-server or on PATH' : undefined;
  const headsRpc = clustered ? await supportsRpc(tools.server) : false;
  const cluster = clustered
    ? new Cluster({
        config,
        name: nodeName(config),
        url: () => config.cluster.advertiseUrl ?? url,
        version: PACKAGE_VERSION,
        pool,
        monitor,
        placer,
        hostMemory: OS_HOST_MEMORY,
        models: () => localTags(config, hub, startedAt).filter((t) => t.size > 0).map((t) => t.name),
        log: (msg, fields) => logger.info({ ...fields, component: 'cluster' }, msg),
        lendsRpc: rpcServers !== undefined,
        headsRpc,
      })
    : undefined;
  const realGpus = source.kind === 'nvml' || source.kind === 'nvidia-smi';
  const rpc = {
    servers: rpcServers,
    options: {
      ...(rpcDisabled ? { disabledReason: rpcDisabled } : {}),
      // A lent GPU is the only one its rpc-server sees (a CPU rpc-server, on simulated GPUs or none, lends RAM).
      envFor: (gpu: number | undefined) => {
        const uuid = gpu !== undefined && realGpus ? monitor.latest().devices.find((d) => d.index === gpu)?.uuid : undefined;
        return uuid ? { ...process.env, CUDA_DEVICE_ORDER: 'PCI_BUS_ID', CUDA_VISIBLE_DEVICES: uuid } : undefined;
      },
      onStart: (id: string, lease: string, gpu: number | undefined, bytes: number) => {
        pool.reserve(`rpc:${id}`, `rpc-server for ${lease}`, gpu !== undefined ? new Map([[gpu, bytes]]) : new Map(), gpu === undefined ? bytes : 0);
        cluster?.peers.changed();
      },
      onStop: (id: string) => {
        pool.release(`rpc:${id}`);
        cluster?.peers.changed();
      },
    },
  };
  // One resolver for requests and pinned models: an alias `hf: owner/repo` (no variant) gets the `:auto` choice
  // at start, and requests for it later take the same remembered choice, hence the same instance.
  const resolver = modelResolver({ config, pool, hub, placer, cluster, log: (msg, fields) => logger.info(fields, msg) });
  const app = buildApp({ config, pool, tools, logger, version: PACKAGE_VERSION, startedAt, agents, monitor, hub, puller, placer, reloads: holder, resolver, ...(logLines ? { logLines } : {}), ...(cluster ? { cluster, rpc } : {}) });
  const loadPinned = (alias: string) =>
    resolver.async(alias).then((model) => pool.load(model)).catch((err: Error) => logger.error({ model: alias, reason: err.message }, 'pinned model failed to load'));
  holder.on('change', (live, _previous, plan) => {
    logger.info({ added: plan.added, removed: plan.removed, changed: plan.changed }, 'config reloaded');
    if (plan.needsRestart.length > 0) logger.warn({ settings: plan.needsRestart }, 'config reload: these settings take effect after a restart; the running values are kept');
    logger.level = live.log.level;
    pool.tune(poolSettings(live));
    // A model removed or changed: its instances take no new request and stop once their requests in flight end
    // (pool.drainTimeout); a request from now on gets an instance started from the new entry.
    for (const alias of [...plan.removed, ...plan.changed]) {
      void pool.unload(alias).then((ids) => {
        if (ids.length > 0) logger.info({ model: alias, instances: ids }, plan.removed.includes(alias) ? 'model removed from the config: its instances stopped' : 'model changed in the config: its old instances stopped');
      });
    }
    for (const alias of [...plan.added, ...plan.changed]) if (live.models[alias]?.pinned) void loadPinned(alias);
    cluster?.peers.changed();
  });
  try {
    await app.listen({ host: config.server.host, port: config.server.port });
  } catch (err) {
    await pool.shutdown();
    monitor.stop();
    throw err;
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.server.port;
  const host = config.server.host.includes(':') ? `[${config.server.host}]` : config.server.host;
  url = `http://${host}:${port}`;
  if (cluster) {
    if (!config.cluster.advertiseUrl && isWildcard(config.server.host)) logger.warn({ url }, 'cluster.advertiseUrl is not set: peers are shown this node at an address they cannot reach');
    logger.info({ node: cluster.name, peers: config.cluster.peers, token: config.cluster.token ? 'set' : 'none' }, 'cluster node');
    void cluster.start();
  }

  for (const [alias, entry] of Object.entries(config.models)) if (entry.pinned) void loadPinned(alias);
  const stopWatching = options.watch && config.source ? watchConfigFile(config.source, () => void reload()) : undefined;

  let closing: Promise<void> | undefined;
  const close = () => {
    // New requests are refused first; then the exchanges under way end with a last event (app.close's preClose),
    // then the instances stop: a client is never left waiting on an instance that is being stopped.
    closing ??= (async () => {
      stopWatching?.();
      pool.refuseNew();
      await hub.close();
      await puller.close();
      await app.close();
      await cluster?.close();
      await pool.shutdown();
      monitor.stop();
    })();
    return closing;
  };
  const reload = async (): Promise<ReloadOutcome> => {
    const outcome = await holder.reload();
    if (!outcome.ok) logger.error({ reason: outcome.error }, 'config reload refused: the running config is kept');
    return outcome;
  };
  return { app, pool, monitor, config, tools, url, demo, cluster, reload, close };
}

/** The pool's settings from the config (at start, and again on each reload). */
function poolSettings(config: Config) {
  return {
    capacity: config.pool.size,
    maxQueue: config.pool.maxQueue,
    maxQueuePerKey: config.pool.maxQueuePerKey,
    fairness: config.pool.fairness,
    queueTimeoutMs: config.pool.queueTimeout * 1000,
    drainTimeoutMs: config.pool.drainTimeout * 1000,
  };
}

/** This node's name in the cluster: the config's, else the machine's. */
function nodeName(config: Config): string {
  return config.cluster.node ?? (os.hostname().replace(/[^\w.-]/g, '-') || 'node');
}

function isWildcard(host: string): boolean {
  return host === '0.0.0.0' || host === '::' || host === '[::]';
}
