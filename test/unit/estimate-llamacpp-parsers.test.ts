import { describe, expect, it } from 'vitest';
import { fitParamsArgs, fitSettings, parseFitPrint, settingsArgs } from '../../src/llamacpp/fit-params.js';
import { MemoryLogParser, bufferDevice, isHostBuffer, parseMemoryLog } from '../../src/llamacpp/memory-log.js';

const MiB = 1024 * 1024;

// Lines as llama-server (node-llama-cpp 3.21.1's llama.cpp) prints them at -lv 4; the CUDA ones
// follow the same format strings (load_tensors, llama_kv_cache, sched_reserve, common_memory_breakdown_print).
const CPU_LOG = `
0.00.004.548 I load_tensors:   CPU_Mapped model buffer size =     0.63 MiB
0.00.004.751 I llama_context:        CPU  output buffer size =     0.00 MiB
0.00.004.793 I llama_kv_cache:        CPU KV buffer size =     0.25 MiB
0.00.004.910 I llama_kv_cache: size =    0.25 MiB (   256 cells,   2 layers,  2/2 seqs), K (f16):    0.12 MiB, V (f16):    0.12 MiB
0.00.005.816 I sched_reserve:        CPU compute buffer size =     2.26 MiB
0.04.004.991 I common_memory_breakdown_print: | memory breakdown [MiB] | total   free    self   model   context   compute    unaccounted |
0.04.005.001 I common_memory_breakdown_print: |   - Host               |                    3 =     0 +       0 +       2                |
`;

const CUDA_LOG = `
llama_model_load_from_file_impl: using device CUDA0 (NVIDIA GeForce RTX 4090) (0000:01:00.0) - 23686 MiB free
llama_model_load_from_file_impl: using device CUDA1 (NVIDIA GeForce RTX 3090) (0000:02:00.0) - 23990 MiB free
load_tensors:   CPU_Mapped model buffer size =   281.81 MiB
load_tensors:        CUDA0 model buffer size =  2113.28 MiB
load_tensors:        CUDA1 model buffer size =  2290.21 MiB
llama_context:  CUDA_Host  output buffer size =     1.96 MiB
llama_kv_cache:      CUDA0 KV buffer size =   272.00 MiB
llama_kv_cache:      CUDA1 KV buffer size =   240.00 MiB
llama_kv_cache:      CUDA0 KV buffer size =    56.00 MiB
sched_reserve:      CUDA0 compute buffer size =   172.01 MiB
sched_reserve:      CUDA1 compute buffer size =   322.52 MiB
sched_reserve:  CUDA_Host compute buffer size =    48.06 MiB
sched_reserve:      CUDA0 compute buffer size =   180.00 MiB
common_memory_breakdown_print: | memory breakdown [MiB] | total    free    self   model   context   compute    unaccounted |
common_memory_breakdown_print: |   - CUDA0 (RTX 4090)   | 24080 = 21000 + ( 2629 =  2113 +     328 +     188) +         451 |
common_memory_breakdown_print: |   - CUDA1 (RTX 3090)   | 24135 = 20900 + ( 2852 =  2290 +     240 +     322) +         383 |
common_memory_breakdown_print: |   - Host               |                   330 =   281 +       0 +      48                |
common_memory_breakdown_print: |   - CPU_REPACK         |                  1000 =  1000 +       0 +       0                |
`;

describe('llama-server memory log', () => {
  it('classifies buffer names', () => {
    expect(isHostBuffer('CPU_Mapped')).toBe(true);
    expect(isHostBuffer('CPU_REPACK')).toBe(true);
    expect(isHostBuffer('CUDA_Host')).toBe(true);
    expect(isHostBuffer('CUDA0')).toBe(false);
    expect(bufferDevice('CUDA0_Split')).toBe('CUDA0');
  });

  it('reads a CPU instance', () => {
    const f = parseMemoryLog(CPU_LOG);
    expect(f.host.modelBytes).toBe(Math.round(0.63 * MiB));
    expect(f.host.contextBytes).toBe(Math.round(0.25 * MiB));
    expect(f.host.computeBytes).toBe(Math.round(2.26 * MiB));
    expect(f.devices.size).toBe(0);
    expect(f.breakdown).toEqual([{ name: 'Host', selfMiB: 3, modelMiB: 0, contextMiB: 0, computeMiB: 2 }]);
  });

  it('reads a two-GPU instance: sums KV lines (SWA caches), keeps the last compute reserve', () => {
    const p = new MemoryLogParser();
    for (const line of CUDA_LOG.split('\n')) p.feed(line);
    const f = p.footprint();
    expect(f.devices.get('CUDA0')).toEqual({
      modelBytes: Math.round(2113.28 * MiB), contextBytes: Math.round(272 * MiB) + Math.round(56 * MiB), computeBytes: Math.round(180 * MiB), outputBytes: 0,
    });
    expect(f.devices.get('CUDA1')!.computeBytes).toBe(Math.round(322.52 * MiB));
    expect(f.host.modelBytes).toBe(Math.round(281.81 * MiB));
    expect(f.host.computeBytes).toBe(Math.round(48.06 * MiB));
    expect(f.host.outputBytes).toBe(Math.round(1.96 * MiB));
    expect(f.freeAtLoadMiB.get('CUDA1')).toBe(23990);
    expect(f.breakdown[0]).toEqual({
      name: 'CUDA0', description: 'RTX 4090', totalMiB: 24080, freeMiB: 21000, selfMiB: 2629, modelMiB: 2113, contextMiB: 328, computeMiB: 188, unaccountedMiB: 451,
    });
    expect(f.breakdown.map((r) => r.name)).toEqual(['CUDA0', 'CUDA1', 'Host', 'CPU_REPACK']);
  });
});

describe('llama-fit-params', () => {
  it('passes llama-server settings as flags', () => {
    expect(settingsArgs({})).toEqual(['-np', '4', '-kvu']);
    expect(settingsArgs({ ctx: 8192, parallel: 2, batch: 1024, ubatch: 256, cacheTypeK: 'q8_0', cacheTypeV: 'q4_0', flashAttn: 'on', swaFull: true, kvOffload: false, cpuMoeLayers: 3 }))
      .toEqual(['-c', '8192', '-np', '2', '-b', '1024', '-ub', '256', '-ctk', 'q8_0', '-ctv', 'q4_0', '-fa', 'on', '--swa-full', '-nkvo', '--n-cpu-moe', '3']);
    expect(settingsArgs({ parallel: 3, kvUnified: true, overrides: [{ pattern: /exps/, target: 'cpu' }] })).toEqual(['-np', '3', '-kvu', '-ot', 'exps=CPU']);
    expect(fitParamsArgs({ model: 'm.gguf', settings: { parallel: 1 }, ngl: 10, tensorSplit: [3, 1] }))
      .toEqual(['-m', 'm.gguf', '-np', '1', '-ngl', '10', '-ts', '3,1', '-nr', '--fit-print', 'on']);
  });

  it('runs a unified cache as one slot (llama-fit-params has no -kvu)', () => {
    expect(() => fitParamsArgs({ model: 'm.gguf', settings: {} })).toThrow(/no unified KV cache/);
    expect(fitSettings({ ctx: 4096 })).toEqual({ settings: { ctx: 4096, parallel: 1 }, exact: false });
    expect(fitSettings({ parallel: 4, kvUnified: true })).toEqual({ settings: { parallel: 1 }, exact: false });
    expect(fitSettings({ parallel: 2 })).toEqual({ settings: { parallel: 2 }, exact: true });
  });

  it('parses --fit-print output', () => {
    expect(parseFitPrint('Host 4685 512 266 \n')).toEqual({ devices: [], host: { name: 'Host', modelMiB: 4685, contextMiB: 512, computeMiB: 266 } });
    const two = parseFitPrint('CUDA0 2113 328 188 \nCUDA1 2290 240 322 \nHost 281 0 48 \n');
    expect(two.devices.map((d) => d.name)).toEqual(['CUDA0', 'CUDA1']);
    expect(two.host.computeMiB).toBe(48);
    expect(() => parseFitPrint('nothing')).toThrow(/no Host line/);
  });
});
