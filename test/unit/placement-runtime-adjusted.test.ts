import { describe, expect, it } from 'vitest';
import { modelInfo } from '../../src/estimate/index.js';
import { readGgufHeaderSync, writeTinyModel } from '../../src/gguf/index.js';
import { estimatorCost, runtimeAdjusted } from '../../src/placement/service.js';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const MIB = 1024 * 1024;

describe('runtimeAdjusted', () => {
  it("equals the estimate made with that runtime, for single GPUs, splits and partial offload (the runtime is a fixed per-GPU term)", async () => {
    const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'lsp-rt-')), 'm.gguf');
    await writeTinyModel(file, { seed: 5, layers: 4 });
    const info = modelInfo(readGgufHeaderSync(file));
    const settings = { ctx: 2048, parallel: 1 };
    const base = estimatorCost(info, settings);
    for (const runtime of [120 * MIB, 300 * MIB, 700 * MIB]) {
      const direct = estimatorCost(info, settings, { runtimeBytes: runtime });
      const adjusted = runtimeAdjusted(base, runtime);
      for (const c of [{ gpus: [0], ngl: 'full' as const }, { gpus: [0, 1], ngl: 'full' as const, tensorSplit: [1, 2] }, { gpus: [0], ngl: 2 }]) {
        expect(adjusted(c)).toEqual(direct(c));
      }
    }
    expect(runtimeAdjusted(base, null)).toBe(base);
  });
});
