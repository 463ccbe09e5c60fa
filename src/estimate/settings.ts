/**
 * Context settings as llama-server takes them (flags and defaults), and their resolution into the
 * values llama.cpp actually uses (llama_context's constructor: context padding, slots and
 * streams, batch limits, flash attention). An impossible combination throws an EstimateError with
 * llama.cpp's own reason, because llama-server would refuse to start with it.
 */

import { GGML_TYPES, type GgmlTypeInfo } from '../gguf/ggml-types.js';
import type { ModelInfo } from './model-info.js';

/** Cache types llama-server accepts for -ctk / -ctv. */
export const KV_CACHE_TYPES = ['f32', 'f16', 'bf16', 'q8_0', 'q4_0', 'q4_1', 'q5_0', 'q5_1', 'iq4_nl'] as const;
export type KvCacheType = (typeof KV_CACHE_TYPES)[number];

export type FlashAttn = 'on' | 'off' | 'auto';

/** Moves tensors whose name matches `pattern` to the CPU, like `-ot <pattern>=CPU`. */
export interface TensorOverride {
  readonly pattern: RegExp;
  /** Only CPU targets are modelled (the common use: keep experts in RAM). */
  readonly target: 'cpu';
}

/** llama-server flags that change memory. Everything is optional; defaults are llama-server's. */
export interface EstimateSettings {
  /** -c; 0 or undefined: the model's training context. */
  readonly ctx?: number;
  /** -np; 'auto' (the default) means 4 slots sharing one unified KV cache. */
  readonly parallel?: number | 'auto';
  /** -kvu: one KV buffer shared by all slots (implied by parallel 'auto'). */
  readonly kvUnified?: boolean;
  /** -b (default 2048) */
  readonly batch?: number;
  /** -ub (default 512) */
  readonly ubatch?: number;
  /** -ctk (default f16) */
  readonly cacheTypeK?: KvCacheType;
  /** -ctv (default f16) */
  readonly cacheTypeV?: KvCacheType;
  /** -fa (default auto) */
  readonly flashAttn?: FlashAttn;
  /** --swa-full */
  readonly swaFull?: boolean;
  /** false for --no-kv-offload (KV cache and attention stay on the CPU). */
  readonly kvOffload?: boolean;
  /** --n-cpu-moe N: the expert tensors of the first N layers stay on the CPU (--cpu-moe: all). */
  readonly cpuMoeLayers?: number;
  /** -ot patterns with target CPU. */
  readonly overrides?: readonly TensorOverride[];
  /**
   * Logit rows the compute graph reserves per micro-batch (llama.cpp's n_outputs_max).
   * 'slots' (default): llama-server's choice, one per slot (server_output_limits: n_parallel, or
   * n_parallel x (1 + draft tokens) with speculative decoding). 'batch': the library default
   * (n_batch) that llama-fit-params and the other tools use; it makes the compute buffer hold
   * n_ubatch x n_vocab logits. A number sets it directly.
   */
  readonly outputs?: 'slots' | 'batch' | number;
  /** Draft tokens per slot with speculative decoding (--draft-max); only widens 'slots' outputs. */
  readonly draftTokens?: number;
}

export const DEFAULT_BATCH = 2048;
export const DEFAULT_UBATCH = 512;
/** llama-server's slot count when -np is not given (server.cpp: "n_parallel is set to auto"). */
export const AUTO_PARALLEL = 4;

export class EstimateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EstimateError';
  }
}

/** Settings after llama.cpp's adjustments (llama_context::llama_context). */
export interface ResolvedSettings {
  /** cparams.n_ctx: padded to 256, and a multiple of n_seq when not unified. */
  readonly nCtx: number;
  /** cparams.n_ctx_seq: cells of one KV stream. */
  readonly nCtxSeq: number;
  readonly nSeq: number;
  readonly kvUnified: boolean;
  /** KV streams: 1 when unified, else one per sequence. */
  readonly nStream: number;
  readonly nBatch: number;
  readonly nUbatch: number;
  readonly typeK: GgmlTypeInfo;
  readonly typeV: GgmlTypeInfo;
  /** Requested flash attention; 'auto' is decided per device by the caller. */
  readonly flashAttn: FlashAttn;
  readonly swaFull: boolean;
  readonly kvOffload: boolean;
  readonly cpuMoeLayers: number;
  readonly overrides: readonly TensorOverride[];
  /** cparams.n_outputs_max */
  readonly nOutputsMax: number;
}

const pad = (n: number, to: number): number => Math.ceil(n / to) * to;

export function kvCacheType(name: string): GgmlTypeInfo {
  const t = (GGML_TYPES as Readonly<Record<string, GgmlTypeInfo>>)[name.toUpperCase()];
  if (!t || !(KV_CACHE_TYPES as readonly string[]).includes(name.toLowerCase())) {
    throw new EstimateError(`unsupported cache type ${name} (one of ${KV_CACHE_TYPES.join(', ')})`);
  }
  return t;
}

function positiveInt(name: string, v: number): number {
  if (!Number.isInteger(v) || v < 1) throw new EstimateError(`${name} must be a positive integer, got ${v}`);
  return v;
}

function outputsMax(s: EstimateSettings, nSeq: number, nBatch: number): number {
  const o = s.outputs ?? 'slots';
  if (o === 'batch') return nBatch;
  if (o === 'slots') return Math.max(1, Math.min(nBatch, nSeq * (1 + Math.max(0, s.draftTokens ?? 0))));
  return positiveInt('outputs', o);
}

export function resolveSettings(model: ModelInfo, s: EstimateSettings): ResolvedSettings {
  const auto = s.parallel === undefined || s.parallel === 'auto';
  const nSeq = auto ? AUTO_PARALLEL : positiveInt('parallel', s.parallel as number);
  const kvUnified = auto ? true : s.kvUnified ?? false;

  const requested = s.ctx === undefined || s.ctx === 0 ? model.nCtxTrain : positiveInt('ctx', s.ctx);
  if (!requested) throw new EstimateError('the model declares no context length; pass ctx');
  let nCtx = pad(requested, 256);
  let nCtxSeq = nCtx;
  if (!kvUnified) {
    nCtxSeq = pad(Math.floor(nCtx / nSeq), 256);
    nCtx = nCtxSeq * nSeq;
  }

  const nBatch = Math.min(nCtx, positiveInt('batch', s.batch ?? DEFAULT_BATCH));
  const nUbatch = Math.min(nBatch, positiveInt('ubatch', s.ubatch ?? DEFAULT_UBATCH));

  const typeK = kvCacheType(s.cacheTypeK ?? 'f16');
  const typeV = kvCacheType(s.cacheTypeV ?? 'f16');
  let flashAttn = s.flashAttn ?? 'auto';
  // llama_init_from_model: MLA models keep no V cache (V is a view of K) and refuse different types
  if (model.mla && typeK.name !== typeV.name) {
    throw new EstimateError(`model does not support different K (${typeK.name.toLowerCase()}) and V (${typeV.name.toLowerCase()}) cache types`);
  }
  // llama_init_from_model: a quantized V cache needs flash attention (auto turns it on).
  if (typeV.quantized) {
    if (flashAttn === 'off') throw new EstimateError('quantized V cache requires flash attention (-fa on)');
    flashAttn = 'on';
  }
  if (flashAttn !== 'off') {
    for (const [t, dim, which] of [[typeK, model.nEmbdHeadK, 'K'], [typeV, model.nEmbdHeadV, 'V']] as const) {
      if (t.quantized && dim % t.blockSize !== 0) {
        throw new EstimateError(`${which} cache type ${t.name.toLowerCase()} with block size ${t.blockSize} does not divide the head size ${dim}`);
      }
    }
  }

  return {
    nCtx,
    nCtxSeq,
    nSeq,
    kvUnified,
    nStream: kvUnified ? 1 : nSeq,
    nBatch,
    nUbatch,
    typeK,
    typeV,
    flashAttn,
    swaFull: s.swaFull ?? false,
    kvOffload: s.kvOffload ?? true,
    cpuMoeLayers: Math.max(0, Math.min(s.cpuMoeLayers ?? 0, model.nLayer)),
    overrides: s.overrides ?? [],
    nOutputsMax: outputsMax(s, nSeq, nBatch),
  };
}
