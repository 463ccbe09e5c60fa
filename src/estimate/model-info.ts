/**
 * What the estimator needs from a GGUF header, derived once per model: hyperparameters as
 * llama.cpp's loader reads them (llama_model_base::load_hparams plus the per-architecture
 * load_arch_hparams), and the tensor table with each tensor's bytes and the layer it belongs to.
 * Everything else in src/estimate works from this object, so estimating many placements for one
 * model never touches the header again.
 */

import { ggmlTypeById, tensorBytes, type GgmlTypeInfo } from '../gguf/ggml-types.js';
import type { GgufHeader } from '../gguf/reader.js';
import type { GgufValue } from '../gguf/value-types.js';

/** Where a tensor sits in llama.cpp's layer structure (llm_tensor_info's layer category). */
export type TensorLayer =
  /** token_embd & co: always on the CPU ("there is very little benefit to offloading the input layer") */
  | { readonly kind: 'input' }
  /** output, output_norm, cls*: placed like layer n_layer */
  | { readonly kind: 'output' }
  /** blk.<il>.* */
  | { readonly kind: 'layer'; readonly il: number };

export interface ModelTensor {
  readonly name: string;
  readonly type: GgmlTypeInfo;
  /** ggml order: dims[0] is the row length. */
  readonly dims: readonly number[];
  readonly bytes: number;
  readonly layer: TensorLayer;
  /** An `ffn_*_exps` tensor (the routed experts of a MoE layer). */
  readonly isExpert: boolean;
}

export type SwaType = 'none' | 'standard' | 'chunked' | 'symmetric';

/** The graph families the compute model knows (see compute/graph-llm.ts). */
export type GraphFamily = 'llama' | 'qwen3' | 'gemma2' | 'gemma3' | 'phi3' | 'gpt-oss' | 'glm4moe' | 'deepseek2' | 'qwen3next' | 'granitehybrid' | 'llama4' | 'generic';

/**
 * Multi-head latent attention (DeepSeek-V2/V3; llama_hparams::is_mla): the model is converted to
 * MQA over the compressed latent, so nEmbdHeadK (kv_lora_rank + rope dims) and nEmbdHeadV
 * (kv_lora_rank) with one KV head describe the cache, and these the per-head sizes after
 * decompression.
 */
export interface MlaInfo {
  /** kv_lora_rank (n_lora_kv) */
  readonly kvLoraRank: number;
  /** q_lora_rank (n_lora_q); 0: no query compression (attn_q directly, the Lite models). */
  readonly qLoraRank: number;
  /** key_length_mla: nope + rope dims of one decompressed query/key head. */
  readonly nEmbdHeadKMla: number;
  /** value_length_mla: one decompressed value head. */
  readonly nEmbdHeadVMla: number;
  /** rope.dimension_count (n_rot): the rotary part of a query/key head. */
  readonly nRot: number;
}

/**
 * The recurrent (linear-attention) layers of a hybrid model (llama_hparams ssm_*, is_recr): Qwen3-Next's
 * gated delta net, Granite-4.0-H's Mamba2 mixers. Each keeps, per sequence, a conv state of nEmbdR and a delta-net state of nEmbdS
 * F32 values (llama_memory_recurrent's r_l / s_l, n_embd_r() / n_embd_s()).
 */
export interface RecurrentInfo {
  /** Per layer: a recurrent layer (no KV cache). */
  readonly isRecurrent: readonly boolean[];
  /** ssm.conv_kernel (d_conv) */
  readonly dConv: number;
  /** ssm.inner_size (d_inner = value heads x value head size) */
  readonly dInner: number;
  /** ssm.state_size (d_state: the key/value head size) */
  readonly dState: number;
  /** ssm.group_count (n_group: key heads; Mamba2's B/C groups) */
  readonly nGroup: number;
  /** ssm.time_step_rank (dt_rank: value heads; Mamba2's heads) */
  readonly dtRank: number;
  /** (d_conv - 1) x (d_inner + 2 n_group d_state) */
  readonly nEmbdR: number;
  /** d_state x d_inner */
  readonly nEmbdS: number;
}

/** How a MoE router turns logits into expert weights (llama_expert_gating_func_type). */
export type ExpertGating = 'softmax' | 'sigmoid' | 'softmax-weight';

export interface ModelInfo {
  readonly arch: string;
  readonly name: string | undefined;
  readonly family: GraphFamily;
  /** Blocks (block_count, llama.cpp's n_layer_all), NextN/MTP layers included. */
  readonly nLayer: number;
  /**
   * NextN/MTP layers at the end of the blocks (nextn_predict_layers). They get a device and (for
   * glm4moe, whose cache has no layer filter) a KV cache, but the main graph does not run them,
   * and llama.cpp skips their tensors unless it loads the model for MTP drafting: they are not
   * in `tensors`.
   */
  readonly nLayerNextn: number;
  readonly nEmbd: number;
  readonly nVocab: number;
  readonly nCtxTrain: number;
  /** Per layer. */
  readonly nHead: readonly number[];
  /** Per layer; 0 marks a layer without attention (recurrent). */
  readonly nHeadKv: readonly number[];
  /** Per layer. */
  readonly nFf: readonly number[];
  readonly nEmbdHeadK: number;
  readonly nEmbdHeadV: number;
  readonly nExpert: number;
  readonly nExpertUsed: number;
  /** Width of one routed expert (expert_feed_forward_length, or the expert tensors' shape). */
  readonly nFfExp: number;
  /** Shared experts (their FFN is nFfExp x nExpertShared wide). */
  readonly nExpertShared: number;
  /** Leading layers with a dense FFN before the MoE ones (leading_dense_block_count). */
  readonly nLayerDenseLead: number;
  readonly expertGating: ExpertGating;
  /** Routed weights normalized to sum 1 (expert_weights_norm). */
  readonly expertWeightsNorm: boolean;
  /** Routed weights scaled by this (expert_weights_scale; 0 or 1: no scale op). */
  readonly expertWeightsScale: number;
  /** Set for models with multi-head latent attention (key_length_mla and value_length_mla present). */
  readonly mla?: MlaInfo;
  /** Set for hybrid models with recurrent layers that are modelled (qwen3next). */
  readonly recurrent?: RecurrentInfo;
  /** Width of a shared expert when declared (expert_shared_feed_forward_length), else 0. */
  readonly nFfShexp: number;
  /**
   * Granite's multipliers (embedding_scale, residual_scale, logit_scale; 0 when absent): each set one
   * adds a ggml_scale to the graph (the embedding one in build_inp_embd, for any architecture).
   */
  readonly scales?: { readonly embedding: number; readonly residual: number; readonly logit: number };
  /** No rotary embedding at all (granitehybrid with rope.scaling.finetuned false: hparams.has_rope off). */
  readonly noRope?: true;
  readonly swaType: SwaType;
  /** Sliding window in tokens (0 when none). */
  readonly nSwa: number;
  /** Per layer: uses the sliding window. */
  readonly isSwa: readonly boolean[];
  readonly attnSoftcap: boolean;
  readonly finalSoftcap: boolean;
  /** No output.weight: llama.cpp reuses token_embd as the output projection. */
  readonly tiedEmbeddings: boolean;
  readonly tensors: readonly ModelTensor[];
  /** Tensors by name. */
  readonly tensorByName: ReadonlyMap<string, ModelTensor>;
  /** Sum of all tensor bytes (the weights as stored, skipped NextN tensors included). */
  readonly weightBytes: number;
  /** Things the estimate cannot model exactly for this model. */
  readonly caveats: readonly string[];
}

export class ModelInfoError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ModelInfoError';
  }
}

const INPUT_TENSORS = new Set(['token_embd', 'token_embd_norm', 'position_embd', 'token_types', 'per_layer_token_embd']);
const OUTPUT_TENSORS = new Set(['output', 'output_norm', 'cls', 'cls_out', 'cls_norm', 'output_b']);

function layerOf(name: string): TensorLayer {
  if (name.startsWith('blk.')) {
    const dot = name.indexOf('.', 4);
    const il = Number(name.slice(4, dot));
    if (Number.isInteger(il)) return { kind: 'layer', il };
  }
  const base = name.replace(/\.(weight|bias)$/, '');
  if (INPUT_TENSORS.has(base)) return { kind: 'input' };
  if (OUTPUT_TENSORS.has(base) || base.startsWith('cls')) return { kind: 'output' };
  // Tensors llama.cpp creates inside layer 0 (rope_freqs, rope_factors_*) or globally.
  return { kind: 'layer', il: 0 };
}

function num(v: GgufValue | undefined): number | undefined {
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number(v);
  if (typeof v === 'boolean') return v ? 1 : 0;
  return undefined;
}

/** A key that may be a scalar or a per-layer array (llama_model_loader::get_key_or_arr). */
function perLayer(v: GgufValue | undefined, n: number, fallback: readonly number[]): number[] {
  if (Array.isArray(v)) {
    const out = v.map((x) => num(x as GgufValue) ?? 0);
    while (out.length < n) out.push(out[out.length - 1] ?? 0);
    return out.slice(0, n);
  }
  const s = num(v);
  return s === undefined ? [...fallback] : new Array<number>(n).fill(s);
}

/** Default SWA layout per architecture (load_arch_hparams): [type, period, dense first, default window]. */
const SWA_DEFAULTS: Readonly<Record<string, readonly [SwaType, number, boolean, number]>> = {
  gemma2: ['standard', 2, false, 4096],
  gemma3: ['standard', 6, false, 0],
  gemma3n: ['standard', 5, false, 0],
  cohere2: ['standard', 4, false, 0],
  'gpt-oss': ['standard', 2, false, 0],
  llama4: ['chunked', 4, false, 8192],
  exaone4: ['standard', 4, false, 4096],
  olmo2: ['standard', 4, false, 0],
  smallthinker: ['standard', 4, true, 0],
};

const FAMILY: Readonly<Record<string, GraphFamily>> = {
  llama: 'llama', mistral3: 'llama', qwen2: 'llama', granite: 'llama', smollm3: 'llama',
  qwen3: 'qwen3', qwen3moe: 'qwen3',
  gemma2: 'gemma2',
  gemma3: 'gemma3',
  phi3: 'phi3',
  'gpt-oss': 'gpt-oss',
  glm4moe: 'glm4moe',
  deepseek2: 'deepseek2',
  qwen3next: 'qwen3next',
  granitehybrid: 'granitehybrid',
  llama4: 'llama4',
};

/** Architectures whose loader skips the NextN/MTP layers' tensors (TENSOR_SKIP without load_mtp). */
const SKIPS_NEXTN_TENSORS = new Set(['glm4moe', 'qwen3next']);

/** llama_expert_gating_func_type values of <arch>.expert_gating_func. */
const GATING: Readonly<Record<number, ExpertGating>> = { 1: 'softmax', 2: 'sigmoid', 3: 'softmax-weight' };

/**
 * Header read options for modelInfo: it needs per-layer arrays (a few hundred items at most) but
 * not the vocabulary's strings, only their count, so large arrays need not be decoded.
 */
export const MODEL_INFO_READ_OPTIONS = Object.freeze({ maxArrayItems: 4096 });

/** Builds the ModelInfo of a model from its header (for a split model, the merged header). */
export function modelInfo(header: Pick<GgufHeader, 'metadata' | 'tensors'>): ModelInfo {
  const md = header.metadata;
  const arch = md['general.architecture'];
  if (typeof arch !== 'string') throw new ModelInfoError('general.architecture is missing');
  const key = (k: string): GgufValue | undefined => md[`${arch}.${k}`];
  const caveats: string[] = [];

  const nLayer = num(key('block_count'));
  const nEmbd = num(key('embedding_length'));
  if (!nLayer || !nEmbd) throw new ModelInfoError(`${arch}.block_count / embedding_length missing`);

  const nLayerNextn = Math.min(num(key('nextn_predict_layers')) ?? 0, nLayer);
  const skipFrom = SKIPS_NEXTN_TENSORS.has(arch) && nLayerNextn > 0 ? nLayer - nLayerNextn : Infinity;

  const tensors: ModelTensor[] = [];
  const tensorByName = new Map<string, ModelTensor>();
  let weightBytes = 0;
  for (const t of header.tensors) {
    const type = ggmlTypeById(t.type);
    if (!type) throw new ModelInfoError(`tensor ${t.name} has unknown GGML type ${t.type}`);
    const bytes = tensorBytes(type.name, t.dims);
    weightBytes += bytes;
    const layer = layerOf(t.name);
    if (layer.kind === 'layer' && layer.il >= skipFrom) continue;
    const mt: ModelTensor = {
      name: t.name, type, dims: t.dims, bytes, layer, isExpert: /\.ffn_(gate|up|down|gate_up)_exps\./.test(t.name),
    };
    tensors.push(mt);
    tensorByName.set(t.name, mt);
  }

  const tokenEmbd = tensorByName.get('token_embd.weight');
  const tokens = md['tokenizer.ggml.tokens'];
  const nVocab = num(key('vocab_size')) ?? (Array.isArray(tokens) ? tokens.length : undefined) ?? tokenEmbd?.dims[1];
  if (!nVocab) throw new ModelInfoError('vocabulary size unknown');

  const nHead = perLayer(key('attention.head_count'), nLayer, new Array<number>(nLayer).fill(0));
  let nHeadKv = perLayer(key('attention.head_count_kv'), nLayer, nHead);
  const nFf = perLayer(key('feed_forward_length'), nLayer, new Array<number>(nLayer).fill(0));
  const head0 = nHead.find((h) => h > 0) ?? 1;
  const nEmbdHeadK = num(key('attention.key_length')) ?? nEmbd / head0;
  const nEmbdHeadV = num(key('attention.value_length')) ?? nEmbd / head0;

  const nExpert = num(key('expert_count')) ?? 0;
  const nExpertUsed = num(key('expert_used_count')) ?? 0;
  const expTensor = tensors.find((t) => t.name.endsWith('.ffn_down_exps.weight'));
  const nFfExp = num(key('expert_feed_forward_length')) ?? expTensor?.dims[0] ?? nFf[0] ?? 0;
  // glm4moe's loader defaults an absent gating function to sigmoid; the others to softmax
  const gating = GATING[num(key('expert_gating_func')) ?? 0] ?? (arch === 'glm4moe' ? 'sigmoid' : 'softmax');

  // Sliding-window attention
  let swaType: SwaType = 'none';
  let nSwa = 0;
  let isSwa = new Array<boolean>(nLayer).fill(false);
  const declaredWindow = num(key('attention.sliding_window'));
  const swaDefault = SWA_DEFAULTS[arch];
  if (swaDefault && (declaredWindow ?? swaDefault[3]) > 0) {
    const [type, period, denseFirst, window] = swaDefault;
    swaType = type;
    // llama4's loader reads the window only to switch SWA off (0); otherwise it is 8192
    nSwa = arch === 'llama4' ? window : declaredWindow ?? window;
    const pattern = key('attention.sliding_window_pattern');
    if (Array.isArray(pattern)) {
      isSwa = Array.from({ length: nLayer }, (_, il) => Boolean(pattern[il]));
    } else {
      const p = num(pattern) ?? period;
      isSwa = Array.from({ length: nLayer }, (_, il) => (denseFirst ? p === 0 || il % p !== 0 : p === 0 || il % p < p - 1));
    }
  } else if (declaredWindow && arch !== 'phi3' && !swaDefault) {
    // phi3 reads the window but llama.cpp disables its SWA; other unknown archs may use it.
    caveats.push(`${arch}: attention.sliding_window is set but the SWA layout of this architecture is not modelled; KV is sized for full attention (an upper bound)`);
  }

  // MLA (llama_hparams::is_mla): both decompressed head sizes are declared
  const kMla = num(key('attention.key_length_mla')) ?? 0;
  const vMla = num(key('attention.value_length_mla')) ?? 0;
  const mla: MlaInfo | undefined = kMla > 0 && vMla > 0
    ? {
      kvLoraRank: num(key('attention.kv_lora_rank')) ?? 0,
      qLoraRank: num(key('attention.q_lora_rank')) ?? 0,
      nEmbdHeadKMla: kMla,
      nEmbdHeadVMla: vMla,
      nRot: num(key('rope.dimension_count')) ?? 0,
    }
    : undefined;

  // Qwen3-Next (load_arch_hparams): recurrent layers from attention.recurrent_layers or every layer
  // but each full_attention_interval-th; the hybrid memory gives KV only to the other trunk layers
  // (filter_attn: il < n_layer, not recurrent), none to the NextN/MTP layers.
  // Granite-4.0-H (granitehybrid): a layer is recurrent (Mamba2) iff its head_count_kv is 0.
  let recurrent: RecurrentInfo | undefined;
  if (arch === 'qwen3next' || arch === 'granitehybrid') {
    const nTrunk = nLayer - nLayerNextn;
    const declared = key('attention.recurrent_layers');
    const interval = num(key('full_attention_interval')) ?? 4;
    const isRecurrent = arch === 'granitehybrid'
      ? nHeadKv.map((h) => h === 0)
      : Array.isArray(declared)
        ? Array.from({ length: nLayer }, (_, il) => Boolean(declared[il]))
        : Array.from({ length: nLayer }, (_, il) => il < nTrunk && (il + 1) % interval !== 0);
    const dConv = num(key('ssm.conv_kernel')) ?? 0;
    const dInner = num(key('ssm.inner_size')) ?? 0;
    const dState = num(key('ssm.state_size')) ?? 0;
    const nGroup = num(key('ssm.group_count')) ?? 0;
    const dtRank = num(key('ssm.time_step_rank')) ?? 0;
    recurrent = {
      isRecurrent, dConv, dInner, dState, nGroup, dtRank,
      nEmbdR: (dConv > 0 ? dConv - 1 : 0) * (dInner + 2 * nGroup * dState),
      nEmbdS: dState * dInner,
    };
    nHeadKv = nHeadKv.map((h, il) => (il >= nTrunk || isRecurrent[il] ? 0 : h));
  }

  let family = FAMILY[arch] ?? 'generic';
  if (family === 'deepseek2' && !mla) {
    // legacy conversions with the unsplit attn_kv_b (plain MHA after decompression) are not modelled
    family = 'generic';
  }
  const firstRecurrent = recurrent?.isRecurrent.indexOf(true) ?? -1;
  if (family === 'qwen3next' && firstRecurrent >= 0 && !tensorByName.has(`blk.${firstRecurrent}.attn_qkv.weight`)) {
    // legacy conversions with the joint ssm_in projection (build_qkvz's slower path) are not modelled
    family = 'generic';
    caveats.push(`${arch}: legacy ssm_in projection; the recurrent layers' compute is not modelled`);
  }
  if (family === 'granitehybrid' && !(recurrent?.isRecurrent.every((r, il) => !r || tensorByName.has(`blk.${il}.ssm_in.weight`)) ?? false)) {
    family = 'generic';
  }
  if (family === 'generic') {
    caveats.push(`${arch}: no exact compute-graph model; the compute buffer is estimated with the llama graph shape`);
  }
  if (!recurrent && nHeadKv.some((h) => h === 0)) {
    caveats.push(`${arch}: layers without attention (recurrent state) are not modelled`);
  }

  const general = md['general.name'];
  return {
    arch,
    name: typeof general === 'string' ? general : undefined,
    family,
    nLayer,
    nLayerNextn,
    nEmbd,
    nVocab,
    nCtxTrain: num(key('context_length')) ?? 0,
    nHead,
    nHeadKv,
    nFf,
    nEmbdHeadK,
    nEmbdHeadV,
    nExpert,
    nExpertUsed,
    nFfExp,
    nExpertShared: num(key('expert_shared_count')) ?? 0,
    nLayerDenseLead: num(key('leading_dense_block_count')) ?? 0,
    expertGating: gating,
    expertWeightsNorm: (num(key('expert_weights_norm')) ?? 0) !== 0,
    expertWeightsScale: num(key('expert_weights_scale')) ?? 0,
    ...(mla ? { mla } : {}),
    ...(recurrent ? { recurrent } : {}),
    nFfShexp: num(key('expert_shared_feed_forward_length')) ?? 0,
    ...(arch === 'granitehybrid' && md[`${arch}.rope.scaling.finetuned`] === false ? { noRope: true as const } : {}),
    scales: {
      embedding: num(key('embedding_scale')) ?? 0,
      residual: num(key('residual_scale')) ?? 0,
      logit: num(key('logit_scale')) ?? 0,
    },
    swaType,
    nSwa,
    isSwa,
    attnSoftcap: arch === 'gemma2' && (num(key('attn_logit_softcapping')) ?? 50) > 0,
    finalSoftcap: (num(key('final_logit_softcapping')) ?? (arch === 'gemma2' ? 30 : 0)) > 0,
    tiedEmbeddings: !tensorByName.has('output.weight'),
    tensors,
    tensorByName,
    weightBytes,
    caveats,
  };
}
