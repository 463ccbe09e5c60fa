/**
 * Qwen3-Next-80B-A3B replica (LLM_ARCH_QWEN3NEXT, "qwen3next"): 48 layers in a repeating pattern
 * of three linear-attention layers (gated delta net: a depthwise conv of kernel 4 over q/k/v, 16
 * key heads and 32 value heads of 128) and one full gated-attention layer (16 query heads of 256
 * with an output gate in the doubled q projection, 2 KV heads, q/k norms, rotary on a quarter of
 * each head), plus the MTP layer the current converter appends (block_count 49,
 * nextn_predict_layers 1; llama.cpp skips its tensors unless it loads the model for MTP
 * drafting). Every layer is MoE: 512 experts (top 10, width 512) with a softmax router and one
 * shared expert (width 512) behind a sigmoid gate; vocabulary of 151,936 entries, 262144 tokens
 * of context (Qwen/Qwen3-Next-80B-A3B-Instruct config.json).
 */

import { kv } from '../value-types.js';
import { QWEN3_TEMPLATE } from './chat-templates.js';
import { qwen3nextTensors } from './tensor-builders.js';
import type { ModelHparams, PresetSpec } from './types.js';

/** num_hidden_layers + the MTP layers found in the checkpoint (mtp.*). */
const NEXTN = 1;
const FULL_ATTENTION_INTERVAL = 4;
const SHARED_FF = 512;
const SSM = { convKernel: 4, stateSize: 128, kHeads: 16, vHeads: 32 } as const;

const qwen3next: ModelHparams = {
  layers: 48 + NEXTN, embd: 2048, ff: 5120, heads: 16, headsKv: 2, headDim: 256,
  vocabSize: 151936, ctxTrain: 262144, expertCount: 512, expertUsedCount: 10, expertFf: 512,
  tiedEmbeddings: false,
};

export const QWEN3_NEXT_80B_A3B: PresetSpec = {
  id: 'qwen3-next-80b-a3b',
  source: 'Qwen/Qwen3-Next-80B-A3B-Instruct',
  arch: 'qwen3next',
  hparams: qwen3next,
  general: { name: 'Qwen3 Next 80B A3B Instruct', basename: 'Qwen3-Next', finetune: 'Instruct', sizeLabel: '80B-A3B', license: 'apache-2.0' },
  // TextModel.set_gguf_parameters order; Qwen2MoeModel and Qwen3NextModel add theirs after general.file_type.
  archMetadata: {
    'qwen3next.block_count': kv.u32(qwen3next.layers),
    'qwen3next.context_length': kv.u32(qwen3next.ctxTrain),
    'qwen3next.embedding_length': kv.u32(qwen3next.embd),
    'qwen3next.feed_forward_length': kv.u32(qwen3next.ff),
    'qwen3next.attention.head_count': kv.u32(qwen3next.heads),
    'qwen3next.attention.head_count_kv': kv.u32(qwen3next.headsKv),
    'qwen3next.rope.freq_base': kv.f32(10000000),
    'qwen3next.attention.layer_norm_rms_epsilon': kv.f32(1e-6),
    'qwen3next.expert_count': kv.u32(qwen3next.expertCount),
    'qwen3next.expert_used_count': kv.u32(qwen3next.expertUsedCount),
    'qwen3next.attention.key_length': kv.u32(qwen3next.headDim),
    'qwen3next.attention.value_length': kv.u32(qwen3next.headDim),
  },
  archMetadataAfterFileType: {
    'qwen3next.expert_feed_forward_length': kv.u32(qwen3next.expertFf!),
    'qwen3next.expert_shared_feed_forward_length': kv.u32(SHARED_FF),
    'qwen3next.ssm.conv_kernel': kv.u32(SSM.convKernel),
    'qwen3next.ssm.state_size': kv.u32(SSM.stateSize),
    'qwen3next.ssm.group_count': kv.u32(SSM.kHeads),
    'qwen3next.ssm.time_step_rank': kv.u32(SSM.vHeads),
    'qwen3next.ssm.inner_size': kv.u32(SSM.stateSize * SSM.vHeads),
    'qwen3next.full_attention_interval': kv.u32(FULL_ATTENTION_INTERVAL),
    // head_dim * partial_rotary_factor (0.25)
    'qwen3next.rope.dimension_count': kv.u32(qwen3next.headDim / 4),
    'qwen3next.nextn_predict_layers': kv.u32(NEXTN),
  },
  tokenizer: {
    model: 'gpt2',
    pre: 'qwen2',
    byteTokensAt: 0,
    specials: { 151643: '<|endoftext|>', 151644: '<|im_start|>', 151645: '<|im_end|>', 151667: '<think>', 151668: '</think>' },
    controlRange: { from: 151646, to: 151669, name: (id) => `<|special_${id}|>` },
    // The embedding matrix has 151,936 rows; convert pads the vocabulary with [PADn] tokens.
    unusedFrom: 151669,
    bosId: 151643,
    eosId: 151645,
    padId: 151643,
    addBos: false,
    chatTemplate: QWEN3_TEMPLATE,
  },
  tensorShapes: () => qwen3nextTensors(qwen3next, SSM, FULL_ATTENTION_INTERVAL, SHARED_FF, NEXTN),
};
