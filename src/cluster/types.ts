/**
 * What nodes of a cluster tell each other (the wire format of GET/POST /cluster/state) and the view the cluster
 * planner decides on. Memory in bytes; GPUs by their index on their own node.
 */
import type { PlannerGpu, RunningInstance } from '../placement/types.js';

/** One instance of a node, as views and the "served where it runs" rule need it. */
export interface NodeInstance {
  id: string;
  modelId: string;
  /** The pool's state: starting, ready, stopping. */
  state: string;
  inFlight: number;
  /** Requests it serves at once (llama-server's --parallel). */
  slots: number;
  pinned: boolean;
  lastUsed: number;
  /** Estimated (or measured) bytes per GPU index, as [index, bytes] pairs. */
  gpuBytes: [number, number][];
  hostBytes: number;
  /** GPU indices it runs on (empty: the CPU). */
  gpus: number[];
}

/** A node's state, as it serves it to its peers. */
export interface NodeState {
  node: string;
  /** Where peers reach its proxy. */
  url: string;
  version: string;
  /** When it was read (ms since the epoch, the node's clock). */
  at: number;
  gpus: PlannerGpu[];
  host: { totalBytes: number; availableBytes: number; loadingBytes: number };
  instances: NodeInstance[];
  /** Bytes promised to loads under way, as [gpu index, bytes] pairs. */
  loading: [number, number][];
  /** Requests waiting in its pool's queue, and its pool's size. */
  queued: number;
  capacity: number;
  /** The CUDA runtime's memory per GPU it learned from its own instances (bytes), when it has. */
  runtimeBytes: number | null;
  /** Model ids it can serve from its own disk without a download. */
  models: string[];
  /** Whether it lends devices over RPC (cluster.rpcHost set and rpc-server found). */
  rpc: boolean;
}

/** A node as the cluster planner sees it. */
export interface NodeView {
  name: string;
  /** This node (no network hop). */
  local: boolean;
  gpus: PlannerGpu[];
  running: RunningInstance[];
  loading: Map<number, number>;
  host: { totalBytes: number; availableBytes: number; loadingBytes: number };
  instances: NodeInstance[];
  queued: number;
  capacity: number;
  runtimeBytes: number | null;
  models: ReadonlySet<string>;
  rpc: boolean;
}

/** A node's state as a planner view: the ledger of its instances the way its own planner keeps it. */
export function viewOf(state: NodeState, local: boolean): NodeView {
  const running: RunningInstance[] = [];
  for (const i of state.instances) {
    if (i.state === 'starting') continue; // promised memory: counted in `loading`
    running.push({ instanceId: i.id, modelId: i.modelId, gpuBytes: new Map(i.gpuBytes), hostBytes: i.hostBytes, idle: i.state === 'ready' && i.inFlight === 0, pinned: i.pinned, lastUsed: i.lastUsed });
  }
  return {
    name: state.node,
    local,
    gpus: state.gpus,
    running,
    loading: new Map(state.loading),
    host: state.host,
    instances: state.instances,
    queued: state.queued,
    capacity: state.capacity,
    runtimeBytes: state.runtimeBytes,
    models: new Set(state.models),
    rpc: state.rpc,
  };
}
