/**
 * GGUF metadata value types (gguf_type in ggml/include/gguf.h) and typed-value helpers.
 *
 * Metadata values are plain JS values; their GGUF wire type travels beside them as a GgufType
 * ("uint32", or { array: "string" } for an array of strings), because a JS number alone does not
 * say whether it is a uint32, an int32 or a float32.
 */

export type GgufScalarType =
  | 'uint8' | 'int8' | 'uint16' | 'int16' | 'uint32' | 'int32'
  | 'uint64' | 'int64' | 'float32' | 'float64' | 'bool' | 'string';

export interface GgufArrayType {
  readonly array: GgufType;
}

export type GgufType = GgufScalarType | GgufArrayType;

/**
 * 64-bit integers are read as `number` when they fit in 2^53 and as `bigint` only beyond that;
 * the writer accepts either.
 */
export type GgufScalar = number | bigint | boolean | string;
export type GgufValue = GgufScalar | readonly GgufValue[];

export interface GgufTypedValue {
  readonly type: GgufType;
  readonly value: GgufValue;
}

/** Wire ids of the value types. */
export const GGUF_TYPE_ID = {
  uint8: 0,
  int8: 1,
  uint16: 2,
  int16: 3,
  uint32: 4,
  int32: 5,
  float32: 6,
  bool: 7,
  string: 8,
  array: 9,
  uint64: 10,
  int64: 11,
  float64: 12,
} as const satisfies Record<GgufScalarType | 'array', number>;

const SCALAR_BY_ID: ReadonlyMap<number, GgufScalarType> = new Map(
  (Object.entries(GGUF_TYPE_ID) as [GgufScalarType | 'array', number][])
    .filter((e): e is [GgufScalarType, number] => e[0] !== 'array')
    .map(([name, id]) => [id, name] as const),
);

/** Scalar type for a wire id; undefined for the array id (9) and unknown ids. */
export function ggufScalarTypeById(id: number): GgufScalarType | undefined {
  return SCALAR_BY_ID.get(id);
}

/** Bytes of a fixed-size scalar; undefined for strings. */
export function ggufScalarSize(type: GgufScalarType): number | undefined {
  switch (type) {
    case 'uint8': case 'int8': case 'bool': return 1;
    case 'uint16': case 'int16': return 2;
    case 'uint32': case 'int32': case 'float32': return 4;
    case 'uint64': case 'int64': case 'float64': return 8;
    case 'string': return undefined;
  }
}

export function isArrayType(type: GgufType): type is GgufArrayType {
  return typeof type === 'object';
}

/** Human-readable form, e.g. "array<string>". */
export function formatGgufType(type: GgufType): string {
  return isArrayType(type) ? `array<${formatGgufType(type.array)}>` : type;
}

/** Constructors for typed metadata values, e.g. `kv.u32(4096)`, `kv.arr('string', tokens)`. */
export const kv = {
  u8: (value: number): GgufTypedValue => ({ type: 'uint8', value }),
  i8: (value: number): GgufTypedValue => ({ type: 'int8', value }),
  u16: (value: number): GgufTypedValue => ({ type: 'uint16', value }),
  i16: (value: number): GgufTypedValue => ({ type: 'int16', value }),
  u32: (value: number): GgufTypedValue => ({ type: 'uint32', value }),
  i32: (value: number): GgufTypedValue => ({ type: 'int32', value }),
  u64: (value: number | bigint): GgufTypedValue => ({ type: 'uint64', value }),
  i64: (value: number | bigint): GgufTypedValue => ({ type: 'int64', value }),
  f32: (value: number): GgufTypedValue => ({ type: 'float32', value }),
  f64: (value: number): GgufTypedValue => ({ type: 'float64', value }),
  bool: (value: boolean): GgufTypedValue => ({ type: 'bool', value }),
  str: (value: string): GgufTypedValue => ({ type: 'string', value }),
  arr: (itemType: GgufType, value: readonly GgufValue[]): GgufTypedValue => ({ type: { array: itemType }, value }),
};
