/**
 * The GPU check (scripts/gpu-check.sh runs it on a machine with an NVIDIA GPU). Two phases:
 *
 *   --phase sources: the NVML source against the real driver, beside nvidia-smi's CSV, `auto`'s choice, and the
 *     refusal of simulated GPUs on a machine with real ones. Needs no llama.cpp build (runs while it builds).
 *   --phase loads: models loaded on the GPU through the proxy, one at a time. For each: our estimate (weights,
 *     KV, compute, overhead), llama-fit-params' figures for the same settings on this GPU, the buffers the
 *     instance logged, its memory per NVML (per process) at ready and after a prompt of ~1500 tokens, the
 *     drop in free memory, nvidia-smi's figure, the memory breakdown it prints at exit, and how long the
 *     freed memory took to show up. Writes a JSON after every model, so a cut-short run still reports.
 *
 * node gpu-check.mjs --phase sources|loads [--llama-server PATH] [--fit-params PATH] [--source nvml|simulated]
 *   [--nvml-library LIB] [--out DIR] [--deadline EPOCH_S] [--only ALIAS,...] [--skip-scenarios]
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { buildConfig } from '../src/config/index.js';
import { estimateMemory, modelInfo, type EstimateSettings } from '../src/estimate/index.js';
import { readGgufHeaderSync, writeSparseReplica, type PresetId, type ReplicaQuant } from '../src/gguf/index.js';
import { openGpuSource, type GpuDevice, type GpuSourceSettings } from '../src/gpu/index.js';
import { fitSettings, runFitPrint } from '../src/llamacpp/fit-params.js';
import { parseMemoryLog } from '../src/llamacpp/memory-log.js';
import { ensureDemoModel } from '../src/models/demo.js';
import { resolveModel } from '../src/models/index.js';
import { estimateSettings } from '../src/placement/model-settings.js';
import { startProxy, type ProxyServer } from '../src/server.js';

const { values } = parseArgs({
  options: {
    phase: { type: 'string', default: 'loads' },
    'llama-server': { type: 'string' },
    'fit-params': { type: 'string' },
    source: { type: 'string', default: 'nvml' },
    'nvml-library': { type: 'string', default: 'libnvidia-ml.so.1' },
    out: { type: 'string', default: process.env.OUT ?? '.' },
    deadline: { type: 'string' },
    only: { type: 'string' },
    'skip-scenarios': { type: 'boolean', default: false },
  },
});
const MIB = 1024 * 1024;
const mib = (bytes: number): number => Math.round((bytes / MIB) * 10) / 10;
const simulated = values.source === 'simulated';
const out = path.resolve(values.out!);
mkdirSync(out, { recursive: true });
const deadline = values.deadline ? Number(values.deadline) * 1000 : Infinity;

interface Case {
  alias: string;
  /** A sparse replica, or the tiny real demo model (the bare per-process overhead). */
  preset?: PresetId;
  quant?: ReplicaQuant;
  ctx: number;
  /** Extra llama-server arguments, and slots (-np), when not the defaults. */
  args?: string[];
  parallel?: number;
  /** Seconds it needs at most, to skip it when the deadline is near. */
  budgetS: number;
}
// Most telling first: a cut-short run still has the three presets at 4k.
const CASES: Case[] = [
  { alias: 'tiny', ctx: 2048, budgetS: 15 },
  { alias: 'qwen2.5-0.5b-q8', preset: 'qwen2.5-0.5b', quant: 'Q8_0', ctx: 4096, budgetS: 20 },
  { alias: 'llama-3-8b-q4km', preset: 'llama-3-8b', quant: 'Q4_K_M', ctx: 4096, budgetS: 30 },
  { alias: 'gemma-2-9b-q4km', preset: 'gemma-2-9b', quant: 'Q4_K_M', ctx: 4096, budgetS: 30 },
  { alias: 'llama-3-8b-q4km-32k', preset: 'llama-3-8b', quant: 'Q4_K_M', ctx: 32768, budgetS: 30 },
  { alias: 'gemma-2-9b-q4km-32k', preset: 'gemma-2-9b', quant: 'Q4_K_M', ctx: 32768, budgetS: 30 },
  { alias: 'qwen2.5-0.5b-q8-32k', preset: 'qwen2.5-0.5b', quant: 'Q8_0', ctx: 32768, budgetS: 20 },
  { alias: 'qwen3-30b-a3b-q4km', preset: 'qwen3-30b-a3b', quant: 'Q4_K_M', ctx: 4096, budgetS: 45 },
  { alias: 'mixtral-8x7b-q4km', preset: 'mixtral-8x7b', quant: 'Q4_K_M', ctx: 4096, budgetS: 60 },
  // not measured on a GPU yet: attention sinks and the biased MoE on CUDA
  { alias: 'gpt-oss-20b-q4km', preset: 'gpt-oss-20b', quant: 'Q4_K_M', ctx: 8192, budgetS: 45 },
  // settings that change the overhead or the graph (run with --only)
  { alias: 'qwen2.5-0.5b-f16', preset: 'qwen2.5-0.5b', quant: 'F16', ctx: 4096, budgetS: 20 },
  { alias: 'llama-3-8b-q4km-ub2048', preset: 'llama-3-8b', quant: 'Q4_K_M', ctx: 4096, args: ['-ub', '2048', '-b', '2048'], budgetS: 30 },
  { alias: 'llama-3-8b-q4km-faoff', preset: 'llama-3-8b', quant: 'Q4_K_M', ctx: 4096, args: ['-fa', 'off'], budgetS: 30 },
  { alias: 'llama-3-8b-q4km-kvq8', preset: 'llama-3-8b', quant: 'Q4_K_M', ctx: 8192, args: ['-ctk', 'q8_0', '-ctv', 'q8_0'], budgetS: 30 },
  { alias: 'llama-3-8b-q4km-np4', preset: 'llama-3-8b', quant: 'Q4_K_M', ctx: 16384, parallel: 4, budgetS: 30 },
];

function gpuSettings(source: GpuSourceSettings['source']): GpuSourceSettings {
  return { source, nvmlLibrary: values['nvml-library']!, simulated: [{ name: 'simulated 80G', memoryMiB: 81920 }], forceSimulated: simulated };
}

function describe(d: GpuDevice): string {
  return `GPU ${d.index} ${d.name} ${d.uuid} bus ${d.pciBusId}: ${mib(d.totalBytes)} MiB total, ${mib(d.usedBytes)} used, ${mib(d.freeBytes)} free, util ${d.utilizationGpu}%/${d.utilizationMemory}%, ${d.temperatureC} C, ${d.powerW} W, cc ${d.computeCapability}, processes ${JSON.stringify(d.processes.map((p) => [p.pid, mib(p.usedBytes)]))}`;
}

/** What nvidia-smi says each compute process holds (MiB), or an error line. */
function smiProcesses(): Record<string, number> | string {
  if (simulated) return 'simulated';
  try {
    const csv = execFileSync('nvidia-smi', ['--query-compute-apps=pid,used_memory', '--format=csv,noheader,nounits'], { encoding: 'utf8', timeout: 10_000 });
    const rows: Record<string, number> = {};
    for (const line of csv.trim().split('\n').filter(Boolean)) {
      const [pid, used] = line.split(',').map((s) => s.trim());
      rows[pid!] = Number(used);
    }
    return rows;
  } catch (err) {
    return `nvidia-smi failed: ${(err as Error).message.split('\n')[0]}`;
  }
}

async function sourcesPhase(): Promise<void> {
  const report: Record<string, unknown> = { startedAt: new Date().toISOString(), host: os.hostname() };
  for (const kind of ['nvml', 'nvidia-smi', 'auto'] as const) {
    try {
      const t0 = performance.now();
      const source = await openGpuSource(gpuSettings(simulated && kind !== 'auto' ? 'simulated' : kind));
      const openMs = performance.now() - t0;
      const times: number[] = [];
      let devices: GpuDevice[] = [];
      for (let i = 0; i < 20; i++) {
        const t = performance.now();
        devices = await source.read();
        times.push(performance.now() - t);
      }
      source.close();
      times.sort((a, b) => a - b);
      report[kind] = { kind: source.kind, description: source.description, openMs, readMsMedian: times[10], readMsMax: times[19], devices };
      console.log(`${kind}: chose ${source.kind} (${source.description}); open ${openMs.toFixed(1)} ms, read median ${times[10]!.toFixed(2)} ms, max ${times[19]!.toFixed(2)} ms`);
      for (const d of devices) console.log(`  ${describe(d)}`);
    } catch (err) {
      report[kind] = { error: (err as Error).message };
      console.log(`${kind}: ${(err as Error).message}`);
    }
  }
  try {
    const s = await openGpuSource({ ...gpuSettings('simulated'), forceSimulated: false });
    report.simulatedRefused = false;
    console.log(`simulated: NOT refused (${s.description})${simulated ? ' (expected without GPUs)' : ' -- WRONG on a machine with GPUs'}`);
    s.close();
  } catch (err) {
    report.simulatedRefused = (err as Error).message;
    console.log(`simulated: refused: ${(err as Error).message}`);
  }
  writeFileSync(path.join(out, 'gpu-sources.json'), JSON.stringify(report, null, 2));
}

/** Free memory summed over GPUs, bytes. */
async function freeBytes(proxy: ProxyServer): Promise<number> {
  return (await proxy.monitor.refresh()).reduce((sum, d) => sum + d.freeBytes, 0);
}

/** The instance's memory per NVML's process list, bytes (0 when not listed). */
async function processBytes(proxy: ProxyServer, pid: number | undefined): Promise<number> {
  if (pid === undefined) return 0;
  return (await proxy.monitor.refresh()).flatMap((d) => d.processes).filter((p) => p.pid === pid).reduce((a, p) => a + p.usedBytes, 0);
}

/** A prompt of `n` token ids straight to the instance, so every ubatch of the compute graph runs once. */
async function prompt(url: string, n: number): Promise<{ ms: number; status: number; promptTokens?: number }> {
  const t0 = Date.now();
  const tokens = Array.from({ length: n }, (_, i) => 40 + (i % 80)); // ids every vocabulary has (the demo's is bytes)
  const res = await fetch(`${url}/completion`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: tokens, n_predict: 4, cache_prompt: false }) });
  const body = (await res.json().catch(() => ({}))) as { timings?: { prompt_n?: number } };
  return { ms: Date.now() - t0, status: res.status, ...(body.timings?.prompt_n !== undefined ? { promptTokens: body.timings.prompt_n } : {}) };
}

async function loadsPhase(): Promise<void> {
  const binary = values['llama-server'];
  if (!binary) throw new Error('--llama-server is required');
  const fitBinary = values['fit-params'] ?? path.join(path.dirname(binary), 'llama-fit-params');
  const root = mkdtempSync(path.join(os.tmpdir(), 'lsp-gpu-check-'));
  mkdirSync(path.join(root, 'models'));
  const cases = values.only ? CASES.filter((c) => values.only!.split(',').includes(c.alias)) : CASES.filter((c) => !c.args && !c.parallel && c.quant !== 'F16');
  const models: Record<string, { path: string; ctx: number; args: string[]; parallel?: number }> = {};
  const written = new Map<string, string>();
  for (const c of cases) {
    let file: string;
    if (!c.preset) file = await ensureDemoModel(path.join(root, 'cache'));
    else {
      const name = `${c.preset}-${c.quant}.gguf`;
      file = written.get(name) ?? path.join(root, 'models', name);
      if (!written.has(name)) await writeSparseReplica(file, c.preset, c.quant!);
      written.set(name, file);
    }
    // A dry run on a CPU build (simulated source) must not repack gigabytes of weights into RAM.
    models[c.alias] = { path: file, ctx: c.ctx, args: [...(c.args ?? []), ...(simulated ? ['--no-repack'] : [])], ...(c.parallel ? { parallel: c.parallel } : {}) };
  }
  const configWith = (poolSize: number, reserveMiB: number) =>
    buildConfig(
      {
        server: { port: 0 },
        pool: { size: poolSize },
        llamaServer: { binary, startTimeout: 300 },
        gpu: { ...gpuSettings('nvml'), source: simulated ? 'simulated' : 'nvml', reserveMiB },
        modelsDir: root,
        cacheDir: path.join(root, 'cache'),
        models,
      },
      path.join(root, 'gpu-check.yaml'),
      { env: {} },
    );
  const config = configWith(1, 256);
  const proxy = await startProxy(config, { logger: pino({ level: 'warn' }) });
  const report: Record<string, unknown> = { startedAt: new Date().toISOString(), host: os.hostname(), source: proxy.monitor.source.description };
  const rows: Record<string, unknown>[] = [];
  report.rows = rows;
  const save = () => writeFileSync(path.join(out, 'gpu-check.json'), JSON.stringify(report, null, 2));
  console.log('model                 ctx   estimate = weights+kv+compute+overhead | fit-params w+kv+c | logged | nvml ready -> after prompt | free drop | smi | breakdown unaccounted | error');
  try {
    for (const c of cases) {
      if (Date.now() + c.budgetS * 1000 > deadline) {
        console.log(`${c.alias}: skipped (deadline)`);
        rows.push({ model: c.alias, skipped: 'deadline' });
        continue;
      }
      const row: Record<string, unknown> = { model: c.alias, ctx: c.ctx };
      rows.push(row);
      try {
        const model = resolveModel(config, c.alias);
        const info = modelInfo(readGgufHeaderSync(model.file));
        const settings: EstimateSettings = estimateSettings(model.ctx, model.parallel, model.args);
        const cuda = { devices: [{ name: 'CUDA0', kind: 'cuda' as const }] };
        const est = estimateMemory(info, settings, cuda);
        const d0 = est.devices[0]!;
        row.estimate = { weights: mib(d0.modelBytes), kv: mib(d0.contextBytes), compute: mib(d0.computeBytes), overhead: mib(d0.overheadBytes), total: mib(d0.totalBytes), host: mib(est.host.totalBytes), flashAttn: est.flashAttn };
        // llama.cpp's own dry run for the same settings on this GPU, beside our figure made the way it counts.
        if (existsSync(fitBinary)) {
          try {
            const fit = fitSettings(settings).settings;
            const fp = await runFitPrint({ binary: fitBinary, model: model.file, settings: fit, ngl: -1, timeoutMs: 60_000 });
            const ours = estimateMemory(info, { ...fit, outputs: 'batch' }, cuda).devices[0]!;
            row.fitParams = { device: fp.devices[0] ?? null, host: fp.host, ours: { weights: mib(ours.modelBytes), kv: mib(ours.contextBytes), compute: mib(ours.computeBytes) } };
          } catch (err) {
            row.fitParams = { error: (err as Error).message.slice(0, 400) };
          }
        }
        const freeBefore = await freeBytes(proxy);
        const t0 = Date.now();
        const inst = await proxy.pool.load(model);
        row.loadMs = Date.now() - t0;
        row.gpus = inst.placement?.gpus.map((g) => g.index) ?? [];
        row.ngl = inst.placement?.ngl ?? null;
        // what the proxy planned with: the runtime overhead learned from the instances before this one
        row.placementEstimate = mib([...inst.estimatedGpuBytes.values()].reduce((a, b) => a + b, 0));
        row.nvmlAtReady = mib([...inst.actualGpuBytes.values()].reduce((a, b) => a + b, 0));
        row.logged = inst.logged ? { gpu: mib([...inst.logged.gpuBytes.values()].reduce((a, b) => a + b, 0)), host: mib(inst.logged.hostBytes) } : null;
        row.freeDropAtReady = mib(freeBefore - (await freeBytes(proxy)));
        // (a dry run on the CPU keeps it short)
        row.prompt = await prompt(inst.url!, simulated ? 16 : Math.min(c.args?.includes('2048') ? 3000 : 1500, Math.floor(c.ctx / (c.parallel ?? 1)) - 16));
        row.nvmlAfterPrompt = mib(await processBytes(proxy, inst.pid));
        row.freeDropAfterPrompt = mib(freeBefore - (await freeBytes(proxy)));
        row.smi = smiProcesses();
        const instance = proxy.pool.instance(inst.id);
        const t1 = Date.now();
        await proxy.pool.unload(c.alias);
        row.unloadMs = Date.now() - t1;
        // The freed memory showing up again (what the pool waits for before the next placement there).
        let recovered = false;
        while (Date.now() - t1 < 15_000) {
          if ((await freeBytes(proxy)) >= freeBefore - 64 * MIB) {
            recovered = true;
            break;
          }
          await new Promise((r) => setTimeout(r, 50));
        }
        row.recoveredMs = recovered ? Date.now() - t1 : null;
        await new Promise((r) => setTimeout(r, 300));
        const lines = instance?.logs.last(400) ?? [];
        const footprint = parseMemoryLog(lines.join('\n'));
        row.breakdown = footprint.breakdown;
        row.memoryLines = lines.filter((l) => /buffer size|memory_breakdown|using device|graph splits|flash_attn|n_ctx|CUDA/.test(l)).slice(-40);
        const measured = (row.nvmlAfterPrompt as number) || (simulated ? 0 : (row.freeDropAfterPrompt as number));
        row.measuredBy = (row.nvmlAfterPrompt as number) > 0 ? 'nvml-process' : 'free-drop';
        row.errorPct = measured > 0 ? Math.round(((d0.totalBytes / MIB - measured) / measured) * 1000) / 10 : null;
        row.placementErrorPct = measured > 0 ? Math.round((((row.placementEstimate as number) - measured) / measured) * 1000) / 10 : null;
        const dev = footprint.breakdown.find((b) => b.unaccountedMiB !== undefined);
        const fp = row.fitParams as { device?: { modelMiB: number; contextMiB: number; computeMiB: number } | null } | undefined;
        const e = row.estimate as Record<string, number>;
        console.log(
          `${c.alias.padEnd(21)} ${String(c.ctx).padStart(5)}  ${e.total} = ${e.weights}+${e.kv}+${e.compute}+${e.overhead} | ` +
            `${fp?.device ? `${fp.device.modelMiB}+${fp.device.contextMiB}+${fp.device.computeMiB}` : 'n/a'} | ${(row.logged as { gpu: number } | null)?.gpu ?? 'n/a'} | ` +
            `${row.nvmlAtReady} -> ${row.nvmlAfterPrompt} | ${row.freeDropAfterPrompt} | ${JSON.stringify(row.smi)} | ${dev?.unaccountedMiB ?? 'n/a'} | ` +
            `${row.errorPct ?? 'n/a'} % (planned ${row.placementEstimate}: ${row.placementErrorPct ?? 'n/a'} %; load ${row.loadMs} ms, prompt ${(row.prompt as { ms: number }).ms} ms, recovered ${row.recoveredMs} ms)`,
        );
      } catch (err) {
        row.error = (err as Error).stack ?? String(err);
        console.log(`${c.alias}: FAILED ${(err as Error).message}`);
        await proxy.pool.unload().catch(() => undefined);
      }
      save();
    }
  } finally {
    await proxy.close();
  }
  const errors = rows.map((r) => r.errorPct as number | null | undefined).filter((e): e is number => typeof e === 'number');
  console.log(errors.length ? `\nworst |error| ${Math.max(...errors.map(Math.abs)).toFixed(1)} % over ${errors.length} models (goal: within 5 %)` : '\nno measurement (simulated source)');
  save();
  if (!values['skip-scenarios']) report.scenarios = await scenarios(configWith, deadline);
  save();
}

type ConfigFor = (poolSize: number, reserveMiB: number) => ReturnType<typeof buildConfig>;

/**
 * Placement on the real GPU: three models loaded at once must land one after another on GPU 0 and together
 * hold what their estimates say; then with all but 10 GiB of the GPU reserved, a model that needs the room of an
 * idle one evicts it (pool slots to spare) and loads once its memory is back.
 */
async function scenarios(configWith: ConfigFor, deadline: number): Promise<Record<string, unknown>> {
  const result: Record<string, unknown> = {};
  if (Date.now() + 60_000 > deadline) return { skipped: 'deadline' };
  const together = ['qwen2.5-0.5b-q8', 'llama-3-8b-q4km', 'gemma-2-9b-q4km'];
  {
    const config = configWith(3, 256);
    const proxy = await startProxy(config, { logger: pino({ level: 'warn' }) });
    try {
      const freeBefore = await freeBytes(proxy);
      const t0 = Date.now();
      const infos = await Promise.all(together.map((alias) => proxy.pool.load(resolveModel(config, alias))));
      const freeDrop = freeBefore - (await freeBytes(proxy));
      const perInstance = await Promise.all(infos.map(async (i) => ({ model: i.modelId, gpus: i.placement?.gpus.map((g) => g.index), estimateMiB: mib([...i.estimatedGpuBytes.values()].reduce((a, b) => a + b, 0)), processMiB: mib(await processBytes(proxy, i.pid)), readyAt: i.readyAt })));
      result.together = { ms: Date.now() - t0, freeDropMiB: mib(freeDrop), instances: perInstance };
      console.log(`\nthree loads at once: ${Date.now() - t0} ms, free memory dropped ${mib(freeDrop)} MiB; ${perInstance.map((p) => `${p.model} GPU ${p.gpus} est ${p.estimateMiB} / process ${p.processMiB} MiB`).join('; ')}`);
    } catch (err) {
      result.together = { error: (err as Error).message };
      console.log(`three loads at once: FAILED ${(err as Error).message}`);
    } finally {
      await proxy.close();
    }
  }
  if (Date.now() + 40_000 > deadline) return { ...result, eviction: 'skipped (deadline)' };
  {
    const devices = await (await openGpuSource(gpuSettings(simulated ? 'simulated' : 'nvml'))).read();
    const totalMiB = Math.floor(devices[0]!.totalBytes / MIB);
    const config = configWith(3, totalMiB - 10240);
    const proxy = await startProxy(config, { logger: pino({ level: 'warn' }) });
    try {
      const first = await proxy.pool.load(resolveModel(config, 'llama-3-8b-q4km'));
      const t0 = Date.now();
      const second = await proxy.pool.load(resolveModel(config, 'gemma-2-9b-q4km'));
      const running = proxy.pool.list().map((i) => i.modelId);
      result.eviction = { firstGpus: first.placement?.gpus.map((g) => g.index), secondGpus: second.placement?.gpus.map((g) => g.index), secondNgl: second.placement?.ngl, running, secondLoadMs: Date.now() - t0 };
      console.log(`10 GiB usable: llama-3-8b on GPU ${first.placement?.gpus.map((g) => g.index)}, then gemma-2-9b on GPU ${second.placement?.gpus.map((g) => g.index)} ngl ${second.placement?.ngl} after ${Date.now() - t0} ms; running now: ${running.join(', ')} (${running.includes('llama-3-8b-q4km') ? 'NOT evicted' : 'llama-3-8b evicted'})`);
    } catch (err) {
      result.eviction = { error: (err as Error).message };
      console.log(`eviction: FAILED ${(err as Error).message}`);
    } finally {
      await proxy.close();
    }
  }
  return result;
}

(values.phase === 'sources' ? sourcesPhase() : loadsPhase()).catch((err) => {
  console.error(err);
  process.exit(1);
});
