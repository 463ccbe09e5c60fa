/**
 * The cluster states bench:cluster times the cluster planner on: 16 nodes of 8 GPUs (RTX 4090 24 GiB, L40S
 * 48 GiB, A100 80 GiB boxes), 32 instances of other models spread over the nodes and GPUs (half idle), memory
 * used by other tenants of the GPUs, and one case per tier the planner may stop at. Sizes are in units of the
 * model's own single-GPU estimate `need`, so each case lands on its tier whatever the estimator says a model
 * costs. Deterministic (a seeded PRNG): every run times the same states. Built in the wire format (NodeState),
 * as a node hears its peers; node-00 is the entry (local).
 */
import type { ClusterTier } from '../src/cluster/planner.js';
import type { NodeInstance, NodeState } from '../src/cluster/types.js';
import { mulberry32 } from '../src/gguf/prng.js';

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
export const NODES = 16;
export const GPUS_PER_NODE = 8;
export const INSTANCES = 32;

export type CaseName = 'running' | 'single' | 'evict' | 'split' | 'refuse';

export interface Scenario {
  name: CaseName;
  label: string;
  /** Tiers this case must end on (the bench fails if the planner answers otherwise: the case would time something else). */
  expect: readonly (ClusterTier | 'refuse')[];
  states: NodeState[];
}

const BOXES = [
  { name: 'RTX 4090', gib: 24 },
  { name: 'L40S', gib: 48 },
  { name: 'A100 80GB', gib: 80 },
] as const;

/** Node k's box: eight 4090 nodes, four L40S, four A100. */
const boxOf = (k: number) => BOXES[k < 8 ? 0 : k < 12 ? 1 : 2];

interface Shape {
  /** Room left on GPU g of node k, in units of `need` (before the reserve; the driver's free figure). */
  room: (k: number, g: number, rand: () => number) => number;
  /** Size of instance i of other models, in units of `need`. */
  size: (i: number, rand: () => number) => number;
  idle: (i: number) => boolean;
  /** Host RAM available, GiB. */
  hostGiB: (k: number, rand: () => number) => number;
  /** Instances of the benched model itself: [instance index, state, in flight]. */
  copies?: [number, 'ready' | 'starting', number][];
}

function nodeName(k: number): string {
  return `node-${String(k).padStart(2, '0')}`;
}

function build(modelId: string, need: number, reserveBytes: number, shape: Shape, seed: number): NodeState[] {
  const rand = mulberry32(seed);
  const states: NodeState[] = [];
  for (let k = 0; k < NODES; k++) {
    const box = boxOf(k);
    const total = box.gib * GiB;
    // Two instances per node, on GPUs k % 8 and (k + 3) % 8.
    const instances: NodeInstance[] = [0, 1].map((j) => {
      const i = 2 * k + j;
      const gpu = j === 0 ? k % GPUS_PER_NODE : (k + 3) % GPUS_PER_NODE;
      const copy = shape.copies?.find(([c]) => c === i);
      const bytes = Math.round(Math.min(0.6 * total, shape.size(i, rand) * need));
      return {
        id: `${nodeName(k)}-i${j}`,
        modelId: copy ? modelId : `other-${i % 11}`,
        state: copy?.[1] ?? 'ready',
        inFlight: copy ? copy[2] : shape.idle(i) ? 0 : 1 + (i % 3),
        slots: 4,
        pinned: false,
        lastUsed: 1_700_000_000_000 + ((i * 7919) % 3600) * 1000,
        gpuBytes: [[gpu, bytes]],
        hostBytes: 0,
        gpus: [gpu],
      };
    });
    const held = new Map<number, number>();
    for (const i of instances) for (const [g, b] of i.gpuBytes) held.set(g, (held.get(g) ?? 0) + b);
    const gpus = Array.from({ length: GPUS_PER_NODE }, (_, g) => {
      const ours = held.get(g) ?? 0;
      // The driver's free figure: what the case wants left, never more than what our instances leave.
      const free = Math.max(0, Math.min(total - ours, reserveBytes + shape.room(k, g, rand) * need));
      return { index: g, uuid: `GPU-${k}-${g}`, name: box.name, totalBytes: total, freeBytes: Math.round(free), utilization: Math.round(rand() * 90) };
    });
    const hostTotal = 256 * GiB;
    states.push({
      node: nodeName(k),
      url: `http://10.0.0.${k + 10}:8080`,
      version: 'bench',
      at: Date.now(),
      gpus,
      host: { totalBytes: hostTotal, availableBytes: Math.round(Math.min(hostTotal, shape.hostGiB(k, rand) * GiB)), loadingBytes: 0 },
      instances,
      // One load under way on node 7's GPU 5.
      loading: k === 7 ? [[5, Math.round(0.4 * need)]] : [],
      queued: k % 5 === 0 ? 2 : 0,
      capacity: 8,
      // The CUDA runtime each node learned (drivers differ); none learned yet on two nodes.
      runtimeBytes: k % 7 === 3 ? null : (280 + (k % 4) * 40) * MiB,
      models: k % 4 === 1 ? [modelId, 'other-1'] : ['other-1', 'other-2'],
      rpc: false,
    });
  }
  return states;
}

const uniform = (rand: () => number, lo: number, hi: number) => lo + rand() * (hi - lo);

/** The five cases, for a model whose single-GPU estimate is `need` bytes. */
export function scenarios(modelId: string, need: number, reserveBytes: number): Scenario[] {
  const mixedSizes = [0.6, 0.8, 1.2, 2, 0.5, 1.5, 0.9, 2.4];
  const base: Shape = {
    // Mostly too little room for the model; one GPU in ten with 1.05 to 2.5 times what it needs.
    room: (k, g, rand) => ((k * 8 + g) % 10 === 4 ? uniform(rand, 1.05, 2.5) : uniform(rand, 0.1, 0.9)),
    size: (i) => mixedSizes[i % mixedSizes.length]!,
    idle: (i) => i % 2 === 0,
    hostGiB: (_k, rand) => uniform(rand, 60, 200),
  };
  return [
    {
      name: 'running',
      label: '(a) runs somewhere already',
      expect: ['running'],
      // Two copies: one ready on node 13 (1 of 4 slots busy), one starting on node 5.
      states: build(modelId, need, reserveBytes, { ...base, copies: [[26, 'ready', 1], [11, 'starting', 0]] }, 1),
    },
    { name: 'single', label: '(b) fits on one GPU somewhere', expect: ['single'], states: build(modelId, need, reserveBytes, base, 2) },
    {
      name: 'evict',
      label: '(c) needs an eviction',
      expect: ['evict-single'],
      states: build(modelId, need, reserveBytes, { ...base, room: (_k, _g, rand) => uniform(rand, 0.1, 0.9) }, 3),
    },
    {
      name: 'split',
      label: '(d) needs a split',
      expect: ['split'],
      // No single GPU has room and every instance is busy: two or three GPUs of one node together.
      states: build(modelId, need, reserveBytes, { ...base, room: (_k, _g, rand) => uniform(rand, 0.35, 0.75), idle: () => false }, 4),
    },
    {
      name: 'refuse',
      label: '(e) fits nowhere (refusal)',
      expect: ['refuse'],
      // GPUs all but full with other tenants' work (the big boxes over gpu.maxMemoryUsed), small instances
      // (evicting them frees too little), RAM short everywhere: every tier is tried on every node.
      states: build(modelId, need, reserveBytes, { ...base, room: (_k, _g, rand) => uniform(rand, 0.02, 0.1), size: (i) => 0.1 + (i % 3) * 0.05, hostGiB: (_k, rand) => uniform(rand, 1, 3) }, 5),
    },
  ];
}
