/**
 * The acceptance matrix of issue 4: every sparse preset x context {4096, 32768} x KV {f16, q8_0}
 * x flash attention {on, off} x ubatch {512, 2048} x slots {1, 4}, estimated for the CPU and
 * compared with llama.cpp's own `llama-fit-params --fit-print on` (with -nr, so the Host line
 * holds all weights). Model, context and compute must each be within 3 % or 2 MiB, and the total
 * never more than 1 % under. Without flash attention V cannot be quantized, so "KV q8_0" then
 * means a q8_0 K with an f16 V. Replica quantizations rotate over the cases.
 *
 * Models with multi-head latent attention (DeepSeek-V2, key_length_mla) keep no V cache (V is a
 * view of K) and llama_init_from_model refuses a V type different from K's, while a q8_0 V needs
 * flash attention: their "KV q8_0 without flash attention" cases cannot run at all. There the
 * expectation is llama.cpp's: llama-fit-params fails, and the estimate throws an EstimateError.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path, { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CPU_ONLY, EstimateError, estimateMemory, modelInfo, type EstimateSettings, type ModelInfo } from '../../src/estimate/index.js';
import { PRESETS, PRESET_IDS, REPLICA_QUANTS, readGgufHeaderSync, readGgufModelHeaderSync, writeSparseReplica, type PresetId, type ReplicaQuant } from '../../src/gguf/index.js';
import { runFitPrint, type FitPrint } from '../../src/llamacpp/fit-params.js';
import { llamaTools } from '../helpers/llama.js';
import { GEMMA3_1B, QWEN3_06B, writeSplitReplica, writeSyntheticModel } from '../unit/estimate-gguf-writers.js';

const tools = llamaTools();
const fitParams = tools.fitParams;
const MiB = 1024 * 1024;
const CLI = ['--import', pathToFileURL(path.resolve('node_modules/tsx/dist/loader.mjs')).href, path.resolve('src/cli/main.ts')];

interface Case {
  readonly id: PresetId;
  readonly quant: ReplicaQuant;
  readonly settings: EstimateSettings;
  readonly label: string;
  /** llama.cpp refuses these settings for this model (see above). */
  readonly refused: boolean;
}

/** Presets with multi-head latent attention: no V cache, and K and V types must be equal. */
function isMla(id: PresetId): boolean {
  const s = PRESETS[id];
  return Object.keys({ ...s.archMetadata, ...s.archMetadataAfterFileType }).some((k) => k.endsWith('.attention.key_length_mla'));
}

const cases: Case[] = [];
for (const id of PRESET_IDS) {
  for (const ctx of [4096, 32768]) {
    for (const kv of ['f16', 'q8_0'] as const) {
      for (const fa of ['on', 'off'] as const) {
        for (const ubatch of [512, 2048]) {
          for (const parallel of [1, 4]) {
            const quant = REPLICA_QUANTS[cases.length % REPLICA_QUANTS.length]!;
            const settings: EstimateSettings = {
              ctx, parallel, ubatch, flashAttn: fa, cacheTypeK: kv, cacheTypeV: fa === 'on' ? kv : 'f16', outputs: 'batch',
            };
            const refused = isMla(id) && settings.cacheTypeK !== settings.cacheTypeV;
            cases.push({ id, quant, settings, refused, label: `${id} ${quant} -c ${ctx} -ctk ${kv} -fa ${fa} -ub ${ubatch} -np ${parallel}` });
          }
        }
      }
    }
  }
}

/** Runs `fn` over `items` with at most `limit` in flight. */
async function pool<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

const within = (ours: number, truth: number): boolean => Math.abs(ours - truth) <= Math.max(0.03 * truth, 2);

describe.skipIf(!fitParams)(`estimate vs llama-fit-params${fitParams ? '' : ` (skipped: ${tools.reason || 'llama-fit-params not found'})`}`, () => {
  let dir: string;
  const infos = new Map<string, ModelInfo>();
  const results = new Map<string, FitPrint | 'refused'>();
  const file = (id: PresetId, quant: ReplicaQuant): string => join(dir, `${id}-${quant}.gguf`);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'estimate-matrix-'));
    for (const id of PRESET_IDS) {
      for (const quant of REPLICA_QUANTS) {
        await writeSparseReplica(file(id, quant), id, quant);
        infos.set(`${id}-${quant}`, modelInfo(readGgufHeaderSync(file(id, quant))));
      }
    }
    const prints = await pool(cases, 2, (c) =>
      c.refused
        // llama.cpp aborts on the refusal: no retry
        ? runFitPrint({ binary: fitParams!, model: file(c.id, c.quant), settings: c.settings, attempts: 1 }).catch(() => 'refused' as const)
        : runFitPrint({ binary: fitParams!, model: file(c.id, c.quant), settings: c.settings }));
    cases.forEach((c, i) => results.set(c.label, prints[i]!));
  }, 300_000);
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it.each(cases.map((c) => [c.label, c] as const))('%s', (_label, c) => {
    const result = results.get(c.label)!;
    if (c.refused) {
      expect(result).toBe('refused');
      expect(() => estimateMemory(infos.get(`${c.id}-${c.quant}`)!, c.settings, CPU_ONLY)).toThrow(EstimateError);
      return;
    }
    if (result === 'refused') throw new Error('llama-fit-params refused the settings');
    const truth = result.host;
    const e = estimateMemory(infos.get(`${c.id}-${c.quant}`)!, c.settings, CPU_ONLY);
    const ours = { model: e.host.modelBytes / MiB, context: e.host.contextBytes / MiB, compute: e.host.computeBytes / MiB };
    const detail = JSON.stringify({ ours, truth });
    expect(within(ours.model, truth.modelMiB), detail).toBe(true);
    expect(within(ours.context, truth.contextMiB), detail).toBe(true);
    expect(within(ours.compute, truth.computeMiB), detail).toBe(true);
    const total = ours.model + ours.context + ours.compute;
    expect(total, detail).toBeGreaterThanOrEqual(0.99 * (truth.modelMiB + truth.contextMiB + truth.computeMiB));
  });

  it('matches llama.cpp to the MiB (it prints whole MiB, rounded down)', () => {
    const worst = { model: 0, context: 0, compute: 0 };
    let exact = 0;
    const runnable = cases.filter((c) => !c.refused);
    for (const c of runnable) {
      const result = results.get(c.label)!;
      if (result === 'refused') continue;
      const truth = result.host;
      const e = estimateMemory(infos.get(`${c.id}-${c.quant}`)!, c.settings, CPU_ONLY);
      const floors = [e.host.modelBytes, e.host.contextBytes, e.host.computeBytes].map((b) => Math.floor(b / MiB));
      if (floors[0] === truth.modelMiB && floors[1] === truth.contextMiB && floors[2] === truth.computeMiB) exact++;
      const rel = (ours: number, t: number): number => (t === 0 ? 0 : Math.abs(ours / MiB - t) / t);
      worst.model = Math.max(worst.model, rel(e.host.modelBytes, truth.modelMiB));
      worst.context = Math.max(worst.context, rel(e.host.contextBytes, truth.contextMiB));
      worst.compute = Math.max(worst.compute, rel(e.host.computeBytes, truth.computeMiB));
    }
    process.stdout.write(`${exact}/${runnable.length} cases equal to the MiB (${cases.length - runnable.length} refused by llama.cpp and the estimate alike); worst relative difference to the rounded-down figures: ${JSON.stringify(worst)}\n`);
    expect(exact).toBe(runnable.length);
  });

  // Architectures without a preset: dense Qwen3 (q/k norms) and Gemma 3 (SWA 5 of 6 layers, one KV head)
  it.each([
    ['qwen3', QWEN3_06B],
    ['gemma3', GEMMA3_1B],
  ] as const)('%s (synthetic) matches in 4 settings', async (name, model) => {
    const f = join(dir, `synthetic-${name}.gguf`);
    await writeSyntheticModel(f, model);
    const info = modelInfo(readGgufHeaderSync(f));
    const settings: EstimateSettings[] = [
      { ctx: 4096, parallel: 1, flashAttn: 'on' },
      { ctx: 32768, parallel: 4, flashAttn: 'off', ubatch: 2048, cacheTypeK: 'q8_0' },
      { ctx: 32768, parallel: 4, flashAttn: 'on', cacheTypeK: 'q8_0', cacheTypeV: 'q8_0' },
      { ctx: 8192, parallel: 2, flashAttn: 'off', ubatch: 256 },
    ];
    for (const s of settings) {
      const truth = (await runFitPrint({ binary: fitParams!, model: f, settings: { ...s, outputs: 'batch' } })).host;
      const e = estimateMemory(info, { ...s, outputs: 'batch' }, CPU_ONLY).host;
      const floors = [e.modelBytes, e.contextBytes, e.computeBytes].map((b) => Math.floor(b / MiB));
      expect(floors, JSON.stringify(s)).toEqual([truth.modelMiB, truth.contextMiB, truth.computeMiB]);
    }
  });

  it('estimates a split model like llama.cpp loads it', async () => {
    const parts = await writeSplitReplica(join(dir, 'split-mistral'), 'mistral-7b', 'Q4_K_M', 3);
    const settings: EstimateSettings = { ctx: 8192, parallel: 1, outputs: 'batch' };
    const truth = await runFitPrint({ binary: fitParams!, model: parts[0]!, settings });
    const e = estimateMemory(modelInfo(readGgufModelHeaderSync(parts[0]!)), settings, CPU_ONLY);
    expect(Math.floor(e.host.modelBytes / MiB)).toBe(truth.host.modelMiB);
    expect(Math.floor(e.host.contextBytes / MiB)).toBe(truth.host.contextMiB);
    expect(Math.floor(e.host.computeBytes / MiB)).toBe(truth.host.computeMiB);
  });

  it('`estimate --gpus none --json` and `--verify` agree with llama-fit-params', async () => {
    const model = file('qwen3-30b-a3b', 'Q4_K_M');
    const settings: EstimateSettings = { ctx: 32768, parallel: 4, cacheTypeK: 'q8_0', cacheTypeV: 'q8_0', flashAttn: 'on', ubatch: 2048, outputs: 'batch' };
    const args = ['estimate', model, '--ctx', '32768', '--parallel', '4', '--cache-type-k', 'q8_0', '--cache-type-v', 'q8_0', '--flash-attn', 'on', '--ubatch', '2048', '--outputs', 'batch', '--gpus', 'none'];
    const json = spawnSync(process.execPath, [...CLI, ...args, '--json'], { encoding: 'utf8' });
    expect(json.status, json.stderr).toBe(0);
    const out = JSON.parse(json.stdout) as { host: { modelMiB: number; contextMiB: number; computeMiB: number }; devices: unknown[]; totalMiB: number };
    const truth = await runFitPrint({ binary: fitParams!, model, settings });
    expect(out.devices).toEqual([]);
    expect(Math.floor(out.host.modelMiB)).toBe(truth.host.modelMiB);
    expect(Math.floor(out.host.contextMiB)).toBe(truth.host.contextMiB);
    expect(Math.floor(out.host.computeMiB)).toBe(truth.host.computeMiB);
    expect(out.totalMiB).toBeGreaterThanOrEqual(truth.host.modelMiB + truth.host.contextMiB + truth.host.computeMiB);

    const verify = spawnSync(process.execPath, [...CLI, ...args, '--verify', '--fit-params', fitParams!], { encoding: 'utf8' });
    expect(verify.status, verify.stderr).toBe(0);
    expect(verify.stdout).toMatch(/verify against llama-fit-params/);
    for (const part of ['model', 'context', 'compute']) expect(verify.stdout).toMatch(new RegExp(`Host\\s+${part}\\s+[\\d.]+\\s+\\d+\\s+0\\.0%`));
  });
});
