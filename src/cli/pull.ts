/**
 * `llama-smart-proxy pull <model>`: resolves a Hugging Face `owner/repo[:variant]` (or a configured alias with
 * `hf`) and downloads it into the cache, with a progress bar on a terminal and plain lines otherwise. Prints the
 * model file's path on stdout. A repo named without a variant (or with `:auto`) gets the quantization `:auto`
 * chooses for this machine's GPUs as they are now (unless hub.defaultVariant names a fixed one); the choice and
 * its reason are printed.
 */
import path from 'node:path';
import { QuantizationPicker } from '../api/quantization-picker.js';
import { loadConfig, type Config } from '../config/index.js';
import { GpuMonitor, openGpuSource } from '../gpu/index.js';
import { createModelHub, describeProgress, formatBytes, pullTarget, type DownloadProgress, type ModelHub } from '../models/index.js';
import { canonicalModelName } from '../models/model-aliases.js';
import { OS_HOST_MEMORY, PlacementService } from '../placement/service.js';
import type { QuantChoice } from '../placement/quant-choice.js';
import { createOllamaPuller, type ParsedOllamaName, type PullProgress } from '../sources/index.js';
import { describeEstimate, headerInfo, readMachine } from './machine.js';

export interface PullFlags {
  config?: string;
  /** Log lines of the hub (resolution, retries) on stderr. */
  verbose?: boolean;
}

export interface CliIO {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  env: NodeJS.ProcessEnv;
}

const processIO = (): CliIO => ({ stdout: process.stdout, stderr: process.stderr, env: process.env });

function duration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--:--';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

/** One line of the progress bar, fitted to `columns`. */
export function progressBar(p: DownloadProgress, columns = 80): string {
  const frac = p.totalBytes > 0 ? Math.min(1, p.receivedBytes / p.totalBytes) : 1;
  const pct = `${String(Math.floor(frac * 100)).padStart(3)}%`;
  const rate = p.bytesPerSecond > 0 ? `${formatBytes(p.bytesPerSecond)}/s` : '';
  const eta = p.bytesPerSecond > 0 ? `eta ${duration((p.totalBytes - p.receivedBytes) / p.bytesPerSecond)}` : '';
  const state = p.phase === 'waiting' ? 'waiting for another process' : p.phase === 'verify' ? 'verifying' : '';
  const info = [pct, `${formatBytes(p.receivedBytes)}/${formatBytes(p.totalBytes)}`, rate, eta, state].filter(Boolean).join(' ');
  const width = Math.max(10, Math.min(40, columns - info.length - 4));
  const filled = Math.round(frac * width);
  return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${info}`.slice(0, Math.max(1, columns - 1));
}

export async function pullCommand(model: string, flags: PullFlags = {}, io: CliIO = processIO()): Promise<void> {
  const config = loadConfig({ ...(flags.config ? { file: flags.config } : {}), env: io.env });
  const log = flags.verbose ? (msg: string, fields?: Record<string, unknown>) => io.stderr.write(`${msg}${fields ? ` ${JSON.stringify(fields)}` : ''}\n`) : undefined;
  const target = pullTarget(config, model, io.env);
  if (target.kind === 'ollama') return pullOllama(config, target.name, io, log);
  const hub = createModelHub(config, io.env, log);
  try {
    const choice = target.variant === undefined && target.auto ? await chooseHere(config, io, hub, target.repo, model, log) : undefined;
    const res = await hub.resolve(target.repo, choice ? path.posix.basename(choice.file) : target.variant);
    const parts = res.parts.length > 1 ? ` (+${res.parts.length - 1} parts)` : '';
    const mmproj = res.mmproj ? ` and ${res.mmproj.path}` : '';
    io.stderr.write(`${res.repo}:${choice?.chosen ?? res.tag ?? res.variant} -> ${res.parts[0]!.path}${parts}${mmproj}, ${formatBytes(res.totalBytes)}, commit ${res.commit.slice(0, 12)}\n`);
    if (choice) io.stderr.write(`:auto chose ${choice.reason}\n`);
    if (res.note) io.stderr.write(`note: ${res.note}\n`);
    if (res.cached) io.stderr.write('already in the cache\n');
    else if (res.missingBytes < res.totalBytes) io.stderr.write(`resuming: ${formatBytes(res.totalBytes - res.missingBytes)} already on disk\n`);

    const tty = io.stderr.isTTY === true;
    let lastLine = '';
    let nextStep = 0;
    let lastPlain = 0;
    const onProgress = (p: DownloadProgress) => {
      if (tty) {
        lastLine = `\r\x1b[K${progressBar(p, io.stderr.columns ?? 80)}`;
        io.stderr.write(lastLine);
        return;
      }
      const pct = p.totalBytes > 0 ? (p.receivedBytes / p.totalBytes) * 100 : 100;
      if (pct >= nextStep || Date.now() - lastPlain > 10_000 || p.phase === 'done') {
        nextStep = Math.floor(pct / 10) * 10 + 10;
        lastPlain = Date.now();
        io.stderr.write(`${describeProgress(p)}\n`);
      }
    };
    const started = Date.now();
    const downloading = !res.cached;
    const out = await hub.ensureDownloaded(res, { onProgress, progressIntervalMs: tty ? 100 : 500 });
    if (tty && lastLine) io.stderr.write('\n');
    if (downloading) io.stderr.write(`done in ${duration((Date.now() - started) / 1000)}\n`);
    io.stdout.write(`${out.file}\n`);
    if (out.mmproj) io.stdout.write(`${out.mmproj}\n`);
  } finally {
    await hub.close();
  }
}

/**
 * `:auto` for a pull: the quantization of `repo` that fits this machine's GPUs now (read from gpu.source, as the
 * `gpus` command reads them; a CLI has no cluster and no instances of its own), at the model's settings (an alias's
 * own, else modelDefaults). Undefined when there is no choice to make (the repo cannot be listed, no header read):
 * the fixed default is taken, and stderr says why.
 */
async function chooseHere(config: Config, io: CliIO, hub: ModelHub, repo: string, named: string, log: ((msg: string, fields?: Record<string, unknown>) => void) | undefined): Promise<QuantChoice | undefined> {
  const entry = config.models[String(canonicalModelName(config, named))];
  const settings = {
    ctx: entry?.ctx ?? config.modelDefaults.ctx,
    parallel: entry?.parallel ?? config.modelDefaults.parallel,
    args: [...config.modelDefaults.args, ...(entry?.args ?? [])],
  };
  let monitor: GpuMonitor;
  try {
    monitor = new GpuMonitor(await openGpuSource(config.gpu, io.env), 0);
  } catch (err) {
    io.stderr.write(`note: cannot read the GPUs (${(err as Error).message}); choosing for the CPU\n`);
    monitor = new GpuMonitor(await openGpuSource({ ...config.gpu, source: 'none' }, io.env), 0);
  }
  try {
    const placer = new PlacementService(monitor, config.gpu, () => {}, OS_HOST_MEMORY);
    const picker = new QuantizationPicker({
      hub,
      placer,
      ledger: () => ({ running: [], loading: new Map() }),
      log: (msg, fields) => {
        if (msg.startsWith('could not choose')) io.stderr.write(`note: ${msg} (${String(fields.reason)})\n`);
        else log?.(msg, fields);
      },
    });
    return await picker.pick(repo, settings);
  } finally {
    monitor.stop();
  }
}

/** `pull` of an Ollama name: manifest, the estimate from the model layer's header, then the blobs into the store. */
async function pullOllama(config: Config, name: ParsedOllamaName, io: CliIO, log: ((msg: string, fields?: Record<string, unknown>) => void) | undefined): Promise<void> {
  const puller = createOllamaPuller(config, io.env, log);
  try {
    const plan = await puller.plan(name);
    io.stderr.write(`${plan.display} from ${plan.base}: ${plan.manifest.layers.length} layers, ${formatBytes(plan.totalBytes)}\n`);
    if (!plan.model.cached) {
      const header = await puller.probeHeader(plan);
      const machine = await readMachine(config, io.env);
      io.stderr.write(`estimate (from the model layer's header): ${describeEstimate(machine.estimate(headerInfo(header), { ctx: config.modelDefaults.ctx, parallel: config.modelDefaults.parallel, args: config.modelDefaults.args }))}\n`);
    }
    if (plan.missingBytes === 0) io.stderr.write('already in the store\n');
    else if (plan.missingBytes < plan.totalBytes) io.stderr.write(`resuming: ${formatBytes(plan.totalBytes - plan.missingBytes)} already on disk\n`);
    const tty = io.stderr.isTTY === true;
    const done = new Map<string, number>();
    let lastPlain = 0;
    const onProgress = (p: PullProgress) => {
      done.set(p.digest, p.completed);
      const received = [...done.values()].reduce((a, b) => a + b, 0) + plan.blobs.filter((b) => b.cached && !done.has(b.digest)).reduce((a, b) => a + b.size, 0);
      const progress: DownloadProgress = { repo: plan.display, file: p.digest.slice(7, 19), phase: p.phase, receivedBytes: Math.min(received, plan.totalBytes), totalBytes: plan.totalBytes, bytesPerSecond: 0 };
      if (tty) io.stderr.write(`\r\x1b[K${progressBar(progress, io.stderr.columns ?? 80)}`);
      else if (Date.now() - lastPlain > 2000 || p.phase === 'done') {
        lastPlain = Date.now();
        io.stderr.write(`${describeProgress(progress)}\n`);
      }
    };
    const started = Date.now();
    await puller.pull(plan, { onProgress, progressIntervalMs: tty ? 100 : 500 });
    if (tty) io.stderr.write('\n');
    io.stderr.write(`done in ${duration((Date.now() - started) / 1000)}; manifest ${plan.manifestPath}\n`);
    io.stdout.write(`${plan.model.local}\n`);
  } finally {
    await puller.close();
  }
}
