/**
 * The KV cache as llama.cpp allocates it (llama_kv_cache's constructor, llama_kv_cache_iswa for
 * sliding-window models, llama_model::create_memory): per layer one K and one V tensor of
 * `row_size(type, n_embd_gqa) x cells x streams` bytes, on the device of the layer (or the CPU
 * with --no-kv-offload).
 *
 * - cells: n_ctx_seq for full-attention layers; for sliding-window layers
 *   pad256(min(n_ctx_seq, n_swa * (unified ? n_seq : 1) + n_ubatch)), unless --swa-full.
 * - streams: 1 with a unified cache, else one per sequence (slot).
 * - V without flash attention is stored transposed and padded to the widest layer
 *   (n_embd_v_gqa_max, [TAG_V_CACHE_VARIABLE]).
 * - Quantized K (or V) with a head size divisible by 64 adds a Hadamard rotation to the graph
 *   (attn_rot_k / attn_rot_v); that costs compute memory, not KV.
 * - Multi-head latent attention (hparams.is_mla()): only K, the compressed latent plus the rotary
 *   key (n_embd_k_gqa = (kv_lora_rank + n_rot) x 1 head), is stored; there is no V tensor (the
 *   graph reads V as a view of K's first kv_lora_rank values), and the K-only attention input
 *   (build_attn_inp_k) adds no rotation.
 * - Hybrid models (Qwen3-Next): only the full-attention layers have a KV cache; each recurrent layer
 *   has an F32 conv state (n_embd_r) and delta-net state (n_embd_s) per cell in llama_memory_recurrent
 *   ("RS buffer", part of llama.cpp's context figure), max(1, n_seq_max) cells, no streams. They are
 *   KvLayer entries with `recurrent` set: K = the conv state, V = the delta-net state.
 */

import { GGML_TYPES, rowBytes, type GgmlTypeInfo } from '../gguf/ggml-types.js';
import type { ModelInfo } from './model-info.js';
import type { ResolvedSettings } from './settings.js';

export interface KvCachePlan {
  /** Cells per stream. */
  readonly kvSize: number;
  readonly nStream: number;
  readonly layers: readonly number[];
  /** Rotation matrix sizes for K and V (0: none). */
  readonly rotK: number;
  readonly rotV: number;
}

export interface KvLayer {
  readonly il: number;
  readonly swa: boolean;
  readonly cells: number;
  readonly streams: number;
  readonly kBytes: number;
  readonly vBytes: number;
  readonly typeK: GgmlTypeInfo;
  readonly typeV: GgmlTypeInfo;
  /** K row width (n_embd_k_gqa) and stored V row width. */
  readonly kWidth: number;
  readonly vWidth: number;
  /** A recurrent layer's state (kWidth = n_embd_r, vWidth = n_embd_s, cells = rs size). */
  readonly recurrent?: true;
}

export interface KvPlan {
  readonly base: KvCachePlan;
  /** The sliding-window cache of an iswa model. */
  readonly swa: KvCachePlan | undefined;
  readonly vTrans: boolean;
  readonly nEmbdVGqaMax: number;
  readonly layers: readonly KvLayer[];
  readonly bytes: number;
}

const pad256 = (n: number): number => Math.ceil(n / 256) * 256;

/** Whether layer `il` has a KV cache (llama_hparams::has_kv; recurrent layers do not). */
function hasKv(m: ModelInfo, il: number): boolean {
  return (m.nHeadKv[il] ?? 0) > 0;
}

/** attn_rot_k / attn_rot_v and build_input_k_rot / build_input_v_rot */
function rotation(type: GgmlTypeInfo, headDim: number, isK: boolean): number {
  if (!type.quantized || headDim % 64 !== 0) return 0;
  if (!isK) return 64;
  let n = 64;
  do n *= 2; while (headDim % n === 0);
  return n / 2;
}

export function kvPlan(m: ModelInfo, s: ResolvedSettings, flashAttn: boolean): KvPlan {
  const vTrans = !flashAttn;
  const iswa = m.swaType !== 'none' && m.isSwa.some(Boolean);
  const sizeBase = s.nCtxSeq;
  const sizeSwa = s.swaFull ? sizeBase : pad256(Math.min(sizeBase, m.nSwa * (s.kvUnified ? s.nSeq : 1) + s.nUbatch));

  const hasV = m.mla === undefined;
  let vMax = 0;
  for (let il = 0; il < m.nLayer; il++) vMax = Math.max(vMax, m.nEmbdHeadV * (m.nHeadKv[il] ?? 0));

  const baseLayers: number[] = [];
  const swaLayers: number[] = [];
  const layers: KvLayer[] = [];
  let bytes = 0;
  for (let il = 0; il < m.nLayer; il++) {
    if (!hasKv(m, il)) continue;
    const swa = iswa && m.isSwa[il] === true;
    (swa ? swaLayers : baseLayers).push(il);
    const cells = swa ? sizeSwa : sizeBase;
    const kWidth = m.nEmbdHeadK * m.nHeadKv[il]!;
    const vWidth = !hasV ? 0 : vTrans ? vMax : m.nEmbdHeadV * m.nHeadKv[il]!;
    const kBytes = rowBytes(s.typeK.name, kWidth) * cells * s.nStream;
    const vBytes = hasV ? rowBytes(s.typeV.name, vWidth) * cells * s.nStream : 0;
    layers.push({ il, swa, cells, streams: s.nStream, kBytes, vBytes, typeK: s.typeK, typeV: s.typeV, kWidth, vWidth });
    bytes += kBytes + vBytes;
  }

  const rec = m.recurrent;
  if (rec) {
    // llama_memory_recurrent: mem_size = max(1, n_seq_max) rows (n_rs_seq = 0) of r and s per layer
    const cells = Math.max(1, s.nSeq);
    const f32 = GGML_TYPES.F32;
    for (let il = 0; il < m.nLayer; il++) {
      if (!rec.isRecurrent[il]) continue;
      const kBytes = rowBytes('F32', rec.nEmbdR) * cells;
      const vBytes = rowBytes('F32', rec.nEmbdS) * cells;
      layers.push({
        il, swa: false, cells, streams: 1, kBytes, vBytes, typeK: f32, typeV: f32, kWidth: rec.nEmbdR, vWidth: rec.nEmbdS, recurrent: true,
      });
      bytes += kBytes + vBytes;
    }
  }

  const rotK = hasV ? rotation(s.typeK, m.nEmbdHeadK, true) : 0;
  const rotV = hasV ? rotation(s.typeV, m.nEmbdHeadV, false) : 0;
  const cache = (kvSize: number, ls: number[]): KvCachePlan => ({ kvSize, nStream: s.nStream, layers: ls, rotK, rotV });
  return {
    base: cache(sizeBase, baseLayers),
    swa: iswa ? cache(sizeSwa, swaLayers) : undefined,
    vTrans,
    nEmbdVGqaMax: vMax,
    layers,
    bytes,
  };
}
