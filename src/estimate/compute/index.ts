/**
 * Compute buffer sizes per backend, the way llama.cpp measures them when it reserves
 * (llama_context::sched_reserve -> graph_reserve -> ggml_backend_sched_reserve_size): build the
 * prompt-processing graph for the worst-case micro-batch (n_tokens = min(n_ctx, n_ubatch) over all
 * sequences, every token an output), assign backends and split it (sched.ts), and run the
 * allocator over it (gallocr.ts). llama.cpp takes the size from that first pp reserve when it
 * only measures (no_alloc, as llama-fit-params does), and a real run's later tg/pp reserves never
 * need more for the graphs modelled here.
 */

import { CPU_BUFFER, CUDA_BUFFER } from '../buffers.js';
import type { KvPlan, KvCachePlan } from '../kv-cache.js';
import { CPU, type LayerAssignment } from '../layers.js';
import type { ModelInfo, ModelTensor } from '../model-info.js';
import type { ResolvedSettings } from '../settings.js';
import { measureGraph, type BufferKind } from './gallocr.js';
import { external, type Tensor } from './ggml.js';
import { buildLlmGraph, type KvCacheGraph } from './graph-llm.js';
import { scheduleGraph } from './sched.js';

export interface ComputeInputs {
  readonly model: ModelInfo;
  readonly settings: ResolvedSettings;
  readonly kv: KvPlan;
  readonly flashAttn: boolean;
  readonly layers: LayerAssignment;
  /** The offload devices' backends, in placement order (the CPU comes after them). */
  readonly devices: readonly ComputeDevice[];
  readonly weightDevice: (t: ModelTensor) => number;
  readonly opOffload: boolean;
  /** Tensor overrides are in use (disables pipeline parallelism). */
  readonly overridden: boolean;
}

/** What the scheduler and allocator need to know of an offload device's backend. */
export interface ComputeDevice {
  /** Whose buffer rules its compute buffer follows (an RPC device: the backend behind the rpc-server). */
  readonly buffer: 'cpu' | 'cuda';
  /**
   * A local CUDA backend: it takes op offload (ggml_backend_cuda_device_offload_op) and its graph_optimize fuses
   * MoE reductions. An RPC device does neither (ggml-rpc has no offload_op and no graph_optimize).
   */
  readonly localCuda: boolean;
}

export interface ComputeSizes {
  /** Compute buffer per GPU. */
  readonly gpu: readonly number[];
  /** The CPU's compute buffer (CUDA_Host when GPUs are present). */
  readonly host: number;
  /** Pipeline parallelism (GGML_SCHED_MAX_COPIES input copies) was in effect. */
  readonly pipelineParallel: boolean;
  /** The graph could not be simulated: a coarse bound was used (roughCompute). */
  readonly rough?: boolean;
}

const GGML_SCHED_MAX_COPIES = 4;
const OP_OFFLOAD_MIN_BATCH = 32;
/** ggml-cuda's MOE_WEIGHTED_REDUCTION_MAX_EXPERTS */
const MOE_FUSION_MAX_EXPERTS = 15;

export function computeBuffers(c: ComputeInputs): ComputeSizes {
  if (c.model.family !== 'generic') return simulate(c);
  try {
    return simulate(c);
  } catch {
    // an architecture whose tensors do not fit the llama graph shape
    return roughCompute(c);
  }
}

function simulate(c: ComputeInputs): ComputeSizes {
  const { model: m, settings: s } = c;
  const nGpu = c.devices.length;
  const cpuIndex = nGpu; // the CPU backend comes last
  const toBackend = (dev: number): number => (dev === CPU ? cpuIndex : dev);
  const layerBackend = (il: number): number => toBackend(c.layers.layers[il] ?? CPU);

  const nTokensRaw = Math.min(s.nCtx, s.nUbatch);
  // graph_reserve rounds the token count up to a multiple of the sequence count
  const nTokens = Math.ceil(nTokensRaw / s.nSeq) * s.nSeq;
  const nOutputs = Math.min(nTokensRaw, s.nOutputsMax);

  const cacheGraph = (cache: KvCachePlan): KvCacheGraph => {
    const layers = new Map<number, { k: Tensor; v: Tensor }>();
    for (const L of c.kv.layers) {
      if (!cache.layers.includes(L.il)) continue;
      const dev = s.kvOffload ? layerBackend(L.il) : cpuIndex;
      layers.set(L.il, {
        k: external(L.typeK, [L.kWidth, cache.kvSize, cache.nStream], dev, false),
        v: external(L.typeV, [L.vWidth, cache.kvSize, cache.nStream], dev, false),
      });
    }
    return {
      kvSize: cache.kvSize, nStream: cache.nStream, vTrans: c.kv.vTrans, rotK: cache.rotK, rotV: cache.rotV,
      nEmbdVGqaMax: c.kv.nEmbdVGqaMax, layers,
    };
  };

  // llama_context::graph_get_cb: with full offload (or tiny batches) a layer's norm is pinned to
  // the layer's device; without KV offload, attention output is pinned to the CPU.
  const fullOffload = c.layers.ngl > m.nLayer;
  const pin = nGpu === 0 ? undefined : (t: Tensor, il: number, reason: 'layer-norm' | 'kq-out'): void => {
    if (reason === 'layer-norm' && il >= 0 && (nTokens < 32 || fullOffload)) t.forcedBackend = layerBackend(il);
    if (reason === 'kq-out' && !s.kvOffload) t.forcedBackend = cpuIndex;
  };

  // llama_memory_recurrent's r_l / s_l of each recurrent layer, placed like the KV cache
  const recurrent = new Map<number, { r: Tensor; s: Tensor }>();
  for (const L of c.kv.layers) {
    if (!L.recurrent) continue;
    const dev = s.kvOffload ? layerBackend(L.il) : cpuIndex;
    recurrent.set(L.il, { r: external(L.typeK, [L.kWidth, L.cells], dev, false), s: external(L.typeV, [L.vWidth, L.cells], dev, false) });
  }

  const built = buildLlmGraph({
    model: m,
    nTokens,
    nSeqs: s.nSeq,
    nOutputs,
    flashAttn: c.flashAttn,
    kvUnified: s.kvUnified,
    base: cacheGraph(c.kv.base),
    swa: c.kv.swa ? cacheGraph(c.kv.swa) : undefined,
    recurrent,
    weightDevice: (t) => toBackend(c.weightDevice(t)),
    ...(pin ? { pin } : {}),
  });

  const kinds: BufferKind[] = [...c.devices.map((d) => (d.buffer === 'cuda' ? CUDA_BUFFER : CPU_BUFFER)), CPU_BUFFER];
  if (nGpu === 0) {
    const [host] = measureGraph(built.graph, kinds);
    return { gpu: [], host: host!, pipelineParallel: false };
  }

  // llama_context: pipeline parallelism needs several devices, everything offloaded, KV offload
  // and no tensor overrides (CUDA and RPC devices both support the async copies and events it also needs).
  const pipelineParallel = nGpu > 1 && fullOffload && s.kvOffload && !c.overridden;
  const graph = scheduleGraph(built.graph, {
    nGpu,
    opOffload: c.opOffload,
    offloadBackend: c.devices.findIndex((d) => d.localCuda),
    offloadMinBatch: OP_OFFLOAD_MIN_BATCH,
    nCopies: pipelineParallel ? GGML_SCHED_MAX_COPIES : 1,
    allocDeps: (nodes, backend) => (backend !== cpuIndex && c.devices[backend]!.localCuda ? cudaMoeFusionDeps(nodes) : []),
  });
  const sizes = measureGraph(graph, kinds);
  return { gpu: sizes.slice(0, nGpu), host: sizes[nGpu]!, pipelineParallel };
}

/**
 * A coarse bound for graphs the simulation cannot build: the largest of the output phase (logits
 * and the final norm), the FFN phase and the attention phase (the KQ matrix without flash
 * attention), plus the inputs, all on the device of the last layer.
 */
function roughCompute(c: ComputeInputs): ComputeSizes {
  const { model: m, settings: s } = c;
  const nTokens = Math.min(s.nCtx, s.nUbatch);
  const nOut = Math.min(nTokens, s.nOutputsMax);
  const maxHead = Math.max(...m.nHead);
  const ff = m.nExpert > 0 ? m.nExpertUsed * m.nFfExp : Math.max(...m.nFf);
  const f32 = 4;
  const inputs = nTokens * m.nEmbd * f32 * 2 + s.nCtxSeq * nTokens * (c.flashAttn ? 2 : 4);
  const output = nOut * m.nVocab * f32 + nTokens * m.nEmbd * f32 * 2;
  const ffn = nTokens * (3 * ff + 2 * m.nEmbd) * f32;
  const attn = c.flashAttn ? nTokens * 4 * maxHead * m.nEmbdHeadK * f32 : s.nCtxSeq * nTokens * maxHead * f32 * 2;
  const total = inputs + Math.max(output, ffn, attn);
  const last = c.layers.output;
  const nGpu = c.devices.length;
  if (nGpu === 0 || last === CPU) return { gpu: new Array<number>(nGpu).fill(0), host: total, pipelineParallel: false, rough: true };
  const gpu = new Array<number>(nGpu).fill(0);
  gpu[last] = total;
  return { gpu, host: inputs, pipelineParallel: false, rough: true };
}

/**
 * ggml_backend_cuda_graph_optimize: the fused MoE weighted reduction (mul(experts, weights), then
 * the per-expert views and adds) keeps `experts` and `weights` alive until its last add.
 */
function cudaMoeFusionDeps(nodes: readonly Tensor[]): { keep: Tensor[]; until: Tensor }[] {
  const deps: { keep: Tensor[]; until: Tensor }[] = [];
  for (let i = 0; i < nodes.length; i++) {
    const mulNode = nodes[i]!;
    if (mulNode.op !== 'MUL' || mulNode.src.length !== 2) continue;
    const [experts, weights] = mulNode.src as [Tensor, Tensor];
    if (weights.ne[0] !== 1 || experts.ne[1] !== mulNode.ne[1] || experts.ne[0] !== mulNode.ne[0]) continue;
    const nUsed = mulNode.ne[1];
    if (nUsed < 2 || nUsed > MOE_FUSION_MAX_EXPERTS) continue;
    const count = 2 * nUsed;
    const last = nodes[i + count - 1];
    if (!last || last.op !== 'ADD') continue;
    let ok = true;
    for (let k = 1; k <= nUsed && ok; k++) ok = nodes[i + k]!.op === 'VIEW' && nodes[i + k]!.src[0] === mulNode;
    if (ok) deps.push({ keep: [experts, weights], until: last });
  }
  return deps;
}
