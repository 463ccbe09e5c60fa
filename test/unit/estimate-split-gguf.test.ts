import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  GgufFormatError, kv, readGgufHeaderSync, readGgufModelHeader, readGgufModelHeaderSync, replicaMetadata, replicaTensors,
  splitPartPaths, writeGguf, writeSparseReplica,
} from '../../src/gguf/index.js';
import { CPU_ONLY, MODEL_INFO_READ_OPTIONS, estimateMemory, modelInfo } from '../../src/estimate/index.js';
import { writeSplitReplica } from './estimate-gguf-writers.js';

const dir = mkdtempSync(join(tmpdir(), 'estimate-split-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('split GGUF models', () => {
  it('derives the part names like llama_split_path', () => {
    expect(splitPartPaths('/m/Qwen-Q4-00002-of-00003.gguf')).toEqual([
      '/m/Qwen-Q4-00001-of-00003.gguf', '/m/Qwen-Q4-00002-of-00003.gguf', '/m/Qwen-Q4-00003-of-00003.gguf',
    ]);
    expect(splitPartPaths('/m/model.gguf')).toBeUndefined();
    expect(splitPartPaths('/m/x-00004-of-00003.gguf')).toBeUndefined();
  });

  it('reads every part and merges the tensor tables', async () => {
    const prefix = join(dir, 'llama');
    const parts = await writeSplitReplica(prefix, 'llama-3-8b', 'Q4_K_M', 3);
    const single = join(dir, 'single.gguf');
    await writeSparseReplica(single, 'llama-3-8b', 'Q4_K_M');

    for (const start of [parts[0]!, parts[2]!]) {
      const h = await readGgufModelHeader(start);
      expect(h.parts.map((p) => p.path)).toEqual(parts);
      expect(h.tensors).toHaveLength(replicaTensors('llama-3-8b', 'Q4_K_M').length);
      expect(new Set(h.tensors.map((t) => t.split))).toEqual(new Set([0, 1, 2]));
      expect(h.metadata['general.architecture']).toBe('llama');
    }
    const sync = readGgufModelHeaderSync(parts[1]!);
    expect(sync.tensors.map((t) => t.name)).toEqual(readGgufHeaderSync(single).tensors.map((t) => t.name));

    // the estimate of the split model equals the single file's
    const a = estimateMemory(modelInfo(sync), { ctx: 4096, parallel: 1 }, CPU_ONLY);
    const b = estimateMemory(modelInfo(readGgufHeaderSync(single)), { ctx: 4096, parallel: 1 }, CPU_ONLY);
    expect(a.totalBytes).toBe(b.totalBytes);
  });

  it('can skip decoding large arrays (the vocabulary) and still count them', async () => {
    const file = join(dir, 'vocab.gguf');
    await writeSparseReplica(file, 'qwen2.5-0.5b', 'Q4_K_M');
    const full = readGgufHeaderSync(file);
    const lean = readGgufHeaderSync(file, MODEL_INFO_READ_OPTIONS);
    const tokens = lean.metadata['tokenizer.ggml.tokens'] as unknown[];
    expect(tokens).toHaveLength((full.metadata['tokenizer.ggml.tokens'] as unknown[]).length);
    expect(tokens[0]).toBeUndefined();
    expect(lean.tensors).toEqual(full.tensors);
    expect(lean.dataOffset).toBe(full.dataOffset);
    expect(lean.metadata['tokenizer.ggml.pre']).toBe('qwen2');
    expect(modelInfo(lean).nVocab).toBe(151936);
  });

  it('reads a plain file as a one-part model', async () => {
    const file = join(dir, 'plain.gguf');
    await writeGguf(file, { metadata: { 'general.architecture': kv.str('llama') }, tensors: [{ name: 'a', dims: [4], type: 'F32' }] });
    const h = await readGgufModelHeader(file);
    expect(h.parts).toHaveLength(1);
    expect(h.tensors[0]!.split).toBeUndefined();
  });

  it('refuses a split model with a missing part or inconsistent counts', async () => {
    const prefix = join(dir, 'broken');
    const parts = await writeSplitReplica(prefix, 'qwen2.5-0.5b', 'Q8_0', 2);
    rmSync(parts[1]!);
    await expect(readGgufModelHeader(parts[0]!)).rejects.toThrow();
    // a part whose split.tensors.count disagrees with the parts' tensors
    const bad = join(dir, 'bad-00001-of-00001.gguf');
    await writeGguf(bad, {
      metadata: { ...replicaMetadata('qwen2.5-0.5b', 'Q8_0'), 'split.no': kv.u16(0), 'split.count': kv.u16(1), 'split.tensors.count': kv.i32(5) },
      tensors: [{ name: 'token_embd.weight', dims: [896, 10], type: 'F32' }],
    });
    // split.count 1 is a plain file for llama.cpp
    await expect(readGgufModelHeader(bad)).resolves.toBeDefined();
    const bad2 = join(dir, 'bad2-00001-of-00002.gguf');
    await writeGguf(bad2, {
      metadata: { 'general.architecture': kv.str('llama'), 'split.no': kv.u16(0), 'split.count': kv.u16(2), 'split.tensors.count': kv.i32(5) },
      tensors: [{ name: 'a', dims: [4], type: 'F32' }],
    });
    await writeGguf(join(dir, 'bad2-00002-of-00002.gguf'), {
      metadata: { 'split.no': kv.u16(1), 'split.count': kv.u16(2), 'split.tensors.count': kv.i32(5) },
      tensors: [{ name: 'b', dims: [4], type: 'F32' }],
    });
    await expect(readGgufModelHeader(bad2)).rejects.toThrow(GgufFormatError);
  });
});
