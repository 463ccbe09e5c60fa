/**
 * `llama-smart-proxy estimate <model>`: the memory an instance of the model will need, per device,
 * for llama-server settings and a (possibly hypothetical) set of GPUs; `--verify` asks
 * llama.cpp's llama-fit-params for its figures and prints both side by side.
 */

import path from 'node:path';
import { loadConfig } from '../config/index.js';
import {
  CPU_ONLY, EstimateError, KV_CACHE_TYPES, MODEL_INFO_READ_OPTIONS, estimateMemory, modelInfo, toJson,
  type Device, type EstimateSettings, type FlashAttn, type KvCacheType, type MemoryEstimate, type ModelInfo, type Placement,
} from '../estimate/index.js';
import { readGgufModelHeader } from '../gguf/index.js';
import { locateLlamaTools } from '../llamacpp/index.js';
import { fitSettings, runFitPrint, type FitPrint, type FitPrintRow } from '../llamacpp/fit-params.js';

export interface EstimateFlags {
  ctx?: number;
  parallel?: string;
  kvUnified?: boolean;
  ngl?: number;
  ubatch?: number;
  batch?: number;
  cacheTypeK?: string;
  cacheTypeV?: string;
  flashAttn?: string;
  swaFull?: boolean;
  kvOffload?: boolean;
  nCpuMoe?: number;
  overrideTensor?: string[];
  tensorSplit?: string;
  opOffload?: boolean;
  outputs?: string;
  gpus?: string;
  json?: boolean;
  verify?: boolean;
  fitParams?: string;
  config?: string;
}

const MiB = 1024 * 1024;
const UNITS: Readonly<Record<string, number>> = { '': MiB, m: MiB, mb: MiB, mib: MiB, g: 1024 * MiB, gb: 1024 * MiB, gib: 1024 * MiB };

/**
 * `--gpus none` | `24G,24G` | `name:24576` | `4090:24GiB,3090:24G`: hypothetical GPUs, each with
 * an optional name and its memory (a bare number is MiB). The size is used as the device's free
 * memory: for llama.cpp's default tensor split and for the fit check.
 */
export function parseGpuSpec(spec: string): Device[] {
  const s = spec.trim();
  if (s === '' || s.toLowerCase() === 'none' || s.toLowerCase() === 'cpu') return [];
  return s.split(',').map((entry, i) => {
    const at = entry.lastIndexOf(':');
    const name = at >= 0 ? entry.slice(0, at).trim() : `CUDA${i}`;
    const size = (at >= 0 ? entry.slice(at + 1) : entry).trim();
    const m = /^(\d+(?:\.\d+)?)\s*([a-zA-Z]*)$/.exec(size);
    const unit = m ? UNITS[m[2]!.toLowerCase()] : undefined;
    if (!m || unit === undefined || name === '') throw new EstimateError(`bad --gpus entry "${entry}" (expected e.g. 24G, 24576 or name:24G)`);
    return { name, kind: 'cuda', freeBytes: Math.round(Number(m[1]) * unit) };
  });
}

function cacheType(flag: string, value: string | undefined): KvCacheType | undefined {
  if (value === undefined) return undefined;
  const v = value.toLowerCase();
  if (!(KV_CACHE_TYPES as readonly string[]).includes(v)) throw new EstimateError(`${flag} must be one of ${KV_CACHE_TYPES.join(', ')}`);
  return v as KvCacheType;
}

export function settingsFromFlags(f: EstimateFlags): EstimateSettings {
  const fa = f.flashAttn?.toLowerCase();
  if (fa !== undefined && fa !== 'on' && fa !== 'off' && fa !== 'auto') throw new EstimateError('--flash-attn must be on, off or auto');
  let parallel: number | 'auto' | undefined;
  if (f.parallel !== undefined) {
    parallel = f.parallel === 'auto' || f.parallel === '-1' ? 'auto' : Number(f.parallel);
    if (parallel !== 'auto' && (!Number.isInteger(parallel) || parallel < 1)) throw new EstimateError('--parallel must be a positive integer or auto');
  }
  let outputs: EstimateSettings['outputs'];
  if (f.outputs !== undefined) {
    outputs = f.outputs === 'slots' || f.outputs === 'batch' ? f.outputs : Number(f.outputs);
    if (typeof outputs === 'number' && (!Number.isInteger(outputs) || outputs < 1)) throw new EstimateError('--outputs must be slots, batch or a positive integer');
  }
  const ctk = cacheType('--cache-type-k', f.cacheTypeK);
  const ctv = cacheType('--cache-type-v', f.cacheTypeV);
  return {
    ...(f.ctx !== undefined ? { ctx: f.ctx } : {}),
    ...(parallel !== undefined ? { parallel } : {}),
    ...(f.kvUnified ? { kvUnified: true } : {}),
    ...(f.batch !== undefined ? { batch: f.batch } : {}),
    ...(f.ubatch !== undefined ? { ubatch: f.ubatch } : {}),
    ...(ctk ? { cacheTypeK: ctk } : {}),
    ...(ctv ? { cacheTypeV: ctv } : {}),
    ...(fa ? { flashAttn: fa as FlashAttn } : {}),
    ...(f.swaFull ? { swaFull: true } : {}),
    ...(f.kvOffload === false ? { kvOffload: false } : {}),
    ...(f.nCpuMoe !== undefined ? { cpuMoeLayers: f.nCpuMoe } : {}),
    ...(f.overrideTensor?.length ? { overrides: f.overrideTensor.flatMap(parseOverride) } : {}),
    ...(outputs !== undefined ? { outputs } : {}),
  };
}

/** `-ot` syntax: comma-separated `<regex>=<buffer type>`; only CPU targets are modelled. */
function parseOverride(value: string): { pattern: RegExp; target: 'cpu' }[] {
  return value.split(',').map((part) => {
    const eq = part.lastIndexOf('=');
    const target = eq >= 0 ? part.slice(eq + 1).trim() : '';
    if (eq < 0 || !/^cpu$/i.test(target)) throw new EstimateError(`--override-tensor "${part}": only <pattern>=CPU is supported`);
    return { pattern: new RegExp(part.slice(0, eq)), target: 'cpu' as const };
  });
}

export function placementFromFlags(f: EstimateFlags): Placement {
  const devices = f.gpus === undefined ? [] : parseGpuSpec(f.gpus);
  const split = f.tensorSplit?.split(',').map(Number);
  if (split && split.some((x) => !Number.isFinite(x) || x < 0)) throw new EstimateError('--tensor-split must be comma-separated non-negative numbers');
  return {
    devices,
    ...(f.ngl !== undefined ? { ngl: f.ngl } : {}),
    ...(split ? { tensorSplit: split } : {}),
    ...(f.opOffload === false ? { opOffload: false } : {}),
  };
}

const fmt = (bytes: number): string => (bytes / MiB).toFixed(2);
const pad = (s: string, n: number, left = false): string => (left ? s.padEnd(n) : s.padStart(n));

function describe(file: string, m: ModelInfo, e: MemoryEstimate, p: Placement): string {
  const s = e.settings;
  const onGpu = e.layers.layers.filter((d) => d >= 0).length + (e.layers.output >= 0 ? 1 : 0);
  const lines = [
    `model    ${path.basename(file)}: ${m.arch}, ${m.nLayer} layers, ${(m.weightBytes / MiB).toFixed(0)} MiB of weights${m.nExpert ? `, ${m.nExpert} experts (${m.nExpertUsed} used)` : ''}`,
    `context  ${s.nCtx} tokens, ${s.nSeq} slot(s)${s.kvUnified ? ' sharing one KV cache' : ` of ${s.nCtxSeq}`}; batch ${s.nBatch}, ubatch ${s.nUbatch}; ` +
      `KV ${s.typeK.name.toLowerCase()}/${s.typeV.name.toLowerCase()}; flash attention ${e.flashAttn ? 'on' : 'off'}`,
  ];
  if (p.devices.length > 0) lines.push(`layers   ${onGpu}/${m.nLayer + 1} on GPU (-ngl ${e.layers.ngl}${e.pipelineParallel ? ', pipeline parallel' : ''})`);
  return lines.join('\n');
}

export function formatTable(e: MemoryEstimate, p: Placement): string {
  const head = `${pad('device', 14, true)}${['weights', 'KV', 'compute', 'overhead', 'total', 'capacity'].map((h) => pad(h, 11)).join('')}`;
  const rows = [head];
  const row = (name: string, d: MemoryEstimate['host'], cap?: number): string =>
    pad(name, 14, true) +
    [d.modelBytes, d.contextBytes, d.computeBytes, d.overheadBytes, d.totalBytes].map((b) => pad(fmt(b), 11)).join('') +
    (cap !== undefined ? pad((cap / MiB).toFixed(0), 11) + (d.totalBytes <= cap ? '  fits' : '  DOES NOT FIT') : '');
  rows.push(row('CPU (host)', e.host));
  e.devices.forEach((d, i) => rows.push(row(d.name, d, p.devices[i]?.freeBytes)));
  rows.push(`${pad('total', 14, true)}${pad('', 44)}${pad(fmt(e.totalBytes), 11)}`);
  return `${rows.join('\n')}\n(MiB; host overhead is the logits buffer, GPU overhead the CUDA context and pools)`;
}

function relErr(ours: number, truth: number): string {
  if (truth === 0) return ours === 0 ? '0.0%' : 'n/a';
  return `${(((ours - truth) / truth) * 100).toFixed(1)}%`;
}

function verifyTable(rows: { name: string; ours: MemoryEstimate['host']; truth: FitPrintRow }[]): string {
  const out = [`${pad('device', 12, true)}${pad('part', 9, true)}${pad('estimate', 11)}${pad('llama.cpp', 11)}${pad('error', 9)}`];
  for (const { name, ours, truth } of rows) {
    const parts: [string, number, number][] = [
      ['model', ours.modelBytes, truth.modelMiB],
      ['context', ours.contextBytes, truth.contextMiB],
      ['compute', ours.computeBytes, truth.computeMiB],
    ];
    for (const [part, b, t] of parts) {
      out.push(`${pad(name, 12, true)}${pad(part, 9, true)}${pad(fmt(b), 11)}${pad(String(t), 11)}${pad(relErr(b / MiB, t), 9)}`);
    }
  }
  return `${out.join('\n')}\n(llama.cpp prints whole MiB, rounded down)`;
}

function fitParamsBinary(f: EstimateFlags): string {
  if (f.fitParams) return f.fitParams;
  const config = loadConfig(f.config ? { file: f.config } : {});
  const tools = locateLlamaTools({ cacheDir: config.cacheDir, llamaServer: config.llamaServer });
  if (!tools?.fitParams) throw new EstimateError('--verify needs llama-fit-params: run `llama-smart-proxy setup` or pass --fit-params <path>');
  return tools.fitParams;
}

export async function estimateCommand(model: string, flags: EstimateFlags): Promise<void> {
  const file = path.resolve(model);
  const info = modelInfo(await readGgufModelHeader(file, MODEL_INFO_READ_OPTIONS));
  const settings = settingsFromFlags(flags);
  const placement = placementFromFlags(flags);
  const estimate = estimateMemory(info, settings, placement);

  let verify: { fit: FitPrint; compared: MemoryEstimate; note: string } | undefined;
  if (flags.verify) {
    // llama-fit-params reserves logits for a whole batch, has no unified KV cache and sees only the
    // build's real devices: compare with an estimate for what it can run
    const runnable = fitSettings(settings);
    const fit = await runFitPrint({
      binary: fitParamsBinary(flags),
      model: file,
      settings: runnable.settings,
      ...(placement.ngl !== undefined ? { ngl: placement.ngl } : {}),
      ...(placement.tensorSplit ? { tensorSplit: placement.tensorSplit } : {}),
      ...(placement.opOffload === false ? { opOffload: false } : {}),
    });
    const same = fit.devices.length === placement.devices.length;
    const compared = estimateMemory(
      info,
      { ...runnable.settings, outputs: 'batch' },
      same ? placement : { ...CPU_ONLY, ...(fit.devices.length > 0 ? { devices: fit.devices.map((d) => ({ name: d.name, kind: 'cuda' as const })) } : {}) },
    );
    const notes = ['compared with an estimate for llama-fit-params\' own settings (logits for a whole batch, where llama-server keeps one row per slot)'];
    if (!runnable.exact) notes.push('llama-fit-params has no unified KV cache: compared with 1 slot of the same context (equal memory unless the model has sliding-window layers)');
    if (!same) notes.push(`llama.cpp sees ${fit.devices.length} GPU(s) here, not the ${placement.devices.length} given: compared on its devices`);
    verify = { fit, compared, note: notes.join('; ') };
  }

  if (flags.json) {
    const json = toJson(estimate);
    if (verify) {
      const v = toJson(verify.compared);
      process.stdout.write(`${JSON.stringify({ ...json, verify: { estimate: v, llamaCpp: verify.fit, note: verify.note } }, null, 2)}\n`);
    } else {
      process.stdout.write(`${JSON.stringify(json, null, 2)}\n`);
    }
    return;
  }
  process.stdout.write(`${describe(file, info, estimate, placement)}\n\n${formatTable(estimate, placement)}\n`);
  for (const c of estimate.caveats) process.stdout.write(`note: ${c}\n`);
  if (verify) {
    const rows = [
      { name: 'Host', ours: verify.compared.host, truth: verify.fit.host },
      ...verify.fit.devices.map((d, i) => ({ name: d.name, ours: verify!.compared.devices[i]!, truth: d })),
    ];
    process.stdout.write(`\nverify against llama-fit-params (${verify.note}):\n${verifyTable(rows)}\n`);
  }
}
