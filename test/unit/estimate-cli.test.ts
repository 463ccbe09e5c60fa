import { describe, expect, it } from 'vitest';
import { parseGpuSpec, placementFromFlags, settingsFromFlags } from '../../src/cli/estimate.js';
import { CPU_ONLY, EstimateError, estimateMemory, toJson } from '../../src/estimate/index.js';
import { fakeModel } from './estimate-fixtures.js';

const MiB = 1024 * 1024;

describe('estimate command options', () => {
  it('parses --gpus', () => {
    expect(parseGpuSpec('none')).toEqual([]);
    expect(parseGpuSpec('24G,24G')).toEqual([
      { name: 'CUDA0', kind: 'cuda', freeBytes: 24 * 1024 * MiB },
      { name: 'CUDA1', kind: 'cuda', freeBytes: 24 * 1024 * MiB },
    ]);
    expect(parseGpuSpec('a100:81920')).toEqual([{ name: 'a100', kind: 'cuda', freeBytes: 81920 * MiB }]);
    expect(parseGpuSpec('4090:24GiB,3090:12.5g')[1]).toEqual({ name: '3090', kind: 'cuda', freeBytes: 12.5 * 1024 * MiB });
    expect(() => parseGpuSpec('24T')).toThrow(EstimateError);
    expect(() => parseGpuSpec(':24G')).toThrow(EstimateError);
  });

  it('maps flags to settings and placement', () => {
    expect(settingsFromFlags({ ctx: 4096, parallel: '2', cacheTypeK: 'Q8_0', flashAttn: 'ON', kvOffload: false, nCpuMoe: 4, outputs: 'batch' })).toEqual({
      ctx: 4096, parallel: 2, cacheTypeK: 'q8_0', flashAttn: 'on', kvOffload: false, cpuMoeLayers: 4, outputs: 'batch',
    });
    expect(settingsFromFlags({ parallel: 'auto' })).toEqual({ parallel: 'auto' });
    expect(settingsFromFlags({ overrideTensor: ['exps=CPU,attn=cpu'] }).overrides?.map((o) => o.pattern.source)).toEqual(['exps', 'attn']);
    expect(() => settingsFromFlags({ overrideTensor: ['exps=CUDA0'] })).toThrow(/only <pattern>=CPU/);
    expect(() => settingsFromFlags({ flashAttn: 'maybe' })).toThrow(EstimateError);
    expect(() => settingsFromFlags({ parallel: '0' })).toThrow(EstimateError);
    expect(placementFromFlags({ gpus: '8G,8G', ngl: 20, tensorSplit: '1,3', opOffload: false })).toEqual({
      devices: parseGpuSpec('8G,8G'), ngl: 20, tensorSplit: [1, 3], opOffload: false,
    });
    expect(placementFromFlags({}).devices).toEqual([]);
  });

  it('prints the JSON shape of the issue', () => {
    const m = fakeModel({ layers: 2, embd: 256, heads: 4, headsKv: 4, vocab: 500 });
    const cpu = toJson(estimateMemory(m, { ctx: 256, parallel: 1 }, CPU_ONLY));
    expect(Object.keys(cpu)).toEqual(['host', 'devices', 'totalMiB']);
    expect(Object.keys(cpu.host)).toEqual(['modelMiB', 'contextMiB', 'computeMiB']);
    expect(cpu.devices).toEqual([]);
    const gpu = toJson(estimateMemory(m, { ctx: 256, parallel: 1 }, placementFromFlags({ gpus: 'x:1G' })));
    expect(Object.keys(gpu.devices[0]!)).toEqual(['name', 'modelMiB', 'contextMiB', 'computeMiB', 'overheadMiB', 'totalMiB']);
    // an F16 model (cuBLAS) at -ub 256 (the context caps it): runtime 592 + cuBLAS 104 + pool 16 + 256 x 1024 x 36/32 bytes
    expect(gpu.devices[0]!.overheadMiB).toBe(712.28);
  });
});
