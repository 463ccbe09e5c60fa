/**
 * Sparse architecture replicas: GGUF files whose header (metadata keys, tensor names, shapes and
 * types) matches what the real model's conversion and quantization produce, while the data
 * region is a hole. A 16 GB replica costs a few MB of disk, loads in llama.cpp's no-alloc paths
 * (llama-fit-params, llama-quantize --dry-run) and is exactly what a memory estimator reads.
 *
 * Quantizations:
 * - F16: as convert_hf_to_gguf.py --outtype f16 writes it (1-D tensors, norms and MoE routers
 *   stay F32),
 * - Q8_0, Q6_K, Q5_K_M, Q4_K_M, Q3_K_M and Q2_K: as llama-quantize turns that F16 file into them
 *   (see quantize-mix.ts).
 */

import { elementCount, tensorBytes, type GgmlTypeName } from './ggml-types.js';
import { GGUF_DEFAULT_ALIGNMENT, layoutTensors, type TensorLayout } from './layout.js';
import { FILE_TYPE_ID, compareLikeLlamaLoader, quantizedTypes, type QuantFileType } from './quantize-mix.js';
import { DEEPSEEK_V2_LITE } from './presets/deepseek2.js';
import { GEMMA_2_9B } from './presets/gemma.js';
import { GLM_45_AIR } from './presets/glm4moe.js';
import { GPT_OSS_20B } from './presets/gpt-oss.js';
import { GRANITE_40_H_TINY } from './presets/granitehybrid.js';
import { LLAMA_3_8B, MISTRAL_7B, MIXTRAL_8X7B } from './presets/llama.js';
import { LLAMA_4_SCOUT } from './presets/llama4.js';
import { PHI_3_MINI } from './presets/phi.js';
import { QWEN25_05B, QWEN3_30B_A3B } from './presets/qwen.js';
import { QWEN3_NEXT_80B_A3B } from './presets/qwen3next.js';
import { tokenizerMetadata } from './presets/tokenizer.js';
import type { PresetId, PresetSpec } from './presets/types.js';
import { kv, type GgufTypedValue } from './value-types.js';
import { writeGguf } from './writer.js';

export type { GeneralInfo, ModelHparams, PresetId, PresetSpec, TensorDims, TokenizerSpec } from './presets/types.js';
/** A quantization replicas are written in. */
export type ReplicaQuant = QuantFileType;

export const PRESETS: Readonly<Record<PresetId, PresetSpec>> = {
  'llama-3-8b': LLAMA_3_8B,
  'qwen2.5-0.5b': QWEN25_05B,
  'mistral-7b': MISTRAL_7B,
  'gemma-2-9b': GEMMA_2_9B,
  'phi-3-mini': PHI_3_MINI,
  'mixtral-8x7b': MIXTRAL_8X7B,
  'qwen3-30b-a3b': QWEN3_30B_A3B,
  'gpt-oss-20b': GPT_OSS_20B,
  'glm-4.5-air': GLM_45_AIR,
  'deepseek-v2-lite': DEEPSEEK_V2_LITE,
  'qwen3-next-80b-a3b': QWEN3_NEXT_80B_A3B,
  'granite-4.0-h-tiny': GRANITE_40_H_TINY,
  'llama-4-scout': LLAMA_4_SCOUT,
};

export const PRESET_IDS = Object.keys(PRESETS) as PresetId[];

/** The quantizations every preset can be written in. */
export const REPLICA_QUANTS: readonly ReplicaQuant[] = ['F16', 'Q8_0', 'Q6_K', 'Q5_K_M', 'Q4_K_M', 'Q3_K_M', 'Q2_K'];

export function isPresetId(value: string): value is PresetId {
  return Object.prototype.hasOwnProperty.call(PRESETS, value);
}

export interface ReplicaTensor {
  readonly name: string;
  /** ggml order: dims[0] is the row length. */
  readonly dims: readonly number[];
  readonly type: GgmlTypeName;
}

/**
 * Type convert_hf_to_gguf.py gives a tensor in an F16 conversion: F32 for 1-D tensors, norms and
 * MoE router weights, shared-expert gates and SSM conv kernels, and what does not end in
 * `.weight` (biases, Mamba's ssm_a / ssm_d) (conversion/base.py, prepare_tensors), F16 for the rest.
 */
function convertF16Type(name: string, dims: readonly number[]): GgmlTypeName {
  if (dims.length <= 1 || name.endsWith('_norm.weight')) return 'F32';
  if (name.includes('ffn_gate_inp.') || name.includes('ffn_gate_inp_shexp.') || name.includes('ssm_conv1d.')) return 'F32';
  if (!name.endsWith('.weight')) return 'F32';
  return 'F16';
}

/**
 * The replica's tensor table, without writing anything: in llama-quantize's output order (by
 * layer, non-layer tensors first, then by name), with the types of the given quantization.
 */
export function replicaTensors(id: PresetId, quant: ReplicaQuant): ReplicaTensor[] {
  const spec = PRESETS[id];
  const shapes = spec.tensorShapes().sort((a, b) => compareLikeLlamaLoader(a.name, b.name));
  const f16 = shapes.map((s) => ({ name: s.name, dims: s.dims, type: convertF16Type(s.name, s.dims) }));
  const types = quantizedTypes(
    { arch: spec.arch, layerCount: spec.hparams.layers, expertCount: spec.hparams.expertCount, nGqa: spec.hparams.heads / spec.hparams.headsKv },
    f16,
    quant,
  );
  return f16.map((t, i) => ({ ...t, type: types[i]! }));
}

/** Offsets and sizes of the replica's tensors in its data section. */
export function replicaLayout(id: PresetId, quant: ReplicaQuant): TensorLayout {
  return layoutTensors(replicaTensors(id, quant), GGUF_DEFAULT_ALIGNMENT);
}

/** Total bytes of tensor data (padding excluded), i.e. the model's weight size. */
export function replicaWeightBytes(id: PresetId, quant: ReplicaQuant): number {
  return replicaLayout(id, quant).tensors.reduce((sum, t) => sum + t.size, 0);
}

/** The replica's metadata, in the order the real conversion writes it. */
export function replicaMetadata(id: PresetId, quant: ReplicaQuant): Record<string, GgufTypedValue> {
  const spec = PRESETS[id];
  const g = spec.general;
  return {
    'general.architecture': kv.str(spec.arch),
    'general.type': kv.str('model'),
    'general.name': kv.str(g.name),
    ...(g.finetune !== undefined ? { 'general.finetune': kv.str(g.finetune) } : {}),
    'general.basename': kv.str(g.basename),
    'general.size_label': kv.str(g.sizeLabel),
    ...(g.license !== undefined ? { 'general.license': kv.str(g.license) } : {}),
    ...spec.archMetadata,
    'general.file_type': kv.u32(FILE_TYPE_ID[quant]),
    ...spec.archMetadataAfterFileType,
    'general.quantization_version': kv.u32(2),
    ...tokenizerMetadata(spec.tokenizer, spec.hparams.vocabSize),
  };
}

/**
 * Writes a sparse replica (header only; the data region is a hole) and returns its apparent
 * file size.
 */
export async function writeSparseReplica(path: string, id: PresetId, quant: ReplicaQuant): Promise<number> {
  if (!isPresetId(id)) throw new RangeError(`unknown preset ${String(id)}`);
  if (!REPLICA_QUANTS.includes(quant)) throw new RangeError(`unsupported quantization ${String(quant)}`);
  const result = await writeGguf(path, {
    metadata: replicaMetadata(id, quant),
    tensors: replicaTensors(id, quant),
  });
  return result.fileSize;
}

/** Bits per weight of a replica, for quick sanity checks (e.g. ~4.9 for Q4_K_M). */
export function replicaBitsPerWeight(id: PresetId, quant: ReplicaQuant): number {
  let bytes = 0;
  let elements = 0;
  for (const t of replicaTensors(id, quant)) {
    elements += elementCount(t.dims);
    bytes += tensorBytes(t.type, t.dims);
  }
  return (bytes * 8) / elements;
}
