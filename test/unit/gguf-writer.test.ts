import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, openSync, readFileSync, readSync, closeSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gguf } from '@huggingface/gguf';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  GGML_TYPES, GgufFormatError, alignTo, buildTinyModel, ggmlType, kv, parseGgufHeader, readGgufHeader,
  readGgufHeaderSync, rowBytes, tensorBytes, writeGguf, writeTinyModel,
  type GgufHeader, type GgufTensorInput, type GgufType, type GgufTypedValue, type GgufValue,
} from '../../src/gguf/index.js';
import { float16Bits } from '../../src/gguf/float16.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'gguf-writer-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** Deterministic pseudo-random bytes for tensor data. */
function bytes(n: number, seed: number): Buffer {
  const out = Buffer.allocUnsafe(n);
  let x = seed * 2654435761 >>> 0;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

function readRange(path: string, position: number, length: number): Buffer {
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.alloc(length);
    readSync(fd, buf, 0, length, position);
    return buf;
  } finally {
    closeSync(fd);
  }
}

/** bigint -> number where safe, recursively, so both readers' 64-bit values compare equal. */
function normalize(v: unknown): unknown {
  if (typeof v === 'bigint') return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  if (Array.isArray(v)) return v.map(normalize);
  return v;
}

/** GgufType -> the (type, subType) ids @huggingface/gguf reports. */
const TYPE_IDS: Record<string, number> = {
  uint8: 0, int8: 1, uint16: 2, int16: 3, uint32: 4, int32: 5, float32: 6, bool: 7, string: 8,
  uint64: 10, int64: 11, float64: 12,
};
function hfTypeOf(t: GgufType): { type: number; subType?: number } {
  if (typeof t === 'string') return { type: TYPE_IDS[t]! };
  return { type: 9, subType: typeof t.array === 'string' ? TYPE_IDS[t.array]! : 9 };
}

const ALL_TYPES_METADATA: Record<string, GgufTypedValue> = {
  'general.architecture': kv.str('llama'),
  'test.u8': kv.u8(255),
  'test.i8': kv.i8(-128),
  'test.u16': kv.u16(65535),
  'test.i16': kv.i16(-32768),
  'test.u32': kv.u32(4294967295),
  'test.i32': kv.i32(-2147483648),
  'test.u64.small': kv.u64(12345),
  'test.u64.big': kv.u64(18446744073709551615n),
  'test.i64.neg': kv.i64(-9007199254740991),
  'test.i64.big': kv.i64(-9223372036854775808n),
  'test.f32': kv.f32(Math.fround(0.1)),
  'test.f64': kv.f64(Math.PI),
  'test.bool.t': kv.bool(true),
  'test.bool.f': kv.bool(false),
  'test.str': kv.str('héllo wörld ✓ 😀'),
  'test.str.empty': kv.str(''),
  'test.arr.u8': kv.arr('uint8', [0, 1, 255]),
  'test.arr.i8': kv.arr('int8', [-1, 0, 127]),
  'test.arr.u16': kv.arr('uint16', [1, 65535]),
  'test.arr.i16': kv.arr('int16', [-2, 2]),
  'test.arr.u32': kv.arr('uint32', [7, 4000000000]),
  'test.arr.i32': kv.arr('int32', [-5, 1, 2147483647]),
  'test.arr.u64': kv.arr('uint64', [1, 2n ** 60n]),
  'test.arr.i64': kv.arr('int64', [-1, -(2n ** 62n)]),
  'test.arr.f32': kv.arr('float32', [0.5, -1.25, Math.fround(3.3)]),
  'test.arr.f64': kv.arr('float64', [Math.E, -0.1]),
  'test.arr.bool': kv.arr('bool', [true, false, true]),
  'test.arr.str': kv.arr('string', ['a', '', 'ünïcødé', '😀 emoji', '<0x0A>']),
  // Long strings and a literal U+FFFD take the reader's one-by-one decoding path.
  'test.arr.str.long': kv.arr('string', ['x'.repeat(300), 'y']),
  'test.arr.str.fffd': kv.arr('string', ['ok', '\uFFFD', 'ok2']),
  'test.arr.empty': kv.arr('int32', []),
  'test.arr.nested': kv.arr({ array: 'uint16' }, [[1, 2], [], [3]]),
};

const TENSORS: GgufTensorInput[] = [
  { name: 'a.f32', dims: [7, 3], type: 'F32', data: bytes(7 * 3 * 4, 1) },
  { name: 'b.f16', dims: [5], type: 'F16', data: bytes(10, 2) },
  { name: 'c.q8_0', dims: [64, 2], type: 'Q8_0', data: bytes(2 * 2 * 34, 3) },
  { name: 'd.q4_k', dims: [256, 1, 3], type: 'Q4_K', data: bytes(3 * 144, 4) },
  {
    name: 'e.bf16.4d', dims: [3, 3, 2, 2], type: 'BF16',
    // Supplied piecewise by a generator.
    data: function* () {
      const all = bytes(72, 5);
      yield all.subarray(0, 10);
      yield all.subarray(10);
    },
  },
  { name: 'f.i32', dims: [10], type: 26, data: bytes(40, 6) },
];

async function expectRoundTrip(path: string, metadata: Record<string, GgufTypedValue>, tensors: GgufTensorInput[], alignment: number): Promise<GgufHeader> {
  const header = await readGgufHeader(path);
  expect(header.version).toBe(3);
  expect(header.alignment).toBe(alignment);
  expect(header.dataOffset % alignment).toBe(0);
  expect(header.dataOffset).toBe(alignTo(header.headerSize, alignment));
  expect(readGgufHeaderSync(path)).toEqual(header);
  expect(parseGgufHeader(readFileSync(path))).toEqual(header);

  expect(Object.keys(header.metadata)).toEqual(Object.keys(metadata));
  for (const [key, { type, value }] of Object.entries(metadata)) {
    expect(header.metadataTypes[key], key).toEqual(type);
    expect(header.metadata[key], key).toEqual(normalize(value));
  }

  let expectedOffset = 0;
  expect(header.tensors.map((t) => t.name)).toEqual(tensors.map((t) => t.name));
  for (const [i, t] of header.tensors.entries()) {
    const input = tensors[i]!;
    expect(t.dims).toEqual(input.dims);
    expect(t.type).toBe(ggmlType(input.type).id);
    expect(t.offset).toBe(expectedOffset);
    expect(t.offset % alignment).toBe(0);
    expectedOffset += alignTo(tensorBytes(t.type, t.dims), alignment);
  }
  expect(statSync(path).size).toBe(header.dataOffset + expectedOffset);

  // The independent parser agrees on every value, type, tensor and the data offset.
  const hf = await gguf(path, { allowLocalFile: true, typedMetadata: true });
  expect(Number(hf.tensorDataOffset)).toBe(header.dataOffset);
  expect(Number(hf.metadata.kv_count)).toBe(Object.keys(metadata).length);
  for (const [key, { type, value }] of Object.entries(metadata)) {
    const typed = hf.typedMetadata[key]!;
    expect(normalize(typed.value), key).toEqual(normalize(value));
    const want = hfTypeOf(type);
    expect(typed.type, key).toBe(want.type);
    if (want.subType !== undefined) expect(typed.subType, key).toBe(want.subType);
  }
  expect(hf.tensorInfos.map((t) => ({ name: t.name, dims: t.shape.map(Number), type: t.dtype, offset: Number(t.offset) })))
    .toEqual(header.tensors);
  return header;
}

async function tensorBytesOf(input: GgufTensorInput): Promise<Buffer> {
  const data = input.data!;
  if (data instanceof Uint8Array) return Buffer.from(data);
  const parts: Uint8Array[] = [];
  for await (const chunk of data()) parts.push(chunk);
  return Buffer.concat(parts);
}

describe('ggml types', () => {
  it('knows block sizes and bytes per block', () => {
    expect(tensorBytes('Q4_K', [4096, 4096])).toBe((4096 / 256) * 144 * 4096);
    expect(rowBytes('Q8_0', 4096)).toBe(128 * 34);
    expect(rowBytes('Q6_K', 256)).toBe(210);
    expect(rowBytes('Q5_0', 32)).toBe(22);
    expect(tensorBytes('F16', [3])).toBe(6);
    expect(tensorBytes('F32', [4096, 128256])).toBe(4096 * 128256 * 4);
    expect(tensorBytes(GGML_TYPES.IQ4_XS.id, [512, 2])).toBe(2 * 2 * 136);
    expect(ggmlType(12).name).toBe('Q4_K');
    expect(() => rowBytes('Q4_K', 100)).toThrow(/multiple/);
    expect(() => ggmlType(4)).toThrow(/unknown/);
    const ids = Object.values(GGML_TYPES).map((t) => t.id);
    expect(new Set(ids).size).toBe(ids.length);
  });
});

describe('float16 conversion', () => {
  it('rounds to nearest even and handles subnormals, overflow and NaN', () => {
    expect(float16Bits(1)).toBe(0x3c00);
    expect(float16Bits(-2)).toBe(0xc000);
    expect(float16Bits(0.1)).toBe(0x2e66);
    expect(float16Bits(65504)).toBe(0x7bff);
    expect(float16Bits(65520)).toBe(0x7c00); // rounds up to infinity
    expect(float16Bits(2 ** -24)).toBe(0x0001); // smallest subnormal
    expect(float16Bits(2 ** -25)).toBe(0x0000); // halfway, ties to even
    expect(float16Bits(3 * 2 ** -25)).toBe(0x0002);
    expect(float16Bits(1 + 2 ** -11)).toBe(0x3c00); // halfway between 1 and next, ties to even
    expect(float16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02);
    expect(float16Bits(-0)).toBe(0x8000);
    expect(float16Bits(Infinity)).toBe(0x7c00);
    expect(float16Bits(NaN) & 0x7c00).toBe(0x7c00);
    expect(float16Bits(NaN) & 0x3ff).not.toBe(0);
  });
});

describe('GGUF writer and reader', () => {
  it('round-trips every value type, arrays, tensor infos and data (default alignment)', async () => {
    const path = join(dir, 'all-types.gguf');
    const result = await writeGguf(path, { metadata: ALL_TYPES_METADATA, tensors: TENSORS });
    const header = await expectRoundTrip(path, ALL_TYPES_METADATA, TENSORS, 32);
    expect(result.dataOffset).toBe(header.dataOffset);
    expect(result.fileSize).toBe(statSync(path).size);
    for (const [i, t] of header.tensors.entries()) {
      const want = await tensorBytesOf(TENSORS[i]!);
      expect(readRange(path, header.dataOffset + t.offset, want.length).equals(want), t.name).toBe(true);
    }
  });

  it('honours a custom alignment and records it as general.alignment', async () => {
    const path = join(dir, 'align64.gguf');
    const metadata = { 'general.architecture': kv.str('llama'), 'general.name': kv.str('x') };
    await writeGguf(path, { metadata, tensors: TENSORS, alignment: 64 });
    await expectRoundTrip(path, { ...metadata, 'general.alignment': kv.u32(64) }, TENSORS, 64);

    const declared = join(dir, 'align256.gguf');
    const withKey = { 'general.alignment': kv.u32(256), 'general.architecture': kv.str('llama') };
    await writeGguf(declared, { metadata: withKey, tensors: TENSORS });
    await expectRoundTrip(declared, withKey, TENSORS, 256);
  });

  it('writes a header-only file when there are no tensors', async () => {
    const path = join(dir, 'empty.gguf');
    const metadata = { 'general.architecture': kv.str('llama') };
    await writeGguf(path, { metadata, tensors: [] });
    const h = await readGgufHeader(path);
    expect(h.tensors).toEqual([]);
    expect(h.metadata).toEqual({ 'general.architecture': 'llama' });
  });

  it('treats a "__proto__" key from a file as an ordinary entry', async () => {
    const path = join(dir, 'proto.gguf');
    const metadata: Record<string, GgufTypedValue> = {};
    Object.defineProperty(metadata, '__proto__', { value: kv.str('x'), enumerable: true });
    await writeGguf(path, { metadata, tensors: [] });
    const h = await readGgufHeader(path);
    expect(Object.keys(h.metadata)).toEqual(['__proto__']);
    expect(Object.getPrototypeOf(h.metadata)).toBe(Object.prototype);
  });

  it('leaves tensors without data as a hole: full apparent size, almost no blocks', async () => {
    const path = join(dir, 'sparse.gguf');
    const tensors: GgufTensorInput[] = [
      { name: 'small', dims: [4], type: 'F32', data: bytes(16, 9) },
      { name: 'big.a', dims: [8192, 65536], type: 'F16' },
      { name: 'big.b', dims: [8192, 65536], type: 'Q8_0' },
    ];
    const result = await writeGguf(path, { metadata: { 'general.architecture': kv.str('llama') }, tensors });
    const st = statSync(path);
    const dataSize = 32 + 8192 * 65536 * 2 + (8192 / 32) * 34 * 65536;
    expect(st.size).toBe(result.dataOffset + dataSize);
    expect(st.size).toBeGreaterThan(1.5 * 2 ** 30);
    console.log(`sparse: ${(st.size / 2 ** 30).toFixed(2)} GiB apparent, ${st.blocks * 512} bytes allocated`);
    expect(st.blocks * 512).toBeLessThan(1 << 20);
    const h = await readGgufHeader(path);
    expect(readRange(path, h.dataOffset, 16).equals(bytes(16, 9))).toBe(true);
    expect(readRange(path, h.dataOffset + h.tensors[1]!.offset, 64).every((b) => b === 0)).toBe(true);
  });

  it('rejects invalid input', async () => {
    const path = join(dir, 'invalid.gguf');
    const meta = (value: GgufTypedValue) => ({ metadata: { k: value }, tensors: [] });
    await expect(writeGguf(path, meta(kv.u8(256)))).rejects.toThrow(/uint8/);
    await expect(writeGguf(path, meta(kv.i32(1.5)))).rejects.toThrow(/int32/);
    await expect(writeGguf(path, meta(kv.u64(-1)))).rejects.toThrow(/uint64/);
    await expect(writeGguf(path, meta({ type: 'string', value: 3 }))).rejects.toThrow(/string/);
    await expect(writeGguf(path, meta(kv.arr('bool', [true, 1 as unknown as GgufValue])))).rejects.toThrow(/not a valid bool/);
    const t = (over: Partial<GgufTensorInput>): GgufTensorInput => ({ name: 't', dims: [32], type: 'F32', ...over });
    await expect(writeGguf(path, { metadata: {}, tensors: [t({ data: bytes(3, 1) })] })).rejects.toThrow(/expected 128/);
    expect(existsSync(path)).toBe(false); // no partial file left behind
    await expect(writeGguf(path, { metadata: {}, tensors: [t({ type: 'Q4_K' })] })).rejects.toThrow(/multiple/);
    await expect(writeGguf(path, { metadata: {}, tensors: [t({}), t({})] })).rejects.toThrow(/duplicate/);
    await expect(writeGguf(path, { metadata: {}, tensors: [t({ name: 'n'.repeat(64) })] })).rejects.toThrow(/too long/);
    await expect(writeGguf(path, { metadata: {}, tensors: [], alignment: 48 })).rejects.toThrow(/power of two/);
  });

  it('reports malformed files as GgufFormatError', async () => {
    const good = join(dir, 'good.gguf');
    await writeGguf(good, { metadata: ALL_TYPES_METADATA, tensors: TENSORS });
    const full = readFileSync(good);
    const truncated = join(dir, 'truncated.gguf');
    writeFileSync(truncated, full.subarray(0, 200));
    await expect(readGgufHeader(truncated)).rejects.toBeInstanceOf(GgufFormatError);
    expect(() => readGgufHeaderSync(truncated)).toThrow(GgufFormatError);
    const badMagic = Buffer.from(full);
    badMagic.write('GGML', 0);
    expect(() => parseGgufHeader(badMagic)).toThrow(/magic/);
  });

  it('reads a 150k-token vocabulary and 1000 tensors quickly', async () => {
    const n = 150_000;
    const path = join(dir, 'big-vocab.gguf');
    const tokens = Array.from({ length: n }, (_, i) => (i % 3 === 0 ? `Ġtok${i}` : `<t${i}>`));
    const tensors = Array.from({ length: 1000 }, (_, i) => ({ name: `blk.${i >> 3}.w${i & 7}.weight`, dims: [4096, 4096], type: 'Q4_K' as const }));
    await writeGguf(path, {
      metadata: {
        'general.architecture': kv.str('llama'),
        'tokenizer.ggml.tokens': kv.arr('string', tokens),
        'tokenizer.ggml.scores': kv.arr('float32', tokens.map((_, i) => -i)),
        'tokenizer.ggml.token_type': kv.arr('int32', tokens.map((_, i) => i % 6)),
      },
      tensors,
    });
    const times: number[] = [];
    let header: GgufHeader | undefined;
    for (let i = 0; i < 4; i++) {
      const t0 = performance.now();
      header = await readGgufHeader(path);
      times.push(performance.now() - t0);
    }
    const syncStart = performance.now();
    readGgufHeaderSync(path);
    const syncMs = performance.now() - syncStart;
    console.log(
      `header of ${(header!.dataOffset / 2 ** 20).toFixed(1)} MiB: readGgufHeader ${times.map((t) => t.toFixed(1)).join(' / ')} ms (first / warm), sync ${syncMs.toFixed(1)} ms`,
    );
    expect(Math.min(...times)).toBeLessThan(500);
    expect(header!.metadata['tokenizer.ggml.tokens']).toEqual(tokens);
    expect((header!.metadata['tokenizer.ggml.scores'] as number[])[149_999]).toBe(-149_999);
    expect(header!.tensors).toHaveLength(1000);
    expect(header!.tensors[999]).toEqual({ name: 'blk.124.w7.weight', dims: [4096, 4096], type: 12, offset: 999 * 9437184 });
  });
});

describe('tiny model', () => {
  const sha = (p: string): string => createHash('sha256').update(readFileSync(p)).digest('hex');

  it('is byte-identical for the same seed and differs across seeds', async () => {
    const a1 = join(dir, 'tiny-a1.gguf');
    const a2 = join(dir, 'tiny-a2.gguf');
    const b = join(dir, 'tiny-b.gguf');
    await writeTinyModel(a1, { seed: 7 });
    await writeTinyModel(a2, { seed: 7 });
    await writeTinyModel(b, { seed: 8 });
    expect(sha(a1)).toBe(sha(a2));
    expect(sha(a1)).not.toBe(sha(b));
    expect(statSync(a1).size).toBe(statSync(b).size);
  });

  it('has a byte vocabulary, head size 32 and the seed in its name', async () => {
    const path = join(dir, 'tiny-f16.gguf');
    await writeTinyModel(path, { seed: 123, type: 'F16', layers: 3, embd: 128 });
    const h = await readGgufHeader(path);
    expect(h.metadata['general.name']).toContain('123');
    expect(h.metadata['general.architecture']).toBe('llama');
    expect(h.metadata['llama.block_count']).toBe(3);
    expect(h.metadata['llama.attention.head_count']).toBe(4);
    expect(h.metadata['llama.rope.dimension_count']).toBe(32);
    const tokens = h.metadata['tokenizer.ggml.tokens'] as string[];
    expect(tokens.slice(0, 4)).toEqual(['<unk>', '<s>', '</s>', '<0x00>']);
    expect(tokens).toHaveLength(259);
    expect((h.metadata['tokenizer.ggml.token_type'] as number[]).filter((t) => t === 6)).toHaveLength(256);
    expect(h.metadata['tokenizer.chat_template']).toContain('add_generation_prompt');
    const types = new Map(h.tensors.map((t) => [t.name, GGML_TYPES.F16.id === t.type ? 'F16' : 'F32']));
    expect(types.get('blk.2.ffn_down.weight')).toBe('F16');
    expect(types.get('blk.2.ffn_norm.weight')).toBe('F32');
    expect(h.tensors).toHaveLength(3 + 3 * 9);
    const hf = await gguf(path, { allowLocalFile: true });
    expect(hf.tensorInfos).toHaveLength(h.tensors.length);
  });

  it('validates its options', () => {
    expect(() => buildTinyModel({ seed: 1, embd: 64, heads: 3 })).toThrow(/multiple of heads/);
    expect(() => buildTinyModel({ seed: 1, heads: 2, headsKv: 3 })).toThrow(/divide/);
    expect(() => buildTinyModel({ seed: 1.5 })).toThrow(/integer/);
  });
});
