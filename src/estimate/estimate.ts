/**
 * The estimate: bytes per device (the host and each GPU), broken into weights ("model"), KV cache
 * ("context"), compute buffers and per-GPU runtime overhead, for one model, llama-server settings
 * and placement. Pure and cheap (a few milliseconds): the placement planner calls it for many
 * candidate placements of one ModelInfo.
 *
 * The model / context / compute figures are the ones llama.cpp's memory breakdown reports
 * (llama_get_memory_breakdown, printed by llama-fit-params --fit-print and by llama-server at
 * -lv 4). Overhead is what that breakdown leaves out: for a GPU the CUDA context and pools, for
 * an RPC device what its rpc-server process needs beyond the buffers (overhead.ts), for the host
 * the logits output buffer.
 */

import { computeBuffers } from './compute/index.js';
import { kvPlan, type KvLayer } from './kv-cache.js';
import { CPU, layerAssignment, type LayerAssignment } from './layers.js';
import type { ModelInfo } from './model-info.js';
import { cudaFlashAttnSupported } from './flash-attn.js';
import { gpuOverhead, poolBytes, rpcCpuOverheadBytes } from './overhead.js';
import { bufferRules, effectiveSplit, type Device, type DeviceKind, type Placement } from './placement.js';
import { resolveSettings, type EstimateSettings, type ResolvedSettings } from './settings.js';
import { placeWeights } from './weights.js';

export interface DeviceMemory {
  readonly name: string;
  readonly kind: 'cpu' | DeviceKind;
  /** Weights (llama.cpp's "model"). */
  readonly modelBytes: number;
  /** KV cache and recurrent state (llama.cpp's "context"). */
  readonly contextBytes: number;
  /** Compute buffer (llama.cpp's "compute"). */
  readonly computeBytes: number;
  /**
   * Outside llama.cpp's breakdown: CUDA context and pools on a GPU (a CUDA rpc-server's too), an rpc-server's
   * own memory on a CPU rpc-server, the logits buffer on the host.
   */
  readonly overheadBytes: number;
  readonly totalBytes: number;
}

export interface MemoryEstimate {
  /** CPU RAM (model weights kept in RAM, CPU-side KV and compute, pinned host buffers). */
  readonly host: DeviceMemory;
  /** One entry per placement device, in order. */
  readonly devices: readonly DeviceMemory[];
  readonly totalBytes: number;
  /** The settings as llama.cpp resolves them. */
  readonly settings: ResolvedSettings;
  /** Flash attention as it will run ('auto' resolved). */
  readonly flashAttn: boolean;
  readonly layers: LayerAssignment;
  /** Per-layer KV sizes (and their cells). */
  readonly kv: readonly KvLayer[];
  /** Pipeline parallelism (4 copies of split inputs) in effect. */
  readonly pipelineParallel: boolean;
  /** Whether cuBLAS loads on its GPUs (float weight matrices, or attention without flash attention). */
  readonly cublas: boolean;
  /** Parts of this model the estimate cannot model exactly. */
  readonly caveats: readonly string[];
}

export function estimateMemory(model: ModelInfo, settings: EstimateSettings, placement: Placement): MemoryEstimate {
  const s = resolveSettings(model, settings);
  const layers = layerAssignment(model.nLayer, placement.ngl, effectiveSplit(placement));
  // 'auto' flash attention: llama.cpp enables it when the FA op runs on each layer's device. The CPU runs
  // every shape; CUDA only some (flash-attn.ts), which matters once a layer is on a local GPU. An RPC device
  // claims every op (ggml-rpc's supports_op), so its layers keep it on.
  const cudaLayers = layers.layers.some((d) => d !== CPU && placement.devices[d]!.kind === 'cuda');
  const flashAttn = s.flashAttn === 'on' || (s.flashAttn === 'auto' && (!cudaLayers || cudaFlashAttnSupported(model, s.typeK, s.typeV)));
  const kv = kvPlan(model, s, flashAttn);
  const buffers = placement.devices.map(bufferRules);
  const weights = placeWeights(model, s, layers, buffers);

  const compute = computeBuffers({
    model,
    settings: s,
    kv,
    flashAttn,
    layers,
    devices: placement.devices.map((d, i) => ({ buffer: buffers[i]!, localCuda: d.kind === 'cuda' })),
    weightDevice: weights.deviceOf,
    opOffload: placement.opOffload ?? true,
    overridden: weights.overridden,
  });

  const gpuKv = new Array<number>(placement.devices.length).fill(0);
  let hostKv = 0;
  for (const L of kv.layers) {
    const dev = s.kvOffload ? layers.layers[L.il] ?? CPU : CPU;
    if (dev === CPU) hostKv += L.kBytes + L.vBytes;
    else gpuKv[dev]! += L.kBytes + L.vBytes;
  }

  const cublas = buffers.includes('cuda') && (!flashAttn || usesFloatMatmul(model));
  const maxRowWidth = Math.max(model.nEmbd, model.nFfExp, ...model.nFf);
  const pool = poolBytes({
    nUbatch: s.nUbatch,
    maxRowWidth,
    flashAttn,
    nKv: s.kvUnified ? s.nCtx : s.nCtxSeq,
    nHead: Math.max(...model.nHead),
  });
  const overheadOf = (d: Device, i: number): number => {
    if (d.overheadBytes !== undefined) return d.overheadBytes;
    if (bufferRules(d) === 'cpu') return rpcCpuOverheadBytes({ nUbatch: s.nUbatch, maxRowWidth, largestWeightBytes: weights.largestBytes[i]! });
    return gpuOverhead({ usesCublas: cublas, poolBytes: pool, ...(d.runtimeBytes !== undefined ? { runtimeBytes: d.runtimeBytes } : {}) }).totalBytes;
  };
  const devices: DeviceMemory[] = placement.devices.map((d, i) => memory(d.name, d.kind, weights.gpuBytes[i]!, gpuKv[i]!, compute.gpu[i]!, overheadOf(d, i)));
  // llama_context::output_reserve: logits for one output per sequence, in (pinned) host memory
  const outputBytes = model.nVocab * s.nSeq * 4;
  const host = memory('CPU', 'cpu', weights.hostBytes, hostKv, compute.host, outputBytes);

  return {
    host,
    devices,
    totalBytes: host.totalBytes + devices.reduce((sum, d) => sum + d.totalBytes, 0),
    settings: s,
    flashAttn,
    layers,
    kv: kv.layers,
    pipelineParallel: compute.pipelineParallel,
    cublas,
    caveats: compute.rough
      ? [...model.caveats, `${model.arch}: its tensors do not fit the llama graph; the compute buffer is a coarse bound`]
      : model.caveats,
  };
}

const FLOAT_TYPES = new Set(['F32', 'F16', 'BF16']);

/**
 * Whether a weight matrix is stored as floats, so its products at prompt batch sizes go to cuBLAS (a MoE
 * router, an unquantized model). 1-D tensors (norms, biases) and the input embeddings (a row lookup) do not.
 */
function usesFloatMatmul(model: ModelInfo): boolean {
  return model.tensors.some((t) => t.layer.kind !== 'input' && t.dims.length >= 2 && t.dims[1]! > 1 && FLOAT_TYPES.has(t.type.name));
}

function memory(name: string, kind: DeviceMemory['kind'], model: number, context: number, compute: number, overhead: number): DeviceMemory {
  return {
    name,
    kind,
    modelBytes: model,
    contextBytes: context,
    computeBytes: compute,
    overheadBytes: overhead,
    totalBytes: model + context + compute + overhead,
  };
}
