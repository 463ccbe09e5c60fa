/** This machine's GPUs and free RAM, read once, for the estimates the `models` and `pull` commands show. */
import os from 'node:os';
import type { Config } from '../config/index.js';
import { modelInfo, type ModelInfo } from '../estimate/index.js';
import type { GgufModelHeader } from '../gguf/index.js';
import { openGpuSource } from '../gpu/index.js';
import { machineEstimate, type MachineEstimate, type MachineGpu } from '../placement/machine-estimate.js';
import { formatBytes } from '../models/index.js';

export interface Machine {
  gpus: MachineGpu[];
  hostFreeBytes: number;
  estimate(info: ModelInfo, model: { ctx: number; parallel: number; args: readonly string[] }): MachineEstimate;
}

/** Reads the GPUs (gpu.source) once; a source that cannot be read counts as none. */
export async function readMachine(config: Config, env: NodeJS.ProcessEnv): Promise<Machine> {
  let gpus: MachineGpu[] = [];
  try {
    const source = await openGpuSource(config.gpu, env);
    try {
      gpus = (await source.read()).map((d) => ({ index: d.index, name: d.name, freeBytes: d.freeBytes }));
    } finally {
      source.close();
    }
  } catch {
    gpus = [];
  }
  const hostFreeBytes = os.freemem();
  return { gpus, hostFreeBytes, estimate: (info, model) => machineEstimate(info, model, gpus, hostFreeBytes) };
}

/** "1.21 GiB on gpu 0 at 4096 ctx". */
export function describeEstimate(e: MachineEstimate): string {
  if (e.fits === 'none') return `${formatBytes(e.bytes)} at ${e.ctx} ctx: does not fit this machine now`;
  return `${formatBytes(e.bytes)} on ${e.fits} at ${e.ctx} ctx`;
}

export function headerInfo(header: GgufModelHeader): ModelInfo {
  return modelInfo({ ...header, tensors: header.tensors });
}
