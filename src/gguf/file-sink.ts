/**
 * Sequential little-endian binary writer on top of a file handle.
 *
 * Encoding calls are synchronous and append to in-memory chunks; `flushIfLarge()` / `flush()`
 * write them out. Callers flush between logical items (one metadata entry, one tensor chunk), so
 * memory stays bounded by the largest single item rather than the whole file. `skip()` advances
 * the position without writing, which leaves a hole in the file.
 */

import { open, type FileHandle } from 'node:fs/promises';

const CHUNK_BYTES = 1 << 20;
/** Chunks at least this large are written straight from the caller's buffer, without copying. */
const DIRECT_WRITE_BYTES = 1 << 16;

export class FileSink {
  private readonly pending: Buffer[] = [];
  private pendingBytes = 0;
  private chunk: Buffer = Buffer.allocUnsafe(CHUNK_BYTES);
  private used = 0;
  /** File offset where the pending bytes begin. */
  private filePos = 0;

  private constructor(private readonly fh: FileHandle) {}

  /** Creates (or truncates) the file. */
  static async create(path: string): Promise<FileSink> {
    return new FileSink(await open(path, 'w'));
  }

  /** Logical position: bytes written or skipped so far, pending ones included. */
  get position(): number {
    return this.filePos + this.pendingBytes + this.used;
  }

  private reserve(n: number): Buffer {
    if (this.used + n > this.chunk.length) {
      if (this.used > 0) {
        this.pending.push(this.chunk.subarray(0, this.used));
        this.pendingBytes += this.used;
      }
      this.chunk = Buffer.allocUnsafe(Math.max(CHUNK_BYTES, n));
      this.used = 0;
    }
    return this.chunk;
  }

  u8(v: number): void { const b = this.reserve(1); b.writeUInt8(v, this.used); this.used += 1; }
  i8(v: number): void { const b = this.reserve(1); b.writeInt8(v, this.used); this.used += 1; }
  u16(v: number): void { const b = this.reserve(2); b.writeUInt16LE(v, this.used); this.used += 2; }
  i16(v: number): void { const b = this.reserve(2); b.writeInt16LE(v, this.used); this.used += 2; }
  u32(v: number): void { const b = this.reserve(4); b.writeUInt32LE(v, this.used); this.used += 4; }
  i32(v: number): void { const b = this.reserve(4); b.writeInt32LE(v, this.used); this.used += 4; }
  f32(v: number): void { const b = this.reserve(4); b.writeFloatLE(v, this.used); this.used += 4; }
  f64(v: number): void { const b = this.reserve(8); b.writeDoubleLE(v, this.used); this.used += 8; }
  u64(v: bigint): void { const b = this.reserve(8); b.writeBigUInt64LE(v, this.used); this.used += 8; }
  i64(v: bigint): void { const b = this.reserve(8); b.writeBigInt64LE(v, this.used); this.used += 8; }

  /** GGUF string: uint64 byte length followed by UTF-8 bytes (no terminator). */
  string(s: string): void {
    const n = Buffer.byteLength(s, 'utf8');
    this.u64(BigInt(n));
    const b = this.reserve(n);
    b.write(s, this.used, n, 'utf8');
    this.used += n;
  }

  zeros(n: number): void {
    const b = this.reserve(n);
    b.fill(0, this.used, this.used + n);
    this.used += n;
  }

  /** Appends raw bytes; large ones are written directly from the caller's buffer. */
  async bytes(data: Uint8Array): Promise<void> {
    if (data.length >= DIRECT_WRITE_BYTES) {
      await this.flush();
      await this.writeFully(data, this.filePos);
      this.filePos += data.length;
      return;
    }
    const b = this.reserve(data.length);
    b.set(data, this.used);
    this.used += data.length;
    await this.flushIfLarge();
  }

  /** Writes pending bytes once they exceed one chunk. */
  async flushIfLarge(): Promise<void> {
    if (this.pendingBytes + this.used >= CHUNK_BYTES) await this.flush();
  }

  async flush(): Promise<void> {
    const total = this.pendingBytes + this.used;
    if (total === 0) return;
    const parts = this.used > 0 ? [...this.pending, this.chunk.subarray(0, this.used)] : this.pending;
    const data = parts.length === 1 ? parts[0]! : Buffer.concat(parts, total);
    await this.writeFully(data, this.filePos);
    // The write has completed, so the current chunk can be reused.
    this.filePos += total;
    this.pending.length = 0;
    this.pendingBytes = 0;
    this.used = 0;
  }

  /** Advances the position by `n` bytes without writing them (a hole once the file is extended). */
  async skip(n: number): Promise<void> {
    await this.flush();
    this.filePos += n;
  }

  /** Flushes and sets the file length to exactly `size` (extending with a hole if needed). */
  async finish(size: number): Promise<void> {
    await this.flush();
    await this.fh.truncate(size);
  }

  async close(): Promise<void> {
    await this.fh.close();
  }

  private async writeFully(data: Uint8Array, position: number): Promise<void> {
    let done = 0;
    while (done < data.length) {
      const { bytesWritten } = await this.fh.write(data, done, data.length - done, position + done);
      if (bytesWritten <= 0) throw new Error('short write');
      done += bytesWritten;
    }
  }
}
