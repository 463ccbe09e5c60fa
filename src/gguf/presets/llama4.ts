/**
 * Meta Llama 4 Scout replica (LLM_ARCH_LLAMA4, "llama4"; the text model only: the vision tower
 * goes to a separate mmproj file): 48 layers, 40 query heads and 8 KV heads of 128, chunked local
 * attention (chunks of 8192, llama.cpp's default for the architecture) on 3 of every 4 layers and
 * rope-less global attention with temperature tuning on every 4th, q/k L2 norms on the rope
 * layers; MoE in every layer (interleave_moe_layer_step 1): 16 experts of width 8192, top 1, a
 * sigmoid router applied to the input before the experts, plus one shared expert of 8192; the
 * dense width (intermediate_size_mlp, 16384) is declared but unused. Llama-3-style rope scaling
 * (factor 16 from 8192) gives a rope_freqs tensor. Vocabulary of 202,048 entries, 10,485,760
 * tokens of context (meta-llama/Llama-4-Scout-17B-16E-Instruct config.json).
 */

import { kv } from '../value-types.js';
import { llama4Tensors } from './tensor-builders.js';
import type { ModelHparams, PresetSpec } from './types.js';

const MOE_STEP = 1;

const scout: ModelHparams = {
  layers: 48, embd: 5120, ff: 16384, heads: 40, headsKv: 8, headDim: 128,
  vocabSize: 202048, ctxTrain: 10485760, expertCount: 16, expertUsedCount: 1, expertFf: 8192,
  tiedEmbeddings: false,
};

/** A compact Llama 4 template: llama.cpp recognizes the format by `<|header_start|>`. */
const LLAMA4_TEMPLATE = [
  '{{- bos_token }}',
  '{%- for m in messages %}',
  "{{- '<|header_start|>' + m.role + '<|header_end|>\\n\\n' + m.content + '<|eot|>' }}",
  '{%- endfor %}',
  "{%- if add_generation_prompt %}{{- '<|header_start|>assistant<|header_end|>\\n\\n' }}{%- endif %}",
].join('\n');

export const LLAMA_4_SCOUT: PresetSpec = {
  id: 'llama-4-scout',
  source: 'meta-llama/Llama-4-Scout-17B-16E-Instruct',
  arch: 'llama4',
  hparams: scout,
  general: { name: 'Llama 4 Scout 17B 16E Instruct', basename: 'Llama-4-Scout', finetune: '16E-Instruct', sizeLabel: '17B', license: 'other' },
  // TextModel.set_gguf_parameters order; LlamaModel and Llama4Model add theirs after general.file_type.
  archMetadata: {
    'llama4.block_count': kv.u32(scout.layers),
    'llama4.context_length': kv.u32(scout.ctxTrain),
    'llama4.embedding_length': kv.u32(scout.embd),
    'llama4.feed_forward_length': kv.u32(scout.ff),
    'llama4.attention.head_count': kv.u32(scout.heads),
    'llama4.attention.head_count_kv': kv.u32(scout.headsKv),
    'llama4.rope.freq_base': kv.f32(500000),
    'llama4.attention.layer_norm_rms_epsilon': kv.f32(1e-5),
    'llama4.expert_count': kv.u32(scout.expertCount),
    'llama4.expert_used_count': kv.u32(scout.expertUsedCount),
    'llama4.attention.key_length': kv.u32(scout.headDim),
    'llama4.attention.value_length': kv.u32(scout.headDim),
  },
  archMetadataAfterFileType: {
    'llama4.vocab_size': kv.u32(scout.vocabSize),
    'llama4.rope.dimension_count': kv.u32(scout.headDim),
    'llama4.interleave_moe_layer_step': kv.u32(MOE_STEP),
    'llama4.expert_feed_forward_length': kv.u32(scout.expertFf!),
  },
  tokenizer: {
    model: 'gpt2',
    pre: 'llama4',
    byteTokensAt: 0,
    specials: {
      200000: '<|begin_of_text|>',
      200001: '<|end_of_text|>',
      200002: '<|fim_prefix|>',
      200003: '<|fim_middle|>',
      200004: '<|fim_suffix|>',
      200005: '<|header_start|>',
      200006: '<|header_end|>',
      200007: '<|eom|>',
      200008: '<|eot|>',
      200009: '<|step|>',
    },
    // The other added tokens up to 201134 are <|reserved_special_token_N|> & co.; convert pads
    // the vocabulary to the embedding's 202,048 rows.
    controlRange: { from: 200010, to: 201135, name: (id) => `<|reserved_special_token_${id - 200010}|>` },
    unusedFrom: 201135,
    bosId: 200000,
    eosId: 200008,
    padId: 201134,
    chatTemplate: LLAMA4_TEMPLATE,
  },
  tensorShapes: () => llama4Tensors(scout, MOE_STEP),
};
