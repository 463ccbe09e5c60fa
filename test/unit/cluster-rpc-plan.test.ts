import { describe, expect, it } from 'vitest';
import { planRpc, type RpcCost } from '../../src/cluster/rpc-plan.js';
import type { NodeView } from '../../src/cluster/types.js';
import type { PlannerSettings } from '../../src/placement/types.js';

const GIB = 1024 ** 3;
const SETTINGS: PlannerSettings = { strategy: 'single-gpu-preferred', fit: 'best', reserveBytes: 0, maxUtilization: 100, maxMemoryUsedFraction: 1, partialOffload: false, cpuFallback: false };

function node(name: string, gpus: number[], opts: { rpc?: boolean; ramGiB?: number } = {}): NodeView {
  return {
    name,
    local: false,
    gpus: gpus.map((gib, index) => ({ index, uuid: `${name}-${index}`, name: 'Sim', totalBytes: gib * GIB, freeBytes: gib * GIB, utilization: null })),
    running: [],
    loading: new Map(),
    host: { totalBytes: (opts.ramGiB ?? 64) * GIB, availableBytes: (opts.ramGiB ?? 64) * GIB, loadingBytes: 0 },
    instances: [],
    queued: 0,
    capacity: 4,
    runtimeBytes: null,
    models: new Set(),
    rpc: opts.rpc ?? true,
  };
}

/** `gib` of weights shared out by the split, plus 1 GiB of buffers on every device. */
const cost = (gib: number): RpcCost => (devices, split) => {
  const sum = split.reduce((a, b) => a + b, 0);
  return { deviceBytes: devices.map((_, i) => (gib * GIB * split[i]!) / sum + GIB), hostBytes: GIB };
};

describe('planRpc', () => {
  it('takes the fewest lenders, largest first, with the head its own GPUs last (llama.cpp order)', () => {
    const plan = planRpc({ modelId: 'm', head: node('a', [8]), lenders: [node('b', [12]), node('c', [24, 16]), node('d', [4])], cost: cost(40), settings: SETTINGS });
    expect(plan).toBeDefined();
    expect(plan!.devices.map((d) => (d.kind === 'rpc' ? `${d.node}:${d.gpu}` : `local:${d.gpu}`))).toEqual(['c:0', 'b:0', 'local:0']);
    // Shares follow room less the fixed 1 GiB per device: the smallest device gets fewer layers than its room's share.
    expect(plan!.tensorSplit[2]!).toBeLessThan(8 / 44);
    expect(plan!.lenders.map((l) => l.node)).toEqual(['c', 'b']);
    expect(plan!.deviceBytes.every((b, i) => b <= plan!.devices[i]!.roomBytes)).toBe(true);
    expect(plan!.reason).toMatch(/node a runs it over RPC with c GPU 0/);
  });

  it('lends RAM from nodes without GPUs, and only from nodes that lend at all', () => {
    const plan = planRpc({ modelId: 'm', head: node('a', []), lenders: [node('b', [], { ramGiB: 16 }), node('c', [], { ramGiB: 16, rpc: false })], cost: cost(10), settings: SETTINGS });
    expect(plan!.devices).toEqual([{ kind: 'rpc', node: 'b', gpu: undefined, roomBytes: 16 * GIB }]);
    expect(planRpc({ modelId: 'm', head: node('a', []), lenders: [node('c', [], { rpc: false })], cost: cost(10), settings: SETTINGS })).toBeUndefined();
  });

  it('none when every lender together is not enough, or the head has no RAM for its share', () => {
    expect(planRpc({ modelId: 'm', head: node('a', [8]), lenders: [node('b', [8]), node('c', [8])], cost: cost(40), settings: SETTINGS })).toBeUndefined();
    expect(planRpc({ modelId: 'm', head: node('a', [], { ramGiB: 0.5 }), lenders: [node('b', [48])], cost: cost(10), settings: SETTINGS })).toBeUndefined();
  });
});
