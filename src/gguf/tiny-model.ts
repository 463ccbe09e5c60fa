/**
 * A tiny but runnable llama-architecture GGUF with seeded random weights, for tests that need a
 * real llama-server to load a model and answer in milliseconds.
 *
 * Vocabulary: SentencePiece-style ("llama" tokenizer model) with <unk>, <s>, </s> and the 256
 * byte tokens <0x00>..<0xFF>. llama.cpp's SPM tokenizer falls back to byte tokens for any text
 * it has no piece for, so every prompt tokenizes. To keep answers readable and never empty, the
 * output projection rows of every token except printable ASCII bytes (0x20..0x7E) are zero:
 * those tokens always get logit 0, while some printable token (there are 95, with random
 * logits) almost surely scores higher, so greedy decoding emits printable ASCII text and never
 * stops early on </s>.
 */

import { toFloat16Bytes, toFloat32Bytes } from './float16.js';
import { mulberry32 } from './prng.js';
import { kv, type GgufTypedValue } from './value-types.js';
import { TokenType, spmByteTokens } from './vocab.js';
import { writeGguf, type GgufTensorInput, type GgufWriteResult, type WriteGgufOptions } from './writer.js';

export interface TinyModelOptions {
  /** Same seed -> byte-identical file; different seeds -> different weights and answers. */
  readonly seed: number;
  /** Transformer blocks; default 2. */
  readonly layers?: number;
  /** Embedding width; default 64. */
  readonly embd?: number;
  /**
   * Attention heads; default embd/32, i.e. head size 32. llama.cpp refuses q8_0/q4_0 KV caches
   * for head sizes below 32, so keep embd/heads >= 32 when such caches are to be tested.
   */
  readonly heads?: number;
  /** KV heads (GQA); default = heads. Must divide heads. */
  readonly headsKv?: number;
  /** Feed-forward width; default 4 * embd. */
  readonly ff?: number;
  /** llama.context_length; default 4096. */
  readonly ctxTrain?: number;
  /** Type of the 2-D weights (norms are always F32); default F32. */
  readonly type?: 'F32' | 'F16';
}

/** Chat template: role-tagged turns, understood by llama.cpp's Jinja engine. */
export const TINY_CHAT_TEMPLATE =
  "{%- for message in messages -%}" +
  "{{- '<|' + message['role'] + '|>\\n' + message['content'] + '\\n' -}}" +
  "{%- endfor -%}" +
  "{%- if add_generation_prompt -%}{{- '<|assistant|>\\n' -}}{%- endif -%}";

const SPECIAL_TOKENS = ['<unk>', '<s>', '</s>'] as const;
/** Id of byte token <0x00>. */
const FIRST_BYTE_TOKEN = SPECIAL_TOKENS.length;
const VOCAB_SIZE = FIRST_BYTE_TOKEN + 256;

interface ResolvedOptions {
  seed: number;
  layers: number;
  embd: number;
  heads: number;
  headsKv: number;
  ff: number;
  ctxTrain: number;
  type: 'F32' | 'F16';
}

function resolve(opts: TinyModelOptions): ResolvedOptions {
  const embd = opts.embd ?? 64;
  const heads = opts.heads ?? Math.max(1, Math.floor(embd / 32));
  const r: ResolvedOptions = {
    seed: opts.seed,
    layers: opts.layers ?? 2,
    embd,
    heads,
    headsKv: opts.headsKv ?? heads,
    ff: opts.ff ?? 4 * embd,
    ctxTrain: opts.ctxTrain ?? 4096,
    type: opts.type ?? 'F32',
  };
  if (!Number.isSafeInteger(r.seed)) throw new RangeError('seed must be an integer');
  for (const k of ['layers', 'embd', 'heads', 'headsKv', 'ff', 'ctxTrain'] as const) {
    if (!Number.isSafeInteger(r[k]) || r[k] < 1) throw new RangeError(`${k} must be a positive integer`);
  }
  if (r.embd % r.heads !== 0) throw new RangeError('embd must be a multiple of heads');
  if ((r.embd / r.heads) % 2 !== 0) throw new RangeError('head size must be even (RoPE)');
  if (r.heads % r.headsKv !== 0) throw new RangeError('headsKv must divide heads');
  return r;
}

/** The tiny model's metadata and tensors (with data), without writing anything. */
export function buildTinyModel(opts: TinyModelOptions): WriteGgufOptions {
  const o = resolve(opts);
  return { metadata: tinyMetadata(o), tensors: tinyTensors(o) };
}

/** Writes the tiny model to `path`. */
export async function writeTinyModel(path: string, opts: TinyModelOptions): Promise<GgufWriteResult> {
  return writeGguf(path, buildTinyModel(opts));
}

function tinyMetadata(o: ResolvedOptions): Record<string, GgufTypedValue> {
  const headDim = o.embd / o.heads;
  const tokens = [...SPECIAL_TOKENS, ...spmByteTokens()];
  const types = [TokenType.UNKNOWN, TokenType.CONTROL, TokenType.CONTROL, ...new Array<number>(256).fill(TokenType.BYTE)];
  return {
    'general.architecture': kv.str('llama'),
    'general.type': kv.str('model'),
    'general.name': kv.str(`tiny-llama-seed-${o.seed}`),
    'llama.block_count': kv.u32(o.layers),
    'llama.context_length': kv.u32(o.ctxTrain),
    'llama.embedding_length': kv.u32(o.embd),
    'llama.feed_forward_length': kv.u32(o.ff),
    'llama.attention.head_count': kv.u32(o.heads),
    'llama.attention.head_count_kv': kv.u32(o.headsKv),
    'llama.rope.freq_base': kv.f32(10000),
    'llama.attention.layer_norm_rms_epsilon': kv.f32(1e-5),
    'llama.rope.dimension_count': kv.u32(headDim),
    'llama.vocab_size': kv.u32(VOCAB_SIZE),
    'general.file_type': kv.u32(o.type === 'F16' ? 1 : 0), // LLAMA_FTYPE_MOSTLY_F16 / ALL_F32
    'general.quantization_version': kv.u32(2),
    'tokenizer.ggml.model': kv.str('llama'),
    'tokenizer.ggml.pre': kv.str('default'),
    'tokenizer.ggml.tokens': kv.arr('string', tokens),
    'tokenizer.ggml.scores': kv.arr('float32', new Array<number>(VOCAB_SIZE).fill(0)),
    'tokenizer.ggml.token_type': kv.arr('int32', types),
    'tokenizer.ggml.bos_token_id': kv.u32(1),
    'tokenizer.ggml.eos_token_id': kv.u32(2),
    'tokenizer.ggml.unknown_token_id': kv.u32(0),
    'tokenizer.ggml.add_bos_token': kv.bool(true),
    'tokenizer.ggml.add_eos_token': kv.bool(false),
    'tokenizer.chat_template': kv.str(TINY_CHAT_TEMPLATE),
  };
}

function tinyTensors(o: ResolvedOptions): GgufTensorInput[] {
  const rand = mulberry32(o.seed);
  const headDim = o.embd / o.heads;
  const qDim = o.heads * headDim;
  const kvDim = o.headsKv * headDim;
  const matrixType = o.type;
  const encode = matrixType === 'F16' ? toFloat16Bytes : toFloat32Bytes;

  /** Uniform weights with standard deviation `std` (uniform on [-a, a] has std a/sqrt(3)). */
  const uniform = (count: number, std: number): Float32Array => {
    const a = std * Math.sqrt(3);
    const out = new Float32Array(count);
    for (let i = 0; i < count; i++) out[i] = (rand() * 2 - 1) * a;
    return out;
  };
  const matrix = (name: string, cols: number, rows: number, std: number): GgufTensorInput => ({
    name, dims: [cols, rows], type: matrixType, data: encode(uniform(cols * rows, std)),
  });
  const ones = (name: string, n: number): GgufTensorInput => ({
    name, dims: [n], type: 'F32', data: toFloat32Bytes(new Float32Array(n).fill(1)),
  });

  const tensors: GgufTensorInput[] = [matrix('token_embd.weight', o.embd, VOCAB_SIZE, 1)];
  for (let i = 0; i < o.layers; i++) {
    const p = `blk.${i}.`;
    // ~1/sqrt(fan_in) keeps activations O(1) through the residual stream.
    tensors.push(
      ones(`${p}attn_norm.weight`, o.embd),
      matrix(`${p}attn_q.weight`, o.embd, qDim, 1 / Math.sqrt(o.embd)),
      matrix(`${p}attn_k.weight`, o.embd, kvDim, 1 / Math.sqrt(o.embd)),
      matrix(`${p}attn_v.weight`, o.embd, kvDim, 1 / Math.sqrt(o.embd)),
      matrix(`${p}attn_output.weight`, qDim, o.embd, 1 / Math.sqrt(qDim)),
      ones(`${p}ffn_norm.weight`, o.embd),
      matrix(`${p}ffn_gate.weight`, o.embd, o.ff, 1 / Math.sqrt(o.embd)),
      matrix(`${p}ffn_up.weight`, o.embd, o.ff, 1 / Math.sqrt(o.embd)),
      matrix(`${p}ffn_down.weight`, o.ff, o.embd, 1 / Math.sqrt(o.ff)),
    );
  }
  tensors.push(ones('output_norm.weight', o.embd));

  const output = uniform(o.embd * VOCAB_SIZE, 1 / Math.sqrt(o.embd));
  for (let token = 0; token < VOCAB_SIZE; token++) {
    const byte = token - FIRST_BYTE_TOKEN;
    if (byte < 0x20 || byte > 0x7e) output.fill(0, token * o.embd, (token + 1) * o.embd);
  }
  tensors.push({ name: 'output.weight', dims: [o.embd, VOCAB_SIZE], type: matrixType, data: encode(output) });
  return tensors;
}
