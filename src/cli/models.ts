/**
 * `llama-smart-proxy models`: every model on disk, with its source (config, the models folder, the Hugging Face
 * caches, Ollama's store, LM Studio's folder), its size and its estimate for this machine; the Hugging Face caches'
 * projectors and partial downloads too. Reads the disk and the GPUs only.
 */
import { loadConfig } from '../config/index.js';
import { MODEL_INFO_READ_OPTIONS, modelInfo } from '../estimate/index.js';
import { readGgufModelHeaderSync } from '../gguf/index.js';
import { createModelHub, formatBytes, quantTag, type CacheEntry, type ModelSource } from '../models/index.js';
import type { MachineEstimate } from '../placement/machine-estimate.js';
import { localCatalog, SOURCE_LABELS } from '../sources/catalog.js';
import { lmStudioDirs, ollamaStores } from '../sources/index.js';
import { describeEstimate, readMachine, type Machine } from './machine.js';
import type { CliIO } from './pull.js';

export interface ModelsFlags {
  config?: string;
  json?: boolean;
  /** Also list files that are not GGUF (README, config.json, ...). */
  all?: boolean;
}

/** "just now", "5 min ago", "3 h ago", "12 days ago". */
export function ago(date: Date, now = Date.now()): string {
  const s = Math.max(0, (now - date.getTime()) / 1000);
  if (s < 60) return 'just now';
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86_400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86_400)} days ago`;
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  return rows.map((r) => r.map((cell, c) => cell.padEnd(widths[c]!)).join('  ').trimEnd()).join('\n');
}

function state(e: CacheEntry): string {
  if (!e.partial) return e.kind === 'mmproj' ? 'projector' : e.kind === 'part' ? 'split part' : e.kind === 'other' ? 'other' : 'complete';
  return e.expectedBytes ? `partial ${Math.floor((e.sizeBytes / e.expectedBytes) * 100)}%` : 'partial';
}

interface Row {
  name: string;
  source: ModelSource;
  path: string;
  sizeBytes: number;
  lastUsed: Date;
  state: string;
  estimate: MachineEstimate | undefined;
  json: Record<string, unknown>;
}

/** The estimate of a model file at the given settings; undefined when its header cannot be read. */
function estimateOf(machine: Machine, file: string, settings: { ctx: number; parallel: number; args: readonly string[] }): MachineEstimate | undefined {
  try {
    return machine.estimate(modelInfo(readGgufModelHeaderSync(file, MODEL_INFO_READ_OPTIONS)), settings);
  } catch {
    return undefined;
  }
}

/**
 * Every model on disk (sources/catalog.ts: configured, the models folder, the Hugging Face caches with their partial
 * downloads, Ollama's store, LM Studio's folder): name, source, size, the estimate for this machine now.
 */
export async function modelsCommand(flags: ModelsFlags = {}, io: CliIO = { stdout: process.stdout, stderr: process.stderr, env: process.env }): Promise<void> {
  const config = loadConfig({ ...(flags.config ? { file: flags.config } : {}), env: io.env });
  const hub = createModelHub(config, io.env);
  const entries = hub.list().filter((e) => flags.all || e.partial || e.kind !== 'other');
  void hub.close();
  const machine = await readMachine(config, io.env);
  const defaults = { ctx: config.modelDefaults.ctx, parallel: config.modelDefaults.parallel, args: config.modelDefaults.args };
  const rows: Row[] = [];
  for (const e of localCatalog(config, { hubEntries: [], env: io.env })) {
    const estimate = estimateOf(machine, e.file, e);
    rows.push({
      name: e.name, source: e.source, path: e.file, sizeBytes: e.sizeBytes, lastUsed: e.modified, state: e.mmproj ? 'complete, projector' : 'complete', estimate,
      json: { name: e.name, source: e.source, path: e.file, ...(e.mmproj ? { mmproj: e.mmproj } : {}), size_bytes: e.sizeBytes, last_used: e.modified.toISOString(), partial: false, kind: 'model', estimate: estimateJson(estimate) },
    });
  }
  for (const e of entries) {
    const tag = quantTag(e.file);
    const estimate = e.kind === 'model' && !e.partial ? estimateOf(machine, e.path, defaults) : undefined;
    rows.push({
      name: tag && e.kind === 'model' ? `${e.repo}:${tag}` : `${e.repo}/${e.file}`, source: 'hf-cache', path: e.path, sizeBytes: e.sizeBytes, lastUsed: e.lastUsed, state: state(e), estimate,
      json: {
        repo: e.repo, file: e.file, revision: e.revision ?? null, path: e.path, size_bytes: e.sizeBytes, expected_bytes: e.expectedBytes ?? null,
        last_used: e.lastUsed.toISOString(), partial: e.partial, kind: e.kind, ours: e.ours, cache: e.cacheRoot,
        name: tag && e.kind === 'model' ? `${e.repo}:${tag}` : null, source: 'hf-cache', estimate: estimateJson(estimate),
      },
    });
  }
  if (flags.json) {
    io.stdout.write(`${JSON.stringify(rows.map((r) => r.json), null, 2)}\n`);
    return;
  }
  if (rows.length === 0) {
    io.stdout.write(`no models found (Hugging Face caches: ${hub.store.searchDirs.join(', ')}; Ollama's store: ${ollamaStores(config, io.env).read.join(', ')}; LM Studio: ${lmStudioDirs(config).join(', ')}; models folder: ${config.modelsDir})\n`);
    return;
  }
  const now = Date.now();
  io.stdout.write(
    `${table([
      ['NAME', 'SOURCE', 'SIZE', 'ESTIMATE', 'LAST USED', 'STATE'],
      ...rows.map((r) => [r.name, SOURCE_LABELS[r.source], formatBytes(r.sizeBytes), r.estimate ? describeEstimate(r.estimate) : '-', ago(r.lastUsed, now), r.state]),
    ])}\n`,
  );
  const gpus = machine.gpus.length ? machine.gpus.map((g) => `gpu ${g.index} ${formatBytes(g.freeBytes)} free`).join(', ') : 'no GPU';
  io.stdout.write(`\nestimates at each model's context for this machine now: ${gpus}, ${formatBytes(machine.hostFreeBytes)} RAM free\n`);
  const ours = hub.store.totalBytes();
  const limit = config.hub.cacheLimitGiB;
  io.stdout.write(`our Hugging Face cache (${hub.store.root}): ${formatBytes(ours)}${limit > 0 ? ` of ${limit} GiB (hub.cacheLimitGiB)` : ', no size limit'}\n`);
}

function estimateJson(e: MachineEstimate | undefined): Record<string, unknown> | null {
  return e ? { bytes: e.bytes, host_bytes: e.hostBytes, fits: e.fits, ctx: e.ctx } : null;
}
