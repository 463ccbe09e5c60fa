/**
 * bench:estimate — how fast and how exact the memory estimator is.
 *
 * Speed, per sparse preset (Q4_K_M): the header read (readGgufHeader), ModelInfo derivation and
 * one estimate (CPU only, and 2 GPUs with partial offload), medians over many runs.
 * Accuracy: the issue-4 matrix (presets x ctx {4096, 32768} x KV {f16, q8_0} x FA {on, off} x
 * ubatch {512, 2048} x slots {1, 4}) against llama-fit-params --fit-print on (-nr), when found.
 *
 * npm run bench:estimate [-- --runs 200 --reads 20 --no-accuracy]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig } from '../src/config/index.js';
import { CPU_ONLY, MODEL_INFO_READ_OPTIONS, estimateMemory, modelInfo, type EstimateSettings, type Placement } from '../src/estimate/index.js';
import { PRESET_IDS, REPLICA_QUANTS, readGgufHeader, writeSparseReplica, type PresetId, type ReplicaQuant } from '../src/gguf/index.js';
import { locateLlamaTools } from '../src/llamacpp/index.js';
import { runFitPrint } from '../src/llamacpp/fit-params.js';

/** Width of the preset column: the longest id and a space. */
const NAME = Math.max(...PRESET_IDS.map((id) => id.length)) + 2;

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '200' },
    reads: { type: 'string', default: '20' },
    'no-accuracy': { type: 'boolean', default: false },
    concurrency: { type: 'string', default: '2' },
  },
});
const RUNS = Number(values.runs);
const READS = Number(values.reads);
const MiB = 1024 * 1024;

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const ms = (x: number): string => x.toFixed(2).padStart(8);

async function timed<T>(fn: () => T | Promise<T>): Promise<[T, number]> {
  const t0 = process.hrtime.bigint();
  const r = await fn();
  return [r, Number(process.hrtime.bigint() - t0) / 1e6];
}

const dir = mkdtempSync(path.join(os.tmpdir(), 'bench-estimate-'));
const file = (id: PresetId, q: ReplicaQuant): string => path.join(dir, `${id}-${q}.gguf`);

async function speed(): Promise<void> {
  process.stdout.write(`speed (median of ${READS} header reads and ${RUNS} estimates; ms)\n`);
  process.stdout.write('read all: the whole header decoded; read: without decoding the vocabulary (what the estimator needs)\n');
  process.stdout.write(`${'preset'.padEnd(NAME)}${'tensors'.padStart(8)}${'read all'.padStart(9)}${'read'.padStart(9)}${'info'.padStart(9)}${'est cpu'.padStart(9)}${'est 2gpu'.padStart(9)}${'read+est'.padStart(9)}\n`);
  const twoGpus: Placement = { devices: [{ name: 'CUDA0', kind: 'cuda' }, { name: 'CUDA1', kind: 'cuda' }], ngl: 20, tensorSplit: [1, 1] };
  const settings: EstimateSettings = { ctx: 32768 };
  for (const id of PRESET_IDS) {
    await writeSparseReplica(file(id, 'Q4_K_M'), id, 'Q4_K_M');
    const reads: number[] = [];
    const infos: number[] = [];
    let header = await readGgufHeader(file(id, 'Q4_K_M'), MODEL_INFO_READ_OPTIONS);
    const full: number[] = [];
    for (let i = 0; i < READS; i++) {
      full.push((await timed(() => readGgufHeader(file(id, 'Q4_K_M'))))[1]);
      const [h, t] = await timed(() => readGgufHeader(file(id, 'Q4_K_M'), MODEL_INFO_READ_OPTIONS));
      header = h;
      reads.push(t);
      infos.push((await timed(() => modelInfo(h)))[1]);
    }
    const info = modelInfo(header);
    const cpu: number[] = [];
    const gpu: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      cpu.push((await timed(() => estimateMemory(info, settings, CPU_ONLY)))[1]);
      gpu.push((await timed(() => estimateMemory(info, settings, twoGpus)))[1]);
    }
    const total = median(reads) + median(infos) + median(cpu);
    process.stdout.write(`${id.padEnd(NAME)}${String(header.tensors.length).padStart(8)}${ms(median(full))} ${ms(median(reads))} ${ms(median(infos))} ${ms(median(cpu))} ${ms(median(gpu))} ${ms(total)}\n`);
  }
}

async function pool<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  }));
  return out;
}

async function accuracy(): Promise<void> {
  const config = loadConfig({});
  const fitParams = locateLlamaTools({ cacheDir: config.cacheDir, llamaServer: config.llamaServer })?.fitParams;
  if (!fitParams) {
    process.stdout.write('\naccuracy: skipped (no llama-fit-params; run `llama-smart-proxy setup`)\n');
    return;
  }
  interface Case { id: PresetId; quant: ReplicaQuant; s: EstimateSettings }
  const cases: Case[] = [];
  for (const id of PRESET_IDS) for (const ctx of [4096, 32768]) for (const kv of ['f16', 'q8_0'] as const) {
    for (const fa of ['on', 'off'] as const) for (const ubatch of [512, 2048]) for (const parallel of [1, 4]) {
      const quant = REPLICA_QUANTS[cases.length % REPLICA_QUANTS.length]!;
      cases.push({ id, quant, s: { ctx, parallel, ubatch, flashAttn: fa, cacheTypeK: kv, cacheTypeV: fa === 'on' ? kv : 'f16', outputs: 'batch' } });
    }
  }
  for (const id of PRESET_IDS) for (const q of REPLICA_QUANTS) await writeSparseReplica(file(id, q), id, q);
  const infos = new Map<string, ReturnType<typeof modelInfo>>();
  for (const id of PRESET_IDS) for (const q of REPLICA_QUANTS) infos.set(`${id}-${q}`, modelInfo(await readGgufHeader(file(id, q), MODEL_INFO_READ_OPTIONS)));

  // llama.cpp refuses different K and V cache types for MLA models (DeepSeek 2): those settings are not cases
  const refused = cases.filter((c) => infos.get(`${c.id}-${c.quant}`)!.mla !== undefined && c.s.cacheTypeK !== c.s.cacheTypeV);
  cases.splice(0, cases.length, ...cases.filter((c) => !refused.includes(c)));

  const t0 = Date.now();
  const truths = await pool(cases, Number(values.concurrency), (c) => runFitPrint({ binary: fitParams, model: file(c.id, c.quant), settings: c.s }));
  process.stdout.write(`\naccuracy: ${cases.length} cases vs llama-fit-params --fit-print on (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  process.stdout.write(`${refused.length ? `; ${refused.length} left out: llama.cpp refuses different K and V cache types for MLA models` : ''}\n`);
  process.stdout.write('error = |estimate - llama.cpp| / llama.cpp, llama.cpp printing whole MiB rounded down; "=MiB": estimate rounded down equals it\n');
  process.stdout.write(`${'preset'.padEnd(NAME)}${'cases'.padStart(6)}${'=MiB'.padStart(6)}${'model'.padStart(9)}${'context'.padStart(9)}${'compute'.padStart(9)}${'total'.padStart(9)}${'min total'.padStart(11)}\n`);
  const pct = (x: number): string => `${(x * 100).toFixed(2)}%`.padStart(9);
  const all = { n: 0, exact: 0, model: 0, context: 0, compute: 0, total: 0, minTotal: Infinity };
  for (const id of PRESET_IDS) {
    const w = { n: 0, exact: 0, model: 0, context: 0, compute: 0, total: 0, minTotal: Infinity };
    cases.forEach((c, i) => {
      if (c.id !== id) return;
      const t = truths[i]!.host;
      const e = estimateMemory(infos.get(`${c.id}-${c.quant}`)!, c.s, CPU_ONLY).host;
      const rel = (b: number, m: number): number => (m === 0 ? 0 : Math.abs(b / MiB - m) / m);
      const ours = [e.modelBytes, e.contextBytes, e.computeBytes];
      const truth = [t.modelMiB, t.contextMiB, t.computeMiB];
      w.n++;
      if (ours.every((b, k) => Math.floor(b / MiB) === truth[k])) w.exact++;
      w.model = Math.max(w.model, rel(ours[0]!, truth[0]!));
      w.context = Math.max(w.context, rel(ours[1]!, truth[1]!));
      w.compute = Math.max(w.compute, rel(ours[2]!, truth[2]!));
      const ratio = ours.reduce((a, b) => a + b, 0) / MiB / truth.reduce((a, b) => a + b, 0);
      w.total = Math.max(w.total, Math.abs(ratio - 1));
      w.minTotal = Math.min(w.minTotal, ratio - 1);
    });
    process.stdout.write(`${id.padEnd(NAME)}${String(w.n).padStart(6)}${String(w.exact).padStart(6)}${pct(w.model)}${pct(w.context)}${pct(w.compute)}${pct(w.total)}${pct(w.minTotal).padStart(11)}\n`);
    all.n += w.n;
    all.exact += w.exact;
    for (const k of ['model', 'context', 'compute', 'total'] as const) all[k] = Math.max(all[k], w[k]);
    all.minTotal = Math.min(all.minTotal, w.minTotal);
  }
  process.stdout.write(`${'all'.padEnd(NAME)}${String(all.n).padStart(6)}${String(all.exact).padStart(6)}${pct(all.model)}${pct(all.context)}${pct(all.compute)}${pct(all.total)}${pct(all.minTotal).padStart(11)}\n`);
}

try {
  await speed();
  if (!values['no-accuracy']) await accuracy();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
