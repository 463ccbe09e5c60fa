/**
 * NVML through koffi (FFI to libnvidia-ml.so.1): no process spawned per poll. Only the functions below are
 * used, so a stand-in library exporting them (the tests compile one) can take the driver's place via
 * `gpu.nvmlLibrary`.
 */
import koffi from 'koffi';
import type { GpuDevice, GpuProcess, GpuSource } from './types.js';

const NVML_SUCCESS = 0;
const NVML_ERROR_NOT_SUPPORTED = 3;
const NVML_TEMPERATURE_GPU = 0;
const NAME_BUFFER = 96;
const UUID_BUFFER = 96;
/** nvmlPciInfo_t: busIdLegacy[16], domain, bus, device, pciDeviceId, pciSubSystemId (uint32 each), busId[32]. */
const PCI_INFO_SIZE = 16 + 5 * 4 + 32;
const PCI_BUS_ID_OFFSET = 36;
/** nvmlProcessInfo_t (v2/v3): pid uint32, (pad), usedGpuMemory uint64, gpuInstanceId, computeInstanceId. */
const PROCESS_INFO_SIZE = 24;
const MAX_PROCESSES = 128;
/** NVML reports this for usedGpuMemory when it cannot tell (e.g. without permission). */
const NVML_VALUE_NOT_AVAILABLE = 0xffffffffffffffffn;

export class NvmlError extends Error {
  constructor(
    readonly call: string,
    readonly code: number,
    detail: string,
  ) {
    super(`${call} failed: ${detail} (NVML error ${code})`);
    this.name = 'NvmlError';
  }
}

type Fn = (...args: unknown[]) => number;

interface NvmlFunctions {
  init: Fn;
  shutdown: Fn;
  errorString: (code: number) => string;
  getCount: Fn;
  getHandle: Fn;
  getName: Fn;
  getUuid: Fn;
  getPciInfo: Fn;
  getMemory: Fn;
  getUtilization: Fn;
  getTemperature: Fn;
  getPower: Fn;
  getComputeCapability: Fn;
  getProcesses: Fn;
}

let typesDeclared = false;

/** koffi's named types are process-wide: declare them once, whatever number of sources are opened. */
function declareTypes(): void {
  if (typesDeclared) return;
  koffi.pointer('nvmlDevice_t', koffi.opaque());
  koffi.struct('nvmlMemory_t', { total: 'uint64', free: 'uint64', used: 'uint64' });
  koffi.struct('nvmlUtilization_t', { gpu: 'uint32', memory: 'uint32' });
  typesDeclared = true;
}

function bind(library: string): NvmlFunctions {
  const lib = koffi.load(library);
  declareTypes();
  return {
    init: lib.func('int nvmlInit_v2()'),
    shutdown: lib.func('int nvmlShutdown()'),
    errorString: lib.func('const char *nvmlErrorString(int result)'),
    getCount: lib.func('int nvmlDeviceGetCount_v2(_Out_ uint32_t *count)'),
    getHandle: lib.func('int nvmlDeviceGetHandleByIndex_v2(uint32_t index, _Out_ nvmlDevice_t *device)'),
    getName: lib.func('int nvmlDeviceGetName(nvmlDevice_t device, _Out_ uint8_t *name, uint32_t length)'),
    getUuid: lib.func('int nvmlDeviceGetUUID(nvmlDevice_t device, _Out_ uint8_t *uuid, uint32_t length)'),
    getPciInfo: lib.func('int nvmlDeviceGetPciInfo_v3(nvmlDevice_t device, _Out_ uint8_t *pci)'),
    getMemory: lib.func('int nvmlDeviceGetMemoryInfo(nvmlDevice_t device, _Out_ nvmlMemory_t *memory)'),
    getUtilization: lib.func('int nvmlDeviceGetUtilizationRates(nvmlDevice_t device, _Out_ nvmlUtilization_t *utilization)'),
    getTemperature: lib.func('int nvmlDeviceGetTemperature(nvmlDevice_t device, int sensor, _Out_ uint32_t *temp)'),
    getPower: lib.func('int nvmlDeviceGetPowerUsage(nvmlDevice_t device, _Out_ uint32_t *milliwatts)'),
    getComputeCapability: lib.func('int nvmlDeviceGetCudaComputeCapability(nvmlDevice_t device, _Out_ int *major, _Out_ int *minor)'),
    getProcesses: lib.func('int nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t device, _Inout_ uint32_t *count, _Out_ uint8_t *infos)'),
  } as unknown as NvmlFunctions;
}

function cString(buf: Buffer): string {
  const end = buf.indexOf(0);
  return buf.subarray(0, end < 0 ? buf.length : end).toString('utf8');
}

export class NvmlSource implements GpuSource {
  readonly kind = 'nvml' as const;
  readonly description: string;
  private readonly fns: NvmlFunctions;
  private closed = false;

  /** Loads the library and initializes NVML; throws when either fails. */
  constructor(readonly library: string) {
    this.fns = bind(library);
    this.check('nvmlInit_v2', this.fns.init());
    this.description = `NVML (${library})`;
  }

  private check(call: string, code: number): void {
    if (code !== NVML_SUCCESS) throw new NvmlError(call, code, this.fns.errorString(code));
  }

  /** The value of an optional reading, or null where the device does not support it. */
  private optional<T>(call: string, code: number, value: () => T): T | null {
    if (code === NVML_ERROR_NOT_SUPPORTED) return null;
    this.check(call, code);
    return value();
  }

  count(): number {
    const count = [0];
    this.check('nvmlDeviceGetCount_v2', this.fns.getCount(count));
    return count[0]!;
  }

  private device(index: number): GpuDevice {
    const f = this.fns;
    const handle: unknown[] = [null];
    this.check('nvmlDeviceGetHandleByIndex_v2', f.getHandle(index, handle));
    const h = handle[0];

    const name = Buffer.alloc(NAME_BUFFER);
    this.check('nvmlDeviceGetName', f.getName(h, name, NAME_BUFFER));
    const uuid = Buffer.alloc(UUID_BUFFER);
    this.check('nvmlDeviceGetUUID', f.getUuid(h, uuid, UUID_BUFFER));
    const pci = Buffer.alloc(PCI_INFO_SIZE);
    this.check('nvmlDeviceGetPciInfo_v3', f.getPciInfo(h, pci));
    const memory = { total: 0n, free: 0n, used: 0n } as { total: bigint | number; free: bigint | number; used: bigint | number };
    this.check('nvmlDeviceGetMemoryInfo', f.getMemory(h, memory));
    const util = { gpu: 0, memory: 0 };
    const utilization = this.optional('nvmlDeviceGetUtilizationRates', f.getUtilization(h, util), () => util);
    const temp = [0];
    const temperature = this.optional('nvmlDeviceGetTemperature', f.getTemperature(h, NVML_TEMPERATURE_GPU, temp), () => temp[0]!);
    const mw = [0];
    const power = this.optional('nvmlDeviceGetPowerUsage', f.getPower(h, mw), () => mw[0]! / 1000);
    const major = [0];
    const minor = [0];
    const cc = this.optional('nvmlDeviceGetCudaComputeCapability', f.getComputeCapability(h, major, minor), () => `${major[0]}.${minor[0]}`);

    return {
      index,
      uuid: cString(uuid),
      name: cString(name),
      pciBusId: cString(pci.subarray(PCI_BUS_ID_OFFSET)),
      totalBytes: Number(memory.total),
      usedBytes: Number(memory.used),
      freeBytes: Number(memory.free),
      utilizationGpu: utilization?.gpu ?? null,
      utilizationMemory: utilization?.memory ?? null,
      temperatureC: temperature,
      powerW: power,
      computeCapability: cc,
      processes: this.processes(h),
    };
  }

  private processes(handle: unknown): GpuProcess[] {
    const count = [MAX_PROCESSES];
    const buf = Buffer.alloc(PROCESS_INFO_SIZE * MAX_PROCESSES);
    const code = this.fns.getProcesses(handle, count, buf);
    if (code === NVML_ERROR_NOT_SUPPORTED) return [];
    this.check('nvmlDeviceGetComputeRunningProcesses_v3', code);
    const out: GpuProcess[] = [];
    for (let i = 0; i < Math.min(count[0]!, MAX_PROCESSES); i++) {
      const at = i * PROCESS_INFO_SIZE;
      const used = buf.readBigUInt64LE(at + 8);
      out.push({ pid: buf.readUInt32LE(at), usedBytes: used === NVML_VALUE_NOT_AVAILABLE ? 0 : Number(used) });
    }
    return out;
  }

  async read(): Promise<GpuDevice[]> {
    if (this.closed) throw new Error('NVML source is closed');
    const n = this.count();
    return Array.from({ length: n }, (_, i) => this.device(i));
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.fns.shutdown();
  }
}
