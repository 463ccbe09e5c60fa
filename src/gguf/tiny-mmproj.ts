/**
 * A tiny but loadable multimodal projector ("mmproj") GGUF with seeded random weights, for tests
 * that need a real llama-server to accept images: pass it with `--mmproj` next to the tiny text
 * model of tiny-model.ts (whose `embd` must equal this projector's `textEmbd`).
 *
 * It is a LLaVA-1.5-style file for llama.cpp's mtmd/clip loader (tools/mtmd/clip.cpp), projector
 * type "mlp" (PROJECTOR_TYPE_MLP): a CLIP ViT vision tower followed by a two-layer MLP
 * (mm.0 -> GELU -> mm.2) that maps each patch embedding into the text model's embedding space.
 * The defaults give a 32x32 image of 8x8 patches = 16 image tokens, a 32-wide encoder with one
 * block, and a ~100 KB file that encodes an image in about a millisecond on a CPU.
 *
 * Metadata the loader reads (all required unless noted):
 * - `clip.has_vision_encoder` = true: without it the file offers no modality and is refused.
 * - `clip.projector_type` = "mlp": selects the LLaVA graph and the fixed-size image preprocessor
 *   (resize to image_size x image_size; no tiling because no `clip.vision.image_grid_pinpoints`).
 * - `clip.vision.{embedding_length, feed_forward_length, block_count, attention.head_count,
 *   attention.layer_norm_epsilon, projection_dim, image_size, patch_size}`.
 * - `clip.vision.image_mean` / `clip.vision.image_std`: 3 floats each (the loader throws when they
 *   are missing); the OpenAI CLIP values.
 * - `clip.vision.feature_layer` = [block_count] (optional key): the LLaVA graph by default feeds the
 *   projector from the *second to last* block, so with one block no block would run at all;
 *   naming the last block's output as the feature layer makes every block take part.
 * - `clip.use_gelu` = false (optional): the encoder FFN uses quick-GELU, as OpenAI CLIP does.
 * - `general.architecture` = "clip", `general.file_type`, `general.name`: informational.
 *
 * Tensors (ggml dims, row length first; E = vision embd, F = vision ff, P = patch size,
 * N = (image_size / P)^2 patches, H = projector hidden width, T = text embd):
 * - `v.patch_embd.weight` [P, P, 3, E] (the patchifying conv2d kernel) and `v.patch_embd.bias` [E]
 * - `v.position_embd.weight` [E, N] (one learned position per patch; no class token, so the
 *   projector's patch selection starts at row 0)
 * - `v.pre_ln.{weight,bias}` [E]
 * - per block i: `v.blk.i.ln1.*`, `v.blk.i.ln2.*` [E]; `v.blk.i.attn_{q,k,v,out}.weight` [E, E] and
 *   `.bias` [E] (attn_out.weight is the one the loader insists on); `v.blk.i.ffn_up.weight` [E, F]
 *   with bias [F] and `v.blk.i.ffn_down.weight` [F, E] with bias [E] (the loader requires both
 *   and swaps them when ffn_down's rows have length E, a legacy naming fix, so F must differ
 *   from E)
 * - `mm.0.weight` [E, H], `mm.0.bias` [H], `mm.2.weight` [H, T], `mm.2.bias` [T]: the projector;
 *   mm.2's output width T is what mtmd compares with the text model's n_embd.
 *
 * Norm weights are ones and biases zeros; everything else is uniform noise with std about
 * 1/sqrt(fan_in) from mulberry32(seed), so the same seed gives a byte-identical file.
 */

import { toFloat16Bytes, toFloat32Bytes } from './float16.js';
import { mulberry32 } from './prng.js';
import { kv, type GgufTypedValue } from './value-types.js';
import { writeGguf, type GgufTensorInput, type GgufWriteResult, type WriteGgufOptions } from './writer.js';

export interface TinyProjectorOptions {
  /** Same seed -> byte-identical file; different seeds -> different weights. */
  readonly seed: number;
  /** Output width: must equal the text model's embedding width (tiny-model.ts `embd`); default 64. */
  readonly textEmbd?: number;
  /** Vision encoder width; default 32. */
  readonly embd?: number;
  /** Vision attention heads; default 2. Must divide embd. */
  readonly heads?: number;
  /** Vision feed-forward width; default 4 * embd. Must differ from embd (see above). */
  readonly ff?: number;
  /** Vision transformer blocks; default 1. */
  readonly layers?: number;
  /** Projector hidden width (mm.0 output); default textEmbd. */
  readonly hidden?: number;
  /** Side of the square image the encoder sees; default 32. Must be a multiple of patchSize. */
  readonly imageSize?: number;
  /** Side of a square patch; default 8. Image tokens per image = (imageSize / patchSize)^2. */
  readonly patchSize?: number;
  /** Type of the matrices and the patch kernel (norms, biases and positions are F32); default F32. */
  readonly type?: 'F32' | 'F16';
}

/** CLIP's normalisation constants, as in OpenAI CLIP / LLaVA 1.5 mmproj files. */
const IMAGE_MEAN = [0.48145466, 0.4578275, 0.40821073];
const IMAGE_STD = [0.26862954, 0.26130258, 0.27577711];

interface ResolvedOptions {
  seed: number;
  textEmbd: number;
  embd: number;
  heads: number;
  ff: number;
  layers: number;
  hidden: number;
  imageSize: number;
  patchSize: number;
  type: 'F32' | 'F16';
}

function resolve(opts: TinyProjectorOptions): ResolvedOptions {
  const textEmbd = opts.textEmbd ?? 64;
  const embd = opts.embd ?? 32;
  const r: ResolvedOptions = {
    seed: opts.seed,
    textEmbd,
    embd,
    heads: opts.heads ?? 2,
    ff: opts.ff ?? 4 * embd,
    layers: opts.layers ?? 1,
    hidden: opts.hidden ?? textEmbd,
    imageSize: opts.imageSize ?? 32,
    patchSize: opts.patchSize ?? 8,
    type: opts.type ?? 'F32',
  };
  if (!Number.isSafeInteger(r.seed)) throw new RangeError('seed must be an integer');
  for (const k of ['textEmbd', 'embd', 'heads', 'ff', 'layers', 'hidden', 'imageSize', 'patchSize'] as const) {
    if (!Number.isSafeInteger(r[k]) || r[k] < 1) throw new RangeError(`${k} must be a positive integer`);
  }
  if (r.embd % r.heads !== 0) throw new RangeError('embd must be a multiple of heads');
  if (r.ff === r.embd) throw new RangeError('ff must differ from embd (llama.cpp would swap ffn_up and ffn_down)');
  if (r.imageSize % r.patchSize !== 0) throw new RangeError('imageSize must be a multiple of patchSize');
  return r;
}

/** Image tokens the projector produces per image: (imageSize / patchSize)^2. */
export function tinyProjectorImageTokens(opts: Pick<TinyProjectorOptions, 'imageSize' | 'patchSize'> = {}): number {
  const side = (opts.imageSize ?? 32) / (opts.patchSize ?? 8);
  return side * side;
}

/** The tiny projector's metadata and tensors (with data), without writing anything. */
export function buildTinyProjector(opts: TinyProjectorOptions): WriteGgufOptions {
  const o = resolve(opts);
  return { metadata: projectorMetadata(o), tensors: projectorTensors(o) };
}

/** Writes the tiny projector to `path`. */
export async function writeTinyProjector(path: string, opts: TinyProjectorOptions): Promise<GgufWriteResult> {
  return writeGguf(path, buildTinyProjector(opts));
}

function projectorMetadata(o: ResolvedOptions): Record<string, GgufTypedValue> {
  return {
    'general.architecture': kv.str('clip'),
    'general.name': kv.str(`tiny-mmproj-seed-${o.seed}`),
    'general.file_type': kv.u32(o.type === 'F16' ? 1 : 0),
    'clip.has_vision_encoder': kv.bool(true),
    'clip.projector_type': kv.str('mlp'),
    'clip.use_gelu': kv.bool(false),
    'clip.vision.image_size': kv.u32(o.imageSize),
    'clip.vision.patch_size': kv.u32(o.patchSize),
    'clip.vision.embedding_length': kv.u32(o.embd),
    'clip.vision.feed_forward_length': kv.u32(o.ff),
    'clip.vision.block_count': kv.u32(o.layers),
    'clip.vision.attention.head_count': kv.u32(o.heads),
    'clip.vision.attention.layer_norm_epsilon': kv.f32(1e-5),
    'clip.vision.projection_dim': kv.u32(o.textEmbd),
    'clip.vision.feature_layer': kv.arr('int32', [o.layers]),
    'clip.vision.image_mean': kv.arr('float32', IMAGE_MEAN),
    'clip.vision.image_std': kv.arr('float32', IMAGE_STD),
  };
}

function projectorTensors(o: ResolvedOptions): GgufTensorInput[] {
  const rand = mulberry32(o.seed);
  const encode = o.type === 'F16' ? toFloat16Bytes : toFloat32Bytes;
  const patches = (o.imageSize / o.patchSize) ** 2;
  const E = o.embd;

  /** Uniform weights with standard deviation `std` (uniform on [-a, a] has std a/sqrt(3)). */
  const uniform = (count: number, std: number): Float32Array => {
    const a = std * Math.sqrt(3);
    const out = new Float32Array(count);
    for (let i = 0; i < count; i++) out[i] = (rand() * 2 - 1) * a;
    return out;
  };
  /** A weight of the configured type; dims in ggml order, dims[0] = fan-in. */
  const weight = (name: string, dims: number[], fanIn: number): GgufTensorInput => ({
    name, dims, type: o.type, data: encode(uniform(dims.reduce((a, b) => a * b, 1), 1 / Math.sqrt(fanIn))),
  });
  const f32 = (name: string, values: Float32Array): GgufTensorInput => ({
    name, dims: [values.length], type: 'F32', data: toFloat32Bytes(values),
  });
  const ones = (name: string, n: number): GgufTensorInput => f32(name, new Float32Array(n).fill(1));
  const zeros = (name: string, n: number): GgufTensorInput => f32(name, new Float32Array(n));

  const kernelFanIn = o.patchSize * o.patchSize * 3;
  const tensors: GgufTensorInput[] = [
    weight('v.patch_embd.weight', [o.patchSize, o.patchSize, 3, E], kernelFanIn),
    f32('v.patch_embd.bias', uniform(E, 0.02)),
    {
      name: 'v.position_embd.weight', dims: [E, patches], type: 'F32',
      data: toFloat32Bytes(uniform(E * patches, 0.1)),
    },
    ones('v.pre_ln.weight', E),
    zeros('v.pre_ln.bias', E),
  ];
  for (let i = 0; i < o.layers; i++) {
    const p = `v.blk.${i}.`;
    tensors.push(
      ones(`${p}ln1.weight`, E),
      zeros(`${p}ln1.bias`, E),
      weight(`${p}attn_q.weight`, [E, E], E),
      zeros(`${p}attn_q.bias`, E),
      weight(`${p}attn_k.weight`, [E, E], E),
      zeros(`${p}attn_k.bias`, E),
      weight(`${p}attn_v.weight`, [E, E], E),
      zeros(`${p}attn_v.bias`, E),
      weight(`${p}attn_out.weight`, [E, E], E),
      zeros(`${p}attn_out.bias`, E),
      ones(`${p}ln2.weight`, E),
      zeros(`${p}ln2.bias`, E),
      weight(`${p}ffn_up.weight`, [E, o.ff], E),
      zeros(`${p}ffn_up.bias`, o.ff),
      weight(`${p}ffn_down.weight`, [o.ff, E], o.ff),
      zeros(`${p}ffn_down.bias`, E),
    );
  }
  tensors.push(
    weight('mm.0.weight', [E, o.hidden], E),
    zeros('mm.0.bias', o.hidden),
    weight('mm.2.weight', [o.hidden, o.textEmbd], o.hidden),
    zeros('mm.2.bias', o.textEmbd),
  );
  return tensors;
}
