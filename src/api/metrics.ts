/**
 * GET /metrics: the proxy in Prometheus' text format (prom-client, on a registry of its own). Counters and
 * histograms follow requests and instance lifecycles as they happen; gauges (instances, queue, GPUs, per-instance
 * memory) are read from the pool and the GPU monitor at scrape time, so a scrape costs no device read.
 */
import client from 'prom-client';
import type { Cluster } from '../cluster/cluster.js';
import type { GpuMonitor } from '../gpu/index.js';
import type { Pool } from '../pool/pool.js';
import type { ProxyApp } from './types.js';

export const METRICS_PREFIX = 'llama_smart_proxy_';

export interface MetricsDeps {
  pool: Pool;
  monitor?: GpuMonitor | undefined;
  /** The CUDA runtime's memory learned per GPU UUID. */
  runtimeOverhead?: () => ReadonlyMap<string, number>;
  version: string;
  /** In a cluster every series carries this node's name (label `node`), and the peers' reachability is shown. */
  cluster?: Cluster | undefined;
}

/** Why an instance stopped, as a label with few values. */
export function stopReason(why: string): 'evicted' | 'idle' | 'keep_alive' | 'unload' {
  if (why.startsWith('evicted')) return 'evicted';
  if (why.startsWith('idle')) return 'idle';
  if (why.startsWith('keep_alive')) return 'keep_alive';
  return 'unload';
}

export function registerMetrics(app: ProxyApp, deps: MetricsDeps): client.Registry {
  const registry = new client.Registry();
  const p = METRICS_PREFIX;
  const cluster = deps.cluster;
  if (cluster) registry.setDefaultLabels({ node: cluster.name });
  client.collectDefaultMetrics({ register: registry, prefix: p });
  const { pool, monitor } = deps;
  if (cluster) {
    new client.Gauge({
      name: `${p}cluster_peer_up`,
      help: 'Whether a peer node answers (1) or not (0), as this node last heard',
      labelNames: ['peer', 'url'],
      registers: [registry],
      collect() {
        this.reset();
        const now = Date.now();
        for (const r of cluster.peers.list()) this.set({ peer: r.state?.node ?? r.name ?? r.url, url: r.url }, cluster.peers.isUp(r, now) ? 1 : 0);
      },
    });
  }

  new client.Gauge({ name: `${p}info`, help: 'The proxy build', labelNames: ['version'], registers: [registry] }).set({ version: deps.version }, 1);

  const requests = new client.Counter({ name: `${p}http_requests_total`, help: 'HTTP requests answered, by route and status', labelNames: ['method', 'route', 'status'], registers: [registry] });
  const duration = new client.Histogram({
    name: `${p}http_request_duration_seconds`,
    help: 'Time from a request to the end of its answer (streams included)',
    labelNames: ['method', 'route'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
    registers: [registry],
  });
  app.addHook('onRequest', (request, reply, done) => {
    const started = process.hrtime.bigint();
    // 'close' comes for every answer, also a hijacked stream and a client that left
    reply.raw.once('close', () => {
      const route = request.routeOptions.url ?? 'unmatched';
      if (route === '/metrics') return;
      const labels = { method: request.method, route };
      requests.inc({ ...labels, status: String(reply.raw.statusCode) });
      duration.observe(labels, Number(process.hrtime.bigint() - started) / 1e9);
    });
    done();
  });

  const starts = new client.Counter({ name: `${p}instance_starts_total`, help: 'llama-server instances started', labelNames: ['model'], registers: [registry] });
  const loads = new client.Histogram({
    name: `${p}instance_load_seconds`,
    help: 'Time from start to ready of an instance',
    labelNames: ['model'],
    buckets: [0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300],
    registers: [registry],
  });
  const failures = new client.Counter({ name: `${p}instance_failures_total`, help: 'Instances that failed to load or crashed', labelNames: ['model', 'kind'], registers: [registry] });
  const stops = new client.Counter({ name: `${p}instance_stops_total`, help: 'Instances stopped, by reason', labelNames: ['model', 'reason'], registers: [registry] });
  pool.on('starting', (_id: string, model: string) => starts.inc({ model }));
  pool.on('ready', (_id: string, model: string, ms: number) => loads.observe({ model }, ms / 1000));
  pool.on('load_failed', (_id: string, model: string) => failures.inc({ model, kind: 'load' }));
  pool.on('crash', (_id: string, model: string) => failures.inc({ model, kind: 'crash' }));
  pool.on('stopped', (_id: string, model: string, why: string) => stops.inc({ model, reason: stopReason(why) }));

  new client.Gauge({
    name: `${p}instances`,
    help: 'Instances by state',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      this.reset();
      for (const state of ['starting', 'ready', 'stopping']) this.set({ state }, 0);
      for (const i of pool.list()) this.inc({ state: i.state });
    },
  });
  new client.Gauge({ name: `${p}pool_capacity`, help: 'Instances that may run at once (pool.size)', registers: [registry], collect() { this.set(pool.capacity); } });
  new client.Gauge({ name: `${p}queue_waiting`, help: 'Requests waiting for an instance', registers: [registry], collect() { this.set(pool.queued); } });
  new client.Gauge({
    name: `${p}requests_in_flight`,
    help: 'Requests being answered, by model',
    labelNames: ['model'],
    registers: [registry],
    collect() {
      this.reset();
      for (const i of pool.list()) this.inc({ model: i.modelId }, i.inFlight);
    },
  });
  new client.Gauge({
    name: `${p}instance_gpu_memory_bytes`,
    help: "An instance's GPU memory: the estimate it was placed with, and the driver's per-process figure",
    labelNames: ['instance', 'model', 'gpu', 'kind'],
    registers: [registry],
    collect() {
      this.reset();
      for (const i of pool.list()) {
        for (const [gpu, bytes] of i.estimatedGpuBytes) this.set({ instance: i.id, model: i.modelId, gpu: String(gpu), kind: 'estimated' }, bytes);
        for (const [gpu, bytes] of i.actualGpuBytes) this.set({ instance: i.id, model: i.modelId, gpu: String(gpu), kind: 'actual' }, bytes);
      }
    },
  });

  if (monitor && monitor.source.kind !== 'none') {
    const gpuGauge = (name: string, help: string, read: (d: ReturnType<GpuMonitor['latest']>['devices'][number]) => number | null) =>
      new client.Gauge({
        name: `${p}${name}`,
        help,
        labelNames: ['gpu', 'uuid', 'name'],
        registers: [registry],
        collect() {
          this.reset();
          for (const d of monitor.latest().devices) {
            const v = read(d);
            if (v !== null) this.set({ gpu: String(d.index), uuid: d.uuid, name: d.name }, v);
          }
        },
      });
    gpuGauge('gpu_memory_total_bytes', 'GPU memory', (d) => d.totalBytes);
    gpuGauge('gpu_memory_used_bytes', 'GPU memory in use (by anyone)', (d) => d.usedBytes);
    gpuGauge('gpu_memory_free_bytes', 'GPU memory free', (d) => d.freeBytes);
    gpuGauge('gpu_utilization_ratio', 'GPU busy, 0-1', (d) => (d.utilizationGpu === null ? null : d.utilizationGpu / 100));
    gpuGauge('gpu_temperature_celsius', 'GPU temperature', (d) => d.temperatureC);
    gpuGauge('gpu_power_watts', 'GPU power draw', (d) => d.powerW);
    gpuGauge('gpu_runtime_overhead_bytes', 'CUDA runtime memory of one of our instances, learned on this GPU', (d) => deps.runtimeOverhead?.().get(d.uuid) ?? null);
  }

  app.get('/metrics', async (_request, reply) => reply.type(registry.contentType).send(await registry.metrics()));
  return registry;
}
