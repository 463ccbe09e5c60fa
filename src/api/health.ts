/** The /health document (PRODUCT.md): pool capacity, each server, and the GPU part (null until GPUs are managed). */
import type { AgentHealth } from '../agents/index.js';
import type { Config } from '../config/index.js';
import type { LlamaTools } from '../llamacpp/index.js';
import type { GpuMonitor } from '../gpu/index.js';
import type { InstanceInfo, Pool } from '../pool/pool.js';
import { INSTANCE_HOST } from '../pool/launcher.js';

export interface HealthInput {
  config: Config;
  pool: Pool;
  tools: LlamaTools;
  version: string;
  startedAt: number;
  /** Loaded (and failed or disabled) agents. */
  agents?: AgentHealth[];
  monitor?: GpuMonitor | undefined;
  /** The CUDA runtime's memory learned per GPU UUID (placement/runtime-overhead.ts). */
  runtimeOverhead?: ReadonlyMap<string, number> | undefined;
}

const MIB = 1024 * 1024;
/** Bytes as MiB with one decimal, the unit of every `_mib` field. */
export const mib = (bytes: number) => Math.round((bytes / MIB) * 10) / 10;
const sum = (m: ReadonlyMap<number, number>) => [...m.values()].reduce((a, b) => a + b, 0);

/** Per-server GPU assignment as PRODUCT.md names it. */
export function gpuAssignment(s: InstanceInfo) {
  const p = s.placement;
  if (!p) return null;
  return {
    gpu_ids: p.gpus.map((g) => g.index),
    gpu_uuids: p.gpus.map((g) => g.uuid),
    n_gpu_layers: p.ngl,
    split_mode: p.splitMode,
    tensor_split: p.tensorSplit ?? null,
    reason: p.reason,
  };
}

/** The devices and what the proxy placed on each. */
export function gpuPoolStatus(monitor: GpuMonitor, servers: readonly InstanceInfo[], runtimeOverhead?: ReadonlyMap<string, number>) {
  const snap = monitor.latest();
  const gpus = snap.devices.map((d) => ({
    id: d.index,
    uuid: d.uuid,
    name: d.name,
    pci_bus_id: d.pciBusId,
    total_memory_mib: mib(d.totalBytes),
    used_memory_mib: mib(d.usedBytes),
    free_memory_mib: mib(d.freeBytes),
    utilization_gpu_percent: d.utilizationGpu,
    utilization_memory_percent: d.utilizationMemory,
    temperature_c: d.temperatureC,
    power_w: d.powerW,
    compute_capability: d.computeCapability,
    /** What a CUDA context of ours takes here beyond llama.cpp's buffers, measured on our instances (null: not yet). */
    runtime_overhead_mib: runtimeOverhead?.has(d.uuid) ? mib(runtimeOverhead.get(d.uuid)!) : null,
    assigned_models: servers.filter((s) => s.placement?.gpus.some((g) => g.index === d.index)).map((s) => s.modelId),
    processes: d.processes.map((p) => ({ pid: p.pid, used_memory_mib: mib(p.usedBytes), ours: servers.some((s) => s.pid === p.pid) })),
  }));
  return {
    source: monitor.source.kind,
    source_detail: monitor.source.description,
    read_at: snap.readAt ? new Date(snap.readAt).toISOString() : null,
    error: snap.error,
    total_gpus: gpus.length,
    available_gpus: gpus.filter((g) => g.free_memory_mib > 0).length,
    total_memory_mib: mib(snap.devices.reduce((a, d) => a + d.totalBytes, 0)),
    available_memory_mib: mib(snap.devices.reduce((a, d) => a + d.freeBytes, 0)),
    gpus,
  };
}

export function healthReport({ config, pool, tools, version, agents, startedAt, monitor, runtimeOverhead }: HealthInput) {
  const now = Date.now();
  const running = pool.list();
  const servers = running.map((s) => ({
    id: s.id,
    host: INSTANCE_HOST,
    port: s.port ?? null,
    model_id: s.modelId,
    model_file: s.file,
    status: s.state,
    pid: s.pid ?? null,
    in_flight: s.inFlight,
    pinned: s.pinned,
    ttl_s: s.ttl,
    uptime_s: s.readyAt ? Math.round((now - s.readyAt) / 1000) : 0,
    idle_s: Math.round((now - s.lastUsed) / 1000),
    gpu_assignment: gpuAssignment(s),
    estimated_vram_mib: s.placement ? mib(sum(s.estimatedGpuBytes)) : null,
    actual_vram_mib: s.actualGpuBytes.size > 0 ? mib(sum(s.actualGpuBytes)) : null,
    estimated_host_mib: s.placement ? mib(s.placement.estimate.hostBytes) : null,
    // What the instance logged of its own buffers (weights, KV, compute; no CUDA context).
    logged_vram_mib: s.logged && s.logged.gpuBytes.size > 0 ? mib(sum(s.logged.gpuBytes)) : null,
    logged_host_mib: s.logged ? mib(s.logged.hostBytes) : null,
  }));
  return {
    status: 'ok',
    version,
    uptime_s: Math.round((now - startedAt) / 1000),
    llama_server: { path: tools.server, source: tools.source },
    pool: {
      capacity: pool.capacity,
      running: servers.length,
      available: Math.max(0, pool.capacity - servers.length),
      queued: pool.queued,
    },
    servers,
    models_configured: Object.keys(config.models).length,
    agents: agents ?? [],
    gpu_monitoring: monitor !== undefined && monitor.source.kind !== 'none',
    allocation_strategy: monitor && monitor.source.kind !== 'none' ? config.gpu.strategy : 'cpu-only',
    gpu_pool_status: monitor && monitor.source.kind !== 'none' ? gpuPoolStatus(monitor, running, runtimeOverhead) : null,
  };
}
