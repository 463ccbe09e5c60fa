export type { GpuDevice, GpuProcess, GpuSource, GpuSourceKind } from './types.js';
export { MIB } from './types.js';
export { NvmlSource, NvmlError } from './nvml.js';
export { NvidiaSmiSource, parseNvidiaSmi } from './nvidia-smi.js';
export { SimulatedSource, NoGpuSource, type SimulatedGpuSpec } from './simulated.js';
export { openGpuSource, GpuSourceError, type GpuSourceSettings } from './select.js';
export { GpuMonitor, type MonitorSnapshot } from './monitor.js';
