/**
 * The cluster planner: which node serves a model, decided from every reachable node's state by the same rules
 * as on one machine, one level up (design.md beside this file). Pure: the node views, the model's cost on a
 * node, the settings in; a node (and why) or a refusal with every node's numbers out. Each node then places the
 * model on its own GPUs with its own planner, which knows its memory best.
 */
import { formatGiB, planPlacement, usableBytes, usableHostBytes } from '../placement/planner.js';
import type { EstimateFn, ModelPins, PlannerSettings, PlanResult } from '../placement/types.js';
import type { RpcPlan } from './rpc-plan.js';
import type { NodeView } from './types.js';

/** How the chosen node will serve it, best first. */
export const CLUSTER_TIERS = ['running', 'single', 'evict-single', 'split', 'evict-split', 'rpc', 'cpu', 'evict-cpu', 'wait', 'on-disk'] as const;
export type ClusterTier = (typeof CLUSTER_TIERS)[number];

export interface ClusterPlanInput {
  modelId: string;
  nLayers: number;
  nodes: readonly NodeView[];
  /** The model's cost on one node's GPUs (runtime overheads differ); undefined: no estimate (the entry lacks the file). */
  estimateFor: ((node: NodeView) => EstimateFn) | undefined;
  settings: PlannerSettings;
  pins?: ModelPins | undefined;
  /** Nodes this request must not go to (one failed it already). */
  exclude?: ReadonlySet<string>;
  /** The RPC rule, asked when no node can hold the model by itself (absent: no RPC). */
  rpc?: (nodes: readonly NodeView[]) => RpcPlan | undefined;
}

export type ClusterDecision =
  | { kind: 'node'; node: string; tier: ClusterTier; reason: string }
  | { kind: 'rpc'; choice: RpcPlan; tier: 'rpc'; reason: string }
  | { kind: 'refuse'; reason: string; nodes: { node: string; reason: string }[] };

interface Option {
  node: NodeView;
  tier: ClusterTier;
  /** Smaller first, after the tier. */
  rank: number[];
  reason: string;
}

const byName = (a: NodeView, b: NodeView) => Number(b.local) - Number(a.local) || a.name.localeCompare(b.name);

function best(options: Option[]): Option | undefined {
  return [...options].sort((a, b) => {
    for (let i = 0; i < Math.max(a.rank.length, b.rank.length); i++) {
      const d = (a.rank[i] ?? 0) - (b.rank[i] ?? 0);
      if (d !== 0) return d;
    }
    return byName(a.node, b.node);
  })[0];
}

/** Copies of the model that run or start: the least loaded one (free slots first). */
function runningCopy(input: ClusterPlanInput, nodes: readonly NodeView[]): Option | undefined {
  const options: Option[] = [];
  for (const node of nodes) {
    for (const i of node.instances) {
      if (i.modelId !== input.modelId || (i.state !== 'ready' && i.state !== 'starting')) continue;
      const load = i.inFlight / Math.max(1, i.slots);
      options.push({ node, tier: 'running', rank: [load, node.queued], reason: `runs there (${i.state}, ${i.inFlight} of ${i.slots} slots busy)` });
    }
  }
  return best(options);
}

/** When the most recently used of these victims was last used: the cluster evicts its least recently used first. */
function lastUse(node: NodeView, victims: readonly string[]): number {
  return Math.max(0, ...node.running.filter((r) => victims.includes(r.instanceId)).map((r) => r.lastUsed));
}

function plan(input: ClusterPlanInput, node: NodeView, estimate: EstimateFn, settings: PlannerSettings, pins: ModelPins | undefined): PlanResult {
  return planPlacement({
    modelId: input.modelId,
    nLayers: input.nLayers,
    estimate,
    gpus: node.gpus,
    running: node.running,
    loading: node.loading,
    host: node.host,
    ...(pins ? { pins } : {}),
    settings,
  });
}

/**
 * Decides which node serves `modelId`: where it runs already (the least loaded copy); else where it fits on one
 * GPU now (the tightest fit over the whole cluster, nodes holding the file first); else where evicting idle
 * instances makes room on one GPU (the fewest victims, least recently used first, over the whole cluster); else a split over one node's GPUs (now: the first node, by file then most room; then after evictions); else RPC over
 * several nodes; else the CPU (partial offload included) of the node with the most RAM; else a node whose memory
 * is held by busy instances (it queues); else a refusal that names every node's reason.
 */
export function planCluster(input: ClusterPlanInput): ClusterDecision {
  const nodes = input.nodes.filter((n) => !input.exclude?.has(n.name));
  if (nodes.length === 0) return { kind: 'refuse', reason: `no node can take "${input.modelId}": ${input.nodes.length === 0 ? 'none is reachable' : 'every reachable node failed this request'}`, nodes: [] };

  const running = runningCopy(input, nodes);
  if (running) return decided(running);

  const hasFile = (n: NodeView) => (n.models.has(input.modelId) ? 0 : 1);
  if (!input.estimateFor) {
    // No estimate here (the file is on other nodes only): a node that holds it, the least busy.
    const holders = nodes.filter((n) => n.models.has(input.modelId));
    const pick = best(holders.map((node) => ({ node, tier: 'on-disk' as const, rank: [node.queued], reason: 'holds the file (no estimate on the entry)' })));
    if (pick) return decided(pick);
    return { kind: 'refuse', reason: `model "${input.modelId}" is on no node's disk`, nodes: nodes.map((n) => ({ node: n.name, reason: 'not on its disk' })) };
  }
  const estimates = new Map(nodes.map((n) => [n.name, input.estimateFor!(n)]));
  const est = (n: NodeView) => estimates.get(n.name)!;
  const pins = input.pins;
  const gpuOnly: PlannerSettings = { ...input.settings, partialOffload: false, cpuFallback: false };
  const withGpus = nodes.filter((n) => n.gpus.length > 0 && pins?.ngl !== 0);
  const waits: NodeView[] = [];

  // 1. One GPU, now or after evicting idle instances (a split pinned by the model skips this step).
  if (!(pins?.gpus && pins.gpus.length > 1)) {
    const singlePins: ModelPins = { ...pins, maxGpus: 1 };
    const now: Option[] = [];
    const evict: Option[] = [];
    for (const node of withGpus) {
      const r = plan(input, node, est(node), gpuOnly, singlePins);
      if (r.kind === 'place' && r.placement.gpus.length === 1) {
        const gpu = r.placement.gpus[0]!;
        const room = usableBytes({ gpus: node.gpus, running: node.running, loading: node.loading, settings: input.settings }).get(gpu) ?? 0;
        const leftover = room - (r.placement.cost.gpuBytes[0] ?? 0);
        now.push({ node, tier: 'single', rank: [hasFile(node), input.settings.fit === 'best' ? leftover : -leftover], reason: `fits on its GPU ${gpu} (${formatGiB(leftover)} left)` });
      } else if (r.kind === 'evict') {
        evict.push({ node, tier: 'evict-single', rank: [hasFile(node), r.victims.length, lastUse(node, r.victims)], reason: r.reason });
      } else if (r.kind === 'wait') waits.push(node);
    }
    const pick = best(now) ?? best(evict);
    if (pick) return decided(pick);
  }

  // 2. A split over one node's GPUs, now or after evictions. Nodes holding the file first, then the most GPU
  // room: the first that splits it now takes it (every split is estimated per node: trying them all costs a
  // cold decision tens of milliseconds on a large cluster).
  {
    const evict: Option[] = [];
    const room = (n: NodeView) => [...usableBytes({ gpus: n.gpus, running: n.running, loading: n.loading, settings: input.settings }).values()].reduce((a, b) => a + b, 0);
    const order = withGpus
      .filter((n) => n.gpus.length > 1)
      .map((node) => ({ node, room: room(node) }))
      .sort((a, b) => hasFile(a.node) - hasFile(b.node) || b.room - a.room || byName(a.node, b.node))
      .map((o) => o.node);
    for (const node of order) {
      const r = plan(input, node, est(node), gpuOnly, pins);
      if (r.kind === 'place' && r.placement.gpus.length > 1) return decided({ node, tier: 'split', rank: [], reason: r.placement.reason });
      if (r.kind === 'evict') evict.push({ node, tier: 'evict-split', rank: [hasFile(node), r.victims.length, lastUse(node, r.victims)], reason: r.reason });
      else if (r.kind === 'wait') waits.push(node);
    }
    const pick = best(evict);
    if (pick) return decided(pick);
  }

  // 3. Several nodes together over RPC.
  const rpc = input.rpc?.(nodes);
  if (rpc) return { kind: 'rpc', choice: rpc, tier: 'rpc', reason: rpc.reason };

  // 4. The CPU (or part of the layers on a GPU): the node with the most RAM left after it.
  const cpu: Option[] = [];
  const evictCpu: Option[] = [];
  const refusals: { node: string; reason: string }[] = [];
  for (const node of nodes) {
    const r = plan(input, node, est(node), input.settings, pins);
    if (r.kind === 'place') {
      const room = usableHostBytes({ host: node.host, running: node.running, settings: input.settings }) ?? 0;
      const what = r.placement.gpus.length > 0 ? r.placement.reason : 'on its CPU';
      cpu.push({ node, tier: 'cpu', rank: [hasFile(node), -(room - r.placement.cost.hostBytes)], reason: `${what} (${formatGiB(room)} of RAM free)` });
    } else if (r.kind === 'evict') evictCpu.push({ node, tier: 'evict-cpu', rank: [hasFile(node), r.victims.length, lastUse(node, r.victims)], reason: r.reason });
    else if (r.kind === 'wait') waits.push(node);
    else refusals.push({ node: node.name, reason: r.reason });
  }
  const pick = best(cpu) ?? best(evictCpu);
  if (pick) return decided(pick);

  // 5. Memory held by busy instances somewhere: that node queues the request until they finish.
  const wait = best([...new Set(waits)].map((node) => ({ node, tier: 'wait' as const, rank: [node.queued], reason: 'its memory is held by busy instances: it queues the request' })));
  if (wait) return decided(wait);

  return {
    kind: 'refuse',
    reason: `no node can run "${input.modelId}": ${refusals.map((r) => `node ${r.node}: ${r.reason}`).join('; ')}`,
    nodes: refusals,
  };
}

function decided(o: Option): ClusterDecision {
  return { kind: 'node', node: o.node.name, tier: o.tier, reason: `node ${o.node.name}: ${o.reason}` };
}
