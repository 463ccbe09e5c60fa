/** Fallback source: `nvidia-smi` CSV, for machines where the NVML library cannot be loaded but the tool runs. */
import { run } from '../util/exec.js';
import { MIB, type GpuDevice, type GpuSource } from './types.js';

const GPU_FIELDS = [
  'index',
  'uuid',
  'name',
  'pci.bus_id',
  'memory.total',
  'memory.used',
  'memory.free',
  'utilization.gpu',
  'utilization.memory',
  'temperature.gpu',
  'power.draw',
  'compute_cap',
] as const;

/** nvidia-smi prints "[N/A]" or "[Not Supported]" for what a device lacks. */
function num(value: string | undefined): number | null {
  if (value === undefined) return null;
  const n = Number(value.trim());
  return value.trim() === '' || Number.isNaN(n) ? null : n;
}

function csvRows(text: string): string[][] {
  return text
    .trim()
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => l.split(',').map((c) => c.trim()));
}

/** Parses the two CSV outputs (pure, for tests). */
export function parseNvidiaSmi(gpuCsv: string, appsCsv: string): GpuDevice[] {
  const devices = csvRows(gpuCsv).map((c): GpuDevice => {
    const total = (num(c[4]) ?? 0) * MIB;
    const used = (num(c[5]) ?? 0) * MIB;
    return {
      index: num(c[0]) ?? 0,
      uuid: c[1] ?? '',
      name: c[2] ?? '',
      pciBusId: c[3] ?? '',
      totalBytes: total,
      usedBytes: used,
      freeBytes: num(c[6]) !== null ? num(c[6])! * MIB : total - used,
      utilizationGpu: num(c[7]),
      utilizationMemory: num(c[8]),
      temperatureC: num(c[9]),
      powerW: num(c[10]),
      computeCapability: c[11] && num(c[11]) !== null ? c[11] : null,
      processes: [],
    };
  });
  for (const [uuid, pid, used] of csvRows(appsCsv)) {
    const device = devices.find((d) => d.uuid === uuid);
    if (device && num(pid) !== null) device.processes.push({ pid: num(pid)!, usedBytes: (num(used) ?? 0) * MIB });
  }
  return devices;
}

export class NvidiaSmiSource implements GpuSource {
  readonly kind = 'nvidia-smi' as const;
  readonly description: string;

  constructor(private readonly binary: string) {
    this.description = `nvidia-smi (${binary})`;
  }

  private async query(args: string[]): Promise<string> {
    const r = await run(this.binary, [...args, '--format=csv,noheader,nounits'], { timeoutMs: 10_000 });
    if (r.code !== 0) throw new Error(`${this.binary} ${args[0]} failed (exit ${r.code}): ${(r.stderr || r.stdout).trim()}`);
    return r.stdout;
  }

  async read(): Promise<GpuDevice[]> {
    const [gpus, apps] = await Promise.all([
      this.query([`--query-gpu=${GPU_FIELDS.join(',')}`]),
      this.query(['--query-compute-apps=gpu_uuid,pid,used_memory']),
    ]);
    return parseNvidiaSmi(gpus, apps);
  }

  close(): void {}
}
