/** The placement planner's inputs and outputs. Memory in bytes; GPUs named by their index in the inventory. */

/** One GPU as the planner sees it at decision time. */
export interface PlannerGpu {
  index: number;
  uuid: string;
  name: string;
  totalBytes: number;
  /** What the driver reports free right now. */
  freeBytes: number;
  /** Percent busy, or null when unknown. */
  utilization: number | null;
}

/** How a model would run: which GPUs, how many layers offloaded, how the layers are split. */
export interface Candidate {
  /** GPU indices, in the order llama.cpp will number them; empty = CPU only. */
  gpus: number[];
  /** -ngl; `full` = every layer and the output. */
  ngl: number | 'full';
  /** -ts, one weight per GPU (only for several GPUs). */
  tensorSplit?: number[];
}

/** What a candidate costs: bytes on each of its GPUs (same order as candidate.gpus), and on the host. */
export interface Cost {
  gpuBytes: number[];
  hostBytes: number;
}

export type EstimateFn = (candidate: Candidate) => Cost;

/** An instance the proxy runs, as far as placement cares. */
export interface RunningInstance {
  instanceId: string;
  modelId: string;
  /** Bytes it holds (its measured footprint when known, else its estimate), per GPU index. */
  gpuBytes: Map<number, number>;
  /** Host RAM its estimate charges it (weights and buffers not on a GPU); 0 or absent when unknown. */
  hostBytes?: number;
  /** No request in flight (it may be evicted). */
  idle: boolean;
  pinned: boolean;
  lastUsed: number;
}

/** What the user fixed for a model; pins always win over the planner. */
export interface ModelPins {
  /** GPU indices the model must use. */
  gpus?: number[];
  tensorSplit?: number[];
  ngl?: number;
  maxGpus?: number;
}

export interface PlannerSettings {
  strategy: 'single-gpu-preferred' | 'distribute';
  /** Among single GPUs that fit: the tightest fit (keeps big GPUs free for big models) or the most free. */
  fit: 'best' | 'most-free';
  /** Kept free on every GPU, bytes. */
  reserveBytes: number;
  /** GPUs busier than this (percent) are skipped; 100 = never skip. */
  maxUtilization: number;
  /** GPUs whose used memory (by anyone) is above this fraction of total are skipped; 1 = never. */
  maxMemoryUsedFraction: number;
  partialOffload: boolean;
  cpuFallback: boolean;
  /** Host memory available to a CPU or partial placement, bytes (undefined: not checked). */
  hostAvailableBytes?: number;
}

export interface PlanInput {
  modelId: string;
  /** Layers of the model (-ngl counts these plus one for the output layer). */
  nLayers: number;
  estimate: EstimateFn;
  gpus: readonly PlannerGpu[];
  running: readonly RunningInstance[];
  /** Bytes already promised to loads under way, per GPU index (their estimates, until their footprint is known). */
  loading: ReadonlyMap<number, number>;
  /**
   * The machine's RAM, read now, checked like a GPU's memory: room is the smaller of what the OS says is
   * available and total minus what the ledger charges the proxy's instances (mapped weights and a KV cache are
   * paged in lazily: the OS does not count them yet), less host bytes promised to loads under way. Absent:
   * `settings.hostAvailableBytes` (or no check).
   */
  host?: { totalBytes: number; availableBytes: number; loadingBytes?: number };
  pins?: ModelPins;
  settings: PlannerSettings;
}

export interface Placement extends Candidate {
  splitMode: 'none' | 'layer';
  cost: Cost;
  /** Why this placement (one line for logs). */
  reason: string;
}

export type PlanResult =
  /** Start now with this placement. */
  | { kind: 'place'; placement: Placement }
  /** Stop these idle instances first, then plan again (their memory must come back). */
  | { kind: 'evict'; victims: string[]; reason: string }
  /** Memory is held by instances that are busy: wait for one to become idle. */
  | { kind: 'wait'; reason: string }
  /** Can never run as configured. */
  | { kind: 'refuse'; reason: string };
