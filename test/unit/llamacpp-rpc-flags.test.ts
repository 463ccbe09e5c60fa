/** llama-server's flags for a split over rpc-servers and local GPUs (src/llamacpp/rpc-flags.ts). */
import { describe, expect, it } from 'vitest';
import { defaultDeviceOrder, rpcBufferName, rpcDeviceName, rpcPlacementFlags, type RpcPlacementFlagsInput } from '../../src/llamacpp/rpc-flags.js';

const A = { host: '10.0.0.2', port: 50052 };
const B = { host: '10.0.0.3', port: 50053 };

describe('rpcPlacementFlags', () => {
  const cases: [string, RpcPlacementFlagsInput, string[]][] = [
    [
      'two CPU rpc-servers, nothing local: llama.cpp default order, no --device',
      { endpoints: [A, B], devices: [{ kind: 'rpc', endpoint: 0 }, { kind: 'rpc', endpoint: 1 }], tensorSplit: [1, 1], localGpus: 0 },
      ['--rpc', '10.0.0.2:50052,10.0.0.3:50053', '-ngl', '999', '--split-mode', 'layer', '--tensor-split', '1,1'],
    ],
    [
      'RPC first, then the local GPU (the default order), with -ngl',
      { endpoints: [A], devices: [{ kind: 'rpc', endpoint: 0 }, { kind: 'gpu', index: 0 }], tensorSplit: [3, 5], ngl: 33, localGpus: 1 },
      ['--rpc', '10.0.0.2:50052', '-ngl', '33', '--split-mode', 'layer', '--tensor-split', '3,5'],
    ],
    [
      'the local GPU first: --device after --rpc',
      { endpoints: [A], devices: [{ kind: 'gpu', index: 0 }, { kind: 'rpc', endpoint: 0 }], tensorSplit: [5, 3], localGpus: 1 },
      ['--rpc', '10.0.0.2:50052', '--device', 'CUDA0,RPC0', '-ngl', '999', '--split-mode', 'layer', '--tensor-split', '5,3'],
    ],
    [
      'a two-GPU rpc-server and a one-device one: RPC names counted over endpoints',
      {
        endpoints: [{ ...A, devices: 2 }, B],
        devices: [{ kind: 'rpc', endpoint: 1 }, { kind: 'rpc', endpoint: 0, device: 1 }, { kind: 'rpc', endpoint: 0, device: 0 }],
        tensorSplit: [1, 2, 2],
        localGpus: 0,
      },
      ['--rpc', '10.0.0.2:50052,10.0.0.3:50053', '--device', 'RPC2,RPC1,RPC0', '-ngl', '999', '--split-mode', 'layer', '--tensor-split', '1,2,2'],
    ],
    [
      'a visible local GPU left out: --device names the ones used',
      { endpoints: [A], devices: [{ kind: 'rpc', endpoint: 0 }, { kind: 'gpu', index: 1 }], tensorSplit: [1, 1], localGpus: 2 },
      ['--rpc', '10.0.0.2:50052', '--device', 'RPC0,CUDA1', '-ngl', '999', '--split-mode', 'layer', '--tensor-split', '1,1'],
    ],
  ];
  it.each(cases)('%s', (_label, input, expected) => {
    expect(rpcPlacementFlags(input)).toEqual(expected);
  });

  const bad: [string, RpcPlacementFlagsInput, RegExp][] = [
    ['no endpoint', { endpoints: [], devices: [{ kind: 'gpu', index: 0 }], tensorSplit: [1], localGpus: 1 }, /at least one rpc-server/],
    ['split length', { endpoints: [A], devices: [{ kind: 'rpc', endpoint: 0 }], tensorSplit: [1, 1], localGpus: 0 }, /2 entries for 1 devices/],
    ['all-zero split', { endpoints: [A], devices: [{ kind: 'rpc', endpoint: 0 }], tensorSplit: [0], localGpus: 0 }, /one of them positive/],
    ['unknown endpoint', { endpoints: [A], devices: [{ kind: 'rpc', endpoint: 1 }], tensorSplit: [1], localGpus: 0 }, /endpoint 1 of 1/],
    ['unknown RPC device', { endpoints: [A], devices: [{ kind: 'rpc', endpoint: 0, device: 1 }], tensorSplit: [1], localGpus: 0 }, /has no device 1/],
    ['invisible GPU', { endpoints: [A], devices: [{ kind: 'gpu', index: 1 }], tensorSplit: [1], localGpus: 1 }, /not among the 1 visible/],
    ['twice', { endpoints: [A], devices: [{ kind: 'rpc', endpoint: 0 }, { kind: 'rpc', endpoint: 0 }], tensorSplit: [1, 1], localGpus: 0 }, /listed twice/],
    ['IPv6', { endpoints: [{ host: '::1', port: 50052 }], devices: [{ kind: 'rpc', endpoint: 0 }], tensorSplit: [1], localGpus: 0 }, /no IPv6/],
    ['port', { endpoints: [{ host: '10.0.0.2', port: 0 }], devices: [{ kind: 'rpc', endpoint: 0 }], tensorSplit: [1], localGpus: 0 }, /out of range/],
  ];
  it.each(bad)('refuses: %s', (_label, input, message) => {
    expect(() => rpcPlacementFlags(input)).toThrow(message);
  });
});

describe('device names', () => {
  it('numbers RPC devices over all endpoints, buffers within their server', () => {
    const endpoints = [{ ...A, devices: 2 }, B];
    expect(defaultDeviceOrder(endpoints, 1).map((d) => rpcDeviceName(endpoints, d))).toEqual(['RPC0', 'RPC1', 'RPC2', 'CUDA0']);
    expect(defaultDeviceOrder(endpoints, 1).map((d) => rpcBufferName(endpoints, d))).toEqual([
      'RPC0[10.0.0.2:50052]',
      'RPC1[10.0.0.2:50052]',
      'RPC0[10.0.0.3:50053]',
      'CUDA0',
    ]);
  });
});
