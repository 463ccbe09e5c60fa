/** Phi-3 mini (4k) replica: fused attn_qkv and fused gate/up projection. */

import { kv } from '../value-types.js';
import { PHI3_TEMPLATE } from './chat-templates.js';
import { phi3Tensors } from './tensor-builders.js';
import type { ModelHparams, PresetSpec } from './types.js';

const phi3: ModelHparams = {
  layers: 32, embd: 3072, ff: 8192, heads: 32, headsKv: 32, headDim: 96,
  vocabSize: 32064, ctxTrain: 4096, expertCount: 0, expertUsedCount: 0, tiedEmbeddings: false,
  slidingWindow: 2047,
};

export const PHI_3_MINI: PresetSpec = {
  id: 'phi-3-mini',
  source: 'microsoft/Phi-3-mini-4k-instruct',
  arch: 'phi3',
  hparams: phi3,
  general: { name: 'Phi 3 Mini 4k Instruct', basename: 'Phi-3', finetune: '4k-instruct', sizeLabel: 'mini', license: 'mit' },
  // Phi3MiniModel.set_gguf_parameters order.
  archMetadata: {
    'phi3.context_length': kv.u32(phi3.ctxTrain),
    'phi3.rope.scaling.original_context_length': kv.u32(4096),
    'phi3.embedding_length': kv.u32(phi3.embd),
    'phi3.feed_forward_length': kv.u32(phi3.ff),
    'phi3.block_count': kv.u32(phi3.layers),
    'phi3.attention.head_count': kv.u32(phi3.heads),
    'phi3.attention.head_count_kv': kv.u32(phi3.headsKv),
    'phi3.attention.layer_norm_rms_epsilon': kv.f32(1e-5),
    'phi3.rope.dimension_count': kv.u32(phi3.headDim),
    'phi3.rope.freq_base': kv.f32(10000),
  },
  archMetadataAfterFileType: {
    // llama.cpp reads it but disables SWA for Phi-3 (src/models/phi3.cpp).
    'phi3.attention.sliding_window': kv.u32(phi3.slidingWindow!),
  },
  tokenizer: {
    model: 'llama',
    pre: 'default',
    byteTokensAt: 3,
    specials: {
      0: '<unk>', 1: '<s>', 2: '</s>', 32000: '<|endoftext|>', 32001: '<|assistant|>',
      32006: '<|system|>', 32007: '<|end|>', 32010: '<|user|>',
    },
    controlRange: { from: 32002, to: 32010, name: (id) => `<|placeholder${id < 32006 ? id - 32001 : id - 32003}|>` },
    unusedFrom: 32011,
    bosId: 1,
    eosId: 32000,
    unkId: 0,
    padId: 32000,
    addBos: false,
    addEos: false,
    chatTemplate: PHI3_TEMPLATE,
  },
  tensorShapes: () => phi3Tensors(phi3),
};
