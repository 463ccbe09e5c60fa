/** Admin endpoints: running instances, explicit load/unload (log lines: logs.ts). */
import type { Config } from '../config/index.js';
import { ClientError, type ResolvedModel } from '../models/index.js';
import type { InstanceInfo, Pool } from '../pool/pool.js';
import type { Cluster } from '../cluster/cluster.js';
import type { GpuMonitor } from '../gpu/index.js';
import { readInstanceLoad } from '../llamacpp/server-stats.js';
import { gpuAssignment, mib } from './health.js';
import type { ProxyApp } from './types.js';

export interface AdminDeps {
  config: Config;
  pool: Pool;
  resolve: (id: unknown) => ResolvedModel;
  /** Resolution that may download (load of a Hugging Face model not cached yet). */
  resolveAsync?: (id: unknown) => Promise<ResolvedModel>;
  monitor?: GpuMonitor | undefined;
  cluster?: Cluster | undefined;
}

const MIB = 1024 * 1024;
const mibMap = (m: ReadonlyMap<number, number>) => Object.fromEntries([...m].map(([gpu, bytes]) => [String(gpu), mib(bytes)]));

function describeInstance(i: InstanceInfo, now: number) {
  return {
    id: i.id,
    model: i.modelId,
    file: i.file,
    state: i.state,
    port: i.port ?? null,
    pid: i.pid ?? null,
    in_flight: i.inFlight,
    pinned: i.pinned,
    ttl_s: i.ttl,
    uptime_s: i.readyAt ? Math.round((now - i.readyAt) / 1000) : 0,
    last_used: new Date(i.lastUsed).toISOString(),
  };
}

function optionalModel(body: unknown): unknown {
  if (body === undefined || body === null) return undefined;
  if (typeof body !== 'object' || Array.isArray(body)) throw new ClientError(400, 'invalid_json', 'request body must be a JSON object');
  return (body as Record<string, unknown>).model;
}

export function registerAdminRoutes(app: ProxyApp, { pool, resolve, resolveAsync, monitor, cluster }: AdminDeps): void {
  /** One call for an operator: per instance, where it runs, estimate vs footprint, its GPU processes and its load. */
  app.get('/status', async () => {
    const now = Date.now();
    const running = pool.list();
    const devices = monitor && monitor.source.kind !== 'none' ? await monitor.refresh().catch(() => monitor.latest().devices) : [];
    const instances = await Promise.all(
      running.map(async (i) => ({
        ...describeInstance(i, now),
        placement: gpuAssignment(i),
        estimate_mib: i.placement ? { gpus: mibMap(i.estimatedGpuBytes), host: mib(i.placement.estimate.hostBytes) } : null,
        footprint_mib: i.actualGpuBytes.size > 0 ? { gpus: mibMap(i.actualGpuBytes) } : null,
        logged_mib: i.logged ? { gpus: mibMap(i.logged.gpuBytes), host: mib(i.logged.hostBytes) } : null,
        gpu_processes: devices.flatMap((d) => d.processes.filter((p) => p.pid === i.pid).map((p) => ({ gpu: d.index, pid: p.pid, used_mib: mib(p.usedBytes) }))),
        load: i.state === 'ready' && i.url ? await readInstanceLoad(i.url, pool.instance(i.id)?.authHeaders) : null,
      })),
    );
    return {
      gpu_source: monitor?.source.kind ?? 'none',
      gpus: devices.map((d) => ({
        id: d.index,
        name: d.name,
        total_mib: Math.round(d.totalBytes / MIB),
        free_mib: Math.round(d.freeBytes / MIB),
        utilization_percent: d.utilizationGpu,
        instances: running.filter((i) => i.placement?.gpus.some((g) => g.index === d.index)).map((i) => i.id),
      })),
      instances,
      ...(cluster ? { cluster: { node: cluster.name, nodes: await cluster.report() } } : {}),
    };
  });

  app.get('/running', async () => {
    const now = Date.now();
    return { running: pool.list().map((i) => describeInstance(i, now)) };
  });

  app.post('/models/load', async (request) => {
    const id = optionalModel(request.body);
    if (id === undefined) throw new ClientError(400, 'model_required', 'request body needs a "model" field');
    const started = Date.now();
    const info = await pool.load(resolveAsync ? await resolveAsync(id) : resolve(id));
    return { status: 'ready', load_ms: Date.now() - started, instance: describeInstance(info, Date.now()) };
  });

  app.post('/models/unload', async (request) => {
    const id = optionalModel(request.body);
    const unloaded = await pool.unload(id === undefined ? undefined : resolve(id).id);
    return { unloaded };
  });
}
