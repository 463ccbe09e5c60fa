import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  buildTinyProjector, ggmlType, readGgufHeader, tinyProjectorImageTokens, writeTinyProjector,
  type GgufHeader, type GgufTensorInfo,
} from '../../src/gguf/index.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'gguf-tiny-mmproj-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

const F32 = ggmlType('F32').id;
const F16 = ggmlType('F16').id;

function tensorMap(h: GgufHeader): Map<string, GgufTensorInfo> {
  return new Map(h.tensors.map((t) => [t.name, t]));
}

describe('tiny multimodal projector', () => {
  it('is byte-identical per seed and differs across seeds', async () => {
    const a = join(dir, 'a.gguf');
    const b = join(dir, 'b.gguf');
    const c = join(dir, 'c.gguf');
    await writeTinyProjector(a, { seed: 7 });
    await writeTinyProjector(b, { seed: 7 });
    await writeTinyProjector(c, { seed: 8 });
    const [ba, bb, bc] = [readFileSync(a), readFileSync(b), readFileSync(c)];
    expect(ba.equals(bb)).toBe(true);
    expect(ba.equals(bc)).toBe(false);
    expect(ba.length).toBe(bc.length); // same layout, other weights
  });

  it('has the metadata llama.cpp\'s clip loader requires for an "mlp" (LLaVA 1.5) projector', async () => {
    const file = join(dir, 'meta.gguf');
    await writeTinyProjector(file, { seed: 1 });
    const h = await readGgufHeader(file);
    expect(h.metadata).toMatchObject({
      'general.architecture': 'clip',
      'clip.has_vision_encoder': true,
      'clip.projector_type': 'mlp',
      'clip.vision.image_size': 32,
      'clip.vision.patch_size': 8,
      'clip.vision.embedding_length': 32,
      'clip.vision.feed_forward_length': 128,
      'clip.vision.block_count': 1,
      'clip.vision.attention.head_count': 2,
      'clip.vision.projection_dim': 64,
      'clip.vision.feature_layer': [1],
    });
    expect(h.metadataTypes['clip.vision.image_size']).toBe('uint32');
    expect(h.metadataTypes['clip.vision.attention.layer_norm_epsilon']).toBe('float32');
    expect(h.metadata['clip.vision.attention.layer_norm_epsilon']).toBeCloseTo(1e-5, 10);
    expect(h.metadataTypes['clip.vision.image_mean']).toEqual({ array: 'float32' });
    expect(h.metadataTypes['clip.vision.image_std']).toEqual({ array: 'float32' });
    expect(h.metadata['clip.vision.image_mean']).toHaveLength(3);
    expect(h.metadata['clip.vision.image_std']).toHaveLength(3);
    expect(statSync(file).size).toBeLessThan(300 * 1024);
  });

  it('has the tensors the loader and the LLaVA graph use, with consistent shapes', async () => {
    const file = join(dir, 'tensors.gguf');
    await writeTinyProjector(file, { seed: 1 });
    const t = tensorMap(await readGgufHeader(file));
    const E = 32, F = 128, T = 64, P = 8, N = 16;
    const expected: Record<string, number[]> = {
      'v.patch_embd.weight': [P, P, 3, E],
      'v.patch_embd.bias': [E],
      'v.position_embd.weight': [E, N],
      'v.pre_ln.weight': [E],
      'v.pre_ln.bias': [E],
      'v.blk.0.ln1.weight': [E],
      'v.blk.0.ln1.bias': [E],
      'v.blk.0.attn_q.weight': [E, E],
      'v.blk.0.attn_q.bias': [E],
      'v.blk.0.attn_k.weight': [E, E],
      'v.blk.0.attn_k.bias': [E],
      'v.blk.0.attn_v.weight': [E, E],
      'v.blk.0.attn_v.bias': [E],
      'v.blk.0.attn_out.weight': [E, E],
      'v.blk.0.attn_out.bias': [E],
      'v.blk.0.ln2.weight': [E],
      'v.blk.0.ln2.bias': [E],
      'v.blk.0.ffn_up.weight': [E, F],
      'v.blk.0.ffn_up.bias': [F],
      'v.blk.0.ffn_down.weight': [F, E],
      'v.blk.0.ffn_down.bias': [E],
      'mm.0.weight': [E, T],
      'mm.0.bias': [T],
      'mm.2.weight': [T, T],
      'mm.2.bias': [T],
    };
    expect([...t.keys()].sort()).toEqual(Object.keys(expected).sort());
    for (const [name, dims] of Object.entries(expected)) {
      expect(t.get(name)!.dims, name).toEqual(dims);
      expect(t.get(name)!.type, name).toBe(F32);
    }
    // The loader swaps ffn_up/ffn_down (a legacy fix) when ffn_down's rows have the encoder width.
    expect(t.get('v.blk.0.ffn_down.weight')!.dims[0]).not.toBe(E);
    // Every image is resized to 32x32: 16 patches, one image token and one position each.
    expect(tinyProjectorImageTokens()).toBe(N);
  });

  it('follows its options: output width for the text model, layers, image and patch size, F16 matrices', async () => {
    const file = join(dir, 'custom.gguf');
    await writeTinyProjector(file, { seed: 3, textEmbd: 96, embd: 48, heads: 3, layers: 2, hidden: 40, imageSize: 64, patchSize: 16, type: 'F16' });
    const h = await readGgufHeader(file);
    const t = tensorMap(h);
    expect(h.metadata).toMatchObject({
      'clip.vision.image_size': 64,
      'clip.vision.patch_size': 16,
      'clip.vision.embedding_length': 48,
      'clip.vision.feed_forward_length': 192,
      'clip.vision.block_count': 2,
      'clip.vision.attention.head_count': 3,
      'clip.vision.projection_dim': 96,
      'clip.vision.feature_layer': [2],
      'general.file_type': 1,
    });
    expect(t.get('mm.2.weight')!.dims).toEqual([40, 96]); // output width = text model n_embd
    expect(t.get('mm.0.weight')!.dims).toEqual([48, 40]);
    expect(t.get('v.patch_embd.weight')!.dims).toEqual([16, 16, 3, 48]);
    expect(t.get('v.position_embd.weight')!.dims).toEqual([48, 16]);
    expect(t.has('v.blk.1.attn_out.weight')).toBe(true);
    expect(t.has('v.blk.2.attn_out.weight')).toBe(false);
    expect(t.get('v.blk.1.attn_q.weight')!.type).toBe(F16);
    expect(t.get('v.patch_embd.weight')!.type).toBe(F16);
    expect(t.get('v.position_embd.weight')!.type).toBe(F32); // read with get_rows
    expect(t.get('v.blk.1.ln1.weight')!.type).toBe(F32);
    expect(tinyProjectorImageTokens({ imageSize: 64, patchSize: 16 })).toBe(16);
  });

  it('rejects shapes llama.cpp could not use', () => {
    expect(() => buildTinyProjector({ seed: 1, embd: 32, ff: 32 })).toThrow(/ff must differ/);
    expect(() => buildTinyProjector({ seed: 1, imageSize: 30, patchSize: 8 })).toThrow(/multiple of patchSize/);
    expect(() => buildTinyProjector({ seed: 1, embd: 32, heads: 3 })).toThrow(/multiple of heads/);
    expect(() => buildTinyProjector({ seed: 1.5 })).toThrow(/seed/);
    expect(() => buildTinyProjector({ seed: 1, textEmbd: 0 })).toThrow(/textEmbd/);
  });
});
