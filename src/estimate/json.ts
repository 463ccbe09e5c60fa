/** The JSON shape of `llama-smart-proxy estimate --json` (issue 4): MiB with decimals. */

import type { MemoryEstimate } from './estimate.js';

export interface EstimateJson {
  host: { modelMiB: number; contextMiB: number; computeMiB: number };
  devices: { name: string; modelMiB: number; contextMiB: number; computeMiB: number; overheadMiB: number; totalMiB: number }[];
  totalMiB: number;
}

const MiB = 1024 * 1024;
/** Bytes to MiB, rounded to 1/100 MiB. */
const mib = (bytes: number): number => Math.round((bytes / MiB) * 100) / 100;

export function toJson(e: MemoryEstimate): EstimateJson {
  return {
    host: { modelMiB: mib(e.host.modelBytes), contextMiB: mib(e.host.contextBytes), computeMiB: mib(e.host.computeBytes) },
    devices: e.devices.map((d) => ({
      name: d.name,
      modelMiB: mib(d.modelBytes),
      contextMiB: mib(d.contextBytes),
      computeMiB: mib(d.computeBytes),
      overheadMiB: mib(d.overheadBytes),
      totalMiB: mib(d.totalBytes),
    })),
    totalMiB: mib(e.totalBytes),
  };
}
