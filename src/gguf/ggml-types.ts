/**
 * GGML tensor types as stored in GGUF tensor infos: numeric id, block size (elements per block)
 * and bytes per block.
 *
 * Source of truth: llama.cpp `ggml/include/ggml.h` (enum ggml_type) and
 * `gguf-py/gguf/constants.py` (GGML_QUANT_SIZES). Ids 4, 5 (Q4_2/Q4_3) and 31..33, 36..38
 * (the removed repacked Q4_0_x_y / IQ4_NL_x_y layouts) are gone from ggml and deliberately absent.
 */

const QK_K = 256;

/** Name -> [id, elements per block, bytes per block]. */
const TYPE_TABLE = {
  F32: [0, 1, 4],
  F16: [1, 1, 2],
  Q4_0: [2, 32, 2 + 16],
  Q4_1: [3, 32, 2 + 2 + 16],
  Q5_0: [6, 32, 2 + 4 + 16],
  Q5_1: [7, 32, 2 + 2 + 4 + 16],
  Q8_0: [8, 32, 2 + 32],
  Q8_1: [9, 32, 4 + 4 + 32],
  Q2_K: [10, QK_K, 2 + 2 + QK_K / 16 + QK_K / 4],
  Q3_K: [11, QK_K, 2 + QK_K / 4 + QK_K / 8 + 12],
  Q4_K: [12, QK_K, 2 + 2 + QK_K / 2 + 12],
  Q5_K: [13, QK_K, 2 + 2 + QK_K / 2 + QK_K / 8 + 12],
  Q6_K: [14, QK_K, 2 + QK_K / 2 + QK_K / 4 + QK_K / 16],
  Q8_K: [15, QK_K, 4 + QK_K + QK_K / 8],
  IQ2_XXS: [16, QK_K, 2 + QK_K / 4],
  IQ2_XS: [17, QK_K, 2 + QK_K / 4 + QK_K / 32],
  IQ3_XXS: [18, QK_K, 2 + QK_K / 4 + QK_K / 8],
  IQ1_S: [19, QK_K, 2 + QK_K / 8 + QK_K / 16],
  IQ4_NL: [20, 32, 2 + 16],
  IQ3_S: [21, QK_K, 2 + QK_K / 4 + QK_K / 8 + QK_K / 32 + 4],
  IQ2_S: [22, QK_K, 2 + QK_K / 4 + QK_K / 16],
  IQ4_XS: [23, QK_K, 2 + 2 + QK_K / 2 + QK_K / 64],
  I8: [24, 1, 1],
  I16: [25, 1, 2],
  I32: [26, 1, 4],
  I64: [27, 1, 8],
  F64: [28, 1, 8],
  IQ1_M: [29, QK_K, QK_K / 8 + QK_K / 16 + QK_K / 32],
  BF16: [30, 1, 2],
  TQ1_0: [34, QK_K, 2 + 4 * 13],
  TQ2_0: [35, QK_K, 2 + 64],
  MXFP4: [39, 32, 1 + 16],
  NVFP4: [40, 64, 4 + 32],
  Q1_0: [41, 128, 2 + 16],
  Q2_0: [42, 64, 2 + 16],
} as const satisfies Record<string, readonly [number, number, number]>;

export type GgmlTypeName = keyof typeof TYPE_TABLE;

export interface GgmlTypeInfo {
  readonly name: GgmlTypeName;
  /** Numeric id as written in a GGUF tensor info. */
  readonly id: number;
  /** Elements per block (1 for plain float/int types). */
  readonly blockSize: number;
  /** Bytes per block. */
  readonly typeSize: number;
  /** True for block-quantized types (what ggml_is_quantized() calls quantized). */
  readonly quantized: boolean;
}

/** Types ggml treats as not quantized even though some have block size 1. */
const NOT_QUANTIZED: ReadonlySet<GgmlTypeName> = new Set<GgmlTypeName>([
  'F32', 'F16', 'BF16', 'F64', 'I8', 'I16', 'I32', 'I64',
]);

function buildTypes(): Record<GgmlTypeName, GgmlTypeInfo> {
  const out = {} as Record<GgmlTypeName, GgmlTypeInfo>;
  for (const name of Object.keys(TYPE_TABLE) as GgmlTypeName[]) {
    const [id, blockSize, typeSize] = TYPE_TABLE[name];
    out[name] = Object.freeze({ name, id, blockSize, typeSize, quantized: !NOT_QUANTIZED.has(name) });
  }
  return Object.freeze(out);
}

/** All known GGML types by name. */
export const GGML_TYPES: Readonly<Record<GgmlTypeName, GgmlTypeInfo>> = buildTypes();

const BY_ID: ReadonlyMap<number, GgmlTypeInfo> = new Map(
  Object.values(GGML_TYPES).map((t) => [t.id, t] as const),
);

/** A type given either by name ("Q4_K") or by numeric GGUF id (12). */
export type GgmlTypeRef = GgmlTypeName | number;

export function isGgmlTypeName(value: string): value is GgmlTypeName {
  return Object.prototype.hasOwnProperty.call(TYPE_TABLE, value);
}

/** Looks a type up by id; undefined for ids ggml does not (or no longer) define. */
export function ggmlTypeById(id: number): GgmlTypeInfo | undefined {
  return BY_ID.get(id);
}

/** Resolves a name or id to its info; throws on unknown types. */
export function ggmlType(type: GgmlTypeRef): GgmlTypeInfo {
  const info = typeof type === 'number' ? BY_ID.get(type) : GGML_TYPES[type];
  if (!info) throw new RangeError(`unknown GGML type ${String(type)}`);
  return info;
}

/** Name of a type id, e.g. 12 -> "Q4_K". Throws on unknown ids. */
export function ggmlTypeName(id: number): GgmlTypeName {
  return ggmlType(id).name;
}

/**
 * Bytes of one row of `n` elements (ggml_row_size). `n` must be a multiple of the block size,
 * as ggml requires for every tensor's first dimension.
 */
export function rowBytes(type: GgmlTypeRef, n: number): number {
  const t = ggmlType(type);
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`invalid row length ${n}`);
  if (n % t.blockSize !== 0) {
    throw new RangeError(`row length ${n} is not a multiple of the ${t.name} block size ${t.blockSize}`);
  }
  return (n / t.blockSize) * t.typeSize;
}

/**
 * Bytes of a whole tensor (ggml_nbytes for a contiguous tensor).
 * `dims` are in GGUF/ggml order: dims[0] is the row length (ne[0]).
 */
export function tensorBytes(type: GgmlTypeRef, dims: readonly number[]): number {
  if (dims.length === 0) return rowBytes(type, 1);
  let rows = 1;
  for (let i = 1; i < dims.length; i++) {
    const d = dims[i]!;
    if (!Number.isSafeInteger(d) || d < 0) throw new RangeError(`invalid dimension ${d}`);
    rows *= d;
  }
  const bytes = rowBytes(type, dims[0]!) * rows;
  if (!Number.isSafeInteger(bytes)) throw new RangeError('tensor size exceeds 2^53 bytes');
  return bytes;
}

/** Number of elements of a tensor with the given dims. */
export function elementCount(dims: readonly number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}
