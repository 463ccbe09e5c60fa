import { afterAll, describe, expect, it } from 'vitest';
import { CPU_ONLY, estimateMemory, type EstimateSettings } from '../../src/estimate/index.js';
import { measureGraph } from '../../src/estimate/compute/gallocr.js';
import { F32, Graph, add, external, mulMat, newTensor, reshape, rmsNorm, scale, setInput, FLAG_OUTPUT } from '../../src/estimate/compute/ggml.js';
import { CPU_BUFFER } from '../../src/estimate/buffers.js';
import type { PresetId, ReplicaQuant } from '../../src/gguf/index.js';
import { Replicas, fakeHeader, fakeModel } from './estimate-fixtures.js';
import { modelInfo } from '../../src/estimate/index.js';

const MiB = 1024 * 1024;

describe('graph allocator (ggml-alloc)', () => {
  it('reuses a parent in place and frees tensors after their last reader', () => {
    const g = new Graph();
    const x = setInput(newTensor(F32, [1024, 16])); // 64 KiB
    const w = external(F32, [1024, 1024], 0, true);
    const a = rmsNorm(x); // new (x is an input, still read later? no: only here)
    const b = scale(a); // in place over a
    const c = mulMat(w, b); // new 64 KiB, b freed after
    const d = add(c, x); // in place over c
    d.flags |= FLAG_OUTPUT;
    g.expand(d);
    // x (64K) + a/b (64K) + c/d (64K) alive at most
    expect(measureGraph(g, [CPU_BUFFER])).toEqual([3 * 65536]);
  });

  it('does not reuse a parent that has other readers or views', () => {
    const g = new Graph();
    const x = setInput(newTensor(F32, [256, 4]));
    const a = scale(x); // inputs are allocated up front, a is new
    const v = reshape(a, [1024]);
    const b = scale(a); // a still read by the reshape: b is new
    g.expand(b);
    g.expand(scale(v));
    const [size] = measureGraph(g, [CPU_BUFFER]);
    expect(size).toBe(3 * 4096);
  });
});

/**
 * Compute buffers measured with node-llama-cpp 3.21.1's llama.cpp (b1-80fb11a), CPU build:
 * `llama-fit-params -m <replica> -c C -ctk K -ctv V -fa FA -ub UB -np NP -nr --fit-print on -v`
 * ("sched_reserve: CPU compute buffer size"), and one llama-server -lv 4 run.
 */
const MEASURED: [PresetId, ReplicaQuant, EstimateSettings, number][] = [
  ['llama-3-8b', 'Q4_K_M', { ctx: 32768, parallel: 1, flashAttn: 'off', ubatch: 2048 }, 8624.04],
  ['llama-3-8b', 'Q4_K_M', { ctx: 32768, parallel: 1, flashAttn: 'on', cacheTypeK: 'q8_0', cacheTypeV: 'q8_0' }, 274.5],
  ['qwen2.5-0.5b', 'Q8_0', { ctx: 32768, parallel: 1, flashAttn: 'off', cacheTypeK: 'q8_0' }, 967.53],
  ['mistral-7b', 'Q4_K_M', { ctx: 4096, parallel: 4, flashAttn: 'on' }, 117.01],
  ['gemma-2-9b', 'Q4_K_M', { ctx: 32768, parallel: 4, flashAttn: 'on', ubatch: 2048, cacheTypeK: 'q8_0', cacheTypeV: 'q8_0' }, 2084.01],
  ['gemma-2-9b', 'Q8_0', { ctx: 32768, parallel: 1, flashAttn: 'off', cacheTypeK: 'q8_0' }, 1142.51],
  ['phi-3-mini', 'Q4_K_M', { ctx: 32768, parallel: 4, flashAttn: 'on', ubatch: 2048 }, 298.51],
  ['mixtral-8x7b', 'Q4_K_M', { ctx: 32768, parallel: 1, flashAttn: 'on', ubatch: 2048, cacheTypeK: 'q8_0', cacheTypeV: 'q8_0' }, 896.26],
  ['qwen3-30b-a3b', 'Q4_K_M', { ctx: 32768, parallel: 4, flashAttn: 'on', ubatch: 2048, cacheTypeK: 'q8_0', cacheTypeV: 'q8_0' }, 1235.01],
  ['glm-4.5-air', 'Q4_K_M', { ctx: 32768, parallel: 4, flashAttn: 'on', ubatch: 2048, cacheTypeK: 'q8_0', cacheTypeV: 'q8_0' }, 1312.13],
  ['glm-4.5-air', 'Q4_K_M', { ctx: 32768, parallel: 4, flashAttn: 'off', ubatch: 2048, cacheTypeK: 'q8_0' }, 6448.10],
  ['deepseek-v2-lite', 'Q4_K_M', { ctx: 32768, parallel: 4, flashAttn: 'on', ubatch: 2048, cacheTypeK: 'q8_0', cacheTypeV: 'q8_0' }, 961.05],
  ['deepseek-v2-lite', 'Q4_K_M', { ctx: 32768, parallel: 1, flashAttn: 'off', ubatch: 2048 }, 4585.09],
  ['qwen3-next-80b-a3b', 'Q4_K_M', { ctx: 32768, parallel: 4, flashAttn: 'on', ubatch: 2048, cacheTypeK: 'q8_0', cacheTypeV: 'q8_0' }, 1235.01],
  ['qwen3-next-80b-a3b', 'Q4_K_M', { ctx: 32768, parallel: 1, flashAttn: 'off', ubatch: 2048 }, 4520.04],
  ['granite-4.0-h-tiny', 'Q8_0', { ctx: 4096, parallel: 4, flashAttn: 'on', cacheTypeK: 'q8_0', cacheTypeV: 'q8_0' }, 209.09],
  ['granite-4.0-h-tiny', 'Q8_0', { ctx: 32768, parallel: 1, flashAttn: 'off', cacheTypeK: 'q8_0' }, 849.07],
  ['llama-4-scout', 'Q4_K_M', { ctx: 32768, parallel: 4, flashAttn: 'on', ubatch: 2048, cacheTypeK: 'q8_0', cacheTypeV: 'q8_0' }, 1802.75],
  ['llama-4-scout', 'Q4_K_M', { ctx: 32768, parallel: 1, flashAttn: 'off', ubatch: 2048 }, 10808.44],
];

describe('compute buffer of the real graphs (CPU)', () => {
  const replicas = new Replicas();
  afterAll(() => replicas.cleanup());

  it.each(MEASURED)('%s %s %j -> %d MiB (llama-fit-params)', async (id, quant, settings, mib) => {
    const m = await replicas.info(id, quant);
    const e = estimateMemory(m, { ...settings, outputs: 'batch' }, CPU_ONLY);
    expect(Math.abs(e.host.computeBytes / MiB - mib)).toBeLessThan(0.01);
  });

  it('reserves one logit row per slot for llama-server (measured 39.51 MiB at -c 4096 -np 1)', async () => {
    const m = await replicas.info('qwen2.5-0.5b', 'Q8_0');
    const e = estimateMemory(m, { ctx: 4096, parallel: 1 }, CPU_ONLY);
    expect(Math.abs(e.host.computeBytes / MiB - 39.51)).toBeLessThan(0.01);
    // llama-fit-params reserves n_ubatch x n_vocab logits instead: 300.25 MiB
    const batch = estimateMemory(m, { ctx: 4096, parallel: 1, outputs: 'batch' }, CPU_ONLY);
    expect(Math.abs(batch.host.computeBytes / MiB - 300.25)).toBeLessThan(0.01);
  });

  it('costs GPU memory for CPU weights through op offload, even at -ngl 0', async () => {
    const m = await replicas.info('llama-3-8b', 'Q4_K_M');
    const gpus = { devices: [{ name: 'CUDA0', kind: 'cuda' as const }] };
    const none = estimateMemory(m, { ctx: 4096, parallel: 1, outputs: 'batch' }, { ...gpus, ngl: 0 });
    const output = m.tensorByName.get('output.weight')!;
    // the logits matmul runs on the GPU with a copy of output.weight in its compute buffer
    expect(none.devices[0]!.modelBytes).toBe(0);
    expect(none.devices[0]!.computeBytes).toBeGreaterThan(output.bytes);
    const off = estimateMemory(m, { ctx: 4096, parallel: 1, outputs: 'batch' }, { ...gpus, ngl: 0, opOffload: false });
    expect(off.devices[0]!.computeBytes).toBe(0);
    expect(off.host.computeBytes).toBe(estimateMemory(m, { ctx: 4096, parallel: 1, outputs: 'batch' }, CPU_ONLY).host.computeBytes);
  });

  it('needs more GPU compute at partial offload than at full offload, and the same for any GPU layer count', async () => {
    const m = await replicas.info('llama-3-8b', 'Q4_K_M');
    const gpus = { devices: [{ name: 'CUDA0', kind: 'cuda' as const }] };
    const s: EstimateSettings = { ctx: 8192, parallel: 1 };
    const full = estimateMemory(m, s, gpus).devices[0]!.computeBytes;
    const partial = [8, 16, 24].map((ngl) => estimateMemory(m, s, { ...gpus, ngl }).devices[0]!.computeBytes);
    for (const p of partial) expect(p).toBeGreaterThan(full);
    expect(new Set(partial).size).toBe(1);
  });

  it('falls back to a coarse bound, with a caveat, for tensors the llama graph cannot use', () => {
    const header = fakeHeader({ arch: 'unknownarch', layers: 4, embd: 512, heads: 8, headsKv: 2, vocab: 1000 });
    const m = modelInfo({ ...header, tensors: header.tensors.filter((t) => !t.name.includes('ffn_up')) });
    const e = estimateMemory(m, { ctx: 1024, parallel: 1 }, { devices: [{ name: 'g', kind: 'cuda' }] });
    expect(e.devices[0]!.computeBytes).toBeGreaterThan(0);
    expect(e.caveats.join(' ')).toMatch(/coarse bound/);
    // a generic architecture with llama-shaped tensors is simulated
    expect(estimateMemory(fakeModel({ arch: 'unknownarch', layers: 2, embd: 256, heads: 4, headsKv: 4 }), { ctx: 512 }, CPU_ONLY).caveats.join(' ')).not.toMatch(/coarse/);
  });

  it('estimates in milliseconds (timing proper: npm run bench:estimate)', async () => {
    const m = await replicas.info('qwen3-30b-a3b', 'Q4_K_M');
    const run = (): number => {
      const t0 = performance.now();
      estimateMemory(m, { ctx: 32768 }, { devices: [{ name: 'a', kind: 'cuda' }, { name: 'b', kind: 'cuda' }], ngl: 30 });
      return performance.now() - t0;
    };
    for (let i = 0; i < 5; i++) run(); // JIT warm-up
    const times = Array.from({ length: 15 }, run).sort((a, b) => a - b);
    // ~2 ms on an idle machine; the bound only catches a pathological regression on a loaded one
    expect(times[7]).toBeLessThan(100);
  });
});
