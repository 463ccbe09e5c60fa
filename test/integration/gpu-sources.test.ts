import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { GpuMonitor, MIB, NvmlError, NvmlSource, openGpuSource, parseNvidiaSmi } from '../../src/gpu/index.js';
import { buildFakeNvml, scriptFakeNvml } from '../helpers/fake-nvml.js';

const fake = buildFakeNvml();
const scriptFile = path.join(mkdtempSync(path.join(os.tmpdir(), 'lsp-nvml-script-')), 'gpus.txt');
const twoGpus = () =>
  scriptFakeNvml(
    scriptFile,
    [
      { uuid: 'GPU-aaaa-0001', name: 'NVIDIA H100 80GB HBM3', bus: '00000000:18:00.0', totalMiB: 81559, usedMiB: 1024, utilGpu: 37, utilMem: 12, tempC: 41, powerMw: 123456, cc: [9, 0] },
      { uuid: 'GPU-bbbb-0002', name: 'NVIDIA RTX 4090', bus: '00000000:3B:00.0', totalMiB: 24564, usedMiB: 20000, tempC: 60, cc: [8, 9] },
    ],
    [
      { gpu: 0, pid: 4242, usedMiB: 900 },
      { gpu: 1, pid: 4343, usedMiB: 19000 },
      { gpu: 1, pid: 4444, usedMiB: 500 },
    ],
  );
const settings = (over: Record<string, unknown> = {}) => ({ source: 'auto' as const, nvmlLibrary: fake.library ?? 'none', simulated: [], forceSimulated: false, ...over });

describe.skipIf(!fake.library)(`NVML binding (koffi) against a compiled stand-in library${fake.reason ? ` (skipped: ${fake.reason})` : ''}`, () => {
  afterEach(() => {
    delete process.env.FAKE_NVML_INIT_ERROR;
  });

  it('reads every field the proxy uses', async () => {
    twoGpus();
    const source = new NvmlSource(fake.library!);
    const [a, b] = await source.read();
    expect(a).toEqual({
      index: 0,
      uuid: 'GPU-aaaa-0001',
      name: 'NVIDIA H100 80GB HBM3',
      pciBusId: '00000000:18:00.0',
      totalBytes: 81559 * MIB,
      usedBytes: 1024 * MIB,
      freeBytes: (81559 - 1024) * MIB,
      utilizationGpu: 37,
      utilizationMemory: 12,
      temperatureC: 41,
      powerW: 123.456,
      computeCapability: '9.0',
      processes: [{ pid: 4242, usedBytes: 900 * MIB }],
    });
    expect(b).toMatchObject({ index: 1, name: 'NVIDIA RTX 4090', computeCapability: '8.9', powerW: null, freeBytes: 4564 * MIB });
    expect(b!.processes).toEqual([
      { pid: 4343, usedBytes: 19000 * MIB },
      { pid: 4444, usedBytes: 500 * MIB },
    ]);
    source.close();
  });

  it('sees new readings at each poll, through the monitor', async () => {
    twoGpus();
    const monitor = new GpuMonitor(new NvmlSource(fake.library!), 0);
    await monitor.start();
    expect(monitor.latest().devices[0]!.usedBytes).toBe(1024 * MIB);
    scriptFakeNvml(scriptFile, [{ uuid: 'GPU-aaaa-0001', name: 'H100', bus: '0:18:0', totalMiB: 81559, usedMiB: 50000 }]);
    const fresh = await monitor.refresh();
    expect(fresh).toHaveLength(1);
    expect(fresh[0]!.usedBytes).toBe(50000 * MIB);
    expect(monitor.latest().devices[0]!.freeBytes).toBe(31559 * MIB);
    monitor.stop();
  });

  it('reports NVML errors with the call and NVML\'s own message', () => {
    process.env.FAKE_NVML_INIT_ERROR = '9';
    expect(() => new NvmlSource(fake.library!)).toThrow(NvmlError);
    expect(() => new NvmlSource(fake.library!)).toThrow(/nvmlInit_v2 failed: Driver Not Loaded \(NVML error 9\)/);
  });

  it('auto picks NVML when its library loads and sees GPUs', async () => {
    twoGpus();
    const source = await openGpuSource(settings());
    expect(source.kind).toBe('nvml');
    expect(source.description).toContain(fake.library!);
    source.close();
  });

  it('refuses simulated GPUs where real ones are seen, unless forced', async () => {
    twoGpus();
    const sim = { source: 'simulated' as const, simulated: [{ name: 'sim', memoryMiB: 8192 }] };
    await expect(openGpuSource(settings(sim))).rejects.toThrow(/refusing simulated GPUs: this machine has 2 real NVIDIA GPU/);
    const forced = await openGpuSource(settings({ ...sim, forceSimulated: true }));
    expect(forced.kind).toBe('simulated');
  });
});

describe('GPU source selection without a driver', () => {
  it('chooses none, with the reasons, when no NVML library and no nvidia-smi exist', async () => {
    const source = await openGpuSource(settings({ nvmlLibrary: '/nonexistent/libnvidia-ml.so.1' }), { PATH: '/nonexistent' });
    expect(source.kind).toBe('none');
    expect(source.description).toMatch(/no NVIDIA GPU found \(NVML \(\/nonexistent\/libnvidia-ml.so.1\) unavailable: .*; nvidia-smi not found\)/);
    expect(await source.read()).toEqual([]);
  });

  it('an explicit nvml source that cannot load is an error naming the library', async () => {
    await expect(openGpuSource(settings({ source: 'nvml', nvmlLibrary: '/nonexistent/libnvidia-ml.so.1' }))).rejects.toThrow(/gpu.source is nvml but NVML \(\/nonexistent/);
  });

  it('falls back to nvidia-smi CSV when the library is missing but the tool runs', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'lsp-smi-'));
    const smi = path.join(dir, 'nvidia-smi');
    writeFileSync(
      smi,
      [
        '#!/bin/sh',
        'case "$1" in',
        '  --query-gpu=*) echo "0, GPU-cccc, NVIDIA A10, 00000000:65:00.0, 23028, 3000, 20028, 5, 1, 35, 60.52, 8.6" ;;',
        '  --query-compute-apps=*) echo "GPU-cccc, 777, 2900" ;;',
        'esac',
      ].join('\n'),
    );
    chmodSync(smi, 0o755);
    const source = await openGpuSource(settings({ nvmlLibrary: '/nonexistent/lib.so' }), { PATH: dir });
    expect(source.kind).toBe('nvidia-smi');
    const [d] = await source.read();
    expect(d).toMatchObject({ uuid: 'GPU-cccc', name: 'NVIDIA A10', totalBytes: 23028 * MIB, freeBytes: 20028 * MIB, powerW: 60.52, computeCapability: '8.6' });
    expect(d!.processes).toEqual([{ pid: 777, usedBytes: 2900 * MIB }]);
  });

  it('parses nvidia-smi fields a device does not support as null', () => {
    const [d] = parseNvidiaSmi('0, GPU-x, Tesla, 0:1:0, 100, 10, 90, [N/A], [N/A], [N/A], [N/A], [N/A]', '');
    expect(d).toMatchObject({ utilizationGpu: null, temperatureC: null, powerW: null, computeCapability: null, freeBytes: 90 * MIB });
  });
});
