/** Qwen replicas: Qwen2.5 0.5B (qwen2, tied embeddings, qkv bias) and Qwen3 30B-A3B (qwen3moe). */

import { kv } from '../value-types.js';
import { QWEN25_TEMPLATE, QWEN3_TEMPLATE } from './chat-templates.js';
import { qwen2Tensors, qwen3moeTensors } from './tensor-builders.js';
import type { ModelHparams, PresetSpec, TokenizerSpec } from './types.js';

/** Byte-level BPE vocabulary of 151,936 entries shared by Qwen2.5 and Qwen3. */
function qwenTokenizer(realTokens: number, chatTemplate: string, extra: Record<number, string>): TokenizerSpec {
  return {
    model: 'gpt2',
    pre: 'qwen2',
    byteTokensAt: 0,
    specials: { 151643: '<|endoftext|>', 151644: '<|im_start|>', 151645: '<|im_end|>', ...extra },
    controlRange: { from: 151646, to: realTokens, name: (id) => `<|special_${id}|>` },
    // The embedding matrix has 151,936 rows; convert pads the vocabulary with [PADn] tokens.
    unusedFrom: realTokens,
    bosId: 151643,
    eosId: 151645,
    padId: 151643,
    addBos: false,
    chatTemplate,
  };
}

const qwen25: ModelHparams = {
  layers: 24, embd: 896, ff: 4864, heads: 14, headsKv: 2, headDim: 64,
  vocabSize: 151936, ctxTrain: 32768, expertCount: 0, expertUsedCount: 0, tiedEmbeddings: true,
};

export const QWEN25_05B: PresetSpec = {
  id: 'qwen2.5-0.5b',
  source: 'Qwen/Qwen2.5-0.5B-Instruct',
  arch: 'qwen2',
  hparams: qwen25,
  general: { name: 'Qwen2.5 0.5B Instruct', basename: 'Qwen2.5', finetune: 'Instruct', sizeLabel: '0.5B', license: 'apache-2.0' },
  archMetadata: {
    'qwen2.block_count': kv.u32(qwen25.layers),
    'qwen2.context_length': kv.u32(qwen25.ctxTrain),
    'qwen2.embedding_length': kv.u32(qwen25.embd),
    'qwen2.feed_forward_length': kv.u32(qwen25.ff),
    'qwen2.attention.head_count': kv.u32(qwen25.heads),
    'qwen2.attention.head_count_kv': kv.u32(qwen25.headsKv),
    'qwen2.rope.freq_base': kv.f32(1000000),
    'qwen2.attention.layer_norm_rms_epsilon': kv.f32(1e-6),
  },
  tokenizer: qwenTokenizer(151665, QWEN25_TEMPLATE, {}),
  tensorShapes: () => qwen2Tensors(qwen25),
};

const qwen3moe: ModelHparams = {
  layers: 48, embd: 2048, ff: 6144, heads: 32, headsKv: 4, headDim: 128,
  vocabSize: 151936, ctxTrain: 40960, expertCount: 128, expertUsedCount: 8, expertFf: 768,
  tiedEmbeddings: false,
};

export const QWEN3_30B_A3B: PresetSpec = {
  id: 'qwen3-30b-a3b',
  source: 'Qwen/Qwen3-30B-A3B',
  arch: 'qwen3moe',
  hparams: qwen3moe,
  general: { name: 'Qwen3 30B A3B', basename: 'Qwen3', sizeLabel: '30B-A3B', license: 'apache-2.0' },
  archMetadata: {
    'qwen3moe.block_count': kv.u32(qwen3moe.layers),
    'qwen3moe.context_length': kv.u32(qwen3moe.ctxTrain),
    'qwen3moe.embedding_length': kv.u32(qwen3moe.embd),
    'qwen3moe.feed_forward_length': kv.u32(qwen3moe.ff),
    'qwen3moe.attention.head_count': kv.u32(qwen3moe.heads),
    'qwen3moe.attention.head_count_kv': kv.u32(qwen3moe.headsKv),
    'qwen3moe.rope.freq_base': kv.f32(1000000),
    'qwen3moe.attention.layer_norm_rms_epsilon': kv.f32(1e-6),
    'qwen3moe.expert_count': kv.u32(qwen3moe.expertCount),
    'qwen3moe.expert_used_count': kv.u32(qwen3moe.expertUsedCount),
    'qwen3moe.attention.key_length': kv.u32(qwen3moe.headDim),
    'qwen3moe.attention.value_length': kv.u32(qwen3moe.headDim),
  },
  archMetadataAfterFileType: {
    'qwen3moe.expert_feed_forward_length': kv.u32(qwen3moe.expertFf!),
  },
  tokenizer: qwenTokenizer(151669, QWEN3_TEMPLATE, { 151667: '<think>', 151668: '</think>' }),
  tensorShapes: () => qwen3moeTensors(qwen3moe),
};
