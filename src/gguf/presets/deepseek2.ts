/**
 * DeepSeek-V2-Lite replica (LLM_ARCH_DEEPSEEK2, "deepseek2"): 27 layers of width 2048, 16 heads
 * with multi-head latent attention (kv_lora_rank 512, no query compression in the Lite model,
 * q/k heads of 128 + 64 rotary dims, v heads of 128), a dense first layer (10944), then 64
 * routed experts (top 6, width 1408, softmax router, weights neither normalized nor scaled) plus
 * 2 shared experts; YaRN rope (factor 40 over 4096 original positions), vocabulary of 102,400
 * entries, 163840 tokens of context (deepseek-ai/DeepSeek-V2-Lite-Chat config.json).
 *
 * The conversion (conversion/deepseek.py, DeepseekV2Model) writes MLA as MQA with one KV head of
 * kv_lora_rank + rope dims for K and kv_lora_rank for V (key_length 576, value_length 512), the
 * per-head sizes after decompression as key_length_mla / value_length_mla (192 / 128), and
 * splits kv_b_proj into attn_k_b / attn_v_b for the absorbed attention.
 */

import { kv } from '../value-types.js';
import { deepseek2Tensors } from './tensor-builders.js';
import type { ModelHparams, PresetSpec } from './types.js';

const DENSE_LEAD = 1;
const SHARED = 2;
const MLA = { kvLora: 512, nope: 128, rope: 64, vHead: 128 } as const;

const dsV2Lite: ModelHparams = {
  // headsKv / headDim as the GGUF states them: MLA converts into MQA with one head of 576
  layers: 27, embd: 2048, ff: 10944, heads: 16, headsKv: 1, headDim: MLA.kvLora + MLA.rope,
  vocabSize: 102400, ctxTrain: 163840, expertCount: 64, expertUsedCount: 6, expertFf: 1408,
  tiedEmbeddings: false,
};

/** DeepSeek-V2-Lite-Chat's template; llama.cpp recognizes it as LLM_CHAT_TEMPLATE_DEEPSEEK_2. */
const DEEPSEEK2_TEMPLATE =
  "{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}{{ bos_token }}" +
  "{% for message in messages %}{% if message['role'] == 'user' %}{{ 'User: ' + message['content'] + '\n\n' }}" +
  "{% elif message['role'] == 'assistant' %}{{ 'Assistant: ' + message['content'] + eos_token }}" +
  "{% elif message['role'] == 'system' %}{{ message['content'] + '\n\n' }}{% endif %}{% endfor %}" +
  "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}";

export const DEEPSEEK_V2_LITE: PresetSpec = {
  id: 'deepseek-v2-lite',
  source: 'deepseek-ai/DeepSeek-V2-Lite-Chat',
  arch: 'deepseek2',
  hparams: dsV2Lite,
  general: { name: 'DeepSeek V2 Lite Chat', basename: 'DeepSeek-V2-Lite', finetune: 'Chat', sizeLabel: '64x1.5B', license: 'other' },
  // TextModel.set_gguf_parameters order (num_key_value_heads forced to 1 for MLA)
  archMetadata: {
    'deepseek2.block_count': kv.u32(dsV2Lite.layers),
    'deepseek2.context_length': kv.u32(dsV2Lite.ctxTrain),
    'deepseek2.embedding_length': kv.u32(dsV2Lite.embd),
    'deepseek2.feed_forward_length': kv.u32(dsV2Lite.ff),
    'deepseek2.attention.head_count': kv.u32(dsV2Lite.heads),
    'deepseek2.attention.head_count_kv': kv.u32(dsV2Lite.headsKv),
    'deepseek2.rope.scaling.type': kv.str('yarn'),
    'deepseek2.rope.scaling.factor': kv.f32(40),
    'deepseek2.rope.scaling.original_context_length': kv.u32(4096),
    'deepseek2.rope.scaling.yarn_beta_fast': kv.f32(32),
    'deepseek2.rope.scaling.yarn_beta_slow': kv.f32(1),
    'deepseek2.rope.freq_base': kv.f32(10000),
    'deepseek2.attention.layer_norm_rms_epsilon': kv.f32(1e-6),
    'deepseek2.expert_count': kv.u32(dsV2Lite.expertCount),
    'deepseek2.expert_used_count': kv.u32(dsV2Lite.expertUsedCount),
    'deepseek2.expert_group_count': kv.u32(1),
    'deepseek2.expert_group_used_count': kv.u32(1),
    // scoring_func "softmax": gguf.ExpertGatingFuncType.SOFTMAX
    'deepseek2.expert_gating_func': kv.u32(1),
  },
  // DeepseekV2Model.set_gguf_parameters (expert_count again: the writer keeps the first place)
  archMetadataAfterFileType: {
    'deepseek2.leading_dense_block_count': kv.u32(DENSE_LEAD),
    'deepseek2.vocab_size': kv.u32(dsV2Lite.vocabSize),
    'deepseek2.attention.kv_lora_rank': kv.u32(MLA.kvLora),
    'deepseek2.attention.key_length': kv.u32(MLA.kvLora + MLA.rope),
    'deepseek2.attention.value_length': kv.u32(MLA.kvLora),
    'deepseek2.attention.key_length_mla': kv.u32(MLA.nope + MLA.rope),
    'deepseek2.attention.value_length_mla': kv.u32(MLA.vHead),
    'deepseek2.expert_feed_forward_length': kv.u32(dsV2Lite.expertFf!),
    'deepseek2.expert_shared_count': kv.u32(SHARED),
    // routed_scaling_factor; norm_topk_prob is false, so expert_weights_norm is not written
    'deepseek2.expert_weights_scale': kv.f32(1.0),
    'deepseek2.rope.dimension_count': kv.u32(MLA.rope),
    // 0.1 * mscale_all_dim [TAG_DEEPSEEK2_YARN_LOG_MUL_FIX]
    'deepseek2.rope.scaling.yarn_log_multiplier': kv.f32(0.0707),
  },
  tokenizer: {
    model: 'gpt2',
    pre: 'deepseek-llm',
    byteTokensAt: 0,
    // The added tokens from 100000 on; the embedding matrix is padded to 102,400 rows.
    specials: {
      100000: '<｜begin▁of▁sentence｜>',
      100001: '<｜end▁of▁sentence｜>',
      100002: '<｜fim▁hole｜>',
      100003: '<｜fim▁begin｜>',
      100004: '<｜fim▁end｜>',
      100006: '<｜User｜>',
      100007: '<｜Assistant｜>',
      100008: '<|EOT|>',
    },
    unusedFrom: 100015,
    bosId: 100000,
    eosId: 100001,
    padId: 100001,
    addBos: true,
    addEos: false,
    chatTemplate: DEEPSEEK2_TEMPLATE,
  },
  tensorShapes: () => deepseek2Tensors(dsV2Lite, MLA, DENSE_LEAD, SHARED),
};
