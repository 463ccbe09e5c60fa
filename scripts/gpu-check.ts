/**
 * The GPU check (scripts/gpu-check.sh runs it on a machine with an NVIDIA GPU): the NVML source against the real
 * driver, then sparse replicas of three presets loaded on the GPU through the proxy, and for each the estimate
 * against the memory NVML measures for the instance's process. Prints a table and writes JSON to --out.
 *
 * node gpu-check.mjs --llama-server PATH [--source nvml|simulated] [--nvml-library LIB] [--out DIR] [--ctx 4096]
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { buildConfig } from '../src/config/index.js';
import { writeSparseReplica, type PresetId, type ReplicaQuant } from '../src/gguf/index.js';
import { openGpuSource } from '../src/gpu/index.js';
import { resolveModel } from '../src/models/index.js';
import { startProxy } from '../src/server.js';

const { values } = parseArgs({
  options: {
    'llama-server': { type: 'string' },
    source: { type: 'string', default: 'nvml' },
    'nvml-library': { type: 'string', default: 'libnvidia-ml.so.1' },
    out: { type: 'string', default: process.env.OUT ?? '.' },
    ctx: { type: 'string', default: '4096' },
  },
});
const MIB = 1024 * 1024;
const CASES: { alias: string; preset: PresetId; quant: ReplicaQuant }[] = [
  { alias: 'qwen2.5-0.5b-q8', preset: 'qwen2.5-0.5b', quant: 'Q8_0' },
  { alias: 'llama-3-8b-q4km', preset: 'llama-3-8b', quant: 'Q4_K_M' },
  { alias: 'gemma-2-9b-q4km', preset: 'gemma-2-9b', quant: 'Q4_K_M' },
];

async function main(): Promise<void> {
  const binary = values['llama-server'];
  if (!binary) throw new Error('--llama-server is required');
  const out = path.resolve(values.out!);
  mkdirSync(out, { recursive: true });
  const report: Record<string, unknown> = { startedAt: new Date().toISOString(), host: os.hostname() };

  // 1. The device source against the driver.
  const gpuSettings = { source: values.source as 'nvml' | 'simulated', nvmlLibrary: values['nvml-library']!, simulated: [{ name: 'simulated 80G', memoryMiB: 81920 }], forceSimulated: false };
  const source = await openGpuSource(gpuSettings);
  const devices = await source.read();
  source.close();
  report.devices = devices;
  console.log(`GPU source: ${source.description}`);
  for (const d of devices) {
    console.log(`  GPU ${d.index} ${d.name} ${d.uuid} bus ${d.pciBusId}: ${Math.round(d.totalBytes / MIB)} MiB total, ${Math.round(d.freeBytes / MIB)} MiB free, util ${d.utilizationGpu}%, ${d.temperatureC} C, ${d.powerW} W, cc ${d.computeCapability}, ${d.processes.length} processes`);
  }

  // 2. Replicas through the proxy.
  const root = mkdtempSync(path.join(os.tmpdir(), 'lsp-gpu-check-'));
  mkdirSync(path.join(root, 'models'));
  const models: Record<string, { path: string; ctx: number; args: string[] }> = {};
  for (const c of CASES) {
    const file = path.join(root, 'models', `${c.alias}.gguf`);
    await writeSparseReplica(file, c.preset, c.quant);
    // A dry run on a CPU build (simulated source) must not repack gigabytes of weights into RAM.
    models[c.alias] = { path: file, ctx: Number(values.ctx), args: ['--no-warmup', ...(values.source === 'simulated' ? ['--no-repack'] : [])] };
  }
  const config = buildConfig(
    {
      server: { port: 0 },
      pool: { size: CASES.length },
      llamaServer: { binary, startTimeout: 300 },
      gpu: { ...gpuSettings, reserveMiB: 256 },
      modelsDir: path.join(root, 'models'),
      cacheDir: path.join(root, 'cache'),
      models,
    },
    path.join(root, 'gpu-check.yaml'),
    { env: {} },
  );
  const proxy = await startProxy(config, { logger: pino({ level: 'warn' }) });
  const rows: Record<string, unknown>[] = [];
  try {
    for (const c of CASES) {
      // Loads run one at a time, so the drop in free memory is this instance's footprint too (a check on
      // NVML's per-process figure, which a PID namespace can hide).
      const freeBefore = await proxy.monitor.refresh();
      const t0 = Date.now();
      const info = await proxy.pool.load(resolveModel(config, c.alias));
      const loadMs = Date.now() - t0;
      const freeAfter = await proxy.monitor.refresh();
      const delta = freeBefore.reduce((sum, d) => sum + d.freeBytes, 0) - freeAfter.reduce((sum, d) => sum + d.freeBytes, 0);
      const estimate = [...info.estimatedGpuBytes.values()].reduce((a, b) => a + b, 0);
      const perProcess = [...info.actualGpuBytes.values()].reduce((a, b) => a + b, 0);
      const measured = perProcess > 0 ? perProcess : values.source === 'simulated' ? 0 : delta;
      const errorPct = measured > 0 ? ((estimate - measured) / measured) * 100 : null;
      const row = {
        model: c.alias,
        gpus: info.placement?.gpus.map((g) => g.index) ?? [],
        ngl: info.placement?.ngl ?? null,
        estimateMiB: Math.round(estimate / MIB),
        measuredMiB: Math.round(measured / MIB),
        measuredBy: perProcess > 0 ? 'nvml-process' : 'free-delta',
        freeDeltaMiB: Math.round(delta / MIB),
        errorPct: errorPct === null ? null : Math.round(errorPct * 10) / 10,
        loadMs,
        logTail: proxy.pool.instance(info.id)?.logs.last(60),
      };
      rows.push(row);
      console.log(`${c.alias.padEnd(18)} GPU ${String(row.gpus).padEnd(4)} ngl ${String(row.ngl).padEnd(4)} estimate ${String(row.estimateMiB).padStart(7)} MiB  measured ${String(row.measuredMiB).padStart(7)} MiB (${row.measuredBy})  error ${row.errorPct === null ? 'n/a' : `${row.errorPct} %`}  (load ${loadMs} ms)`);
    }
    const t1 = Date.now();
    await proxy.pool.unload();
    report.unloadMs = Date.now() - t1;
  } finally {
    await proxy.close();
  }
  report.rows = rows;
  const errors = rows.map((r) => r.errorPct as number | null).filter((e): e is number => e !== null);
  console.log(errors.length ? `\nworst |error| ${Math.max(...errors.map(Math.abs)).toFixed(1)} % over ${errors.length} models (goal: within 5 %)` : '\nno measurement (simulated source)');
  writeFileSync(path.join(out, 'gpu-check.json'), JSON.stringify(report, null, 2));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
