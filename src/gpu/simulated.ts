/**
 * Simulated GPUs declared in config, for tests and demos on machines without GPUs. Their used memory is what
 * the proxy's own instances are charged (the ledger), supplied by a callback.
 */
import { MIB, type GpuDevice, type GpuSource } from './types.js';

export interface SimulatedGpuSpec {
  name: string;
  memoryMiB: number;
  /** Memory used by others (not the proxy), in MiB. */
  usedMiB?: number;
  utilization?: number;
  computeCapability?: string;
}

export class SimulatedSource implements GpuSource {
  readonly kind = 'simulated' as const;
  readonly description: string;
  /** Bytes the proxy's instances hold per GPU index; set by the owner of the ledger. */
  charged: (index: number) => number = () => 0;

  constructor(private readonly specs: readonly SimulatedGpuSpec[]) {
    this.description = `simulated (${specs.map((s) => `${s.name} ${s.memoryMiB} MiB`).join(', ')})`;
  }

  async read(): Promise<GpuDevice[]> {
    return this.specs.map((spec, index) => {
      const total = spec.memoryMiB * MIB;
      const used = Math.min(total, (spec.usedMiB ?? 0) * MIB + this.charged(index));
      return {
        index,
        uuid: `GPU-simulated-${String(index).padStart(4, '0')}`,
        name: spec.name,
        pciBusId: `00000000:${(0x10 + index).toString(16).padStart(2, '0').toUpperCase()}:00.0`,
        totalBytes: total,
        usedBytes: used,
        freeBytes: total - used,
        utilizationGpu: spec.utilization ?? 0,
        utilizationMemory: 0,
        temperatureC: null,
        powerW: null,
        computeCapability: spec.computeCapability ?? null,
        processes: [],
      };
    });
  }

  close(): void {}
}

export class NoGpuSource implements GpuSource {
  readonly kind = 'none' as const;
  constructor(readonly description: string) {}
  async read(): Promise<GpuDevice[]> {
    return [];
  }
  close(): void {}
}
