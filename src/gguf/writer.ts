/**
 * GGUF v3 writer.
 *
 * File layout: magic "GGUF", version, tensor count, metadata count, metadata entries, tensor
 * infos, zero padding to the alignment, then the data section (see layout.ts). The header is
 * streamed entry by entry and tensor data chunk by chunk, so nothing close to the file size is
 * held in memory.
 *
 * A tensor without `data` is not written at all: its bytes are a hole that reads as zeros once
 * the file is extended to its full length with ftruncate. Writing no data at all therefore gives
 * a *sparse* file whose apparent size is the real model size while it occupies only the header's
 * blocks on disk.
 */

import { rm } from 'node:fs/promises';
import { FileSink } from './file-sink.js';
import {
  GGUF_DEFAULT_ALIGNMENT, alignTo, isValidAlignment, layoutTensors,
  type PlacedTensor, type TensorShape,
} from './layout.js';
import {
  GGUF_TYPE_ID, formatGgufType, isArrayType,
  type GgufScalarType, type GgufType, type GgufTypedValue, type GgufValue,
} from './value-types.js';

export const GGUF_MAGIC = 'GGUF';
export const GGUF_VERSION = 3;

/**
 * Tensor bytes: a buffer, or a function returning an (async) iterable of chunks, e.g. a
 * generator, so large tensors can be produced piecewise.
 */
export type TensorDataSource =
  | Uint8Array
  | (() => Iterable<Uint8Array> | AsyncIterable<Uint8Array>);

export interface GgufTensorInput extends TensorShape {
  /** Omitted: the tensor's bytes are left as a hole (zeros). */
  readonly data?: TensorDataSource;
}

export interface WriteGgufOptions {
  /** Entries are written in insertion order. */
  readonly metadata: Readonly<Record<string, GgufTypedValue>>;
  readonly tensors: readonly GgufTensorInput[];
  /**
   * Data alignment. Defaults to `general.alignment` from the metadata, else 32. A non-default
   * value absent from the metadata is added as `general.alignment` so readers agree.
   */
  readonly alignment?: number;
}

export interface GgufWriteResult {
  /** Apparent file size: data offset + data section size. */
  readonly fileSize: number;
  /** Absolute file offset of the data section. */
  readonly dataOffset: number;
  readonly alignment: number;
  readonly tensors: PlacedTensor[];
}

/**
 * Writes a GGUF v3 file (creating or replacing `path`). The tensor table is validated before the
 * file is created; if anything fails later (an invalid metadata value, tensor data of the wrong
 * size), the partial file is removed.
 */
export async function writeGguf(path: string, options: WriteGgufOptions): Promise<GgufWriteResult> {
  const { metadata, alignment } = resolveAlignment(options);
  const layout = layoutTensors(options.tensors, alignment);
  const out = await FileSink.create(path);
  let ok = false;
  try {
    writePreamble(out, options.tensors.length, Object.keys(metadata).length);
    for (const [key, entry] of Object.entries(metadata)) {
      out.string(key);
      writeTyped(out, entry.type, entry.value, key);
      await out.flushIfLarge();
    }
    for (const t of layout.tensors) {
      out.string(t.name);
      out.u32(t.dims.length);
      for (const d of t.dims) out.u64(BigInt(d));
      out.u32(t.type);
      out.u64(BigInt(t.offset));
    }
    const dataOffset = alignTo(out.position, alignment);
    out.zeros(dataOffset - out.position);

    for (let i = 0; i < layout.tensors.length; i++) {
      const placed = layout.tensors[i]!;
      const source = options.tensors[i]!.data;
      const start = dataOffset + placed.offset;
      if (out.position !== start) await out.skip(start - out.position);
      if (source !== undefined) {
        const written = await writeTensorData(out, source);
        if (written !== placed.size) {
          throw new Error(`tensor ${placed.name}: got ${written} bytes of data, expected ${placed.size}`);
        }
        out.zeros(alignTo(placed.size, alignment) - placed.size);
      }
    }
    const fileSize = dataOffset + layout.dataSize;
    await out.finish(fileSize);
    ok = true;
    return { fileSize, dataOffset, alignment, tensors: layout.tensors };
  } finally {
    await out.close();
    if (!ok) await rm(path, { force: true });
  }
}

function resolveAlignment(options: WriteGgufOptions): {
  metadata: Readonly<Record<string, GgufTypedValue>>;
  alignment: number;
} {
  const declared = options.metadata['general.alignment'];
  if (declared !== undefined) {
    if (declared.type !== 'uint32' || typeof declared.value !== 'number') {
      throw new TypeError('general.alignment must be a uint32');
    }
    if (options.alignment !== undefined && options.alignment !== declared.value) {
      throw new RangeError(`alignment option ${options.alignment} contradicts general.alignment ${declared.value}`);
    }
    if (!isValidAlignment(declared.value)) throw new RangeError(`alignment ${declared.value} is not a power of two`);
    return { metadata: options.metadata, alignment: declared.value };
  }
  const alignment = options.alignment ?? GGUF_DEFAULT_ALIGNMENT;
  if (!isValidAlignment(alignment)) throw new RangeError(`alignment ${alignment} is not a power of two`);
  if (alignment === GGUF_DEFAULT_ALIGNMENT) return { metadata: options.metadata, alignment };
  return {
    metadata: { ...options.metadata, 'general.alignment': { type: 'uint32', value: alignment } },
    alignment,
  };
}

function writePreamble(out: FileSink, tensorCount: number, kvCount: number): void {
  for (let i = 0; i < GGUF_MAGIC.length; i++) out.u8(GGUF_MAGIC.charCodeAt(i));
  out.u32(GGUF_VERSION);
  out.u64(BigInt(tensorCount));
  out.u64(BigInt(kvCount));
}

async function writeTensorData(out: FileSink, source: TensorDataSource): Promise<number> {
  if (source instanceof Uint8Array) {
    await out.bytes(source);
    return source.length;
  }
  let total = 0;
  for await (const chunk of source()) {
    await out.bytes(chunk);
    total += chunk.length;
  }
  return total;
}

/** Writes a value's type id followed by its payload, as in a metadata entry. */
function writeTyped(out: FileSink, type: GgufType, value: GgufValue, key: string): void {
  out.u32(isArrayType(type) ? GGUF_TYPE_ID.array : GGUF_TYPE_ID[type]);
  writePayload(out, type, value, key);
}

/** Writes a value without its type id (array elements carry one shared type id). */
function writePayload(out: FileSink, type: GgufType, value: GgufValue, key: string): void {
  if (isArrayType(type)) {
    if (!Array.isArray(value)) throw typeError(key, type, value);
    const items: readonly GgufValue[] = value;
    const itemType = type.array;
    out.u32(isArrayType(itemType) ? GGUF_TYPE_ID.array : GGUF_TYPE_ID[itemType]);
    out.u64(BigInt(items.length));
    for (const item of items) writePayload(out, itemType, item, key);
    return;
  }
  writeScalar(out, type, value, key);
}

const INT_RANGES: Partial<Record<GgufScalarType, readonly [number, number]>> = {
  uint8: [0, 0xff],
  int8: [-0x80, 0x7f],
  uint16: [0, 0xffff],
  int16: [-0x8000, 0x7fff],
  uint32: [0, 0xffffffff],
  int32: [-0x80000000, 0x7fffffff],
};

function writeScalar(out: FileSink, type: GgufScalarType, value: GgufValue, key: string): void {
  switch (type) {
    case 'uint8': case 'int8': case 'uint16': case 'int16': case 'uint32': case 'int32': {
      const [lo, hi] = INT_RANGES[type]!;
      if (typeof value !== 'number' || !Number.isInteger(value) || value < lo || value > hi) {
        throw typeError(key, type, value);
      }
      if (type === 'uint8') out.u8(value);
      else if (type === 'int8') out.i8(value);
      else if (type === 'uint16') out.u16(value);
      else if (type === 'int16') out.i16(value);
      else if (type === 'uint32') out.u32(value);
      else out.i32(value);
      return;
    }
    case 'uint64': case 'int64': {
      const big = toBigInt(value);
      const ok = big !== undefined && (type === 'uint64'
        ? big >= 0n && big < 1n << 64n
        : big >= -(1n << 63n) && big < 1n << 63n);
      if (!ok) throw typeError(key, type, value);
      if (type === 'uint64') out.u64(big);
      else out.i64(big);
      return;
    }
    case 'float32': case 'float64':
      if (typeof value !== 'number') throw typeError(key, type, value);
      if (type === 'float32') out.f32(value);
      else out.f64(value);
      return;
    case 'bool':
      if (typeof value !== 'boolean') throw typeError(key, type, value);
      out.u8(value ? 1 : 0);
      return;
    case 'string':
      if (typeof value !== 'string') throw typeError(key, type, value);
      out.string(value);
      return;
  }
}

function toBigInt(value: GgufValue): bigint | undefined {
  if (typeof value === 'bigint') return value;
  if (typeof value === 'number' && Number.isSafeInteger(value)) return BigInt(value);
  return undefined;
}

function typeError(key: string, type: GgufType, value: GgufValue): TypeError {
  const shown = Array.isArray(value) ? `array(${value.length})` : typeof value === 'bigint' ? `${value}n` : JSON.stringify(value);
  return new TypeError(`metadata ${key}: value ${shown} is not a valid ${formatGgufType(type)}`);
}
