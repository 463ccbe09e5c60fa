/**
 * Memory a GPU loses to an instance beyond llama.cpp's own buffers (weights, KV, compute), which llama.cpp
 * reports only as the "unaccounted" column of its memory breakdown. Three parts:
 *
 * - the runtime: the CUDA primary context (its size grows with the SM count: 107 MiB on an RTX 4060 Ti and
 *   555 MiB on an RTX PRO 6000 per llama.cpp PR #23604), loaded kernels, and what a warm-up leaves;
 * - cuBLAS, once a matrix product goes to it (its handle, workspace and kernels): float (F32/F16/BF16) weight
 *   matrices at prompt batch sizes, and attention without flash attention. Quantized weights use ggml's own
 *   kernels (MMQ), so a quantized dense model never loads it, while a MoE model does for its F32 router;
 * - the ggml CUDA memory pool: temporaries of the matrix kernels, kept at their peak: the activations
 *   quantized for MMQ (a micro-batch of the widest matrix input), and without flash attention the softmaxed
 *   KQ converted to F16 for cuBLAS (context x micro-batch x heads).
 *
 * Measured with scripts/gpu-check.sh on an NVIDIA H200 (driver 580.159, CUDA 13.0, llama.cpp of
 * node-llama-cpp 3.21.1), NVML's per-process memory minus the logged buffers: 587-590 MiB at ready for the
 * quantized dense models (Qwen2.5-0.5B Q8_0, Llama-3-8B and Gemma-2-9B Q4_K_M, at 4k and 32k context), 599-608
 * after a 1500-token prompt; the two MoE models (Qwen3-30B-A3B, Mixtral 8x7B, Q4_K_M) 593 at ready and 702-704
 * after the prompt (cuBLAS loaded for the F32 router); Qwen2.5-0.5B in F16 588 then 692; Llama-3-8B at
 * -ub 2048 620 after a 3000-token prompt, with -fa off 736 after 1500 tokens (cuBLAS, and 44 MiB of pool for
 * KQ at 1536 cells). The figures below cover all of those, never under. The runtime part differs by GPU: the
 * proxy learns it per GPU from its own instances (placement/runtime-overhead.ts) and passes it as
 * Device.runtimeBytes.
 */

const MiB = 1024 * 1024;

/** The runtime part before any measurement on the GPU at hand (a local CUDA GPU, or one behind an rpc-server). */
export const DEFAULT_RUNTIME_BYTES: Readonly<Record<'cuda', number>> = {
  cuda: 592 * MiB,
};

/** cuBLAS, once loaded: measured 96-104 MiB on the H200. */
export const CUBLAS_BYTES = 104 * MiB;

/** The pool's part that does not scale with the batch (the whole pool measured 10-18 MiB at -ub 512). */
export const POOL_BASE_BYTES = 16 * MiB;

export interface PoolInput {
  readonly nUbatch: number;
  /** The widest input row of a weight matrix (n_embd, or the feed-forward width for ffn_down). */
  readonly maxRowWidth: number;
  readonly flashAttn: boolean;
  /** KV cells one sequence's attention reads at most, and the most heads of a layer. */
  readonly nKv: number;
  readonly nHead: number;
}

/** The ggml CUDA pool's peak for one instance. */
export function poolBytes(p: PoolInput): number {
  // MMQ quantizes a micro-batch of activations to q8_1: 36 bytes per 32 values
  const quantized = Math.ceil((p.nUbatch * p.maxRowWidth * 36) / 32);
  // without flash attention, softmax(KQ) goes to cuBLAS as F16
  const kq = p.flashAttn ? 0 : p.nKv * p.nUbatch * p.nHead * 2;
  return POOL_BASE_BYTES + Math.max(quantized, kq);
}

export interface GpuOverheadInput {
  /** Only CUDA is modelled (a local GPU, or one an rpc-server serves). */
  readonly kind?: 'cuda';
  /** The runtime part measured on this GPU, when known (else DEFAULT_RUNTIME_BYTES.cuda). */
  readonly runtimeBytes?: number;
  readonly usesCublas: boolean;
  readonly poolBytes: number;
}

export interface GpuOverhead {
  readonly runtimeBytes: number;
  readonly cublasBytes: number;
  readonly poolBytes: number;
  readonly totalBytes: number;
}

export function gpuOverhead(i: GpuOverheadInput): GpuOverhead {
  const runtimeBytes = i.runtimeBytes ?? DEFAULT_RUNTIME_BYTES.cuda;
  const cublasBytes = i.usesCublas ? CUBLAS_BYTES : 0;
  return { runtimeBytes, cublasBytes, poolBytes: i.poolBytes, totalBytes: runtimeBytes + cublasBytes + i.poolBytes };
}

/**
 * What an rpc-server serving its CPU needs beyond the buffers llama-server allocates in it (weights, KV, compute,
 * which llama-server logs as RPC<i>[host:port]; the estimate equals those to the 0.01 MiB):
 *
 * - the process itself: code, heap, the graphs it deserializes (5.4 MiB resident when idle, 5.6 with a tiny
 *   model's buffers; RPC_CPU_BASE_BYTES leaves room);
 * - while loading, one weight at a time received whole into a message buffer before it is copied into place
 *   (RPC_CMD_SET_TENSOR): the largest weight on the device, freed afterwards;
 * - while computing, the CPU backend's work buffer (ggml_graph_plan: a matrix product's input converted to the
 *   weights' dot type; at most 2 bytes a value (F16), q8 types about 1.1, for a micro-batch of the widest row).
 *
 * Loading and computing do not overlap: the larger of the last two counts.
 */
export const RPC_CPU_BASE_BYTES = 16 * MiB;

export interface RpcCpuOverheadInput {
  readonly nUbatch: number;
  readonly maxRowWidth: number;
  /** The largest weight on the device (WeightPlacement.largestBytes). */
  readonly largestWeightBytes: number;
}

export function rpcCpuOverheadBytes(i: RpcCpuOverheadInput): number {
  return RPC_CPU_BASE_BYTES + Math.max(i.largestWeightBytes, i.nUbatch * i.maxRowWidth * 2);
}
