/**
 * IBM Granite-4.0-H-Tiny replica (LLM_ARCH_GRANITE_HYBRID, "granitehybrid"): 40 layers, Mamba2
 * mixers everywhere but the four GQA attention layers 5, 15, 25 and 35 (12 query heads and 4 KV
 * heads of 128, no position embedding: rope.scaling.finetuned false switches rope off); Mamba2 with
 * d_state 128, d_conv 4, 48 heads of 64 (d_inner 3072), one group. Every layer is MoE: 64 experts
 * (top 6, width 512) with a softmax router plus one shared expert (width 1024); granite's
 * multipliers (embedding 12, residual 0.22, attention 1/128, logits 6); tied embeddings; vocabulary
 * of 100,352 entries (ibm-granite/granite-4.0-h-tiny config.json, GraniteHybridModel in
 * conversion/granite.py).
 *
 * Metadata quirks of the converter: GraniteHybridModel overwrites head_count_kv with a per-layer
 * array (0 on the Mamba layers: llama.cpp's is_recr) and, without rope, context_length with 2^20;
 * the GGUF writer keeps an overwritten key at its first position.
 */

import { kv } from '../value-types.js';
import { graniteHybridTensors } from './tensor-builders.js';
import type { ModelHparams, PresetSpec } from './types.js';

const ATTN_LAYERS = [5, 15, 25, 35];
const SHARED_FF = 1024;
const SSM = { dConv: 4, dState: 128, nGroup: 1, nHead: 48, dInner: 3072 } as const;

const granite4hTiny: ModelHparams = {
  layers: 40, embd: 1536, ff: 512, heads: 12, headsKv: 4, headDim: 128,
  vocabSize: 100352, ctxTrain: 1048576, expertCount: 64, expertUsedCount: 6, expertFf: 512,
  tiedEmbeddings: true,
};

/** A compact Granite 4 template: llama.cpp recognizes it by `<|start_of_role|>` (LLM_CHAT_TEMPLATE_GRANITE). */
const GRANITE4_TEMPLATE = [
  "{%- for message in messages -%}",
  "{{- '<|start_of_role|>' + message['role'] + '<|end_of_role|>' + message['content'] + '<|end_of_text|>\\n' -}}",
  "{%- endfor -%}",
  "{%- if add_generation_prompt -%}{{- '<|start_of_role|>assistant<|end_of_role|>' -}}{%- endif -%}",
].join('\n');

export const GRANITE_40_H_TINY: PresetSpec = {
  id: 'granite-4.0-h-tiny',
  source: 'ibm-granite/granite-4.0-h-tiny',
  arch: 'granitehybrid',
  hparams: granite4hTiny,
  general: { name: 'Granite 4.0 H Tiny', basename: 'granite-4.0-h', sizeLabel: 'tiny', license: 'apache-2.0' },
  // TextModel.set_gguf_parameters order (head_count_kv and context_length with the values
  // GraniteHybridModel overwrites them with); LlamaModel, GraniteModel, GraniteMoeModel and
  // GraniteHybridModel add theirs after general.file_type.
  archMetadata: {
    'granitehybrid.block_count': kv.u32(granite4hTiny.layers),
    'granitehybrid.context_length': kv.u32(granite4hTiny.ctxTrain),
    'granitehybrid.embedding_length': kv.u32(granite4hTiny.embd),
    'granitehybrid.feed_forward_length': kv.u32(granite4hTiny.ff),
    'granitehybrid.attention.head_count': kv.u32(granite4hTiny.heads),
    'granitehybrid.attention.head_count_kv': kv.arr(
      'uint32',
      Array.from({ length: granite4hTiny.layers }, (_, i) => (ATTN_LAYERS.includes(i) ? granite4hTiny.headsKv : 0)),
    ),
    'granitehybrid.rope.freq_base': kv.f32(10000),
    'granitehybrid.attention.layer_norm_rms_epsilon': kv.f32(1e-5),
    'granitehybrid.expert_count': kv.u32(granite4hTiny.expertCount),
    'granitehybrid.expert_used_count': kv.u32(granite4hTiny.expertUsedCount),
  },
  archMetadataAfterFileType: {
    'granitehybrid.vocab_size': kv.u32(granite4hTiny.vocabSize),
    'granitehybrid.rope.dimension_count': kv.u32(granite4hTiny.headDim),
    'granitehybrid.attention.scale': kv.f32(0.0078125),
    'granitehybrid.embedding_scale': kv.f32(12),
    'granitehybrid.residual_scale': kv.f32(0.22),
    'granitehybrid.logit_scale': kv.f32(6),
    'granitehybrid.expert_shared_feed_forward_length': kv.u32(SHARED_FF),
    'granitehybrid.ssm.conv_kernel': kv.u32(SSM.dConv),
    'granitehybrid.ssm.state_size': kv.u32(SSM.dState),
    'granitehybrid.ssm.group_count': kv.u32(SSM.nGroup),
    'granitehybrid.ssm.inner_size': kv.u32(SSM.dInner),
    'granitehybrid.ssm.time_step_rank': kv.u32(SSM.nHead),
    'granitehybrid.rope.scaling.finetuned': kv.bool(false),
  },
  tokenizer: {
    model: 'gpt2',
    pre: 'dbrx',
    byteTokensAt: 0,
    specials: {
      100256: '<|pad|>',
      100257: '<|end_of_text|>',
      100258: '<|fim_prefix|>',
      100259: '<|fim_middle|>',
      100260: '<|fim_suffix|>',
      100261: '<|fim_pad|>',
      100262: '<|filename|>',
      100263: '<|reponame|>',
      100264: '<|start_of_role|>',
      100265: '<|end_of_role|>',
      100266: '<|unused_1|>',
      100267: '<|start_of_plugin|>',
      100268: '<|end_of_plugin|>',
      100269: '<|unk|>',
    },
    controlRange: { from: 100270, to: 100352, name: (id) => `<|unused_${id - 100268}|>` },
    bosId: 100257,
    eosId: 100257,
    padId: 100256,
    addBos: false,
    chatTemplate: GRANITE4_TEMPLATE,
  },
  tensorShapes: () => graniteHybridTensors(granite4hTiny, SSM, ATTN_LAYERS, SHARED_FF),
};
