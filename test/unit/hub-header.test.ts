import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseGgufHeader, readGgufHeaderFrom, writeTinyModel } from '../../src/gguf/index.js';

describe('reading a GGUF header through a byte source (range requests)', () => {
  it('asks for the first read size, then 4x larger reads, and stops when the header is complete', async () => {
    const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'lsp-hdr-')), 't.gguf');
    await writeTinyModel(file, { seed: 5 });
    const bytes = readFileSync(file);
    const reads: [number, number][] = [];
    const header = await readGgufHeaderFrom(
      { size: bytes.length, read: async (pos, len) => (reads.push([pos, len]), bytes.subarray(pos, pos + len)) },
      {},
      1024,
    );
    expect(header).toEqual(parseGgufHeader(bytes));
    expect(reads[0]).toEqual([0, 1024]);
    expect(reads.map(([, len]) => len)).toEqual(reads.map((_, i) => 1024 * 4 ** i));
    const end = reads.at(-1)![0] + reads.at(-1)![1];
    expect(end).toBeGreaterThanOrEqual(header.headerSize);
    expect(end).toBeLessThan(bytes.length);
  });

  it('fails cleanly on a truncated source', async () => {
    const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'lsp-hdr-')), 't.gguf');
    await writeTinyModel(file, { seed: 5 });
    const bytes = readFileSync(file).subarray(0, 2000);
    await expect(readGgufHeaderFrom({ size: 100_000, read: async (pos, len) => bytes.subarray(pos, pos + len) }, {}, 1024)).rejects.toThrow(/truncated GGUF header/);
  });
});
