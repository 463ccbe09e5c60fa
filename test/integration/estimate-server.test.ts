/**
 * A real llama-server instance against the estimate: its memory log lines at -lv 4 (parsed by
 * src/llamacpp/memory-log.ts) must show exactly the estimated model, KV, compute and output
 * buffers. llama-server reserves logits for one token per slot, not for a whole micro-batch as
 * llama-fit-params does, so this checks the estimator's default ('slots') outputs.
 * The model is a sparse replica (zeros): it loads and reserves, and --no-warmup skips computing.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CPU_ONLY, estimateMemory, modelInfo, type EstimateSettings } from '../../src/estimate/index.js';
import { readGgufHeaderSync, writeSparseReplica } from '../../src/gguf/index.js';
import { settingsArgs } from '../../src/llamacpp/fit-params.js';
import { MemoryLogParser, type MemoryFootprint } from '../../src/llamacpp/memory-log.js';
import { llamaTools } from '../helpers/llama.js';
import { startLlamaServer } from '../helpers/llama-process.js';

const tools = llamaTools();
const server = tools.server;
const MiB = 1024 * 1024;

/** Starts llama-server, waits for /health, stops it (SIGTERM, for the breakdown table) and returns its footprint. */
async function footprint(model: string, settings: EstimateSettings): Promise<MemoryFootprint> {
  const parser = new MemoryLogParser();
  // --no-repack: this machine's AMX repack path crashes on quantized weights; --fit off: run what was asked
  const running = await startLlamaServer(server!, model, ['-t', '2', '-lv', '4', '--no-repack', '--no-warmup', '--fit', 'off', ...settingsArgs(settings)], {
    onLine: (line) => parser.feed(line),
    timeoutMs: 60_000,
  });
  await running.stop(10_000);
  return parser.footprint();
}

describe.skipIf(!server)(`llama-server memory log vs estimate${server ? '' : ` (skipped: ${tools.reason})`}`, () => {
  let dir: string;
  let model: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'estimate-server-'));
    model = join(dir, 'qwen2.5-0.5b-Q8_0.gguf');
    await writeSparseReplica(model, 'qwen2.5-0.5b', 'Q8_0');
  });
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const cases: [string, EstimateSettings][] = [
    ['-c 4096 -np 2', { ctx: 4096, parallel: 2 }],
    ['-c 8192 (4 unified slots), -fa off, q8_0 K, -ub 1024', { ctx: 8192, flashAttn: 'off', cacheTypeK: 'q8_0', ubatch: 1024 }],
  ];

  it.each(cases)('%s', async (_label, settings) => {
    const f = await footprint(model, settings);
    const e = estimateMemory(modelInfo(readGgufHeaderSync(model)), settings, CPU_ONLY);
    // the log prints MiB with 2 decimals
    const near = (bytes: number, logged: number): void => {
      expect(Math.abs(bytes - logged) / MiB).toBeLessThan(0.006);
    };
    near(e.host.modelBytes, f.host.modelBytes);
    near(e.host.contextBytes, f.host.contextBytes);
    near(e.host.computeBytes, f.host.computeBytes);
    near(e.host.overheadBytes, f.host.outputBytes);
    expect(f.devices.size).toBe(0);
    // the breakdown table printed at exit agrees (whole MiB, rounded down)
    const host = f.breakdown.find((r) => r.name === 'Host');
    expect(host).toBeDefined();
    expect(host!.computeMiB).toBe(Math.floor(e.host.computeBytes / MiB));
    expect(host!.contextMiB).toBe(Math.floor(e.host.contextBytes / MiB));
  }, 90_000);

  // Granite-4.0-H (Mamba2 hybrid): with one logit row per slot the compute buffer is the Mamba2 /
  // MoE layers' own (llama-server logged 55.01 MiB), and the context the KV of the 4 attention
  // layers plus the recurrent state of the 36 Mamba2 layers (RS buffer)
  it('granite-4.0-h-tiny Q4_K_M -c 4096 -np 1 (Mamba2 hybrid)', async () => {
    const granite = join(dir, 'granite-4.0-h-tiny-Q4_K_M.gguf');
    await writeSparseReplica(granite, 'granite-4.0-h-tiny', 'Q4_K_M');
    const settings: EstimateSettings = { ctx: 4096, parallel: 1, flashAttn: 'on' };
    const f = await footprint(granite, settings);
    const e = estimateMemory(modelInfo(readGgufHeaderSync(granite)), settings, CPU_ONLY);
    for (const [ours, logged] of [
      [e.host.modelBytes, f.host.modelBytes],
      [e.host.contextBytes, f.host.contextBytes],
      [e.host.computeBytes, f.host.computeBytes],
      [e.host.overheadBytes, f.host.outputBytes],
    ] as const) {
      expect(Math.abs(ours - logged) / MiB).toBeLessThan(0.006);
    }
  }, 90_000);
});
