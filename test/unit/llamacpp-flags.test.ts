/** The llama-server command line the proxy builds (pure parts; the integration tests read it back from /proc). */
import { describe, expect, it } from 'vitest';
import { cacheRamMiB, LLAMA_SERVER_CACHE_RAM_MIB, placementEnv, placementFlags, serverFlags } from '../../src/llamacpp/flags.js';

const GiB = 1024 ** 3;

describe('cacheRamMiB', () => {
  it('shares a quarter of the RAM among the pool, never above llama-server default', () => {
    expect(cacheRamMiB('auto', 16 * GiB, 4)).toBe(1024);
    expect(cacheRamMiB('auto', 24 * GiB, 1)).toBe(6144);
    expect(cacheRamMiB('auto', 512 * GiB, 2)).toBe(LLAMA_SERVER_CACHE_RAM_MIB);
  });

  it('takes a configured number as it is (-1 no limit, 0 off)', () => {
    expect(cacheRamMiB(-1, 16 * GiB, 4)).toBe(-1);
    expect(cacheRamMiB(0, 16 * GiB, 4)).toBe(0);
    expect(cacheRamMiB(3000, 16 * GiB, 4)).toBe(3000);
  });
});

describe('serverFlags and placementFlags', () => {
  it('keeps the placement from being undone and lets extra arguments come last', () => {
    const args = serverFlags({ file: '/m/a.gguf', alias: 'a', host: '127.0.0.1', port: 41000, ctx: 4096, parallel: 2, logVerbosity: 4, extraArgs: ['--cache-ram', '512', '-fa', 'on'] });
    expect(args.slice(0, 14)).toEqual(['-m', '/m/a.gguf', '--host', '127.0.0.1', '--port', '41000', '-a', 'a', '-c', '4096', '-np', '2', '--fit', 'off']);
    expect(args.slice(-4)).toEqual(['--cache-ram', '512', '-fa', 'on']);
    expect(args).toContain('--metrics');
  });

  it('pins GPUs by UUID, and hides them all for the CPU', () => {
    const two = { gpuUuids: ['GPU-a', 'GPU-b'], ngl: 33, splitMode: 'layer' as const, tensorSplit: [3, 1] };
    expect(placementFlags(two)).toEqual(['-ngl', '33', '--split-mode', 'layer', '--tensor-split', '3,1', '--main-gpu', '0']);
    expect(placementEnv(two)).toEqual({ CUDA_DEVICE_ORDER: 'PCI_BUS_ID', CUDA_VISIBLE_DEVICES: 'GPU-a,GPU-b' });
    const cpu = { gpuUuids: [], ngl: 0, splitMode: 'none' as const };
    expect(placementFlags(cpu)).toEqual(['-ngl', '0']);
    expect(placementEnv(cpu)).toEqual({ CUDA_DEVICE_ORDER: 'PCI_BUS_ID', CUDA_VISIBLE_DEVICES: '' });
  });
});
