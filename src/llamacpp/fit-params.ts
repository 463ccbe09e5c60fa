/**
 * llama.cpp's own figures, from `llama-fit-params -m <model> <settings> --fit-print on`: a no-alloc
 * load of the model and a context with the same settings, printing one line per device and one
 * for the host, each "<name> <model MiB> <context MiB> <compute MiB>" (integers, rounded down).
 * This is the `verify` / `calibrate` path of the estimator, and the ground truth of its tests.
 *
 * Notes on the tool (node-llama-cpp 3.21.1's llama.cpp):
 * - its defaults are the library's, not llama-server's: -np 1, and logits for the whole batch
 *   (n_outputs_max = n_batch), so compare with an estimate made with `outputs: 'batch'`;
 * - it has no -kvu: a unified KV cache (llama-server's -np auto) cannot be measured with it
 *   (fitSettings() maps one to a single slot, the same memory for models without SWA layers);
 * - on a CPU build, weights the CPU backend repacks (Q4_0, Q4_K, IQ4_NL, ...) move to a
 *   CPU_REPACK buffer that the Host line leaves out: `noRepack` (-nr, the default here) keeps
 *   all weights in the Host figure.
 */

import type { EstimateSettings } from '../estimate/settings.js';
import { run } from '../util/exec.js';

export interface FitPrintRow {
  readonly name: string;
  readonly modelMiB: number;
  readonly contextMiB: number;
  readonly computeMiB: number;
}

export interface FitPrint {
  /** One row per device llama.cpp used, in its order. */
  readonly devices: readonly FitPrintRow[];
  readonly host: FitPrintRow;
}

export interface FitParamsOptions {
  /** Path of llama-fit-params. */
  readonly binary: string;
  readonly model: string;
  readonly settings: EstimateSettings;
  /** -ngl and -ts (only meaningful on a build with GPUs). */
  readonly ngl?: number;
  readonly tensorSplit?: readonly number[];
  /** --no-op-offload when false. */
  readonly opOffload?: boolean;
  /** -nr (default true): keep repackable weights in the Host figure. */
  readonly noRepack?: boolean;
  readonly timeoutMs?: number;
  /** Attempts when the tool dies abnormally (default 2). */
  readonly attempts?: number;
}

export class FitParamsError extends Error {
  constructor(message: string, readonly output: string) {
    super(message);
    this.name = 'FitParamsError';
  }
}

/** llama-server / llama-fit-params flags for the settings (the ones that change memory). */
export function settingsArgs(s: EstimateSettings): string[] {
  const args: string[] = [];
  if (s.ctx !== undefined) args.push('-c', String(s.ctx));
  if (s.parallel === undefined || s.parallel === 'auto') {
    // llama-server's -np auto: 4 slots sharing one unified KV cache
    args.push('-np', '4', '-kvu');
  } else {
    args.push('-np', String(s.parallel));
    if (s.kvUnified) args.push('-kvu');
  }
  if (s.batch !== undefined) args.push('-b', String(s.batch));
  if (s.ubatch !== undefined) args.push('-ub', String(s.ubatch));
  if (s.cacheTypeK) args.push('-ctk', s.cacheTypeK);
  if (s.cacheTypeV) args.push('-ctv', s.cacheTypeV);
  if (s.flashAttn) args.push('-fa', s.flashAttn);
  if (s.swaFull) args.push('--swa-full');
  if (s.kvOffload === false) args.push('-nkvo');
  if (s.cpuMoeLayers) args.push('--n-cpu-moe', String(s.cpuMoeLayers));
  if (s.overrides && s.overrides.length > 0) {
    args.push('-ot', s.overrides.map((o) => `${o.pattern.source}=CPU`).join(','));
  }
  return args;
}

/** Whether the settings ask for a unified KV cache (explicitly, or through -np auto). */
export function isUnified(s: EstimateSettings): boolean {
  return s.parallel === undefined || s.parallel === 'auto' || s.kvUnified === true;
}

/**
 * Settings llama-fit-params can run: a unified cache becomes one slot of the whole context, which
 * allocates the same KV and compute unless the model has sliding-window layers (their window is
 * per slot). `exact` says whether nothing was changed.
 */
export function fitSettings(s: EstimateSettings): { settings: EstimateSettings; exact: boolean } {
  if (!isUnified(s)) return { settings: s, exact: true };
  const { kvUnified: _unified, ...rest } = s;
  return { settings: { ...rest, parallel: 1 }, exact: false };
}

export function fitParamsArgs(o: Omit<FitParamsOptions, 'binary'>): string[] {
  if (isUnified(o.settings)) {
    throw new FitParamsError('llama-fit-params has no unified KV cache (-kvu); use fitSettings() to run one slot instead', '');
  }
  const args = ['-m', o.model, ...settingsArgs(o.settings)];
  if (o.ngl !== undefined) args.push('-ngl', o.ngl < 0 ? 'all' : String(o.ngl));
  if (o.tensorSplit && o.tensorSplit.length > 0) args.push('-ts', o.tensorSplit.join(','));
  if (o.opOffload === false) args.push('--no-op-offload');
  if (o.noRepack ?? true) args.push('-nr');
  args.push('--fit-print', 'on');
  return args;
}

const ROW = /^(\S+) (\d+) (\d+) (\d+)\s*$/;

/** Parses the stdout of `--fit-print on`. */
export function parseFitPrint(stdout: string): FitPrint {
  const rows: FitPrintRow[] = [];
  for (const line of stdout.split(/\r?\n/)) {
    const m = ROW.exec(line.trim());
    if (m) rows.push({ name: m[1]!, modelMiB: Number(m[2]), contextMiB: Number(m[3]), computeMiB: Number(m[4]) });
  }
  const host = rows.find((r) => r.name === 'Host');
  if (!host) throw new FitParamsError('llama-fit-params printed no Host line', stdout);
  return { devices: rows.filter((r) => r !== host), host };
}

/** Runs llama-fit-params --fit-print on with the settings and returns its figures. */
export async function runFitPrint(o: FitParamsOptions): Promise<FitPrint> {
  const args = fitParamsArgs(o);
  const attempts = Math.max(1, o.attempts ?? 2);
  let last = '';
  for (let i = 0; i < attempts; i++) {
    const r = await run(o.binary, args, { timeoutMs: o.timeoutMs ?? 60_000 });
    if (r.code === 0 && /^Host /m.test(r.stdout)) return parseFitPrint(r.stdout);
    last = `${r.stdout}\n${r.stderr}`.trim();
    // an exit code is a refusal (bad settings) that repeats; only a death by signal is retried
    if (r.signal === null) break;
  }
  const tail = last.split('\n').slice(-5).join('\n');
  throw new FitParamsError(`llama-fit-params ${args.join(' ')} failed:\n${tail}`, last);
}
