/** The memory log of a llama-server split over two rpc-servers (src/llamacpp/memory-log.ts). */
import { describe, expect, it } from 'vitest';
import { bufferDevice, isHostBuffer, parseMemoryLog, rpcBuffer } from '../../src/llamacpp/memory-log.js';

const MiB = 1024 * 1024;

// Lines of the managed build's llama-server at -lv 4 with --rpc 127.0.0.1:51161,127.0.0.1:51162 -ngl 3 -ts 1,1
// (a 4-layer tiny model: the first offloaded layers on the first server, the output layer on the second).
const RPC_LOG = `
0.00.007.809 I cmn  common_param:   - RPC0    : 127.0.0.1:51161 (24105 MiB, 24105 MiB free)
0.00.007.988 I cmn  common_param:   - RPC1    : 127.0.0.1:51162 (24105 MiB, 24105 MiB free)
0.00.010.039 I llama_prepare_model_devices: using device RPC0 (127.0.0.1:51161) (unknown id) - 24105 MiB free
0.00.010.298 I llama_prepare_model_devices: using device RPC1 (127.0.0.1:51162) (unknown id) - 24105 MiB free
0.00.013.312 I load_tensors:   CPU_Mapped model buffer size =     2.13 MiB
0.00.013.313 I load_tensors: RPC0[127.0.0.1:51161] model buffer size =     2.00 MiB
0.00.013.313 I load_tensors: RPC0[127.0.0.1:51162] model buffer size =     0.13 MiB
0.00.015.526 I llama_context:        CPU  output buffer size =     0.00 MiB
0.00.015.560 I llama_kv_cache:        CPU KV buffer size =     1.00 MiB
0.00.016.863 I llama_kv_cache: RPC0[127.0.0.1:51161] KV buffer size =     1.00 MiB
0.00.020.163 I sched_reserve: RPC0[127.0.0.1:51161] compute buffer size =     4.51 MiB
0.00.020.172 I sched_reserve: RPC0[127.0.0.1:51162] compute buffer size =     0.00 MiB
0.00.020.172 I sched_reserve:        CPU compute buffer size =     5.01 MiB
0.00.519.989 I common_memory_breakdown_print: | memory breakdown [MiB]     | total    free    self   model   context   compute    unaccounted |
0.00.520.004 I common_memory_breakdown_print: |   - RPC0 (127.0.0.1:51161) | 24105 = 24105 + (   7 =     2 +       1 +       4) +          -7 |
0.00.520.015 I common_memory_breakdown_print: |   - RPC1 (127.0.0.1:51162) | 24105 = 24105 + (   0 =     0 +       0 +       0) +           0 |
0.00.520.026 I common_memory_breakdown_print: |   - Host                   |                     8 =     2 +       1 +       5                |
`;

describe('llama-server memory log with RPC devices', () => {
  it('names RPC buffers by endpoint', () => {
    expect(rpcBuffer('RPC0[127.0.0.1:51162]')).toEqual({ device: 0, endpoint: '127.0.0.1:51162' });
    expect(rpcBuffer('RPC12[node-b:50052]')).toEqual({ device: 12, endpoint: 'node-b:50052' });
    expect(rpcBuffer('CUDA0')).toBeUndefined();
    expect(isHostBuffer('RPC0[127.0.0.1:51161]')).toBe(false);
    expect(bufferDevice('RPC0[127.0.0.1:51161]')).toBe('RPC0[127.0.0.1:51161]');
  });

  it('reads each rpc-server device apart, the host apart, and the breakdown rows by device name', () => {
    const f = parseMemoryLog(RPC_LOG);
    expect([...f.devices.keys()]).toEqual(['RPC0[127.0.0.1:51161]', 'RPC0[127.0.0.1:51162]']);
    expect(f.devices.get('RPC0[127.0.0.1:51161]')).toEqual({ modelBytes: 2 * MiB, contextBytes: 1 * MiB, computeBytes: Math.round(4.51 * MiB), outputBytes: 0 });
    expect(f.devices.get('RPC0[127.0.0.1:51162]')).toEqual({ modelBytes: Math.round(0.13 * MiB), contextBytes: 0, computeBytes: 0, outputBytes: 0 });
    expect(f.host).toEqual({ modelBytes: Math.round(2.13 * MiB), contextBytes: 1 * MiB, computeBytes: Math.round(5.01 * MiB), outputBytes: 0 });
    expect(f.freeAtLoadMiB).toEqual(new Map([['RPC0', 24105], ['RPC1', 24105]]));
    expect(f.breakdown.map((r) => [r.name, r.description, r.selfMiB])).toEqual([
      ['RPC0', '127.0.0.1:51161', 7],
      ['RPC1', '127.0.0.1:51162', 0],
      ['Host', undefined, 8],
    ]);
  });
});
