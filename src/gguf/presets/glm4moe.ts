/**
 * Z.ai GLM-4.5-Air replica (LLM_ARCH_GLM4_MOE, "glm4moe"): 46 layers plus one NextN/MTP layer
 * (block_count 47; llama.cpp loads the MTP layer's tensors only for speculative decoding and
 * skips them otherwise), 96 query heads and 8 KV heads of 128 with q/k/v biases, rotary on half
 * of each head, a dense first layer (10944), then 128 routed experts (top 8, width 1408) with a
 * sigmoid router, an expert-selection bias and one shared expert; vocabulary of 151,552 entries,
 * 131072 tokens of context (zai-org/GLM-4.5-Air config.json).
 */

import { kv } from '../value-types.js';
import { glm4moeTensors } from './tensor-builders.js';
import type { ModelHparams, PresetSpec } from './types.js';

/** num_hidden_layers + num_nextn_predict_layers. */
const NEXTN = 1;
const DENSE_LEAD = 1;
const SHARED = 1;

const glm45Air: ModelHparams = {
  layers: 46 + NEXTN, embd: 4096, ff: 10944, heads: 96, headsKv: 8, headDim: 128,
  vocabSize: 151552, ctxTrain: 131072, expertCount: 128, expertUsedCount: 8, expertFf: 1408,
  tiedEmbeddings: false,
};

/**
 * A compact GLM-4.5 template: llama.cpp recognizes the format by `[gMASK]<sop>`
 * (LLM_CHAT_TEMPLATE_CHATGLM_4). The real one adds tools and thinking and is about 6 kB.
 */
const GLM45_TEMPLATE = [
  '[gMASK]<sop>',
  "{%- for m in messages -%}",
  "{%- if m.role == 'system' -%}<|system|>\n{{ m.content }}",
  "{%- elif m.role == 'user' -%}<|user|>\n{{ m.content }}",
  "{%- elif m.role == 'assistant' -%}<|assistant|>\n{{ m.content }}",
  "{%- endif -%}",
  "{%- endfor -%}",
  "{%- if add_generation_prompt -%}<|assistant|>{%- endif -%}",
].join('\n');

export const GLM_45_AIR: PresetSpec = {
  id: 'glm-4.5-air',
  source: 'zai-org/GLM-4.5-Air',
  arch: 'glm4moe',
  hparams: glm45Air,
  general: { name: 'GLM 4.5 Air', basename: 'GLM-4.5-Air', sizeLabel: '106B-A12B', license: 'mit' },
  // TextModel.set_gguf_parameters order; Glm4MoeModel adds its keys after general.file_type.
  archMetadata: {
    'glm4moe.block_count': kv.u32(glm45Air.layers),
    'glm4moe.context_length': kv.u32(glm45Air.ctxTrain),
    'glm4moe.embedding_length': kv.u32(glm45Air.embd),
    'glm4moe.feed_forward_length': kv.u32(glm45Air.ff),
    'glm4moe.attention.head_count': kv.u32(glm45Air.heads),
    'glm4moe.attention.head_count_kv': kv.u32(glm45Air.headsKv),
    'glm4moe.rope.freq_base': kv.f32(1000000),
    'glm4moe.attention.layer_norm_rms_epsilon': kv.f32(1e-5),
    'glm4moe.expert_count': kv.u32(glm45Air.expertCount),
    'glm4moe.expert_used_count': kv.u32(glm45Air.expertUsedCount),
    'glm4moe.expert_group_count': kv.u32(1),
    'glm4moe.expert_group_used_count': kv.u32(1),
    'glm4moe.attention.key_length': kv.u32(glm45Air.headDim),
    'glm4moe.attention.value_length': kv.u32(glm45Air.headDim),
  },
  archMetadataAfterFileType: {
    // head_dim * partial_rotary_factor (0.5)
    'glm4moe.rope.dimension_count': kv.u32(glm45Air.headDim / 2),
    'glm4moe.expert_feed_forward_length': kv.u32(glm45Air.expertFf!),
    'glm4moe.expert_shared_count': kv.u32(SHARED),
    'glm4moe.leading_dense_block_count': kv.u32(DENSE_LEAD),
    // gguf.ExpertGatingFuncType.SIGMOID
    'glm4moe.expert_gating_func': kv.u32(2),
    'glm4moe.expert_weights_scale': kv.f32(1.0),
    'glm4moe.expert_weights_norm': kv.bool(true),
    'glm4moe.nextn_predict_layers': kv.u32(NEXTN),
  },
  tokenizer: {
    model: 'gpt2',
    pre: 'glm4',
    byteTokensAt: 0,
    // The added tokens from 151329 on; <think>, <tool_call> & co. (151350-151359) are not control tokens.
    specials: {
      151329: '<|endoftext|>',
      151330: '[MASK]',
      151331: '[gMASK]',
      151332: '[sMASK]',
      151333: '<sop>',
      151334: '<eop>',
      151335: '<|system|>',
      151336: '<|user|>',
      151337: '<|assistant|>',
      151338: '<|observation|>',
      151339: '<|begin_of_image|>',
      151340: '<|end_of_image|>',
      151341: '<|begin_of_video|>',
      151342: '<|end_of_video|>',
      151343: '<|begin_of_audio|>',
      151344: '<|end_of_audio|>',
      151345: '<|begin_of_transcription|>',
      151346: '<|end_of_transcription|>',
      151347: '<|code_prefix|>',
      151348: '<|code_middle|>',
      151349: '<|code_suffix|>',
      151360: '/nothink',
      151361: '<|begin_of_box|>',
      151362: '<|end_of_box|>',
      151363: '<|image|>',
      151364: '<|video|>',
    },
    // The embedding matrix has 151,552 rows; convert pads the vocabulary with [PADn] tokens.
    unusedFrom: 151365,
    bosId: 151331,
    eosId: 151329,
    padId: 151329,
    chatTemplate: GLM45_TEMPLATE,
  },
  tensorShapes: () => glm4moeTensors(glm45Air, DENSE_LEAD, SHARED, NEXTN),
};
