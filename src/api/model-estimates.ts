/**
 * Listings' estimates: a model's memory for this machine now (placement/machine-estimate.ts) from its GGUF header
 * (read once per file version by the placer) and the latest GPU readings. Kept a few seconds per model and
 * settings: a listing of many models costs one estimate each, not one per request.
 */
import os from 'node:os';
import type { GpuMonitor } from '../gpu/index.js';
import { machineEstimate, type MachineEstimate } from '../placement/machine-estimate.js';
import type { PlacementService } from '../placement/service.js';

export interface EstimateInput {
  file: string;
  ctx: number;
  parallel: number;
  args: readonly string[];
}

/** The estimate of a model, or undefined when its header cannot be read. */
export type ModelEstimator = (model: EstimateInput) => MachineEstimate | undefined;

const KEEP_MS = 5000;
const MAX_KEPT = 512;

export function modelEstimator(placer: PlacementService, monitor: GpuMonitor | undefined, hostFree: () => number = () => os.freemem()): ModelEstimator {
  const kept = new Map<string, { at: number; value: MachineEstimate | undefined }>();
  return (model) => {
    const key = `${model.file}|${model.ctx}|${model.parallel}|${model.args.join(' ')}`;
    const hit = kept.get(key);
    if (hit && Date.now() - hit.at < KEEP_MS) return hit.value;
    let value: MachineEstimate | undefined;
    try {
      const gpus = (monitor?.latest().devices ?? []).map((d) => ({ index: d.index, name: d.name, freeBytes: d.freeBytes }));
      value = machineEstimate(placer.modelInfo(model.file), model, gpus, hostFree());
    } catch {
      value = undefined;
    }
    kept.set(key, { at: Date.now(), value });
    if (kept.size > MAX_KEPT) kept.delete(kept.keys().next().value!);
    return value;
  };
}

/** How listings show an estimate. */
export function estimateView(e: MachineEstimate | undefined): { bytes: number; host_bytes: number; fits: string; ctx: number } | null {
  return e ? { bytes: e.bytes, host_bytes: e.hostBytes, fits: e.fits, ctx: e.ctx } : null;
}
