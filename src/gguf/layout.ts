/**
 * Placement of tensor data in a GGUF file: every tensor starts at a multiple of the alignment,
 * relative to the start of the data section, in table order (gguf.cpp rejects any other layout),
 * and every tensor, the last one included, is padded up to the alignment.
 */

import { ggmlType, tensorBytes, type GgmlTypeRef } from './ggml-types.js';

/** Alignment used when `general.alignment` is absent (GGUF_DEFAULT_ALIGNMENT). */
export const GGUF_DEFAULT_ALIGNMENT = 32;

/** Longest tensor name ggml stores (GGML_MAX_NAME is 64 including the terminating NUL). */
export const GGML_MAX_NAME_BYTES = 63;
export const GGML_MAX_DIMS = 4;

export function alignTo(n: number, alignment: number): number {
  const rest = n % alignment;
  return rest === 0 ? n : n + alignment - rest;
}

export function isValidAlignment(alignment: number): boolean {
  return Number.isSafeInteger(alignment) && alignment > 0 && (alignment & (alignment - 1)) === 0 && alignment < 2 ** 31;
}

export interface TensorShape {
  readonly name: string;
  /** ggml order: dims[0] is the row length. */
  readonly dims: readonly number[];
  readonly type: GgmlTypeRef;
}

export interface PlacedTensor {
  readonly name: string;
  readonly dims: readonly number[];
  /** Numeric GGML type id. */
  readonly type: number;
  /** Offset relative to the start of the data section. */
  readonly offset: number;
  /** Bytes of data, without padding. */
  readonly size: number;
}

export interface TensorLayout {
  readonly tensors: PlacedTensor[];
  /** Size of the data section including the padding after the last tensor. */
  readonly dataSize: number;
}

/** Validates the tensor table and computes each tensor's offset and size. */
export function layoutTensors(tensors: readonly TensorShape[], alignment: number): TensorLayout {
  if (!isValidAlignment(alignment)) throw new RangeError(`alignment ${alignment} is not a power of two`);
  const seen = new Set<string>();
  const placed: PlacedTensor[] = [];
  let offset = 0;
  for (const t of tensors) {
    if (seen.has(t.name)) throw new Error(`duplicate tensor name ${t.name}`);
    seen.add(t.name);
    if (Buffer.byteLength(t.name, 'utf8') > GGML_MAX_NAME_BYTES) {
      throw new RangeError(`tensor name too long (max ${GGML_MAX_NAME_BYTES} bytes): ${t.name}`);
    }
    if (t.dims.length < 1 || t.dims.length > GGML_MAX_DIMS) {
      throw new RangeError(`tensor ${t.name} has ${t.dims.length} dims; 1..${GGML_MAX_DIMS} allowed`);
    }
    const type = ggmlType(t.type);
    const size = tensorBytes(type.id, t.dims);
    placed.push({ name: t.name, dims: [...t.dims], type: type.id, offset, size });
    offset += alignTo(size, alignment);
  }
  return { tensors: placed, dataSize: offset };
}
