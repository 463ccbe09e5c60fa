/**
 * GGUF header reader: metadata, tensor table and data offset, never the tensor data.
 *
 * The file is read in a few large chunks (4 MiB, enough for most headers, then growing 4x), and
 * the parser works on whole items: when an item (one metadata entry or tensor info) runs past
 * the bytes read so far, the parser stops at the item's start, more is read and parsing resumes
 * there. Even a 10 MB header (150k tokens plus 280k merges) costs two reads and about one pass.
 */

import { open } from 'node:fs/promises';
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import path from 'node:path';
import { GGUF_DEFAULT_ALIGNMENT, alignTo, isValidAlignment } from './layout.js';
import {
  ggufScalarSize, ggufScalarTypeById,
  type GgufScalarType, type GgufType, type GgufValue,
} from './value-types.js';

export interface GgufTensorInfo {
  readonly name: string;
  /** ggml order: dims[0] is the row length. */
  readonly dims: number[];
  /** Numeric GGML type id (see ggml-types.ts); may be an id this code does not know. */
  readonly type: number;
  /** Offset of the tensor's data relative to `dataOffset` (of its part, for split models). */
  readonly offset: number;
  /** Index of the part file holding the tensor, in a header merged from a split model. */
  readonly split?: number;
}

export interface GgufHeader {
  readonly version: number;
  /**
   * Metadata values in file order. 64-bit integers are numbers when they fit in 2^53 and
   * bigints beyond that; arrays are plain arrays.
   */
  readonly metadata: Record<string, GgufValue>;
  /** The wire type of each metadata value. */
  readonly metadataTypes: Record<string, GgufType>;
  readonly tensors: GgufTensorInfo[];
  /** Absolute file offset where the data section starts. */
  readonly dataOffset: number;
  readonly alignment: number;
  /** Bytes of header before the padding that precedes the data section. */
  readonly headerSize: number;
}

export class GgufFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GgufFormatError';
  }
}

export interface ReadHeaderOptions {
  /**
   * Arrays with more items than this are skipped instead of decoded: their value is an empty
   * (holey) array of the right length. Tools that only need the vocabulary size (a memory
   * estimate) save most of the read time of a large vocabulary this way. Default: decode all.
   */
  readonly maxArrayItems?: number;
}

const FIRST_READ_BYTES = 4 << 20;
const MAX_READ_BYTES = 64 << 20;
const MAX_DIMS = 8;
const MAGIC = 0x46554747; // "GGUF" read as little-endian uint32

/** Reads the header of a GGUF file asynchronously. */
export async function readGgufHeader(path: string, options: ReadHeaderOptions = {}): Promise<GgufHeader> {
  const fh = await open(path, 'r');
  try {
    const steps = headerReads((await fh.stat()).size, options);
    let step = steps.next();
    while (!step.done) {
      const { position, length } = step.value;
      const buf = Buffer.allocUnsafe(length);
      let done = 0;
      while (done < length) {
        const { bytesRead } = await fh.read(buf, done, length - done, position + done);
        if (bytesRead === 0) break;
        done += bytesRead;
      }
      step = steps.next(buf.subarray(0, done));
    }
    return step.value;
  } finally {
    await fh.close();
  }
}

/** Synchronous variant of readGgufHeader. */
export function readGgufHeaderSync(path: string, options: ReadHeaderOptions = {}): GgufHeader {
  const fd = openSync(path, 'r');
  try {
    const steps = headerReads(fstatSync(fd).size, options);
    let step = steps.next();
    while (!step.done) {
      const { position, length } = step.value;
      const buf = Buffer.allocUnsafe(length);
      let done = 0;
      while (done < length) {
        const n = readSync(fd, buf, done, length - done, position + done);
        if (n === 0) break;
        done += n;
      }
      step = steps.next(buf.subarray(0, done));
    }
    return step.value;
  } finally {
    closeSync(fd);
  }
}

/** Parses a header from bytes already in memory (they must hold the whole header). */
export function parseGgufHeader(bytes: Uint8Array): GgufHeader {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const parser = new HeaderParser(buf.length);
  parser.parse(buf, 0);
  if (!parser.done) throw new GgufFormatError('truncated GGUF header');
  return parser.result();
}

/** Random access to a file's bytes held elsewhere (e.g. behind HTTP range requests). */
export interface GgufByteSource {
  /** The whole file's size in bytes. */
  readonly size: number;
  /** Up to `length` bytes at `position` (fewer only at the end of the file). */
  read(position: number, length: number): Promise<Uint8Array>;
}

/**
 * Reads a header through `source`, asking only for the bytes it needs: `firstReadBytes` first
 * (default 4 MiB), then reads growing 4x until the header is complete. Used to read a remote
 * file's header (HTTP range requests) before the file is downloaded.
 */
export async function readGgufHeaderFrom(
  source: GgufByteSource,
  options: ReadHeaderOptions = {},
  firstReadBytes = FIRST_READ_BYTES,
): Promise<GgufHeader> {
  const steps = headerReads(source.size, options, firstReadBytes);
  let step = steps.next();
  while (!step.done) {
    const { position, length } = step.value;
    const bytes = await source.read(position, length);
    step = steps.next(Buffer.from(bytes.buffer, bytes.byteOffset, Math.min(bytes.byteLength, length)));
  }
  return step.value;
}

interface ReadRequest {
  readonly position: number;
  readonly length: number;
}

/**
 * The read loop, independent of how bytes are read: yields the byte ranges it needs, receives
 * them, returns the parsed header. Bytes of a partly read item are kept and prepended to the
 * next chunk.
 */
function* headerReads(fileSize: number, options: ReadHeaderOptions, firstRead = FIRST_READ_BYTES): Generator<ReadRequest, GgufHeader, Buffer> {
  const parser = new HeaderParser(fileSize, options.maxArrayItems);
  let buf: Buffer = Buffer.alloc(0);
  let bufStart = 0; // file offset of buf[0]
  let readSize = Math.max(1, Math.floor(firstRead));
  for (;;) {
    const used = parser.parse(buf, bufStart);
    if (parser.done) return parser.result();
    const next = bufStart + buf.length;
    if (next >= fileSize) throw new GgufFormatError('truncated GGUF header');
    const more = yield { position: next, length: Math.min(readSize, fileSize - next) };
    if (more.length === 0) throw new GgufFormatError('truncated GGUF header');
    buf = used === buf.length ? more : Buffer.concat([buf.subarray(used), more]);
    bufStart += used;
    readSize = Math.min(readSize * 4, MAX_READ_BYTES);
  }
}

/** Thrown inside the parser when an item runs past the buffered bytes. */
const NEED_MORE: unique symbol = Symbol('need more bytes');

class Cursor {
  constructor(readonly buf: Buffer, public pos: number) {}

  need(n: number): void {
    if (this.pos + n > this.buf.length) throw NEED_MORE;
  }
  u8(): number { this.need(1); return this.buf[this.pos++]!; }
  i8(): number { this.need(1); const v = this.buf.readInt8(this.pos); this.pos += 1; return v; }
  u16(): number { this.need(2); const v = this.buf.readUInt16LE(this.pos); this.pos += 2; return v; }
  i16(): number { this.need(2); const v = this.buf.readInt16LE(this.pos); this.pos += 2; return v; }
  u32(): number { this.need(4); const v = this.buf.readUInt32LE(this.pos); this.pos += 4; return v; }
  i32(): number { this.need(4); const v = this.buf.readInt32LE(this.pos); this.pos += 4; return v; }
  f32(): number { this.need(4); const v = this.buf.readFloatLE(this.pos); this.pos += 4; return v; }
  f64(): number { this.need(8); const v = this.buf.readDoubleLE(this.pos); this.pos += 8; return v; }
  u64(): number | bigint {
    this.need(8);
    const lo = this.buf.readUInt32LE(this.pos);
    const hi = this.buf.readUInt32LE(this.pos + 4);
    this.pos += 8;
    // Values below 2^53 (hi < 2^21) are exact as numbers.
    return hi < 0x200000 ? hi * 0x100000000 + lo : (BigInt(hi) << 32n) | BigInt(lo);
  }
  i64(): number | bigint {
    this.need(8);
    const v = this.buf.readBigInt64LE(this.pos);
    this.pos += 8;
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  }
  /** A u64 that must fit in a number (lengths, counts, offsets). */
  size(what: string): number {
    const v = this.u64();
    if (typeof v !== 'number') throw new GgufFormatError(`${what} ${v} is too large`);
    return v;
  }
  string(): string {
    const n = this.size('string length');
    this.need(n);
    const s = this.buf.toString('utf8', this.pos, this.pos + n);
    this.pos += n;
    return s;
  }
}

class HeaderParser {
  private stage: 'preamble' | 'kv' | 'tensors' | 'done' = 'preamble';
  private version = 0;
  private kvLeft = 0;
  private tensorsLeft = 0;
  private headerEnd = 0;
  private readonly metadata: Record<string, GgufValue> = {};
  private readonly metadataTypes: Record<string, GgufType> = {};
  private readonly tensors: GgufTensorInfo[] = [];

  constructor(private readonly fileSize: number, private readonly maxArrayItems = Infinity) {}

  get done(): boolean {
    return this.stage === 'done';
  }

  /**
   * Parses as many complete items as `buf` holds; returns the bytes of `buf` consumed.
   * `bufStart` is the file offset of buf[0].
   */
  parse(buf: Buffer, bufStart: number): number {
    const cur = new Cursor(buf, 0);
    let committed = 0;
    try {
      while (this.stage !== 'done') {
        this.parseItem(cur);
        committed = cur.pos;
        if (this.done) this.headerEnd = bufStart + committed;
      }
    } catch (e) {
      if (e !== NEED_MORE) throw e;
    }
    return committed;
  }

  result(): GgufHeader {
    const declared = this.metadata['general.alignment'];
    let alignment = GGUF_DEFAULT_ALIGNMENT;
    if (declared !== undefined) {
      if (this.metadataTypes['general.alignment'] !== 'uint32' || typeof declared !== 'number' || !isValidAlignment(declared)) {
        throw new GgufFormatError('general.alignment must be a uint32 power of two');
      }
      alignment = declared;
    }
    return {
      version: this.version,
      metadata: this.metadata,
      metadataTypes: this.metadataTypes,
      tensors: this.tensors,
      dataOffset: alignTo(this.headerEnd, alignment),
      alignment,
      headerSize: this.headerEnd,
    };
  }

  private parseItem(cur: Cursor): void {
    switch (this.stage) {
      case 'preamble': {
        const magic = cur.u32();
        if (magic !== MAGIC) throw new GgufFormatError('not a GGUF file (bad magic)');
        const version = cur.u32();
        if (version === 1) throw new GgufFormatError('GGUF v1 is not supported');
        if (version !== 2 && version !== 3) {
          throw new GgufFormatError(`unsupported GGUF version ${version} (big-endian files are not supported)`);
        }
        this.version = version;
        this.tensorsLeft = cur.size('tensor count');
        this.kvLeft = cur.size('metadata count');
        this.stage = this.kvLeft > 0 ? 'kv' : this.tensorsLeft > 0 ? 'tensors' : 'done';
        return;
      }
      case 'kv': {
        const key = cur.string();
        const typeId = cur.u32();
        const [type, value] = this.readValue(cur, typeId, key);
        if (Object.prototype.hasOwnProperty.call(this.metadata, key)) {
          throw new GgufFormatError(`duplicate metadata key ${key}`);
        }
        // defineProperty, not assignment: a key such as "__proto__" from an untrusted file must
        // become an ordinary entry.
        defineEntry(this.metadata, key, value);
        defineEntry(this.metadataTypes, key, type);
        if (--this.kvLeft === 0) this.stage = this.tensorsLeft > 0 ? 'tensors' : 'done';
        return;
      }
      case 'tensors': {
        const name = cur.string();
        const nDims = cur.u32();
        if (nDims > MAX_DIMS) throw new GgufFormatError(`tensor ${name} has ${nDims} dims`);
        const dims: number[] = [];
        for (let i = 0; i < nDims; i++) dims.push(cur.size(`tensor ${name} dimension`));
        const type = cur.u32();
        const offset = cur.size(`tensor ${name} offset`);
        this.tensors.push({ name, dims, type, offset });
        if (--this.tensorsLeft === 0) this.stage = 'done';
        return;
      }
      case 'done':
        return;
    }
  }

  private readValue(cur: Cursor, typeId: number, key: string): [GgufType, GgufValue] {
    if (typeId === 9) {
      const itemTypeId = cur.u32();
      const n = cur.size(`array length of ${key}`);
      if (itemTypeId === 9) {
        const items: GgufValue[] = [];
        let itemType: GgufType | undefined;
        for (let i = 0; i < n; i++) {
          const [t, v] = this.readValue(cur, 9, key);
          itemType = t;
          items.push(v);
        }
        // An empty array of arrays does not record the inner item type.
        return [{ array: itemType ?? { array: 'uint8' } }, items];
      }
      const itemType = this.scalarType(itemTypeId, key);
      const minItemBytes = ggufScalarSize(itemType) ?? 8;
      if (n * minItemBytes > this.fileSize) throw new GgufFormatError(`array ${key} is longer than the file`);
      if (n > this.maxArrayItems) {
        skipScalarArray(cur, itemType, n);
        return [{ array: itemType }, new Array<GgufValue>(n)];
      }
      return [{ array: itemType }, readScalarArray(cur, itemType, n)];
    }
    const type = this.scalarType(typeId, key);
    return [type, readScalar(cur, type)];
  }

  private scalarType(id: number, key: string): GgufScalarType {
    const t = ggufScalarTypeById(id);
    if (t === undefined) throw new GgufFormatError(`metadata ${key} has unknown value type ${id}`);
    return t;
  }
}

function defineEntry<T>(target: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

function readScalar(cur: Cursor, type: GgufScalarType): GgufValue {
  switch (type) {
    case 'uint8': return cur.u8();
    case 'int8': return cur.i8();
    case 'uint16': return cur.u16();
    case 'int16': return cur.i16();
    case 'uint32': return cur.u32();
    case 'int32': return cur.i32();
    case 'uint64': return cur.u64();
    case 'int64': return cur.i64();
    case 'float32': return cur.f32();
    case 'float64': return cur.f64();
    case 'bool': {
      const b = cur.u8();
      if (b > 1) throw new GgufFormatError(`invalid bool byte ${b}`);
      return b === 1;
    }
    case 'string': return cur.string();
  }
}

/** Moves past an array without decoding it (strings: only their length prefixes are read). */
function skipScalarArray(cur: Cursor, type: GgufScalarType, n: number): void {
  if (type !== 'string') {
    const bytes = ggufScalarSize(type)! * n;
    cur.need(bytes);
    cur.pos += bytes;
    return;
  }
  for (let i = 0; i < n; i++) {
    const len = cur.size('string length');
    cur.need(len);
    cur.pos += len;
  }
}

/** Typed arrays use the host's byte order; the fast copies below assume little-endian. */
const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function readScalarArray(cur: Cursor, type: GgufScalarType, n: number): GgufValue[] {
  // The big vocabulary arrays (tokens, scores, token types) get dedicated loops.
  if (type === 'string') return readStringArray(cur, n);
  if (type === 'float32' && LITTLE_ENDIAN_HOST) return readFloat32Array(cur, n);
  if (type === 'int32' && LITTLE_ENDIAN_HOST) return readInt32Array(cur, n);
  cur.need(ggufScalarSize(type)! * n); // one bounds check for the whole array
  const out = new Array<GgufValue>(n);
  for (let i = 0; i < n; i++) out[i] = readScalar(cur, type);
  return out;
}

/**
 * Copies the elements out through an aligned typed array: cheaper than a Buffer#readFloatLE
 * call per element, and filling a fresh array with plain numbers keeps V8 storing them unboxed.
 */
function readTypedArray(cur: Cursor, n: number, View: Float32ArrayConstructor | Int32ArrayConstructor): number[] {
  cur.need(4 * n);
  const view = new View(n);
  new Uint8Array(view.buffer).set(cur.buf.subarray(cur.pos, cur.pos + 4 * n));
  cur.pos += 4 * n;
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) out[i] = view[i]!;
  return out;
}

const readFloat32Array = (cur: Cursor, n: number): number[] => readTypedArray(cur, n, Float32Array);
const readInt32Array = (cur: Cursor, n: number): number[] => readTypedArray(cur, n, Int32Array);

/** Strings of up to this many bytes qualify for the batch decoding in readStringArray. */
const SHORT_STRING_BYTES = 0x80;

/**
 * Reads an array of strings. Vocabulary arrays hold 100k+ short strings, and decoding each one
 * separately dominates the header read, so when every string is shorter than 128 bytes the whole
 * region is decoded with one call and cut into substrings: each 8-byte length prefix is then
 * plain ASCII (one UTF-16 unit per byte), and each string's UTF-16 length follows from its
 * UTF-8 lead bytes. A U+FFFD anywhere (invalid UTF-8, whose replacement would upset that count)
 * sends the array down the one-by-one path, which gives identical results.
 */
function readStringArray(cur: Cursor, n: number): string[] {
  const { buf } = cur;
  const start = cur.pos;
  let pos = start;
  let short = true;
  for (let i = 0; i < n; i++) {
    if (pos + 8 > buf.length) throw NEED_MORE;
    const lo = buf.readUInt32LE(pos);
    const hi = buf.readUInt32LE(pos + 4);
    if (hi !== 0 || lo >= SHORT_STRING_BYTES) {
      short = false;
      break;
    }
    pos += 8 + lo;
  }
  if (short) {
    if (pos > buf.length) throw NEED_MORE;
    const text = buf.toString('utf8', start, pos);
    if (text.indexOf('\uFFFD') === -1) {
      const out = new Array<string>(n);
      let p = start;
      let c = 0;
      for (let i = 0; i < n; i++) {
        const len = buf[p]!;
        p += 8;
        c += 8;
        let units = 0;
        for (const end = p + len; p < end; p++) {
          const b = buf[p]!;
          if ((b & 0xc0) !== 0x80) units += b >= 0xf0 ? 2 : 1;
        }
        out[i] = text.slice(c, c + units);
        c += units;
      }
      cur.pos = p;
      return out;
    }
  }
  const out = new Array<string>(n);
  for (let i = 0; i < n; i++) out[i] = cur.string();
  return out;
}

// ------------------------------------------------------------------------------- split models

/** One file of a split model (`<prefix>-00001-of-00003.gguf`, ...). */
export interface GgufSplitPart {
  readonly path: string;
  readonly header: GgufHeader;
}

/**
 * A model's header: for a single file, its header; for a split model, the first part's metadata
 * (llama.cpp reads metadata from the first split only) with the tensors of all parts, each
 * tagged with its part index. `parts` lists every file with its own header.
 */
export interface GgufModelHeader extends GgufHeader {
  readonly parts: readonly GgufSplitPart[];
}

const SPLIT_NAME = /^(.*)-(\d{5})-of-(\d{5})\.gguf$/;

/**
 * The part paths of a split model named like `<prefix>-00002-of-00003.gguf` (llama_split_path's
 * format), or undefined when the name has no split suffix.
 */
export function splitPartPaths(file: string): string[] | undefined {
  const m = SPLIT_NAME.exec(file);
  if (!m) return undefined;
  const count = Number(m[3]);
  if (count < 1 || Number(m[2]) < 1 || Number(m[2]) > count) return undefined;
  return Array.from({ length: count }, (_, i) => `${m[1]}-${String(i + 1).padStart(5, '0')}-of-${m[3]}.gguf`);
}

function splitCount(h: GgufHeader): number {
  const n = h.metadata['split.count'];
  return typeof n === 'number' ? n : 0;
}

/** Merges the headers of a split model's parts, in order (part 1 first), into one model header. */
export function mergeSplit(parts: GgufSplitPart[]): GgufModelHeader {
  const first = parts[0]!;
  const declared = splitCount(first.header);
  if (declared !== parts.length) {
    throw new GgufFormatError(`${path.basename(first.path)}: split.count is ${declared} but ${parts.length} parts were found`);
  }
  const tensors: GgufTensorInfo[] = [];
  parts.forEach((p, i) => {
    const no = p.header.metadata['split.no'];
    if (no !== undefined && no !== i) {
      throw new GgufFormatError(`${path.basename(p.path)}: split.no is ${String(no)}, expected ${i}`);
    }
    for (const t of p.header.tensors) tensors.push({ ...t, split: i });
  });
  const expected = first.header.metadata['split.tensors.count'];
  if (typeof expected === 'number' && expected !== tensors.length) {
    throw new GgufFormatError(`split model declares ${expected} tensors but its parts hold ${tensors.length}`);
  }
  return { ...first.header, tensors, parts };
}

/** Which files to read for `file`: all parts when it is part of a split model, else itself. */
function modelFiles(file: string, header: GgufHeader): string[] {
  if (splitCount(header) <= 1) return [file];
  const paths = splitPartPaths(file);
  if (!paths || paths.length !== splitCount(header)) {
    throw new GgufFormatError(`${path.basename(file)} is part of a ${splitCount(header)}-file split model but is not named <prefix>-NNNNN-of-NNNNN.gguf`);
  }
  return paths;
}

/**
 * Reads a model's header: a single GGUF file, or every part of a split model when `file` is any
 * of its parts (the tensor table then spans all parts).
 */
export async function readGgufModelHeader(file: string, options: ReadHeaderOptions = {}): Promise<GgufModelHeader> {
  const header = await readGgufHeader(file, options);
  const files = modelFiles(file, header);
  if (files.length === 1) return { ...header, parts: [{ path: file, header }] };
  const parts = await Promise.all(files.map(async (f) => ({ path: f, header: f === file ? header : await readGgufHeader(f, options) })));
  return mergeSplit(parts);
}

/** Synchronous variant of readGgufModelHeader. */
export function readGgufModelHeaderSync(file: string, options: ReadHeaderOptions = {}): GgufModelHeader {
  const header = readGgufHeaderSync(file, options);
  const files = modelFiles(file, header);
  if (files.length === 1) return { ...header, parts: [{ path: file, header }] };
  return mergeSplit(files.map((f) => ({ path: f, header: f === file ? header : readGgufHeaderSync(f, options) })));
}
