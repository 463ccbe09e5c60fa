/**
 * The estimate for RPC devices (llama.cpp's --rpc: devices of rpc-servers on other nodes). The figures are what
 * the managed build's llama-server logged (RPC0[host:port] model / KV / compute buffer size, -lv 4) with two CPU
 * rpc-servers on loopback, for the same models and settings; the estimate must equal them to the 0.01 MiB the log
 * prints.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  estimateMemory, modelInfo, RPC_CPU_BASE_BYTES, rpcCpuOverheadBytes,
  type Device, type EstimateSettings, type ModelInfo,
} from '../../src/estimate/index.js';
import { readGgufHeaderSync, writeTinyModel } from '../../src/gguf/index.js';
import { Replicas } from './estimate-fixtures.js';

const MiB = 1024 * 1024;
const RPC: Device[] = [
  { name: 'RPC0[127.0.0.1:50960]', kind: 'rpc' },
  { name: 'RPC0[127.0.0.1:50961]', kind: 'rpc' },
];

/** MiB as logged: [model, KV, compute] per RPC device, then the host's. */
type Logged = { devices: [number, number, number][]; host: [number, number, number] };
type Case = [label: string, model: 'tiny-f32' | 'tiny-f16' | 'qwen', settings: EstimateSettings, split: number[], ngl: number | undefined, logged: Logged];

const CASES: Case[] = [
  ['tiny F32, 4 layers, -c 1024 -np 1, -ts 1,1', 'tiny-f32', { ctx: 1024, parallel: 1 }, [1, 1], undefined, { devices: [[3.0, 1.5, 8.79], [1.13, 0.5, 6.04]], host: [0.13, 0, 4.55] }],
  ['tiny F16, -c 2048 -np 2, -ts 3,1', 'tiny-f16', { ctx: 2048, parallel: 2 }, [3, 1], undefined, { devices: [[2.0, 4.0, 8.79], [0.06, 0, 0.01]], host: [0.06, 0, 4.55] }],
  ['Qwen2.5-0.5B Q8_0, -c 4096 -np 1, -ts 1,1', 'qwen', { ctx: 4096, parallel: 1 }, [1, 1], undefined, { devices: [[196.54, 26.0, 56.79], [304.25, 22.0, 56.79]], host: [137.94, 0, 19.55] }],
  // 12 of 25 layers offloaded: the rest on the local CPU, and no op offload (RPC devices take none)
  ['Qwen2.5-0.5B Q8_0, -ngl 12', 'qwen', { ctx: 4096, parallel: 1 }, [1, 1], 12, { devices: [[90.71, 12.0, 36.01], [213.54, 10.0, 36.01]], host: [334.48, 26.0, 39.51] }],
  [
    'Qwen2.5-0.5B Q8_0, -c 8192 -fa off -ctk q8_0 -ub 1024, -ts 2,1',
    'qwen',
    { ctx: 8192, parallel: 1, flashAttn: 'off', cacheTypeK: 'q8_0', ubatch: 1024 },
    [2, 1],
    undefined,
    { devices: [[257.02, 52.06, 604.61], [243.78, 21.44, 604.61]], host: [137.94, 0, 139.13] },
  ],
];

describe('estimate on RPC devices', () => {
  const replicas = new Replicas();
  let dir: string;
  const models = new Map<string, ModelInfo>();

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'estimate-rpc-'));
    for (const [name, type] of [['tiny-f32', 'F32'], ['tiny-f16', 'F16']] as const) {
      const file = join(dir, `${name}.gguf`);
      await writeTinyModel(file, { seed: 7, layers: 4, embd: 128, type });
      models.set(name, modelInfo(readGgufHeaderSync(file)));
    }
    models.set('qwen', await replicas.info('qwen2.5-0.5b', 'Q8_0'));
  });
  afterAll(() => {
    replicas.cleanup();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it.each(CASES)('%s: model, KV and compute per device as llama-server logs them', (_label, model, settings, split, ngl, logged) => {
    const e = estimateMemory(models.get(model)!, settings, { devices: RPC, tensorSplit: split, ...(ngl !== undefined ? { ngl } : {}) });
    const near = (bytes: number, mib: number, what: string): void => {
      expect(Math.abs(bytes / MiB - mib), `${what}: ${(bytes / MiB).toFixed(3)} MiB estimated, ${mib} logged`).toBeLessThan(0.006);
    };
    logged.devices.forEach(([m, kv, c], i) => {
      const d = e.devices[i]!;
      expect(d.kind).toBe('rpc');
      near(d.modelBytes, m, `${d.name} model`);
      near(d.contextBytes, kv, `${d.name} KV`);
      near(d.computeBytes, c, `${d.name} compute`);
      expect(d.overheadBytes).toBeGreaterThanOrEqual(RPC_CPU_BASE_BYTES);
    });
    near(e.host.modelBytes, logged.host[0], 'host model');
    near(e.host.contextBytes, logged.host[1], 'host KV');
    near(e.host.computeBytes, logged.host[2], 'host compute');
  });

  it('keeps flash attention on for layers on RPC devices where CUDA has no kernel (head size 32)', () => {
    const tiny = models.get('tiny-f32')!;
    expect(estimateMemory(tiny, { ctx: 1024, parallel: 1 }, { devices: RPC, tensorSplit: [1, 1] }).flashAttn).toBe(true);
    expect(estimateMemory(tiny, { ctx: 1024, parallel: 1 }, { devices: [{ name: 'CUDA0', kind: 'cuda' }] }).flashAttn).toBe(false);
  });

  it('sizes weights by the backend behind the rpc-server: a CPU one without CUDA row padding, a CUDA one with it', () => {
    const qwen = models.get('qwen')!;
    const on = (d: Device) => estimateMemory(qwen, { ctx: 4096, parallel: 1 }, { devices: [d] }).devices[0]!;
    const cpu = on({ name: 'RPC0[a:1]', kind: 'rpc' });
    const remoteCuda = on({ name: 'RPC0[b:1]', kind: 'rpc', remote: 'cuda' });
    const cuda = on({ name: 'CUDA0', kind: 'cuda' });
    // Q8_0 rows of 896 elements: CUDA pads each to 1024
    expect(remoteCuda.modelBytes).toBe(cuda.modelBytes);
    expect(cpu.modelBytes).toBeLessThan(cuda.modelBytes);
    expect(remoteCuda.overheadBytes).toBe(cuda.overheadBytes);
  });

  it("counts a CPU rpc-server's process, and the largest weight it receives whole while loading", () => {
    expect(rpcCpuOverheadBytes({ nUbatch: 512, maxRowWidth: 4864, largestWeightBytes: 136 * MiB })).toBe(RPC_CPU_BASE_BYTES + 136 * MiB);
    expect(rpcCpuOverheadBytes({ nUbatch: 512, maxRowWidth: 4864, largestWeightBytes: 1 * MiB })).toBe(RPC_CPU_BASE_BYTES + 512 * 4864 * 2);
    const qwen = models.get('qwen')!;
    const e = estimateMemory(qwen, { ctx: 4096, parallel: 1 }, { devices: RPC, tensorSplit: [1, 1] });
    // the output device holds the tied embeddings (151936 x 896 Q8_0), the largest weight
    const embd = qwen.tensorByName.get('token_embd.weight')!.bytes;
    expect(e.devices[1]!.overheadBytes).toBe(RPC_CPU_BASE_BYTES + embd);
    expect(e.devices[0]!.overheadBytes).toBeLessThan(e.devices[1]!.overheadBytes);
  });
});
