/** Learning the CUDA runtime's memory from the proxy's own instances, and the placements that use it. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildConfig } from '../../src/config/index.js';
import { writeSparseReplica } from '../../src/gguf/index.js';
import { GpuMonitor, SimulatedSource } from '../../src/gpu/index.js';
import { resolveModel } from '../../src/models/index.js';
import { RuntimeOverhead } from '../../src/placement/runtime-overhead.js';
import { PlacementService, type PlaceDecision } from '../../src/placement/service.js';

const MiB = 1024 * 1024;

describe('RuntimeOverhead', () => {
  it('keeps the smallest plausible figure per GPU and reports the largest over GPUs', () => {
    const r = new RuntimeOverhead();
    expect(r.bytes()).toBeUndefined();
    expect(r.observe('GPU-a', 1174 * MiB, 586 * MiB)).toBe(true);
    expect(r.bytes()).toBe(588 * MiB);
    // an instance that loaded cuBLAS while warming up reads higher: not learned
    expect(r.observe('GPU-a', 698 * MiB, 14 * MiB)).toBe(false);
    expect(r.observe('GPU-a', 5616 * MiB, 5030 * MiB)).toBe(true);
    expect(r.bytes()).toBe(586 * MiB);
    expect(r.observe('GPU-b', 700 * MiB, 100 * MiB)).toBe(true);
    expect(r.bytes()).toBe(600 * MiB);
    expect(Object.fromEntries(r.byGpu())).toEqual({ 'GPU-a': 586 * MiB, 'GPU-b': 600 * MiB });
  });

  it('ignores readings that cannot be a CUDA context', () => {
    const r = new RuntimeOverhead();
    expect(r.observe('GPU-a', 500 * MiB, 490 * MiB)).toBe(false); // 10 MiB
    expect(r.observe('GPU-a', 9000 * MiB, 100 * MiB)).toBe(false); // 8.7 GiB
    expect(r.observe('GPU-a', 600 * MiB, 0)).toBe(false); // nothing logged
    expect(r.bytes()).toBeUndefined();
  });
});

describe('PlacementService with a learned runtime', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'lsp-runtime-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  async function service(overheadMiB?: number, quant: 'Q8_0' | 'F16' = 'Q8_0') {
    const file = path.join(dir, `qwen-${quant}.gguf`);
    await writeSparseReplica(file, 'qwen2.5-0.5b', quant);
    const config = buildConfig(
      { modelsDir: dir, cacheDir: path.join(dir, 'cache'), gpu: { source: 'simulated', simulated: [{ name: 'sim', memoryMiB: 24576 }], ...(overheadMiB !== undefined ? { overheadMiB } : {}) }, models: { qwen: { path: file, ctx: 4096 } } },
      path.join(dir, 'c.yaml'),
      { env: {} },
    );
    const monitor = new GpuMonitor(new SimulatedSource(config.gpu.simulated), 0);
    await monitor.start();
    const placer = new PlacementService(monitor, config.gpu);
    const model = resolveModel(config, 'qwen');
    const decide = async (): Promise<Extract<PlaceDecision, { kind: 'place' }>['placement']> => {
      const d = await placer.decide(model, () => ({ running: [], loading: new Map() }));
      if (d.kind !== 'place') throw new Error(`expected a placement, got ${d.kind}`);
      return d.placement;
    };
    return { placer, decide, model };
  }

  it('estimates the next placements with the runtime measured on the GPU', async () => {
    const { placer, decide, model } = await service();
    const first = await decide();
    expect(first.gpus.map((g) => g.index)).toEqual([0]);
    const logged = new Map([[0, 587 * MiB]]);
    placer.observeFootprint(model, first, new Map([[0, 587 * MiB + 150 * MiB]]), logged);
    const second = await decide();
    // the default runtime (592 MiB) gave way to the 150 MiB measured
    expect((first.estimate.gpuBytes[0]! - second.estimate.gpuBytes[0]!) / MiB).toBeCloseTo(592 - 150, 6);
  });

  it('learns nothing from a model that loads cuBLAS (its reading is not the runtime alone)', async () => {
    const { placer, decide, model } = await service(undefined, 'F16');
    const first = await decide();
    placer.observeFootprint(model, first, new Map([[0, 1200 * MiB]]), new Map([[0, 1028 * MiB]]));
    expect(placer.runtime.bytes()).toBeUndefined();
    expect((await decide()).estimate.gpuBytes[0]).toBe(first.estimate.gpuBytes[0]);
  });

  it('keeps a fixed gpu.overheadMiB whatever it measures', async () => {
    const { placer, decide, model } = await service(400);
    const first = await decide();
    placer.observeFootprint(model, first, new Map([[0, 737 * MiB]]), new Map([[0, 587 * MiB]]));
    expect((await decide()).estimate.gpuBytes[0]).toBe(first.estimate.gpuBytes[0]);
  });
});
