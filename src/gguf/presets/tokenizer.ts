/**
 * tokenizer.* metadata of a replica: a vocabulary of the real size whose token strings are
 * synthetic but unique ("<t1234>"), with the real special tokens at their real ids and the 256
 * byte tokens llama.cpp needs to tokenize any text.
 */

import { kv, type GgufTypedValue } from '../value-types.js';
import { TokenType, byteLevelAlphabet, spmByteTokens } from '../vocab.js';
import type { TokenizerSpec } from './types.js';

interface Vocabulary {
  readonly tokens: string[];
  readonly types: number[];
  readonly scores: number[];
}

function buildVocabulary(spec: TokenizerSpec, size: number): Vocabulary {
  const tokens = new Array<string>(size);
  const types = new Array<number>(size);
  const scores = new Array<number>(size);
  const bytes = spec.model === 'gpt2' ? byteLevelAlphabet() : spmByteTokens();
  const byteType = spec.model === 'gpt2' ? TokenType.NORMAL : TokenType.BYTE;
  const range = spec.controlRange;

  for (let id = 0; id < size; id++) {
    const special = spec.specials[id];
    const byte = id - spec.byteTokensAt;
    if (special !== undefined) {
      tokens[id] = special;
      types[id] = id === spec.unkId ? TokenType.UNKNOWN : TokenType.CONTROL;
      scores[id] = 0;
    } else if (byte >= 0 && byte < 256) {
      tokens[id] = bytes[byte]!;
      types[id] = byteType;
      scores[id] = 0;
    } else if (range && id >= range.from && id < range.to) {
      tokens[id] = range.name(id);
      types[id] = TokenType.CONTROL;
      scores[id] = 0;
    } else if (spec.unusedFrom !== undefined && id >= spec.unusedFrom) {
      tokens[id] = `[PAD${id}]`;
      types[id] = TokenType.UNUSED;
      scores[id] = -10000;
    } else {
      tokens[id] = `<t${id}>`;
      types[id] = TokenType.NORMAL;
      scores[id] = -id;
    }
  }
  return { tokens, types, scores };
}

/** The tokenizer.* keys in the order convert_hf_to_gguf.py writes them. */
export function tokenizerMetadata(spec: TokenizerSpec, vocabSize: number): Record<string, GgufTypedValue> {
  const v = buildVocabulary(spec, vocabSize);
  const out: Record<string, GgufTypedValue> = {
    'tokenizer.ggml.model': kv.str(spec.model),
    'tokenizer.ggml.pre': kv.str(spec.pre),
    'tokenizer.ggml.tokens': kv.arr('string', v.tokens),
  };
  if (spec.model === 'llama') out['tokenizer.ggml.scores'] = kv.arr('float32', v.scores);
  out['tokenizer.ggml.token_type'] = kv.arr('int32', v.types);
  // llama.cpp requires the key for BPE vocabularies but accepts an empty list; the synthetic
  // tokens are not merge products anyway, and real merges would only add header bytes.
  if (spec.model === 'gpt2') out['tokenizer.ggml.merges'] = kv.arr('string', []);
  if (spec.addSpacePrefix !== undefined) out['tokenizer.ggml.add_space_prefix'] = kv.bool(spec.addSpacePrefix);
  if (spec.bosId !== undefined) out['tokenizer.ggml.bos_token_id'] = kv.u32(spec.bosId);
  if (spec.eosId !== undefined) out['tokenizer.ggml.eos_token_id'] = kv.u32(spec.eosId);
  if (spec.unkId !== undefined) out['tokenizer.ggml.unknown_token_id'] = kv.u32(spec.unkId);
  if (spec.padId !== undefined) out['tokenizer.ggml.padding_token_id'] = kv.u32(spec.padId);
  if (spec.addBos !== undefined) out['tokenizer.ggml.add_bos_token'] = kv.bool(spec.addBos);
  if (spec.addEos !== undefined) out['tokenizer.ggml.add_eos_token'] = kv.bool(spec.addEos);
  out['tokenizer.chat_template'] = kv.str(spec.chatTemplate);
  return out;
}
