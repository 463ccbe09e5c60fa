/**
 * OpenAI gpt-oss-20b replica (LLM_ARCH_OPENAI_MOE, "gpt-oss"): 24 layers alternating a 128-token
 * sliding window and full attention, attention sinks, 32 biased experts (top 4) of width 2880,
 * YaRN to 131072 tokens, the o200k_harmony vocabulary (201,088 entries).
 *
 * The F16 replica is the conversion of a dequantized (BF16) checkpoint: experts in F16. A
 * conversion of the original MXFP4 checkpoint keeps the experts in MXFP4 instead; the estimator
 * reads the types from the header either way.
 */

import { kv } from '../value-types.js';
import { gptOssTensors } from './tensor-builders.js';
import type { ModelHparams, PresetSpec } from './types.js';

const gptOss: ModelHparams = {
  layers: 24, embd: 2880, ff: 2880, heads: 64, headsKv: 8, headDim: 64,
  vocabSize: 201088, ctxTrain: 131072, expertCount: 32, expertUsedCount: 4, expertFf: 2880,
  tiedEmbeddings: false, slidingWindow: 128,
};

/**
 * A compact harmony template: llama.cpp recognizes the format by `<|start|>` and `<|channel|>`
 * (LLM_CHAT_TEMPLATE_OPENAI_MOE). The real one (openai/gpt-oss-20b) adds tools and reasoning
 * effort and is about 15 kB.
 */
const HARMONY_TEMPLATE = [
  "{{- '<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.\\nReasoning: medium<|end|>' -}}",
  "{%- for message in messages -%}",
  "{%- if message['role'] == 'assistant' -%}",
  "{{- '<|start|>assistant<|channel|>final<|message|>' + message['content'] + '<|end|>' -}}",
  "{%- elif message['role'] == 'system' or message['role'] == 'developer' -%}",
  "{{- '<|start|>developer<|message|># Instructions\\n\\n' + message['content'] + '<|end|>' -}}",
  "{%- else -%}",
  "{{- '<|start|>' + message['role'] + '<|message|>' + message['content'] + '<|end|>' -}}",
  "{%- endif -%}",
  "{%- endfor -%}",
  "{%- if add_generation_prompt -%}<|start|>assistant{%- endif -%}",
].join('\n');

export const GPT_OSS_20B: PresetSpec = {
  id: 'gpt-oss-20b',
  source: 'openai/gpt-oss-20b',
  arch: 'gpt-oss',
  hparams: gptOss,
  general: { name: 'Gpt Oss 20b', basename: 'gpt-oss', sizeLabel: '20B', license: 'apache-2.0' },
  // TextModel.set_gguf_parameters order (GptOssModel adds the window and expert width after it).
  archMetadata: {
    'gpt-oss.block_count': kv.u32(gptOss.layers),
    'gpt-oss.context_length': kv.u32(gptOss.ctxTrain),
    'gpt-oss.embedding_length': kv.u32(gptOss.embd),
    'gpt-oss.feed_forward_length': kv.u32(gptOss.ff),
    'gpt-oss.attention.head_count': kv.u32(gptOss.heads),
    'gpt-oss.attention.head_count_kv': kv.u32(gptOss.headsKv),
    'gpt-oss.rope.scaling.type': kv.str('yarn'),
    'gpt-oss.rope.scaling.factor': kv.f32(32),
    'gpt-oss.rope.scaling.original_context_length': kv.u32(4096),
    'gpt-oss.rope.freq_base': kv.f32(150000),
    'gpt-oss.attention.layer_norm_rms_epsilon': kv.f32(1e-5),
    'gpt-oss.expert_count': kv.u32(gptOss.expertCount),
    'gpt-oss.expert_used_count': kv.u32(gptOss.expertUsedCount),
    'gpt-oss.attention.key_length': kv.u32(gptOss.headDim),
    'gpt-oss.attention.value_length': kv.u32(gptOss.headDim),
  },
  archMetadataAfterFileType: {
    'gpt-oss.attention.sliding_window': kv.u32(gptOss.slidingWindow!),
    'gpt-oss.expert_feed_forward_length': kv.u32(gptOss.expertFf!),
  },
  tokenizer: {
    model: 'gpt2',
    pre: 'gpt-4o',
    byteTokensAt: 0,
    specials: {
      199998: '<|startoftext|>',
      199999: '<|endoftext|>',
      200002: '<|return|>',
      200003: '<|constrain|>',
      200005: '<|channel|>',
      200006: '<|start|>',
      200007: '<|end|>',
      200008: '<|message|>',
      200012: '<|call|>',
    },
    // The other ids from 200000 on are <|reserved_N|>.
    controlRange: { from: 200000, to: 201088, name: (id) => `<|reserved_${id}|>` },
    bosId: 199998,
    eosId: 200002,
    padId: 199999,
    chatTemplate: HARMONY_TEMPLATE,
  },
  tensorShapes: () => gptOssTensors(gptOss),
};
