/**
 * The RPC rule of the cluster planner: when no node holds a model by itself, the entry runs llama-server and
 * borrows devices of other nodes over llama.cpp's RPC. Pure: the head (the entry), the lenders, a cost function
 * over a device list; the fewest remote devices that hold the model out. Each lender lends one device: its GPU
 * with the most room, or, without GPUs, its RAM. The head adds its own GPUs (all with room). Devices are listed
 * in llama.cpp's order (RPC devices first, then local GPUs), the order layers are dealt out in.
 */
import { formatGiB, usableBytes, usableHostBytes } from '../placement/planner.js';
import type { PlannerSettings } from '../placement/types.js';
import type { NodeView } from './types.js';

/** One device of an RPC placement. */
export type RpcDevice =
  | { kind: 'rpc'; node: string; /** The lender's GPU, or undefined for its CPU. */ gpu: number | undefined; roomBytes: number }
  | { kind: 'local'; gpu: number; roomBytes: number };

/** Bytes on each device (same order) and on the head's host. */
export type RpcCost = (devices: readonly RpcDevice[], tensorSplit: readonly number[]) => { deviceBytes: number[]; hostBytes: number };

/** Several nodes together: the head runs llama-server, the lenders serve devices over RPC. */
export interface RpcPlan {
  head: string;
  /** Bytes each lender's device is to hold. */
  lenders: { node: string; bytes: number }[];
  reason: string;
  devices: RpcDevice[];
  tensorSplit: number[];
  deviceBytes: number[];
  hostBytes: number;
}

/** The device a lender offers: its GPU with the most usable room, else its RAM. */
function lent(node: NodeView, settings: PlannerSettings): RpcDevice | undefined {
  if (node.gpus.length > 0) {
    const room = usableBytes({ gpus: node.gpus, running: node.running, loading: node.loading, settings });
    const [gpu, bytes] = [...room].sort((a, b) => b[1] - a[1] || a[0] - b[0])[0] ?? [];
    return gpu !== undefined && bytes! > 0 ? { kind: 'rpc', node: node.name, gpu, roomBytes: bytes! } : undefined;
  }
  const ram = usableHostBytes({ host: node.host, running: node.running, settings });
  return ram && ram > 0 ? { kind: 'rpc', node: node.name, gpu: undefined, roomBytes: ram } : undefined;
}

const share = (devices: readonly RpcDevice[]) => {
  const total = devices.reduce((s, d) => s + d.roomBytes, 0);
  return devices.map((d) => Math.round((d.roomBytes / total) * 1000) / 1000);
};

const BALANCE_ROUNDS = 6;

/**
 * A split that fits every device, when one does: shares start proportional to room; each round scales a device's
 * share by how full it came out (room / bytes), so devices with fixed buffers (compute, runtime) get fewer layers,
 * until every device fits or the rounds are spent.
 */
function balance(devices: readonly RpcDevice[], cost: RpcCost): { tensorSplit: number[]; deviceBytes: number[]; hostBytes: number } | undefined {
  let weights = devices.map((d) => d.roomBytes);
  for (let round = 0; round < BALANCE_ROUNDS; round++) {
    const tensorSplit = share(devices.map((d, i) => ({ ...d, roomBytes: weights[i]! })));
    const { deviceBytes, hostBytes } = cost(devices, tensorSplit);
    if (devices.every((d, i) => (deviceBytes[i] ?? Infinity) <= d.roomBytes)) return { tensorSplit, deviceBytes, hostBytes };
    // Not enough room in all of them together: no split helps.
    if (deviceBytes.reduce((a, b) => a + b, 0) > devices.reduce((a, d) => a + d.roomBytes, 0)) return undefined;
    weights = weights.map((w, i) => w * (devices[i]!.roomBytes / Math.max(1, deviceBytes[i]!)));
  }
  return undefined;
}

/**
 * The placement with the fewest lenders (largest rooms first) whose every device holds its share and whose host
 * share fits the head's RAM; undefined when even every lender together is not enough.
 */
export function planRpc(input: { modelId: string; head: NodeView; lenders: readonly NodeView[]; cost: RpcCost; settings: PlannerSettings }): RpcPlan | undefined {
  const { head, settings } = input;
  const headRoom = usableBytes({ gpus: head.gpus, running: head.running, loading: head.loading, settings });
  const local: RpcDevice[] = [...headRoom].filter(([, b]) => b > 0).map(([gpu, roomBytes]) => ({ kind: 'local' as const, gpu, roomBytes }));
  const offered = input.lenders
    .filter((n) => n.rpc && n.name !== head.name)
    .map((n) => lent(n, settings))
    .filter((d): d is RpcDevice => d !== undefined)
    .sort((a, b) => b.roomBytes - a.roomBytes || (a.kind === 'rpc' && b.kind === 'rpc' ? a.node.localeCompare(b.node) : 0));
  const hostRoom = usableHostBytes({ host: head.host, running: head.running, settings });
  for (let k = 1; k <= offered.length; k++) {
    const devices = [...offered.slice(0, k), ...local];
    const fit = balance(devices, input.cost);
    if (!fit || (hostRoom !== undefined && fit.hostBytes > hostRoom)) continue;
    const { tensorSplit, deviceBytes, hostBytes } = fit;
    const names = devices.map((d) => (d.kind === 'rpc' ? `${d.node} ${d.gpu === undefined ? 'CPU' : `GPU ${d.gpu}`}` : `this node's GPU ${d.gpu}`));
    return {
      head: head.name,
      lenders: devices.flatMap((d, i) => (d.kind === 'rpc' ? [{ node: d.node, bytes: deviceBytes[i]! }] : [])),
      devices,
      tensorSplit,
      deviceBytes,
      hostBytes,
      reason: `no node holds "${input.modelId}" alone: node ${head.name} runs it over RPC with ${names.map((n, i) => `${n} (${formatGiB(deviceBytes[i]!)})`).join(', ')}`,
    };
  }
  return undefined;
}
