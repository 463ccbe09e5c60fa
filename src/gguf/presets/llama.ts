/** LLM_ARCH_LLAMA replicas: Llama 3 8B, Mistral 7B v0.3 and Mixtral 8x7B (MoE). */

import { kv } from '../value-types.js';
import { LLAMA3_TEMPLATE, MISTRAL_TEMPLATE } from './chat-templates.js';
import { llamaTensors } from './tensor-builders.js';
import type { ModelHparams, PresetSpec } from './types.js';

/** The `llama.*` keys LlamaModel in convert_hf_to_gguf.py writes, in its order. */
function llamaArchMetadata(h: ModelHparams, ropeBase: number) {
  return {
    'llama.block_count': kv.u32(h.layers),
    'llama.context_length': kv.u32(h.ctxTrain),
    'llama.embedding_length': kv.u32(h.embd),
    'llama.feed_forward_length': kv.u32(h.ff),
    'llama.attention.head_count': kv.u32(h.heads),
    'llama.attention.head_count_kv': kv.u32(h.headsKv),
    'llama.rope.freq_base': kv.f32(ropeBase),
    'llama.attention.layer_norm_rms_epsilon': kv.f32(1e-5),
    ...(h.expertCount > 0
      ? { 'llama.expert_count': kv.u32(h.expertCount), 'llama.expert_used_count': kv.u32(h.expertUsedCount) }
      : {}),
  };
}

function llamaAfterFileType(h: ModelHparams) {
  return {
    'llama.vocab_size': kv.u32(h.vocabSize),
    'llama.rope.dimension_count': kv.u32(h.headDim),
  };
}

const llama3: ModelHparams = {
  layers: 32, embd: 4096, ff: 14336, heads: 32, headsKv: 8, headDim: 128,
  vocabSize: 128256, ctxTrain: 8192, expertCount: 0, expertUsedCount: 0, tiedEmbeddings: false,
};

export const LLAMA_3_8B: PresetSpec = {
  id: 'llama-3-8b',
  source: 'meta-llama/Meta-Llama-3-8B-Instruct',
  arch: 'llama',
  hparams: llama3,
  general: { name: 'Meta Llama 3 8B Instruct', basename: 'Meta-Llama-3', finetune: 'Instruct', sizeLabel: '8B', license: 'llama3' },
  archMetadata: llamaArchMetadata(llama3, 500000),
  archMetadataAfterFileType: llamaAfterFileType(llama3),
  tokenizer: {
    model: 'gpt2',
    pre: 'llama-bpe',
    byteTokensAt: 0,
    specials: {
      128000: '<|begin_of_text|>',
      128001: '<|end_of_text|>',
      128006: '<|start_header_id|>',
      128007: '<|end_header_id|>',
      128009: '<|eot_id|>',
    },
    // The other ids from 128000 are <|reserved_special_token_N|>, numbered in id order.
    controlRange: {
      from: 128002,
      to: 128256,
      name: (id) => `<|reserved_special_token_${id < 128006 ? id - 128002 : id === 128008 ? 4 : id - 128005}|>`,
    },
    bosId: 128000,
    eosId: 128009,
    chatTemplate: LLAMA3_TEMPLATE,
  },
  tensorShapes: () => llamaTensors(llama3),
};

const mistral: ModelHparams = {
  layers: 32, embd: 4096, ff: 14336, heads: 32, headsKv: 8, headDim: 128,
  vocabSize: 32768, ctxTrain: 32768, expertCount: 0, expertUsedCount: 0, tiedEmbeddings: false,
};

export const MISTRAL_7B: PresetSpec = {
  id: 'mistral-7b',
  source: 'mistralai/Mistral-7B-Instruct-v0.3',
  arch: 'llama',
  hparams: mistral,
  general: { name: 'Mistral 7B Instruct v0.3', basename: 'Mistral', finetune: 'Instruct-v0.3', sizeLabel: '7B', license: 'apache-2.0' },
  archMetadata: llamaArchMetadata(mistral, 1000000),
  archMetadataAfterFileType: llamaAfterFileType(mistral),
  tokenizer: {
    model: 'llama',
    pre: 'default',
    byteTokensAt: 771,
    specials: {
      0: '<unk>', 1: '<s>', 2: '</s>', 3: '[INST]', 4: '[/INST]', 5: '[TOOL_CALLS]',
      6: '[AVAILABLE_TOOLS]', 7: '[/AVAILABLE_TOOLS]', 8: '[TOOL_RESULTS]', 9: '[/TOOL_RESULTS]',
    },
    controlRange: { from: 10, to: 771, name: (id) => `[control_${id - 2}]` },
    bosId: 1,
    eosId: 2,
    unkId: 0,
    addBos: true,
    addEos: false,
    chatTemplate: MISTRAL_TEMPLATE,
  },
  tensorShapes: () => llamaTensors(mistral),
};

const mixtral: ModelHparams = {
  layers: 32, embd: 4096, ff: 14336, heads: 32, headsKv: 8, headDim: 128,
  vocabSize: 32000, ctxTrain: 32768, expertCount: 8, expertUsedCount: 2, tiedEmbeddings: false,
};

export const MIXTRAL_8X7B: PresetSpec = {
  id: 'mixtral-8x7b',
  source: 'mistralai/Mixtral-8x7B-Instruct-v0.1',
  arch: 'llama',
  hparams: mixtral,
  general: { name: 'Mixtral 8x7B Instruct v0.1', basename: 'Mixtral', finetune: 'Instruct-v0.1', sizeLabel: '8x7B', license: 'apache-2.0' },
  archMetadata: llamaArchMetadata(mixtral, 1000000),
  archMetadataAfterFileType: llamaAfterFileType(mixtral),
  tokenizer: {
    model: 'llama',
    pre: 'default',
    byteTokensAt: 3,
    specials: { 0: '<unk>', 1: '<s>', 2: '</s>' },
    bosId: 1,
    eosId: 2,
    unkId: 0,
    addBos: true,
    addEos: false,
    chatTemplate: MISTRAL_TEMPLATE,
  },
  tensorShapes: () => llamaTensors(mixtral),
};
