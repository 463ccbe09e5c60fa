/**
 * Choosing the device source at start. `auto` takes NVML when its library loads and sees a GPU, else nvidia-smi
 * when it runs and lists one, else none (CPU only). Simulated GPUs are used only when asked for by name, and
 * refused on a machine with real GPUs unless forced: a demo setting must never hide real hardware.
 */
import { readdirSync } from 'node:fs';
import { which } from '../util/exec.js';
import { NvidiaSmiSource } from './nvidia-smi.js';
import { NvmlSource } from './nvml.js';
import { NoGpuSource, SimulatedSource, type SimulatedGpuSpec } from './simulated.js';
import type { GpuSource } from './types.js';

export interface GpuSourceSettings {
  source: 'auto' | 'nvml' | 'nvidia-smi' | 'none' | 'simulated';
  nvmlLibrary: string;
  simulated: SimulatedGpuSpec[];
  forceSimulated: boolean;
}

export class GpuSourceError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GpuSourceError';
  }
}

function driverGpuCount(): number {
  try {
    return readdirSync('/proc/driver/nvidia/gpus').length;
  } catch {
    return 0;
  }
}

function tryNvml(library: string): { source?: NvmlSource; count: number; reason?: string } {
  try {
    const source = new NvmlSource(library);
    const count = source.count();
    if (count === 0) {
      source.close();
      return { count, reason: `NVML (${library}) reports no GPU` };
    }
    return { source, count };
  } catch (err) {
    return { count: 0, reason: `NVML (${library}) unavailable: ${(err as Error).message}` };
  }
}

async function tryNvidiaSmi(env: NodeJS.ProcessEnv): Promise<{ source?: NvidiaSmiSource; reason?: string }> {
  const binary = which('nvidia-smi', env);
  if (!binary) return { reason: 'nvidia-smi not found' };
  const source = new NvidiaSmiSource(binary);
  try {
    const devices = await source.read();
    return devices.length > 0 ? { source } : { reason: `${binary} lists no GPU` };
  } catch (err) {
    return { reason: (err as Error).message };
  }
}

export async function openGpuSource(settings: GpuSourceSettings, env: NodeJS.ProcessEnv = process.env): Promise<GpuSource> {
  switch (settings.source) {
    case 'none':
      return new NoGpuSource('GPUs disabled by configuration (gpu.source: none)');
    case 'nvml': {
      const nvml = tryNvml(settings.nvmlLibrary);
      if (!nvml.source) throw new GpuSourceError(`gpu.source is nvml but ${nvml.reason}`);
      return nvml.source;
    }
    case 'nvidia-smi': {
      const smi = await tryNvidiaSmi(env);
      if (!smi.source) throw new GpuSourceError(`gpu.source is nvidia-smi but ${smi.reason}`);
      return smi.source;
    }
    case 'simulated': {
      if (settings.simulated.length === 0) throw new GpuSourceError('gpu.source is simulated but gpu.simulated declares no GPU');
      if (!settings.forceSimulated) {
        const nvml = tryNvml(settings.nvmlLibrary);
        nvml.source?.close();
        const real = Math.max(nvml.count, driverGpuCount());
        if (real > 0) {
          throw new GpuSourceError(
            `refusing simulated GPUs: this machine has ${real} real NVIDIA GPU(s); remove gpu.source: simulated, or set gpu.forceSimulated: true to plan on simulated ones anyway`,
          );
        }
      }
      return new SimulatedSource(settings.simulated);
    }
    case 'auto': {
      const nvml = tryNvml(settings.nvmlLibrary);
      if (nvml.source) return nvml.source;
      const smi = await tryNvidiaSmi(env);
      if (smi.source) return smi.source;
      return new NoGpuSource(`no NVIDIA GPU found (${nvml.reason}; ${smi.reason}): models run on the CPU`);
    }
  }
}
