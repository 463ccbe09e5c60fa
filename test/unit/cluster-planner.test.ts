import { describe, expect, it } from 'vitest';
import { planCluster, type ClusterPlanInput } from '../../src/cluster/planner.js';
import type { NodeInstance, NodeView } from '../../src/cluster/types.js';
import type { Candidate, Cost, PlannerSettings } from '../../src/placement/types.js';

const GIB = 1024 ** 3;
const SETTINGS: PlannerSettings = { strategy: 'single-gpu-preferred', fit: 'best', reserveBytes: 0, maxUtilization: 100, maxMemoryUsedFraction: 1, partialOffload: false, cpuFallback: true };

/** A model of `gib` GiB: shared out over a split by its weights, all on the host on the CPU. */
const cost = (gib: number) => (c: Candidate): Cost => {
  if (c.gpus.length === 0) return { gpuBytes: [], hostBytes: gib * GIB };
  const split = c.tensorSplit ?? c.gpus.map(() => 1);
  const sum = split.reduce((a, b) => a + b, 0);
  return { gpuBytes: split.map((s) => (gib * GIB * s) / sum), hostBytes: 0 };
};

interface NodeSpec {
  gpus: readonly number[];
  ramGiB?: number;
  local?: boolean;
  models?: readonly string[];
  instances?: Partial<NodeInstance>[];
  queued?: number;
}

function node(name: string, spec: NodeSpec): NodeView {
  const instances: NodeInstance[] = (spec.instances ?? []).map((i, k) => ({
    id: `${name}-i${k}`,
    modelId: 'other',
    state: 'ready',
    inFlight: 0,
    slots: 1,
    pinned: false,
    lastUsed: 1000 + k,
    gpuBytes: [],
    hostBytes: 0,
    gpus: [],
    ...i,
  }));
  const held = new Map<number, number>();
  for (const i of instances) for (const [g, b] of i.gpuBytes) held.set(g, (held.get(g) ?? 0) + b);
  return {
    name,
    local: spec.local ?? false,
    gpus: spec.gpus.map((gib, index) => ({ index, uuid: `${name}-${index}`, name: 'Sim', totalBytes: gib * GIB, freeBytes: gib * GIB - (held.get(index) ?? 0), utilization: null })),
    running: instances.map((i) => ({ instanceId: i.id, modelId: i.modelId, gpuBytes: new Map(i.gpuBytes), hostBytes: i.hostBytes, idle: i.inFlight === 0, pinned: i.pinned, lastUsed: i.lastUsed })),
    loading: new Map(),
    host: { totalBytes: (spec.ramGiB ?? 32) * GIB, availableBytes: (spec.ramGiB ?? 32) * GIB, loadingBytes: 0 },
    instances,
    queued: spec.queued ?? 0,
    capacity: 4,
    runtimeBytes: null,
    models: new Set(spec.models ?? []),
    rpc: false,
  };
}

/** The three boxes of the issue: 8 GiB, 24 GiB, 2 x 12 GiB. */
const cluster = (over: Partial<Record<'a' | 'b' | 'c', Partial<NodeSpec>>> = {}) => [
  node('a', { gpus: [8], local: true, ...over.a }),
  node('b', { gpus: [24], ...over.b }),
  node('c', { gpus: [12, 12], ...over.c }),
];

function input(gib: number, nodes: NodeView[], extra: Partial<ClusterPlanInput> = {}): ClusterPlanInput {
  return { modelId: 'm', nLayers: 32, nodes, estimateFor: () => cost(gib), settings: SETTINGS, ...extra };
}

const chosen = (i: ClusterPlanInput) => {
  const d = planCluster(i);
  return d.kind === 'node' ? `${d.node}:${d.tier}` : d.kind;
};

describe('planCluster', () => {
  it.each([
    ['the tightest single GPU of the cluster', 6, {}, 'a:single'],
    ['a model only the 24 GiB GPU holds', 13, {}, 'b:single'],
    ['a 12 GiB GPU of the split box is a tighter fit than the 24 GiB one', 10, {}, 'c:single'],
    ['a node holding the file wins over a tighter fit', 6, { c: { models: ['m'] } }, 'c:single'],
    ['a split when no single GPU has room', 23.5, { b: { gpus: [20] } }, 'c:split'],
    ['the CPU of the node with the most RAM when no GPU set has room', 30, { a: { ramGiB: 16 }, b: { ramGiB: 64 } }, 'b:cpu'],
  ] as const)('%s', (_what, gib, over, expected) => {
    expect(chosen(input(gib, cluster(over)))).toBe(expected);
  });

  it('serves a model where it runs, the least loaded copy', () => {
    const nodes = cluster({
      b: { instances: [{ modelId: 'm', inFlight: 1, slots: 1 }] },
      c: { instances: [{ modelId: 'm', inFlight: 1, slots: 4 }] },
    });
    expect(chosen(input(6, nodes))).toBe('c:running');
    // A copy being stopped is not a copy.
    const stopping = cluster({ b: { instances: [{ modelId: 'm', state: 'stopping' }] } });
    expect(chosen(input(6, stopping))).toBe('a:single');
  });

  it('evicts idle instances for one GPU before it splits', () => {
    const nodes = cluster({ b: { instances: [{ modelId: 'idle', gpuBytes: [[0, 10 * GIB]] }] } });
    const d = planCluster(input(20, nodes));
    expect(d).toMatchObject({ kind: 'node', node: 'b', tier: 'evict-single' });
  });

  it('never evicts a busy instance: a free split elsewhere first, then a wait', () => {
    const busy = { modelId: 'busy', inFlight: 1, gpuBytes: [[0, 10 * GIB]] as [number, number][] };
    expect(chosen(input(20, cluster({ b: { instances: [busy] } })))).toBe('c:split');
    const alone = [node('b', { gpus: [24], instances: [busy], local: true })];
    expect(chosen(input(20, alone, { settings: { ...SETTINGS, cpuFallback: false } }))).toBe('b:wait');
  });

  it('asks the RPC rule only when no node holds the model by itself', () => {
    let asked = 0;
    const rpc = () => {
      asked++;
      return { head: 'b', lenders: [{ node: 'c', bytes: 24 * GIB }], reason: 'b with c over RPC', devices: [], tensorSplit: [], deviceBytes: [], hostBytes: 0 };
    };
    expect(planCluster(input(40, cluster(), { rpc }))).toMatchObject({ kind: 'rpc', choice: { head: 'b' } });
    expect(chosen(input(13, cluster(), { rpc }))).toBe('b:single');
    expect(asked).toBe(1);
  });

  it('refuses with every node named, and skips excluded nodes', () => {
    const d = planCluster(input(100, cluster(), { settings: { ...SETTINGS, cpuFallback: false } }));
    expect(d.kind).toBe('refuse');
    if (d.kind !== 'refuse') return;
    expect(d.nodes.map((n) => n.node)).toEqual(['a', 'b', 'c']);
    expect(d.reason).toMatch(/node a: .*needs 100\.0 GiB.*node b: .*node c: /);
    expect(chosen(input(6, cluster(), { exclude: new Set(['a']) }))).toBe('c:single');
    expect(planCluster(input(6, cluster(), { exclude: new Set(['a', 'b', 'c']) }))).toMatchObject({ kind: 'refuse', reason: expect.stringContaining('every reachable node failed') });
  });

  it('without an estimate on the entry: a node that holds the file, the least busy', () => {
    const nodes = cluster({ b: { models: ['m'], queued: 3 }, c: { models: ['m'], queued: 1 } });
    expect(chosen(input(6, nodes, { estimateFor: undefined }))).toBe('c:on-disk');
    expect(planCluster(input(6, cluster(), { estimateFor: undefined })).kind).toBe('refuse');
  });
});

describe('planCluster eviction order', () => {
  it('evicts the least recently used idle instance of the whole cluster', () => {
    const nodes = cluster({
      a: { instances: [{ modelId: 'x', gpuBytes: [[0, 7 * GIB]], lastUsed: 3000 }] },
      b: { gpus: [8], instances: [{ modelId: 'y', gpuBytes: [[0, 7 * GIB]], lastUsed: 1000 }] },
      c: { gpus: [8, 8], instances: [{ modelId: 'z', gpuBytes: [[0, 7 * GIB]], lastUsed: 2000 }, { modelId: 'w', gpuBytes: [[1, 7 * GIB]], lastUsed: 4000 }] },
    });
    expect(planCluster(input(6, nodes))).toMatchObject({ kind: 'node', node: 'b', tier: 'evict-single' });
  });
});
