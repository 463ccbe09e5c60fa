/** What the proxy knows of one GPU at one moment. Memory in bytes. */
export interface GpuProcess {
  pid: number;
  usedBytes: number;
}

export interface GpuDevice {
  index: number;
  uuid: string;
  name: string;
  pciBusId: string;
  totalBytes: number;
  usedBytes: number;
  freeBytes: number;
  /** Percent, or null when the source does not tell. */
  utilizationGpu: number | null;
  utilizationMemory: number | null;
  temperatureC: number | null;
  powerW: number | null;
  /** "8.9", or null when unknown. */
  computeCapability: string | null;
  processes: GpuProcess[];
}

export type GpuSourceKind = 'nvml' | 'nvidia-smi' | 'none' | 'simulated';

/** Where device readings come from. `read` always returns fresh numbers. */
export interface GpuSource {
  readonly kind: GpuSourceKind;
  /** One line for logs and /health: the library, the tool, or why there are no GPUs. */
  readonly description: string;
  read(): Promise<GpuDevice[]>;
  close(): void;
}

export const MIB = 1024 * 1024;
