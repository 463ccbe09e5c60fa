/**
 * The IO edge of placement: reads the model's header (cached), takes fresh GPU readings, runs the pure planner
 * with the estimator as its cost function, measures footprints after start, and waits for memory to come back
 * after a stop. The pool calls it; it never starts or stops processes itself.
 */
import { statSync } from 'node:fs';
import os from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import type { GpuConfig } from '../config/index.js';
import { DEFAULT_RUNTIME_BYTES, estimateMemory, MODEL_INFO_READ_OPTIONS, modelInfo, type Device, type EstimateSettings, type ModelInfo } from '../estimate/index.js';
import { readGgufModelHeaderSync } from '../gguf/index.js';
import type { GpuDevice, GpuMonitor } from '../gpu/index.js';
import { ClientError, type ResolvedModel } from '../models/index.js';
import type { RpcCost } from '../cluster/rpc-plan.js';
import { estimateSettings } from './model-settings.js';
import { planPlacement } from './planner.js';
import { quantRoomOf, type QuantRoom } from './quant-choice.js';
import type { NodeView } from '../cluster/types.js';
import { RuntimeOverhead } from './runtime-overhead.js';
import type { Candidate, Cost, ModelPins, PlanResult, PlannerSettings, RunningInstance } from './types.js';

const MIB = 1024 * 1024;
const RECOVERY_POLL_MS = 100;
const COST_CACHE_MODELS = 64;

/** Where an instance runs: the planner's placement with the GPUs named, and what it is charged per GPU. */
export interface InstancePlacement {
  gpus: { index: number; uuid: string; name: string }[];
  /** -ngl as a number (full = n_layer + 1). */
  ngl: number;
  splitMode: 'none' | 'layer';
  tensorSplit?: number[];
  /** Estimated bytes per GPU (same order as gpus) and on the host. */
  estimate: Cost;
  reason: string;
}

/** What the proxy's instances hold and what loads under way were promised (per GPU index, and on the host). */
export interface Ledger {
  running: RunningInstance[];
  loading: Map<number, number>;
  loadingHostBytes?: number;
}

/** The machine's RAM as placement reads it (the OS's figures; a test may declare its own). */
export interface HostMemory {
  total(): number;
  /** What the OS says can be given to a new process now (MemAvailable on Linux). */
  available(): number;
}

export const OS_HOST_MEMORY: HostMemory = { total: () => os.totalmem(), available: () => os.freemem() };

/** A plan made without loading (PlacementService.preview). */
export interface PlanPreview {
  /** The planner's answer on the ledger as it is. */
  first: PlanResult;
  /** Its answer once the instances it would evict are gone (= first when it evicts nothing). */
  final: PlanResult;
  /** Instances it would stop, in order. */
  victims: string[];
  /** The devices as read for it. */
  devices: GpuDevice[];
  nLayers: number;
  settings: PlannerSettings;
}

export type PlaceDecision =
  | { kind: 'place'; placement: InstancePlacement }
  | Exclude<PlanResult, { kind: 'place' }>;

/**
 * The planner's cost function: llama.cpp's memory model for a candidate placement. GPUs of one kind cost the
 * same whichever they are, so results are kept by GPU count, -ngl and split.
 */
export function estimatorCost(info: ModelInfo, settings: EstimateSettings, overhead: Pick<Device, 'overheadBytes' | 'runtimeBytes'> = {}): (c: Candidate) => Cost {
  const cache = new Map<string, Cost>();
  return (c) => {
    const key = `${c.gpus.length}|${c.ngl}|${c.tensorSplit?.join(',') ?? ''}`;
    const hit = cache.get(key);
    if (hit) return hit;
    const devices: Device[] = c.gpus.map((index) => ({ name: `CUDA${index}`, kind: 'cuda', ...overhead }));
    const estimate = estimateMemory(info, settings, {
      devices,
      ...(c.ngl === 'full' ? {} : { ngl: c.ngl }),
      ...(c.tensorSplit ? { tensorSplit: c.tensorSplit } : {}),
    });
    const cost = { gpuBytes: estimate.devices.map((d) => d.totalBytes), hostBytes: estimate.host.totalBytes };
    cache.set(key, cost);
    return cost;
  };
}

/**
 * A cost function estimated with the default CUDA runtime, for a node that learned its own (null: none): the
 * runtime is a fixed term of each GPU's overhead (estimate/overhead.ts), so only that term changes.
 */
export function runtimeAdjusted(base: (c: Candidate) => Cost, runtimeBytes: number | null): (c: Candidate) => Cost {
  if (runtimeBytes === null) return base;
  const delta = runtimeBytes - DEFAULT_RUNTIME_BYTES.cuda;
  return (c) => {
    const cost = base(c);
    return { gpuBytes: cost.gpuBytes.map((b) => b + delta), hostBytes: cost.hostBytes };
  };
}

interface CachedInfo {
  mtimeMs: number;
  size: number;
  info: ModelInfo;
}

export class PlacementService {
  private readonly infos = new Map<string, CachedInfo>();
  private readonly costs = new Map<string, { info: ModelInfo; cost: (c: Candidate) => Cost }>();
  /** The CUDA runtime's memory per GPU, as measured on our own instances. */
  readonly runtime = new RuntimeOverhead();

  constructor(
    private readonly monitor: GpuMonitor,
    private readonly settings: GpuConfig,
    private readonly log: (msg: string, fields?: Record<string, unknown>) => void = () => {},
    readonly hostMemory: HostMemory = OS_HOST_MEMORY,
  ) {}

  get hasGpus(): boolean {
    return this.monitor.source.kind !== 'none';
  }

  /** The model's layout from its GGUF header, read once per file version. */
  modelInfo(file: string): ModelInfo {
    const st = statSync(file);
    const cached = this.infos.get(file);
    if (cached && cached.mtimeMs === st.mtimeMs && cached.size === st.size) return cached.info;
    let info: ModelInfo;
    try {
      info = modelInfo(readGgufModelHeaderSync(file, MODEL_INFO_READ_OPTIONS));
    } catch (err) {
      throw new ClientError(422, 'model_unreadable', `cannot read the GGUF header of ${file}: ${(err as Error).message}`);
    }
    this.infos.set(file, { mtimeMs: st.mtimeMs, size: st.size, info });
    return info;
  }

  /**
   * The cost function of one model under one set of settings, kept across decisions (a model placed again, or
   * re-planned after an eviction, costs no new estimates). A few dozen models at most; oldest dropped first.
   */
  private costFor(file: string, info: ModelInfo, settings: EstimateSettings, learned: number | null = this.runtime.bytes() ?? null): (c: Candidate) => Cost {
    // A fixed overhead (gpu.overheadMiB) wins; else the runtime learned from our instances, once there is one
    // (null: none learned, the estimator's default).
    const runtime = learned ?? undefined;
    const overhead = this.settings.overheadMiB !== undefined ? { overheadBytes: this.settings.overheadMiB * MIB } : runtime !== undefined ? { runtimeBytes: runtime } : {};
    const key = `${file}|${JSON.stringify(settings)}|${JSON.stringify(overhead)}`;
    let entry = this.costs.get(key);
    if (!entry || entry.info !== info) {
      entry = { info, cost: estimatorCost(info, settings, overhead) };
      this.costs.set(key, entry);
      if (this.costs.size > COST_CACHE_MODELS) this.costs.delete(this.costs.keys().next().value!);
    }
    return entry.cost;
  }

  /**
   * The model's cost on another node's GPUs (the cluster planner): the same estimate, with the CUDA runtime
   * that node learned from its own instances (null: none learned yet).
   */
  costOn(model: ResolvedModel, info: ModelInfo, runtimeBytes: number | null): (c: Candidate) => Cost {
    // The runtime is a fixed term per GPU (overhead.ts): every node shares one cost function (one set of
    // estimates per decision, not one per node) and adds its own runtime's difference to each GPU.
    const base = this.costFor(model.file, info, estimateSettings(model.ctx, model.parallel, model.args), null);
    return this.settings.overheadMiB !== undefined ? base : runtimeAdjusted(base, runtimeBytes);
  }

  /**
   * The model's cost over RPC devices (lent by other nodes: a GPU, or a CPU) and this node's GPUs, in
   * llama.cpp's device order, every layer offloaded: bytes per device and on this host.
   */
  rpcCostOn(model: ResolvedModel, info: ModelInfo): RpcCost {
    const settings = estimateSettings(model.ctx, model.parallel, model.args);
    const fixed = this.settings.overheadMiB !== undefined ? { overheadBytes: this.settings.overheadMiB * MIB } : {};
    return (devices, tensorSplit) => {
      const list: Device[] = devices.map((d, i) =>
        d.kind === 'local' ? { name: `CUDA${d.gpu}`, kind: 'cuda', ...fixed } : d.gpu === undefined ? { name: `RPC${i}[${d.node}]`, kind: 'rpc', remote: 'cpu' } : { name: `RPC${i}[${d.node}]`, kind: 'rpc', remote: 'cuda', ...fixed },
      );
      const estimate = estimateMemory(info, settings, { devices: list, tensorSplit: [...tensorSplit] });
      return { deviceBytes: estimate.devices.map((d) => d.totalBytes), hostBytes: estimate.host.totalBytes };
    };
  }

  /**
   * The cost function of a model not on disk yet (a Hub variant whose header was read by range), at `model`'s
   * settings; `key` names the file version (it keys the cache of estimates).
   */
  costOfHeader(model: Pick<ResolvedModel, 'ctx' | 'parallel' | 'args'>, key: string, info: ModelInfo): (c: Candidate) => Cost {
    return this.costFor(key, info, estimateSettings(model.ctx, model.parallel, model.args));
  }

  /** costOfHeader on another node's GPUs, with the CUDA runtime that node learned (as costOn). */
  costOfHeaderOn(model: Pick<ResolvedModel, 'ctx' | 'parallel' | 'args'>, key: string, info: ModelInfo, runtimeBytes: number | null): (c: Candidate) => Cost {
    const base = this.costFor(key, info, estimateSettings(model.ctx, model.parallel, model.args), null);
    return this.settings.overheadMiB !== undefined ? base : runtimeAdjusted(base, runtimeBytes);
  }

  /**
   * Room for a new model on GPU readings taken now (as the planner counts it: usable bytes after the ledger, loads
   * under way and the reserve, on GPUs not skipped as busy), plus what idle unpinned instances hold (room once
   * evicted); the same for the host. What `:auto` chooses a quantization by (quant-choice.ts).
   */
  async quantRoom(ledger: () => Ledger, node?: string): Promise<QuantRoom> {
    const devices = this.hasGpus ? await this.monitor.refresh() : [];
    const state = ledger();
    return quantRoomOf({
      ...(node !== undefined ? { node } : {}),
      gpus: devices.map((d) => ({ index: d.index, uuid: d.uuid, name: d.name, totalBytes: d.totalBytes, freeBytes: d.freeBytes, utilization: d.utilizationGpu })),
      running: state.running,
      loading: state.loading,
      host: { totalBytes: this.hostMemory.total(), availableBytes: this.hostMemory.available(), loadingBytes: state.loadingHostBytes ?? 0 },
      settings: this.plannerSettings(),
      cpuAllowed: this.settings.cpuFallback || devices.length === 0,
    });
  }

  /**
   * Another node's room for `:auto` (its polled state as the cluster planner sees it), counted by this node's
   * settings as the cluster planner counts it: the reserve and thresholds here, CPU fallback as configured here.
   */
  quantRoomOfView(view: Pick<NodeView, 'name' | 'gpus' | 'running' | 'loading' | 'host'>): QuantRoom {
    return quantRoomOf({ node: view.name, gpus: view.gpus, running: view.running, loading: view.loading, host: view.host, settings: this.plannerSettings(), cpuAllowed: this.settings.cpuFallback || view.gpus.length === 0 });
  }

  plannerSettings(): PlannerSettings {
    const s = this.settings;
    return {
      strategy: s.strategy,
      fit: s.fit,
      reserveBytes: s.reserveMiB * MIB,
      maxUtilization: s.maxUtilization,
      maxMemoryUsedFraction: s.maxMemoryUsed,
      partialOffload: s.partialOffload,
      cpuFallback: s.cpuFallback,
    };
  }

  private pins(model: ResolvedModel, devices: readonly GpuDevice[]): ModelPins | undefined {
    const gpu = model.gpu;
    if (!gpu) return undefined;
    const pins: ModelPins = {};
    if (gpu.devices) {
      pins.gpus = gpu.devices.map((d) => {
        if (typeof d === 'number') return d;
        const found = devices.find((g) => g.uuid === d);
        if (!found) throw new ClientError(503, 'gpu_not_found', `model "${model.id}" is pinned to GPU ${d}, which is not present`);
        return found.index;
      });
    }
    if (gpu.tensorSplit) pins.tensorSplit = gpu.tensorSplit;
    if (gpu.ngl !== undefined) pins.ngl = gpu.ngl;
    if (gpu.maxGpus !== undefined) pins.maxGpus = gpu.maxGpus;
    return pins;
  }

  /**
   * Whether the model could run here at all, were every instance of ours stopped: the refusal reason if not.
   * For models not on disk yet (a download not started): `info` comes from a header fetched by range.
   */
  async refusalIfNeverFits(model: ResolvedModel, info: ModelInfo, ours: () => Map<number, number>): Promise<string | undefined> {
    // Our instances' memory counts as free: they could all be stopped (on the host: all of its RAM, at most).
    const { result } = await this.plan(model, info, () => ({ running: [], loading: new Map() }), ours, true);
    return result.kind === 'refuse' ? result.reason : undefined;
  }

  /**
   * Where `model` would go now, without loading it (GET /plan, the dashboard's Plan page): the planner's first
   * answer on the ledger as it is and, when that is to evict, its answer once those instances are gone (the
   * evictions it would chain, at most four rounds). `info`: the layout of a model not on disk (a header read by
   * range); else read from its file.
   */
  async preview(model: ResolvedModel, ledger: Ledger, info?: ModelInfo): Promise<PlanPreview> {
    const layout = info ?? this.modelInfo(model.file);
    const { result: first, devices } = await this.plan(model, layout, () => ledger);
    const victims: string[] = [];
    let final: PlanResult = first;
    for (let round = 0; round < 4 && final.kind === 'evict'; round++) {
      victims.push(...final.victims);
      const gone = new Set(victims);
      const freed = new Map<number, number>();
      for (const r of ledger.running) if (gone.has(r.instanceId)) for (const [gpu, bytes] of r.gpuBytes) freed.set(gpu, (freed.get(gpu) ?? 0) + bytes);
      ({ result: final } = await this.plan(model, layout, () => ({ ...ledger, running: ledger.running.filter((r) => !gone.has(r.instanceId)) }), () => freed));
    }
    return { first, final, victims, devices, nLayers: layout.nLayer, settings: this.plannerSettings() };
  }

  /** Fresh device readings, then the pure planner on them, synchronously after the read. */
  private async plan(
    model: ResolvedModel,
    info: ModelInfo,
    ledger: () => Ledger,
    freedByUs?: () => Map<number, number>,
    wholeHost = false,
  ): Promise<{ result: PlanResult; devices: GpuDevice[] }> {
    const settings = estimateSettings(model.ctx, model.parallel, model.args);
    const devices = this.hasGpus ? await this.monitor.refresh() : [];
    const state = ledger();
    const freed = freedByUs?.() ?? new Map<number, number>();
    const result = planPlacement({
      modelId: model.id,
      nLayers: info.nLayer,
      estimate: this.costFor(model.file, info, settings),
      gpus: devices.map((d) => ({ index: d.index, uuid: d.uuid, name: d.name, totalBytes: d.totalBytes, freeBytes: Math.min(d.totalBytes, d.freeBytes + (freed.get(d.index) ?? 0)), utilization: d.utilizationGpu })),
      running: state.running,
      loading: state.loading,
      host: { totalBytes: this.hostMemory.total(), availableBytes: wholeHost ? this.hostMemory.total() : this.hostMemory.available(), loadingBytes: state.loadingHostBytes ?? 0 },
      pins: this.pins(model, devices),
      settings: this.plannerSettings(),
    });
    return { result, devices };
  }

  /**
   * Decides where `model` runs, given the proxy's instances (running) and loads under way, on GPU readings taken
   * now. Synchronous after the read, so the caller can record the result before anything else plans.
   */
  async decide(model: ResolvedModel, running: () => Ledger): Promise<PlaceDecision> {
    // Spread over RPC by the cluster's planner, which estimated every device: taken as it is.
    if (model.rpc) return { kind: 'place', placement: await this.rpcPlacement(model) };
    let info: ModelInfo;
    try {
      info = this.modelInfo(model.file);
    } catch (err) {
      // A header the estimator cannot model: never guess on a GPU; the CPU takes it when allowed.
      if (!this.settings.cpuFallback && this.hasGpus) throw err;
      const reason = `CPU: no memory estimate (${(err as Error).message})`;
      this.log('no estimate, running on the CPU', { model: model.id, reason });
      return { kind: 'place', placement: { gpus: [], ngl: 0, splitMode: 'none', estimate: { gpuBytes: [], hostBytes: 0 }, reason } };
    }
    const { result, devices } = await this.plan(model, info, running);
    if (result.kind !== 'place') return result;
    const p = result.placement;
    return {
      kind: 'place',
      placement: {
        gpus: p.gpus.map((index) => {
          const d = devices.find((g) => g.index === index)!;
          return { index, uuid: d.uuid, name: d.name };
        }),
        ngl: p.ngl === 'full' ? info.nLayer + 1 : p.ngl,
        splitMode: p.splitMode,
        ...(p.tensorSplit ? { tensorSplit: p.tensorSplit } : {}),
        estimate: p.cost,
        reason: model.quantization ? `${p.reason}; :auto chose ${model.quantization.reason}` : p.reason,
      },
    };
  }

  /** The placement of an instance over RPC: this node's share of the split (its GPUs after the RPC devices). */
  private async rpcPlacement(model: ResolvedModel): Promise<InstancePlacement> {
    const rpc = model.rpc!;
    const devices = this.hasGpus ? await this.monitor.refresh() : [];
    const info = this.modelInfo(model.file);
    const local = rpc.deviceBytes.slice(rpc.endpoints.length);
    return {
      gpus: rpc.localGpus.map((index) => {
        const d = devices.find((g) => g.index === index);
        if (!d) throw new ClientError(503, 'gpu_not_found', `the RPC placement of "${model.id}" names GPU ${index}, which is not present`);
        return { index, uuid: d.uuid, name: d.name };
      }),
      ngl: info.nLayer + 1,
      splitMode: 'layer',
      tensorSplit: rpc.tensorSplit,
      estimate: { gpuBytes: local, hostBytes: rpc.hostBytes },
      reason: rpc.reason,
    };
  }

  /**
   * Learns the CUDA runtime's memory from a started instance: what its process holds on each of its GPUs
   * (footprint()) against the buffers it logged there. Not from a model that loads cuBLAS: its warm-up may
   * already have, and its reading would not be the runtime alone.
   */
  observeFootprint(model: ResolvedModel, placement: InstancePlacement, measured: ReadonlyMap<number, number>, logged: ReadonlyMap<number, number>): void {
    try {
      const info = this.modelInfo(model.file);
      const devices: Device[] = placement.gpus.map((g) => ({ name: `CUDA${g.index}`, kind: 'cuda' }));
      const estimate = estimateMemory(info, estimateSettings(model.ctx, model.parallel, model.args), {
        devices,
        ngl: placement.ngl,
        ...(placement.tensorSplit ? { tensorSplit: placement.tensorSplit } : {}),
      });
      if (estimate.cublas) return;
    } catch {
      return;
    }
    for (const gpu of placement.gpus) {
      const held = measured.get(gpu.index);
      const buffers = logged.get(gpu.index);
      if (held === undefined || buffers === undefined) continue;
      if (this.runtime.observe(gpu.uuid, held, buffers)) {
        this.log('learned the CUDA runtime overhead', { gpu: gpu.index, uuid: gpu.uuid, runtimeMiB: Math.round((held - buffers) / MIB) });
      }
    }
  }

  /** Bytes the process holds on each GPU, from the driver's per-process accounting (empty when it does not tell). */
  async footprint(pid: number): Promise<Map<number, number>> {
    const held = new Map<number, number>();
    if (!this.hasGpus) return held;
    const devices = await this.monitor.refresh().catch(() => []);
    for (const d of devices) {
      const bytes = d.processes.filter((p) => p.pid === pid).reduce((sum, p) => sum + p.usedBytes, 0);
      if (bytes > 0) held.set(d.index, bytes);
    }
    return held;
  }

  /** Free bytes per GPU now (for recovery checks). */
  async freeNow(): Promise<Map<number, number>> {
    const devices = this.hasGpus ? await this.monitor.refresh().catch(() => []) : [];
    return new Map(devices.map((d) => [d.index, d.freeBytes]));
  }

  /**
   * After a stop: waits until the driver shows the instance's memory free again on each of its GPUs (at least
   * 80 % of what it held back, and its pid gone), or the timeout. A simulated source frees at once.
   */
  async waitForRecovery(pid: number | undefined, held: ReadonlyMap<number, number>, freeBefore: ReadonlyMap<number, number>): Promise<boolean> {
    if (!this.hasGpus || held.size === 0 || this.monitor.source.kind === 'simulated') return true;
    const deadline = Date.now() + this.settings.vramRecoveryTimeout * 1000;
    for (;;) {
      const devices = await this.monitor.refresh().catch(() => [] as GpuDevice[]);
      const recovered = [...held].every(([index, bytes]) => {
        const d = devices.find((g) => g.index === index);
        if (!d) return true;
        const gone = pid === undefined || !d.processes.some((p) => p.pid === pid);
        return gone && d.freeBytes >= (freeBefore.get(index) ?? 0) + 0.8 * bytes;
      });
      if (recovered) return true;
      if (Date.now() >= deadline) {
        this.log('GPU memory did not come back in time', { pid, timeoutS: this.settings.vramRecoveryTimeout });
        return false;
      }
      await sleep(RECOVERY_POLL_MS);
    }
  }
}
