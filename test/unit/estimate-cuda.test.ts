/**
 * The CUDA side of the estimate: which models get flash attention on a GPU under `-fa auto`, the overhead beyond
 * llama.cpp's buffers (runtime, cuBLAS, pool), and the whole estimate against footprints measured on an H200
 * (test/fixtures/gpu-h200-footprints.json, from scripts/gpu-check.sh).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  CPU_ONLY, CUBLAS_BYTES, cudaFlashAttnSupported, DEFAULT_RUNTIME_BYTES, estimateMemory, gpuOverhead, modelInfo, POOL_BASE_BYTES, poolBytes,
  type ModelInfo, type Placement,
} from '../../src/estimate/index.js';
import { GGML_TYPES, readGgufHeaderSync, type PresetId, type ReplicaQuant } from '../../src/gguf/index.js';
import { ensureDemoModel } from '../../src/models/demo.js';
import { estimateSettings } from '../../src/placement/model-settings.js';
import { fakeModel, Replicas } from './estimate-fixtures.js';

const MiB = 1024 * 1024;
const GPU: Placement = { devices: [{ name: 'CUDA0', kind: 'cuda' }] };
const shape = (k: number, v: number, heads: number, kvHeads: number) => ({ nEmbdHeadK: k, nEmbdHeadV: v, nHead: [heads, heads], nHeadKv: [kvHeads, kvHeads] });
const { F16, Q8_0, Q4_1, BF16 } = GGML_TYPES;

describe('flash attention on CUDA (-fa auto)', () => {
  it('has kernels for the usual head sizes with equal K and V, and not for others', () => {
    for (const d of [64, 80, 96, 128, 256]) expect(cudaFlashAttnSupported(shape(d, d, 32, 8), F16, F16), `head ${d}`).toBe(true);
    for (const d of [16, 32, 48, 160]) expect(cudaFlashAttnSupported(shape(d, d, 32, 8), F16, F16), `head ${d}`).toBe(false);
    expect(cudaFlashAttnSupported(shape(128, 64, 32, 8), F16, F16)).toBe(false);
  });

  it('needs the same supported type for K and V', () => {
    expect(cudaFlashAttnSupported(shape(128, 128, 32, 8), Q8_0, Q8_0)).toBe(true);
    expect(cudaFlashAttnSupported(shape(128, 128, 32, 8), BF16, BF16)).toBe(true);
    expect(cudaFlashAttnSupported(shape(128, 128, 32, 8), Q8_0, F16)).toBe(false);
    expect(cudaFlashAttnSupported(shape(128, 128, 32, 8), Q4_1, Q4_1)).toBe(false);
  });

  it('takes the MLA shapes only with enough query heads per KV head', () => {
    expect(cudaFlashAttnSupported(shape(576, 512, 16, 1), F16, F16)).toBe(true);
    expect(cudaFlashAttnSupported(shape(576, 512, 16, 16), F16, F16)).toBe(false);
    expect(cudaFlashAttnSupported(shape(192, 128, 16, 2), F16, F16)).toBe(true);
    expect(cudaFlashAttnSupported(shape(192, 128, 16, 4), F16, F16)).toBe(false);
  });

  it('turns flash attention off for the whole model once a layer is on a GPU without a kernel', () => {
    const m = fakeModel({ layers: 2, embd: 128, heads: 4, headsKv: 4, vocab: 300, weightType: 'Q8_0' }); // head size 32
    expect(estimateMemory(m, { ctx: 1024, parallel: 1 }, CPU_ONLY).flashAttn).toBe(true);
    expect(estimateMemory(m, { ctx: 1024, parallel: 1 }, { ...GPU, ngl: 0 }).flashAttn).toBe(true);
    const onGpu = estimateMemory(m, { ctx: 1024, parallel: 1 }, GPU);
    expect(onGpu.flashAttn).toBe(false);
    expect(estimateMemory(m, { ctx: 1024, parallel: 1, flashAttn: 'on' }, GPU).flashAttn).toBe(true);
    // the non-flash graph materialises KQ: a bigger compute buffer
    expect(onGpu.devices[0]!.computeBytes).toBeGreaterThan(estimateMemory(m, { ctx: 1024, parallel: 1, flashAttn: 'on' }, GPU).devices[0]!.computeBytes);
  });
});

describe('GPU overhead', () => {
  const quantized = fakeModel({ layers: 2, embd: 512, heads: 4, headsKv: 4, vocab: 1000, weightType: 'Q8_0' });
  const f16 = fakeModel({ layers: 2, embd: 512, heads: 4, headsKv: 4, vocab: 1000, weightType: 'F16' });
  const overhead = (m: ModelInfo, placement: Placement = GPU, fa: 'auto' | 'off' = 'auto', ubatch = 512) =>
    estimateMemory(m, { ctx: 4096, parallel: 1, flashAttn: fa, ubatch }, placement).devices[0]!.overheadBytes;

  // MMQ's quantized activations: a micro-batch of the widest input (ff = 4 x 512) at 36 bytes per 32 values
  const mmq = (ubatch: number) => (ubatch * 2048 * 36) / 32;

  it('is the runtime and the pool for a quantized model with flash attention', () => {
    expect(overhead(quantized)).toBe(DEFAULT_RUNTIME_BYTES.cuda + POOL_BASE_BYTES + mmq(512));
    expect(estimateMemory(quantized, { ctx: 4096, parallel: 1 }, GPU).cublas).toBe(false);
  });

  it('adds cuBLAS for float weight matrices, and for attention without flash attention', () => {
    expect(overhead(f16) - overhead(quantized)).toBe(CUBLAS_BYTES);
    expect(estimateMemory(f16, { ctx: 4096, parallel: 1 }, GPU).cublas).toBe(true);
    // without flash attention the pool also holds softmax(KQ) as F16: 4096 cells x 512 tokens x 4 heads x 2 bytes
    expect(overhead(quantized, GPU, 'off') - overhead(quantized)).toBe(CUBLAS_BYTES + 4096 * 512 * 4 * 2 - mmq(512));
  });

  it('grows the pool with the micro-batch', () => {
    expect(overhead(quantized, GPU, 'auto', 2048) - overhead(quantized)).toBe(mmq(2048) - mmq(512));
    expect(poolBytes({ nUbatch: 512, maxRowWidth: 14336, flashAttn: true, nKv: 4096, nHead: 32 })).toBe(POOL_BASE_BYTES + 512 * 14336 * 1.125);
  });

  it('takes a measured runtime in place of the default, and a fixed overhead as it is', () => {
    const measured = 180 * MiB;
    expect(overhead(quantized, { devices: [{ name: 'CUDA0', kind: 'cuda', runtimeBytes: measured }] })).toBe(measured + POOL_BASE_BYTES + mmq(512));
    expect(overhead(f16, { devices: [{ name: 'CUDA0', kind: 'cuda', overheadBytes: 300 * MiB, runtimeBytes: measured }] })).toBe(300 * MiB);
    expect(gpuOverhead({ kind: 'cuda', usesCublas: true, poolBytes: 20 * MiB, runtimeBytes: measured })).toEqual({
      runtimeBytes: measured, cublasBytes: CUBLAS_BYTES, poolBytes: 20 * MiB, totalBytes: measured + CUBLAS_BYTES + 20 * MiB,
    });
  });

  it('charges each GPU of a split its own overhead', () => {
    const two = estimateMemory(quantized, { ctx: 4096, parallel: 1 }, { devices: [{ name: 'CUDA0', kind: 'cuda' }, { name: 'CUDA1', kind: 'cuda' }] });
    expect(two.devices.map((d) => d.overheadBytes)).toEqual([overhead(quantized), overhead(quantized)]);
  });
});

interface MeasuredRow {
  model: string;
  preset?: PresetId;
  quant?: ReplicaQuant;
  demo?: boolean;
  ctx: number;
  args?: string[];
  parallel?: number;
  loggedGpuMiB: number;
  processMiBAtReady: number;
  processMiBAfterPrompt: number;
}

describe('the estimate against footprints measured on an H200', () => {
  const { rows } = JSON.parse(readFileSync('test/fixtures/gpu-h200-footprints.json', 'utf8')) as { rows: MeasuredRow[] };
  const replicas = new Replicas();
  const demoDir = mkdtempSync(join(tmpdir(), 'estimate-demo-'));
  afterAll(() => {
    replicas.cleanup();
    rmSync(demoDir, { recursive: true, force: true });
  });
  const info = async (r: MeasuredRow): Promise<ModelInfo> => (r.demo ? modelInfo(readGgufHeaderSync(await ensureDemoModel(demoDir))) : replicas.info(r.preset!, r.quant!));

  it.each(rows.map((r) => [r.model, r] as const))('%s: the buffers as logged, the total within 5 % and not under', async (_name, r) => {
    const e = estimateMemory(await info(r), estimateSettings(r.ctx, r.parallel ?? 1, r.args ?? []), GPU).devices[0]!;
    const buffers = (e.modelBytes + e.contextBytes + e.computeBytes) / MiB;
    expect(Math.abs(buffers - r.loggedGpuMiB)).toBeLessThan(0.5);
    const total = e.totalBytes / MiB;
    expect(total).toBeGreaterThanOrEqual(r.processMiBAfterPrompt);
    expect((total - r.processMiBAfterPrompt) / r.processMiBAfterPrompt).toBeLessThan(0.05);
  });

  it('stays above every footprint with the runtime learned the way the proxy learns it', async () => {
    // PlacementService.observeFootprint: at ready, from instances that do not load cuBLAS, the smallest reading
    let learned = Infinity;
    for (const r of rows) {
      const e = estimateMemory(await info(r), estimateSettings(r.ctx, r.parallel ?? 1, r.args ?? []), GPU);
      if (!e.cublas) learned = Math.min(learned, r.processMiBAtReady - r.loggedGpuMiB);
    }
    expect(learned).toBeCloseTo(587.4, 1);
    const learnedGpu: Placement = { devices: [{ name: 'CUDA0', kind: 'cuda', runtimeBytes: learned * MiB }] };
    for (const r of rows) {
      const total = estimateMemory(await info(r), estimateSettings(r.ctx, r.parallel ?? 1, r.args ?? []), learnedGpu).devices[0]!.totalBytes / MiB;
      expect(total, r.model).toBeGreaterThanOrEqual(r.processMiBAfterPrompt);
      expect((total - r.processMiBAfterPrompt) / r.processMiBAfterPrompt, r.model).toBeLessThan(0.05);
    }
  });
});
