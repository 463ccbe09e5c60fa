/**
 * A model's estimate for this machine, as listings show it: the bytes it needs on the GPU with the most free memory
 * (all layers there), and where it would go now: that GPU, split over the GPUs, the CPU, or nowhere. One estimate
 * per model, not the planner's search (that happens when the model is loaded, with evictions counted). Pure.
 */
import { CPU_ONLY, estimateMemory, type ModelInfo } from '../estimate/index.js';
import { estimateSettings } from './model-settings.js';

export interface MachineGpu {
  index: number;
  name: string;
  freeBytes: number;
}

export interface MachineEstimate {
  /** Bytes on the chosen GPU (or on the host for the CPU), the model's context included. */
  bytes: number;
  /** Bytes on the host next to them. */
  hostBytes: number;
  /** `gpu 0`, `2 gpus`, `cpu`, or `none`. */
  fits: string;
  ctx: number;
}

/** The estimate of `info` at the model's settings, for `gpus` (their free memory now) and `hostFreeBytes` of RAM. */
export function machineEstimate(
  info: ModelInfo,
  model: { ctx: number; parallel: number; args: readonly string[] },
  gpus: readonly MachineGpu[],
  hostFreeBytes: number,
): MachineEstimate {
  const settings = estimateSettings(model.ctx, model.parallel, model.args);
  const best = [...gpus].sort((a, b) => b.freeBytes - a.freeBytes)[0];
  if (best) {
    const one = estimateMemory(info, settings, { devices: [{ name: `CUDA${best.index}`, kind: 'cuda', freeBytes: best.freeBytes }] });
    const onGpu = one.devices[0]!.totalBytes;
    if (onGpu <= best.freeBytes && one.host.totalBytes <= hostFreeBytes) return { bytes: onGpu, hostBytes: one.host.totalBytes, fits: `gpu ${best.index}`, ctx: model.ctx };
    if (gpus.length > 1) {
      const all = estimateMemory(info, settings, { devices: gpus.map((g) => ({ name: `CUDA${g.index}`, kind: 'cuda' as const, freeBytes: g.freeBytes })) });
      if (all.devices.every((d, i) => d.totalBytes <= gpus[i]!.freeBytes) && all.host.totalBytes <= hostFreeBytes) {
        return { bytes: all.devices.reduce((s, d) => s + d.totalBytes, 0), hostBytes: all.host.totalBytes, fits: `${gpus.length} gpus`, ctx: model.ctx };
      }
    }
  }
  const cpu = estimateMemory(info, settings, CPU_ONLY);
  return { bytes: cpu.host.totalBytes, hostBytes: cpu.host.totalBytes, fits: cpu.host.totalBytes <= hostFreeBytes ? 'cpu' : 'none', ctx: model.ctx };
}
