import { describe, expect, it } from 'vitest';
import { rowBytes, tensorBytes } from '../../src/gguf/index.js';
import { CPU_ONLY, estimateMemory, layerAssignment, placeWeights, resolveSettings, type Placement } from '../../src/estimate/index.js';
import { Replicas, fakeModel } from './estimate-fixtures.js';

const gpu: Placement = { devices: [{ name: 'CUDA0', kind: 'cuda' }] };

describe('weights per device', () => {
  const m = fakeModel({ layers: 4, embd: 512, heads: 8, headsKv: 2, vocab: 1000, ff: 1536 });
  const total = m.weightBytes;
  const embd = tensorBytes('F16', [512, 1000]);

  it('keeps everything in RAM on the CPU', () => {
    const e = estimateMemory(m, { ctx: 512, parallel: 1 }, CPU_ONLY);
    expect(e.host.modelBytes).toBe(total);
    expect(e.devices).toHaveLength(0);
  });

  it('keeps the input embeddings on the CPU when everything else is offloaded', () => {
    const e = estimateMemory(m, { ctx: 512, parallel: 1 }, gpu);
    expect(e.host.modelBytes).toBe(embd);
    expect(e.devices[0]!.modelBytes).toBe(total - embd);
  });

  it('duplicates tied embeddings onto the output device, but not on the CPU', () => {
    const tied = fakeModel({ layers: 4, embd: 512, heads: 8, headsKv: 2, vocab: 1000, ff: 1536, tied: true });
    expect(tied.tiedEmbeddings).toBe(true);
    const cpu = estimateMemory(tied, { ctx: 512, parallel: 1 }, CPU_ONLY);
    expect(cpu.host.modelBytes).toBe(tied.weightBytes);
    const full = estimateMemory(tied, { ctx: 512, parallel: 1 }, gpu);
    expect(full.host.modelBytes).toBe(embd);
    expect(full.devices[0]!.modelBytes).toBe(tied.weightBytes); // everything but token_embd, plus its copy
    // -ngl 4 of 5: output offloaded (with the copy), layer 0 on the CPU
    const part = estimateMemory(tied, { ctx: 512, parallel: 1 }, { ...gpu, ngl: 4 });
    const layer0 = tied.tensors.filter((t) => t.name.startsWith('blk.0.')).reduce((s, t) => s + t.bytes, 0);
    expect(part.host.modelBytes).toBe(embd + layer0);
    expect(part.devices[0]!.modelBytes).toBe(tied.weightBytes - layer0);
  });

  it('moves MoE experts to the CPU with --n-cpu-moe and -ot', () => {
    const moe = fakeModel({ layers: 4, embd: 512, heads: 8, headsKv: 2, vocab: 1000, experts: 8, expertsUsed: 2, expertFf: 256 });
    const exps = (il: number): number => moe.tensors.filter((t) => t.name.startsWith(`blk.${il}.`) && t.isExpert).reduce((s, t) => s + t.bytes, 0);
    const base = estimateMemory(moe, { ctx: 512, parallel: 1 }, gpu);
    const two = estimateMemory(moe, { ctx: 512, parallel: 1, cpuMoeLayers: 2 }, gpu);
    expect(two.host.modelBytes - base.host.modelBytes).toBe(exps(0) + exps(1));
    expect(base.devices[0]!.modelBytes - two.devices[0]!.modelBytes).toBe(exps(0) + exps(1));
    const ot = estimateMemory(moe, { ctx: 512, parallel: 1, overrides: [{ pattern: /exps/, target: 'cpu' }] }, gpu);
    expect(ot.host.modelBytes - base.host.modelBytes).toBe([0, 1, 2, 3].reduce((s, il) => s + exps(il), 0));
  });

  it('pads quantized rows to 512 elements and aligns to 128 bytes on CUDA', () => {
    // rows of 896 elements (Qwen2.5-0.5B): Q8_0 needs 512 - 896 % 512 = 128 more elements per row
    const q = fakeModel({ layers: 1, embd: 896, heads: 14, headsKv: 2, vocab: 1000, ff: 4864, weightType: 'Q8_0' });
    const s = resolveSettings(q, { ctx: 512, parallel: 1 });
    const w = placeWeights(q, s, layerAssignment(1, undefined, [1]), 1);
    let expected = 0;
    for (const t of q.tensors) {
      if (t.layer.kind === 'input') continue;
      const pad = t.type.quantized && t.dims[0]! % 512 !== 0 ? rowBytes(t.type.name, 512 - (t.dims[0]! % 512)) : 0;
      expected += Math.ceil((t.bytes + pad) / 128) * 128;
    }
    expect(w.gpuBytes[0]).toBe(expected);
    expect(expected).toBeGreaterThan(q.weightBytes - tensorBytes('Q8_0', [896, 1000]));
  });

  it('skips the NextN/MTP layer of GLM-4.5 (loaded only for MTP drafting) but gives it a KV cache', async () => {
    const replicas = new Replicas();
    try {
      const m = await replicas.info('glm-4.5-air', 'Q4_K_M');
      expect(m.family).toBe('glm4moe');
      expect([m.nLayer, m.nLayerNextn, m.nLayerDenseLead, m.nExpertShared]).toEqual([47, 1, 1, 1]);
      expect([m.expertGating, m.expertWeightsNorm, m.expertWeightsScale]).toEqual(['sigmoid', true, 1]);
      expect(m.tensors.some((t) => t.name.startsWith('blk.46.'))).toBe(false);
      expect(m.tensorByName.has('blk.45.ffn_down_shexp.weight')).toBe(true);
      const loaded = m.tensors.reduce((s, t) => s + t.bytes, 0);
      expect(m.weightBytes).toBeGreaterThan(loaded); // as stored, blk.46 included
      const e = estimateMemory(m, { ctx: 4096, parallel: 1 }, CPU_ONLY);
      expect(e.host.modelBytes).toBe(loaded);
      // 47 layers of K and V: 4096 cells x 1024 x 2 bytes each
      expect(e.host.contextBytes).toBe(47 * 2 * 4096 * 1024 * 2);
    } finally {
      replicas.cleanup();
    }
  });
});
