/**
 * Which GGML type `llama-quantize` gives each tensor, ported from llama.cpp src/llama-quant.cpp
 * (llama_tensor_get_type and helpers) for the file types the replicas use: F16 (as written by
 * convert_hf_to_gguf.py), Q8_0, Q6_K, Q5_K_M, Q4_K_M, Q3_K_M and Q2_K, starting from an F16 model
 * without imatrix or overrides.
 *
 * Details that matter and are easy to miss:
 * - llama-quantize visits tensors in its weights_map order (by layer number, non-layer tensors
 *   first, then by name), and the attn_v / ffn_down "use_more_bits" choice depends on a running
 *   counter in that order, not on the layer number (except for MoE models' ffn_down, whose layer
 *   is parsed from the name).
 * - attn_qkv is counted and treated as attn_v: the attn_v branch comes first in llama.cpp, so its
 *   own ATTENTION_QKV branch (Q5_K for Q4_K_M) is never reached.
 * - With tied embeddings (no output.weight) token_embd is quantized like output.weight.
 * - Exactly 8 experts (Mixtral) bumps attn_v and attn_k to Q8_0 and attn_output to Q5_K.
 * - Rows (dims[0]) not divisible by the type's block size fall back: Q2_K and Q3_K -> IQ4_NL,
 *   Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0, and to F16 if even 32 does not divide them.
 * - Q2_K gives attn_v Q4_K when the model groups 4 or more query heads per KV head (n_gqa >= 4), else Q3_K.
 */

import { GGML_TYPES, type GgmlTypeName } from './ggml-types.js';

export type QuantFileType = 'F16' | 'Q8_0' | 'Q6_K' | 'Q5_K_M' | 'Q4_K_M' | 'Q3_K_M' | 'Q2_K';

/** general.file_type values (llama_ftype in llama.h). */
export const FILE_TYPE_ID: Record<QuantFileType, number> = {
  F16: 1,
  Q8_0: 7,
  Q2_K: 10,
  Q3_K_M: 12,
  Q4_K_M: 15,
  Q5_K_M: 17,
  Q6_K: 18,
};

/** The type of tensors no rule singles out (llama_model_quantize_impl's default_type). */
const DEFAULT_TYPE: Record<Exclude<QuantFileType, 'F16'>, GgmlTypeName> = {
  Q8_0: 'Q8_0',
  Q6_K: 'Q6_K',
  Q5_K_M: 'Q5_K',
  Q4_K_M: 'Q4_K',
  Q3_K_M: 'Q3_K',
  Q2_K: 'Q2_K',
};

export interface QuantizeModelInfo {
  /** general.architecture */
  readonly arch: string;
  /** <arch>.block_count */
  readonly layerCount: number;
  /** <arch>.expert_count, 0 for dense models. */
  readonly expertCount: number;
  /** llama.cpp's LLM_TYPE_70B (llama arch, 80 layers, GQA): attn_v gets Q5_K instead of Q3_K or Q4_K. */
  readonly is70B?: boolean;
  /** Query heads per KV head (n_head / n_head_kv); Q2_K's attn_v depends on it. Default 1. */
  readonly nGqa?: number;
}

export interface QuantizableTensor {
  readonly name: string;
  readonly dims: readonly number[];
  /** Type in the source (F16) file. */
  readonly type: GgmlTypeName;
}

type Category =
  | 'token_embd' | 'attn_q' | 'attn_v' | 'attn_k' | 'attn_qkv' | 'attn_kv_b' | 'attn_output'
  | 'ffn_up' | 'ffn_gate' | 'ffn_down' | 'output' | 'other';

function categoryOf(name: string): Category {
  if (name === 'output.weight') return 'output';
  if (name === 'token_embd.weight' || name === 'per_layer_token_embd.weight') return 'token_embd';
  if (name.includes('attn_qkv.weight')) return 'attn_qkv';
  if (name.includes('attn_kv_b.weight')) return 'attn_kv_b';
  if (name.includes('attn_v.weight')) return 'attn_v';
  if (name.includes('attn_k.weight')) return 'attn_k';
  if (name.includes('attn_q.weight')) return 'attn_q';
  if (name.includes('attn_output.weight')) return 'attn_output';
  if (name.includes('ffn_up')) return 'ffn_up';
  if (name.includes('ffn_gate')) return 'ffn_gate';
  if (name.includes('ffn_down')) return 'ffn_down';
  return 'other';
}

const isAttnVLike = (c: Category): boolean => c === 'attn_v' || c === 'attn_qkv' || c === 'attn_kv_b';

/** Substrings of tensor names llama-quantize never quantizes (tensor_allows_quantization). */
const NEVER_QUANTIZED = [
  '_norm.weight', 'ffn_gate_inp.weight', 'ffn_gate_tid2eid.weight', 'altup', 'laurel',
  'per_layer_model_proj', 'ssm_conv1d', 'shortconv.conv.weight', 'indexer.k_proj.weight',
  'indexer.q_proj.weight', 'time_mix_first.weight', 'time_mix_w0.weight', 'time_mix_w1.weight',
  'time_mix_w2.weight', 'time_mix_v0.weight', 'time_mix_v1.weight', 'time_mix_v2.weight',
  'time_mix_a0.weight', 'time_mix_a1.weight', 'time_mix_a2.weight', 'time_mix_g1.weight',
  'time_mix_g2.weight', 'time_mix_decay_w1.weight', 'time_mix_decay_w2.weight',
  'time_mix_lerp_fused.weight', 'attn_rel_b.weight', '.position_embd', 'sam.pos_embd',
  'sam.neck.', 'sam.net_', '.rel_pos', '.patch_embd', '.patch_merger', 'a.rvq.codebook',
  'mm.a.code_embd',
];

function allowsQuantization(t: QuantizableTensor): boolean {
  // ggml_n_dims ignores trailing 1s: [4096, 1] is one-dimensional.
  let nDims = t.dims.length;
  while (nDims > 1 && t.dims[nDims - 1] === 1) nDims--;
  if (nDims < 2) return false;
  if (!t.name.endsWith('weight')) return false;
  if (t.name === 'position_embd.weight' || t.name === 'token_types.weight') return false;
  return !NEVER_QUANTIZED.some((s) => t.name.includes(s));
}

/** The layer of a "blk.N." name, -1 for others (sscanf("blk.%d.") in llama.cpp). */
export function layerOf(name: string): number {
  const m = /^blk\.(-?\d+)\./.exec(name);
  return m ? Number(m[1]) : -1;
}

/** llama_model_loader::weight_name_comparer: by layer (non-layer tensors first), then by name. */
export function compareLikeLlamaLoader(a: string, b: string): number {
  const la = layerOf(a);
  const lb = layerOf(b);
  if (la !== lb) return la - lb;
  return a < b ? -1 : a > b ? 1 : 0;
}

function useMoreBits(i: number, n: number): boolean {
  const n8 = Math.trunc(n / 8);
  return i < n8 || i >= Math.trunc((7 * n) / 8) || (i - n8) % 3 === 2;
}

function fallback(cols: number, target: GgmlTypeName): GgmlTypeName {
  if (cols % GGML_TYPES[target].blockSize === 0) return target;
  let type: GgmlTypeName;
  switch (target) {
    case 'Q2_K':
    case 'Q3_K': type = 'IQ4_NL'; break;
    case 'Q4_K': type = 'Q5_0'; break;
    case 'Q5_K': type = 'Q5_1'; break;
    case 'Q6_K': type = 'Q8_0'; break;
    case 'Q8_0': type = 'Q8_0'; break; // already a 32-block type; F16 below if 32 does not divide
    default: throw new Error(`no fallback ported for ${target}`);
  }
  return cols % GGML_TYPES[type].blockSize === 0 ? type : 'F16';
}

/**
 * The type of each tensor after `llama-quantize <F16 file> <out> <ftype>`; results are in the
 * order of `tensors`. For 'F16' the source types are returned unchanged.
 */
export function quantizedTypes(
  model: QuantizeModelInfo,
  tensors: readonly QuantizableTensor[],
  ftype: QuantFileType,
): GgmlTypeName[] {
  if (ftype === 'F16') return tensors.map((t) => t.type);

  const defaultType: GgmlTypeName = DEFAULT_TYPE[ftype];
  const order = tensors.map((_, i) => i).sort((a, b) => compareLikeLlamaLoader(tensors[a]!.name, tensors[b]!.name));
  const categories = tensors.map((t) => categoryOf(t.name));

  const nAttnV = categories.filter(isAttnVLike).length;
  const tied = !categories.includes('output');
  const nExpert = model.expertCount;
  let iAttnV = 0;
  let iFfnDown = 0;

  const result: GgmlTypeName[] = tensors.map((t) => t.type);
  for (const idx of order) {
    const t = tensors[idx]!;
    if (!allowsQuantization(t)) continue;
    const cat = categories[idx]!;
    const cols = t.dims[0]!;
    let type: GgmlTypeName = defaultType;

    if (cat === 'output' || (tied && cat === 'token_embd')) {
      if (model.arch === 'falcon' || cols % GGML_TYPES[type].blockSize !== 0) type = 'Q8_0';
      else if (type !== 'Q8_0') type = 'Q6_K';
    } else if (cat === 'token_embd') {
      // The K-quant mixes and Q8_0 keep the default type for untied token embeddings.
    } else if (isAttnVLike(cat)) {
      if (ftype === 'Q2_K') type = (model.nGqa ?? 1) >= 4 ? 'Q4_K' : 'Q3_K';
      else if (ftype === 'Q3_K_M') type = iAttnV < 2 ? 'Q5_K' : 'Q4_K';
      else if ((ftype === 'Q4_K_M' || ftype === 'Q5_K_M') && useMoreBits(iAttnV, nAttnV)) type = 'Q6_K';
      if (model.is70B && (type === 'Q3_K' || type === 'Q4_K')) type = 'Q5_K';
      if (nExpert === 8) type = 'Q8_0';
      iAttnV++;
    } else if (cat === 'attn_k') {
      if (nExpert === 8) type = 'Q8_0';
    } else if (cat === 'ffn_down') {
      // For MoE models the layer comes from the name; dense models use the running counter.
      const layer = nExpert > 1 ? layerOf(t.name) : iFfnDown;
      const n = model.layerCount;
      const falcon = model.arch === 'falcon';
      if (ftype === 'Q2_K') type = 'Q3_K';
      else if (ftype === 'Q3_K_M') type = layer < Math.trunc(n / 16) ? 'Q5_K' : !falcon || useMoreBits(layer, n) ? 'Q4_K' : 'Q3_K';
      else if (ftype === 'Q4_K_M') {
        if (falcon) type = layer < Math.trunc(n / 16) ? 'Q6_K' : useMoreBits(layer, n) ? 'Q5_K' : 'Q4_K';
        else if (useMoreBits(layer, n)) type = 'Q6_K';
      } else if (ftype === 'Q5_K_M' && useMoreBits(layer, n)) type = 'Q6_K';
      iFfnDown++;
    } else if (cat === 'attn_output') {
      if (model.arch !== 'falcon') {
        if (nExpert === 8) {
          if (ftype === 'Q2_K' || ftype === 'Q3_K_M' || ftype === 'Q4_K_M') type = 'Q5_K';
        } else if (ftype === 'Q2_K') type = 'Q3_K';
        else if (ftype === 'Q3_K_M') type = 'Q4_K';
      }
    }
    result[idx] = fallback(cols, type);
  }
  return result;
}
