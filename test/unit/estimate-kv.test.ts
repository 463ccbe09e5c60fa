import { describe, expect, it } from 'vitest';
import { EstimateError, kvPlan, resolveSettings, type EstimateSettings, type ModelInfo } from '../../src/estimate/index.js';
import { Replicas, fakeModel } from './estimate-fixtures.js';

const MiB = 1024 * 1024;

function kvMiB(m: ModelInfo, s: EstimateSettings, flashAttn = s.flashAttn !== 'off'): number {
  return kvPlan(m, resolveSettings(m, s), flashAttn).bytes / MiB;
}

// Llama-3-8B shape: 32 layers, 8 KV heads of 128 -> K and V rows of 1024 elements
const llama = fakeModel({ layers: 32, embd: 4096, heads: 32, headsKv: 8, ctxTrain: 8192 });

describe('KV cache size', () => {
  it('is 2 x layers x cells x row bytes for f16 (hand computed)', () => {
    // 32 layers x 4096 cells x 1024 x 2 bytes = 256 MiB for K, the same for V
    expect(kvMiB(llama, { ctx: 4096, parallel: 1 })).toBe(512);
    expect(kvMiB(llama, { ctx: 32768, parallel: 1 })).toBe(4096);
  });

  it('uses the real block sizes of quantized cache types', () => {
    // per 32 elements: q8_0 34 B, q4_0 18, q4_1 20, q5_0 22, q5_1 24, iq4_nl 18; per element f32 4, bf16 2
    const cases: [EstimateSettings['cacheTypeK'], number][] = [
      ['q8_0', 136], ['q4_0', 72], ['q4_1', 80], ['q5_0', 88], ['q5_1', 96], ['iq4_nl', 72], ['bf16', 256], ['f32', 512], ['f16', 256],
    ];
    for (const [type, kMiB] of cases) {
      // K in the given type, V f16 (256 MiB); flash attention on
      expect(kvMiB(llama, { ctx: 4096, parallel: 1, cacheTypeK: type, flashAttn: 'on' }), type).toBe(kMiB + 256);
    }
    expect(kvMiB(llama, { ctx: 4096, parallel: 1, cacheTypeK: 'q8_0', cacheTypeV: 'q8_0' })).toBe(272);
  });

  it('pads the context to 256 and splits it between non-unified slots', () => {
    // -c 1000 -> 1024 cells
    expect(kvMiB(llama, { ctx: 1000, parallel: 1 })).toBe(128);
    // -c 4096 -np 3 (not unified): 4096/3 = 1365 -> 1536 cells per slot, 3 streams = 4608 cells
    const s = resolveSettings(llama, { ctx: 4096, parallel: 3 });
    expect(s.nCtxSeq).toBe(1536);
    expect(s.nCtx).toBe(4608);
    expect(s.nStream).toBe(3);
    expect(kvMiB(llama, { ctx: 4096, parallel: 3 })).toBe(576);
    // unified (-kvu, or llama-server's -np auto = 4 slots): one stream of 4096 cells
    expect(kvMiB(llama, { ctx: 4096, parallel: 3, kvUnified: true })).toBe(512);
    expect(kvMiB(llama, { ctx: 4096 })).toBe(512);
    expect(resolveSettings(llama, {}).nCtx).toBe(8192); // default: the training context
  });

  it('limits sliding-window layers to window + ubatch cells (Gemma 2)', () => {
    // Gemma-2-9B: 42 layers, every other one SWA (window 4096), 8 KV heads of 256
    const gemma = fakeModel({ arch: 'gemma2', layers: 42, embd: 3584, heads: 16, headsKv: 8, headDim: 256, ctxTrain: 8192, tied: true, slidingWindow: 4096 });
    expect(gemma.isSwa.filter(Boolean)).toHaveLength(21);
    expect(gemma.isSwa[0]).toBe(true);
    expect(gemma.isSwa[1]).toBe(false);
    const row = 2048 * 2; // 8 x 256 f16
    const full = (21 * 32768 * row * 2) / MiB; // 5376
    // SWA cells: pad256(min(32768, 4096 + 512)) = 4608
    expect(kvMiB(gemma, { ctx: 32768, parallel: 1 })).toBe(full + (21 * 4608 * row * 2) / MiB);
    // ubatch 2048: 6144 cells
    expect(kvMiB(gemma, { ctx: 32768, parallel: 1, ubatch: 2048 })).toBe(full + (21 * 6144 * row * 2) / MiB);
    // 4 separate slots: 8192 cells each for full layers, 4608 per slot for SWA layers
    expect(kvMiB(gemma, { ctx: 32768, parallel: 4 })).toBe(full + (21 * 4608 * 4 * row * 2) / MiB);
    // unified 4 slots: the window is per slot, so 4 x 4096 + 512 = 16896 cells
    expect(kvMiB(gemma, { ctx: 32768 })).toBe(full + (21 * 16896 * row * 2) / MiB);
    // --swa-full
    expect(kvMiB(gemma, { ctx: 32768, parallel: 1, swaFull: true })).toBe(2 * full);
    // a context smaller than the window
    expect(kvMiB(gemma, { ctx: 2048, parallel: 1 })).toBe((42 * 2048 * row * 2) / MiB);
  });

  it('keeps Phi-3 at full attention although its GGUF declares a window', () => {
    const phi = fakeModel({ arch: 'phi3', layers: 32, embd: 3072, heads: 32, headsKv: 32, slidingWindow: 2047 });
    expect(phi.swaType).toBe('none');
    expect(kvMiB(phi, { ctx: 4096, parallel: 1 })).toBe(1536);
  });

  it('pads transposed V (no flash attention) to the widest layer and skips layers without KV', () => {
    // per-layer KV heads: 8, 4, 0 (no attention), 8
    const m = fakeModel({ layers: 4, embd: 1024, heads: 8, headsKv: [8, 4, 0, 8], headDim: 128 });
    const cells = 1024;
    const k = (8 + 4 + 8) * 128 * 2 * cells;
    const vFa = k;
    const vNoFa = 3 * 8 * 128 * 2 * cells;
    expect(kvMiB(m, { ctx: cells, parallel: 1, flashAttn: 'on' })).toBe((k + vFa) / MiB);
    expect(kvMiB(m, { ctx: cells, parallel: 1, flashAttn: 'off' })).toBe((k + vNoFa) / MiB);
    expect(kvPlan(m, resolveSettings(m, { ctx: cells, parallel: 1 }), true).layers.map((l) => l.il)).toEqual([0, 1, 3]);
  });

  it('refuses what llama.cpp refuses', () => {
    expect(() => resolveSettings(llama, { cacheTypeV: 'q8_0', flashAttn: 'off' })).toThrow(EstimateError);
    // a quantized V turns 'auto' flash attention on
    expect(resolveSettings(llama, { cacheTypeV: 'q8_0' }).flashAttn).toBe('on');
    // head size 48 is not a multiple of q8_0's 32-element blocks
    const odd = fakeModel({ layers: 2, embd: 384, heads: 8, headsKv: 8, headDim: 48 });
    expect(() => resolveSettings(odd, { cacheTypeK: 'q8_0' })).toThrow(/block size 32 does not divide/);
    expect(() => resolveSettings(llama, { cacheTypeK: 'q2_k' as never })).toThrow(/unsupported cache type/);
  });

  it('limits batch and ubatch by the context', () => {
    const s = resolveSettings(llama, { ctx: 256, batch: 2048, ubatch: 512 });
    expect(s.nBatch).toBe(256);
    expect(s.nUbatch).toBe(256);
  });

  it('stores only the latent K of MLA models (DeepSeek-V2) and refuses a V type unlike K', async () => {
    const replicas = new Replicas();
    try {
      const m = await replicas.info('deepseek-v2-lite', 'Q4_K_M');
      expect(m.family).toBe('deepseek2');
      expect(m.mla).toEqual({ kvLoraRank: 512, qLoraRank: 0, nEmbdHeadKMla: 192, nEmbdHeadVMla: 128, nRot: 64 });
      expect([m.nEmbdHeadK, m.nEmbdHeadV, m.nHeadKv[0], m.nLayerDenseLead, m.nExpertShared]).toEqual([576, 512, 1, 1, 2]);
      expect([m.expertGating, m.expertWeightsNorm, m.expertWeightsScale]).toEqual(['softmax', false, 1]);
      expect(m.caveats).toEqual([]);
      // 27 layers x 4096 cells x 576 f16 values, no V (llama-fit-params: 121 MiB), with or without FA
      for (const fa of [true, false]) {
        const plan = kvPlan(m, resolveSettings(m, { ctx: 4096, parallel: 1 }), fa);
        expect(plan.bytes).toBe(27 * 4096 * 576 * 2);
        expect(plan.layers.every((l) => l.vBytes === 0)).toBe(true);
        expect([plan.base.rotK, plan.base.rotV]).toEqual([0, 0]);
      }
      // q8_0 K and V (flash attention): 34 bytes per 32 values (llama-fit-params: 516 MiB at 32768)
      expect(kvMiB(m, { ctx: 32768, parallel: 1, cacheTypeK: 'q8_0', cacheTypeV: 'q8_0' })).toBeCloseTo((27 * 32768 * 18 * 34) / MiB, 6);
      // llama_init_from_model: "model does not support different K (q8_0) and V (f16) cache types"
      expect(() => resolveSettings(m, { cacheTypeK: 'q8_0', flashAttn: 'off' })).toThrow(/different K \(q8_0\) and V \(f16\)/);
      expect(() => resolveSettings(m, { cacheTypeK: 'q8_0', cacheTypeV: 'q8_0', flashAttn: 'off' })).toThrow(EstimateError);
    } finally {
      replicas.cleanup();
    }
  });

  it('gives Qwen3-Next KV only on its full-attention layers and a recurrent state to the others', async () => {
    const replicas = new Replicas();
    try {
      const m = await replicas.info('qwen3-next-80b-a3b', 'Q4_K_M');
      expect(m.family).toBe('qwen3next');
      expect(m.caveats).toEqual([]);
      // 48 trunk layers plus the MTP layer, whose tensors llama.cpp skips
      expect([m.nLayer, m.nLayerNextn, m.tensorByName.has('blk.48.nextn.eh_proj.weight')]).toEqual([49, 1, false]);
      const rec = m.recurrent!;
      expect([rec.dConv, rec.dInner, rec.dState, rec.nGroup, rec.dtRank, rec.nEmbdR, rec.nEmbdS]).toEqual([4, 4096, 128, 16, 32, 3 * 8192, 128 * 4096]);
      const attn = [3, 7, 11, 15, 19, 23, 27, 31, 35, 39, 43, 47];
      const plan = kvPlan(m, resolveSettings(m, { ctx: 32768, parallel: 4, cacheTypeK: 'q8_0', cacheTypeV: 'q8_0' }), true);
      expect(plan.layers.filter((l) => !l.recurrent).map((l) => l.il)).toEqual(attn);
      expect(plan.layers.filter((l) => l.recurrent)).toHaveLength(36);
      // llama-fit-params -v: KV 408.00 MiB (8192 cells x 4 streams, 12 layers, q8_0), RS 301.50 MiB
      // (4 cells: R 13.50 MiB, S 288.00 MiB)
      const kv = plan.layers.filter((l) => !l.recurrent).reduce((a, l) => a + l.kBytes + l.vBytes, 0);
      const rs = plan.layers.filter((l) => l.recurrent).reduce((a, l) => a + l.kBytes + l.vBytes, 0);
      expect([kv / MiB, rs / MiB]).toEqual([408, 301.5]);
      expect(plan.bytes).toBe(kv + rs);
    } finally {
      replicas.cleanup();
    }
  });

  it('gives Granite-4.0-H KV only on its attention layers and a Mamba2 state to the others', async () => {
    const replicas = new Replicas();
    try {
      const m = await replicas.info('granite-4.0-h-tiny', 'Q4_K_M');
      expect(m.family).toBe('granitehybrid');
      expect(m.caveats).toEqual([]);
      expect(m.scales).toEqual({ embedding: 12, residual: expect.closeTo(0.22, 6), logit: 6 });
      // rope.scaling.finetuned false: no positions, no rope (hparams.has_rope)
      expect(m.noRope).toBe(true);
      const rec = m.recurrent!;
      // n_embd_r = (d_conv - 1)(d_inner + 2 n_group d_state), n_embd_s = d_state d_inner
      expect([rec.dConv, rec.dInner, rec.dState, rec.nGroup, rec.dtRank, rec.nEmbdR, rec.nEmbdS]).toEqual([4, 3072, 128, 1, 48, 3 * 3328, 128 * 3072]);
      const plan = kvPlan(m, resolveSettings(m, { ctx: 4096, parallel: 4, cacheTypeK: 'q8_0', cacheTypeV: 'q8_0' }), true);
      expect(plan.layers.filter((l) => !l.recurrent).map((l) => l.il)).toEqual([5, 15, 25, 35]);
      expect(plan.layers.filter((l) => l.recurrent)).toHaveLength(36);
      // llama-fit-params -v: RS 221.48 MiB (4 cells; 55.37 MiB for one)
      const rs = plan.layers.filter((l) => l.recurrent).reduce((a, l) => a + l.kBytes + l.vBytes, 0);
      expect(rs).toBe(36 * 4 * (3 * 3328 + 128 * 3072) * 4);
      expect(rs / MiB).toBeCloseTo(221.48, 2);
    } finally {
      replicas.cleanup();
    }
  });
  it('gives Llama 4 Scout chunked-attention layers a window cache and every 4th layer the full context', async () => {
    const replicas = new Replicas();
    try {
      const m = await replicas.info('llama-4-scout', 'Q4_K_M');
      expect(m.family).toBe('llama4');
      expect(m.caveats).toEqual([]);
      // llama.cpp's default for the architecture: chunks of 8192, pattern 3 chunked - 1 full
      expect([m.swaType, m.nSwa]).toEqual(['chunked', 8192]);
      expect(m.isSwa.filter((s) => !s)).toHaveLength(12);
      expect([m.nExpert, m.nExpertUsed, m.nFfExp]).toEqual([16, 1, 8192]);
      // llama-fit-params -v -c 32768 -np 1 -ub 2048: non-SWA 32768 cells, SWA 10240 cells
      const plan = kvPlan(m, resolveSettings(m, { ctx: 32768, parallel: 1, ubatch: 2048 }), false);
      expect(plan.layers.filter((l) => !l.swa).map((l) => l.il)).toEqual([3, 7, 11, 15, 19, 23, 27, 31, 35, 39, 43, 47]);
      expect([plan.base.kvSize, plan.swa?.kvSize]).toEqual([32768, 10240]);
      expect(plan.bytes / MiB).toBe(12 * 128 + 36 * 40);
    } finally {
      replicas.cleanup();
    }
  });
});
