/** Gemma 2 9B replica: sliding-window attention, head size 256, logit soft-capping, post-norms. */

import { kv } from '../value-types.js';
import { GEMMA2_TEMPLATE } from './chat-templates.js';
import { gemma2Tensors } from './tensor-builders.js';
import type { ModelHparams, PresetSpec } from './types.js';

const gemma2: ModelHparams = {
  layers: 42, embd: 3584, ff: 14336, heads: 16, headsKv: 8, headDim: 256,
  vocabSize: 256000, ctxTrain: 8192, expertCount: 0, expertUsedCount: 0, tiedEmbeddings: true,
  slidingWindow: 4096,
};

export const GEMMA_2_9B: PresetSpec = {
  id: 'gemma-2-9b',
  source: 'google/gemma-2-9b-it',
  arch: 'gemma2',
  hparams: gemma2,
  general: { name: 'Gemma 2 9b It', basename: 'gemma-2', finetune: 'it', sizeLabel: '9B', license: 'gemma' },
  // Gemma2Model.set_gguf_parameters order; it writes no rope.freq_base (llama.cpp defaults to 10000).
  archMetadata: {
    'gemma2.context_length': kv.u32(gemma2.ctxTrain),
    'gemma2.embedding_length': kv.u32(gemma2.embd),
    'gemma2.block_count': kv.u32(gemma2.layers),
    'gemma2.feed_forward_length': kv.u32(gemma2.ff),
    'gemma2.attention.head_count': kv.u32(gemma2.heads),
    'gemma2.attention.head_count_kv': kv.u32(gemma2.headsKv),
    'gemma2.attention.layer_norm_rms_epsilon': kv.f32(1e-6),
    'gemma2.attention.key_length': kv.u32(gemma2.headDim),
    'gemma2.attention.value_length': kv.u32(gemma2.headDim),
  },
  archMetadataAfterFileType: {
    'gemma2.attn_logit_softcapping': kv.f32(50),
    'gemma2.final_logit_softcapping': kv.f32(30),
    'gemma2.attention.sliding_window': kv.u32(gemma2.slidingWindow!),
  },
  tokenizer: {
    model: 'llama',
    pre: 'default',
    byteTokensAt: 217,
    specials: { 0: '<pad>', 1: '<eos>', 2: '<bos>', 3: '<unk>', 4: '<mask>', 106: '<start_of_turn>', 107: '<end_of_turn>' },
    controlRange: { from: 5, to: 106, name: (id) => `<unused${id - 5}>` },
    bosId: 2,
    eosId: 1,
    unkId: 3,
    padId: 0,
    addBos: true,
    addEos: false,
    addSpacePrefix: false,
    chatTemplate: GEMMA2_TEMPLATE,
  },
  tensorShapes: () => gemma2Tensors(gemma2),
};
