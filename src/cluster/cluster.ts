/**
 * The cluster at the entry: which node serves a request's model (the pure planner on every node's state, this
 * node's own read now), the target a forwarded request goes to, and what the views show of the other nodes.
 * One instance per proxy, absent when no peers are configured.
 */
import { errorMessageOf, isConnectionFailure, type UpstreamTarget } from '../api/upstream.js';
import type { Config } from '../config/index.js';
import type { GpuMonitor } from '../gpu/index.js';
import type { InstanceRpc, ResolvedModel } from '../models/index.js';
import type { HostMemory, PlacementService } from '../placement/service.js';
import type { PlannerSettings } from '../placement/types.js';
import { PoolError } from '../pool/errors.js';
import type { Pool } from '../pool/pool.js';
import { readLocalState } from './local-state.js';
import { CLUSTER_TOKEN_HEADER, FORWARDED_HEADER, FORWARDED_KEY_HEADER, Peers, type PeerRecord } from './peers.js';
import { forwardedKey } from './forwarded.js';
import type { RequestKey } from '../api/request-key.js';
import { planCluster, type ClusterDecision } from './planner.js';
import { planRpc, type RpcCost, type RpcPlan } from './rpc-plan.js';
import { viewOf, type NodeState, type NodeView } from './types.js';

export interface ClusterDeps {
  config: Pick<Config, 'cluster' | 'llamaServer'>;
  /** This node's name, and the URL peers reach it at (known once the server listens). */
  name: string;
  url: () => string;
  version: string;
  pool: Pool;
  monitor?: GpuMonitor | undefined;
  placer?: PlacementService | undefined;
  hostMemory: HostMemory;
  /** Model ids this node serves from its disk. */
  models: () => string[];
  log?: (msg: string, fields?: Record<string, unknown>) => void;
  /** Host name lookups for peers (tests replace it). */
  resolve?: (host: string) => Promise<string[]>;
  /** This node lends devices over RPC (an rpc-server binary and cluster.rpcHost). */
  lendsRpc?: boolean;
  /** This node's llama-server can run a model over RPC (built with GGML_RPC): it may head an RPC placement. */
  headsRpc?: boolean;
}

/** `model`: what the local pool is to run instead of the request's model (its RPC placement). */
export type ClusterChoice = { kind: 'local'; reason: string; model?: ResolvedModel } | { kind: 'peer'; node: string; target: UpstreamTarget; reason: string };

/** rpc-servers other nodes run for one of this node's models. */
interface RpcLease {
  servers: { node: string; id: string }[];
  /** The model with its RPC placement, for every request while the lease lasts. */
  model: ResolvedModel;
}

/** A node chosen for a model not running there yet: shown as starting there until its own state says more. */
interface Pending {
  node: string;
  at: number;
}

/** How long a placement sent to a peer counts as under way there without its state confirming it. */
const PENDING_MS = 10_000;
/** How long the list of models on this disk is kept. */
const MODELS_TTL_MS = 2000;

export interface ClusterNodeReport {
  name: string;
  url: string;
  local: boolean;
  reachable: boolean;
  /** Seconds since its state last arrived (null: never). */
  lastSeenS: number | null;
  error: string | null;
  gpus: { index: number; name: string; totalMiB: number; freeMiB: number }[];
  instances: { id: string; model: string; state: string; inFlight: number; gpus: number[] }[];
  queued: number;
  models: string[];
}

const MIB = 1024 * 1024;

export class Cluster {
  readonly name: string;
  readonly peers: Peers;
  private readonly pending = new Map<string, Pending>();
  private models: { at: number; ids: string[] } | undefined;
  private readonly rpcLeases = new Map<string, RpcLease>();
  /** RPC placements being set up, by model id: requests that come meanwhile wait for the same one. */
  private readonly rpcStarting = new Map<string, Promise<ResolvedModel>>();
  private readonly onPoolEnd = (_instanceId: string, modelId: string) => this.releaseRpcIfDone(modelId);
  private readonly log: NonNullable<ClusterDeps['log']>;
  private readonly onPoolChange = () => this.peers.changed();

  constructor(private readonly deps: ClusterDeps) {
    this.name = deps.name;
    this.log = deps.log ?? (() => {});
    this.peers = new Peers({ config: deps.config.cluster, self: deps.name, localState: () => this.localState(false), log: this.log, ...(deps.resolve ? { resolve: deps.resolve } : {}) });
  }

  async start(): Promise<void> {
    for (const event of ['starting', 'ready', 'stopped', 'crash', 'load_failed']) this.deps.pool.on(event, this.onPoolChange);
    for (const event of ['stopped', 'load_failed']) this.deps.pool.on(event, this.onPoolEnd);
    await this.peers.start();
  }

  async close(): Promise<void> {
    for (const event of ['starting', 'ready', 'stopped', 'crash', 'load_failed']) this.deps.pool.off(event, this.onPoolChange);
    for (const event of ['stopped', 'load_failed']) this.deps.pool.off(event, this.onPoolEnd);
    await Promise.all([...this.rpcLeases.keys()].map((id) => this.releaseRpc(id)));
    await this.peers.close();
  }

  /** This node's state; `fresh` reads the GPUs now (for peers), else the monitor's last reading (per request). */
  localState(fresh = true): Promise<NodeState> {
    const d = this.deps;
    return readLocalState({
      node: this.name,
      url: d.url(),
      version: d.version,
      pool: d.pool,
      monitor: d.monitor,
      placer: d.placer,
      hostMemory: d.hostMemory,
      models: () => this.modelsOnDisk(),
      rpc: d.lendsRpc ?? false,
      fresh,
    });
  }

  /**
   * The models on this disk, listed at most once per MODELS_TTL_MS: listing stats every configured file and reads
   * the Hub cache, too much for every request's decision.
   */
  private modelsOnDisk(): string[] {
    const now = Date.now();
    if (!this.models || now - this.models.at > MODELS_TTL_MS) this.models = { at: now, ids: this.deps.models() };
    return this.models.ids;
  }

  /**
   * The peers that answer, as planner views, with placements this node sent them and they have not shown yet
   * (what `decide` plans on, and the room `:auto` chooses a quantization by).
   */
  peerViews(): NodeView[] {
    const now = Date.now();
    const views: NodeView[] = [];
    for (const rec of this.peers.up()) {
      const view = viewOf(rec.state!, false);
      for (const [modelId, p] of this.pending) {
        if (now - p.at > PENDING_MS || rec.receivedAt > p.at + 500) {
          if (p.node === view.name) this.pending.delete(modelId);
          continue;
        }
        if (p.node === view.name && !view.instances.some((i) => i.modelId === modelId)) {
          view.instances = [...view.instances, { id: 'pending', modelId, state: 'starting', inFlight: 0, slots: 1, pinned: false, lastUsed: p.at, gpuBytes: [], hostBytes: 0, gpus: [] }];
        }
      }
      views.push(view);
    }
    return views;
  }

  /** The decision for `model` over the nodes that answer now (this one included), skipping `exclude`. */
  async decide(model: ResolvedModel, exclude: ReadonlySet<string> = new Set()): Promise<ClusterDecision> {
    const peers = this.peerViews();
    const local = viewOf(await this.localState(false), true);
    const placer = this.deps.placer;
    const fallback: PlannerSettings = { strategy: 'single-gpu-preferred', fit: 'best', reserveBytes: 0, maxUtilization: 100, maxMemoryUsedFraction: 1, partialOffload: false, cpuFallback: true };
    // Most requests are for a model that runs somewhere: decided without reading its header or estimating.
    const running = planCluster({ modelId: model.id, nLayers: 0, nodes: [local, ...peers], estimateFor: undefined, settings: fallback, exclude });
    if (running.kind === 'node' && running.tier === 'running') return running;
    let estimateFor: ((node: NodeView) => ReturnType<PlacementService['costOn']>) | undefined;
    let rpcCost: RpcCost | undefined;
    let nLayers = 0;
    if (placer) {
      try {
        const info = placer.modelInfo(model.file);
        nLayers = info.nLayer;
        estimateFor = (node) => placer.costOn(model, info, node.runtimeBytes);
        rpcCost = placer.rpcCostOn(model, info);
      } catch {
        estimateFor = undefined;
      }
    }
    const settings = placer?.plannerSettings() ?? fallback;
    return planCluster({
      modelId: model.id,
      nLayers,
      nodes: [local, ...peers],
      estimateFor,
      settings,
      exclude,
      // This node heads an RPC placement (it runs llama-server); the others lend.
      ...(this.deps.headsRpc && rpcCost ? { rpc: (nodes: readonly NodeView[]) => planRpc({ modelId: model.id, head: local, lenders: nodes.filter((n) => !n.local), cost: rpcCost!, settings }) } : {}),
    });
  }

  /**
   * Where a request for `model` goes: this node (its pool places and queues it) or a peer. Models pinned to GPUs
   * (the pins name this machine's devices) and models no peer could help with stay here.
   */
  async choose(model: ResolvedModel, exclude: ReadonlySet<string> = new Set()): Promise<ClusterChoice> {
    const leased = this.rpcLeases.get(model.id);
    if (leased) return { kind: 'local', reason: 'runs here over RPC', model: leased.model };
    if (model.gpu) return { kind: 'local', reason: 'pinned to GPUs of this node' };
    if (this.peers.up().every((r) => exclude.has(r.state!.node))) return { kind: 'local', reason: 'no other node answers' };
    const decision = await this.decide(model, exclude);
    switch (decision.kind) {
      case 'node':
        if (decision.node === this.name) return { kind: 'local', reason: decision.reason };
        if (decision.tier !== 'running') this.pending.set(model.id, { node: decision.node, at: Date.now() });
        return { kind: 'peer', node: decision.node, target: this.target(decision.node), reason: decision.reason };
      case 'rpc':
        return { kind: 'local', reason: decision.reason, model: await this.startRpc(model, decision.choice) };
      case 'refuse':
        throw new PoolError(503, 'insufficient_memory', decision.reason, 30);
    }
  }

  /**
   * Asks each lender for an rpc-server (booked in its ledger for the bytes its device is to hold), then returns
   * the model with its RPC placement for the local pool. One setup per model at a time; on any failure the
   * rpc-servers already started are stopped and the request gets a 503 naming the node.
   */
  private startRpc(model: ResolvedModel, plan: RpcPlan): Promise<ResolvedModel> {
    const under = this.rpcStarting.get(model.id);
    if (under) return under;
    const setup = (async () => {
      const lease = `${this.name}/${model.id}`;
      const servers: { node: string; id: string; host: string; port: number }[] = [];
      try {
        for (const [i, d] of plan.devices.entries()) {
          if (d.kind !== 'rpc') continue;
          const info = (await this.peerCall(d.node, 'POST', '/cluster/rpc', { lease, ...(d.gpu !== undefined ? { gpu: d.gpu } : {}), bytes: Math.ceil(plan.deviceBytes[i]!) })) as { id: string; host: string; port: number };
          servers.push({ node: d.node, id: info.id, host: info.host, port: info.port });
        }
      } catch (err) {
        await Promise.all(servers.map((srv) => this.peerCall(srv.node, 'DELETE', `/cluster/rpc/${srv.id}`).catch(() => {})));
        throw new PoolError(503, 'rpc_failed', `cannot spread "${model.id}" over RPC: ${(err as Error).message}`, 5);
      }

      this.log('placed over RPC', { model: model.id, servers: servers.map((srv) => `${srv.node} ${srv.host}:${srv.port}`), split: plan.tensorSplit, reason: plan.reason });
      const rpc: InstanceRpc = {
        endpoints: servers.map(({ node, host, port }) => ({ node, host, port })),
        localGpus: plan.devices.flatMap((d) => (d.kind === 'local' ? [d.gpu] : [])),
        tensorSplit: plan.tensorSplit,
        deviceBytes: plan.deviceBytes,
        hostBytes: plan.hostBytes,
        reason: plan.reason,
      };
      const placed: ResolvedModel = { ...model, rpc };
      this.rpcLeases.set(model.id, { servers: servers.map(({ node, id }) => ({ node, id })), model: placed });
      return placed;
    })();
    this.rpcStarting.set(model.id, setup);
    const forget = () => this.rpcStarting.delete(model.id);
    setup.then(forget, forget);
    return setup;
  }

  /** An instance of `modelId` ended: once none is left, the rpc-servers other nodes ran for it are stopped. */
  private releaseRpcIfDone(modelId: string): void {
    if (!this.rpcLeases.has(modelId)) return;
    if (this.deps.pool.list().some((i) => i.modelId === modelId && i.state !== 'stopping')) return;
    void this.releaseRpc(modelId);
  }

  private async releaseRpc(modelId: string): Promise<void> {
    const lease = this.rpcLeases.get(modelId);
    if (!lease) return;
    this.rpcLeases.delete(modelId);
    await Promise.all(
      lease.servers.map((srv) =>
        this.peerCall(srv.node, 'DELETE', `/cluster/rpc/${srv.id}`).catch((err: Error) => this.log('rpc-server not stopped', { node: srv.node, id: srv.id, reason: err.message })),
      ),
    );
  }

  /** One JSON call to a peer's node-to-node route; throws with the peer's message on a non-2xx answer. */
  private async peerCall(node: string, method: 'POST' | 'DELETE', path: string, body?: unknown): Promise<unknown> {
    const rec = this.peers.node(node);
    if (!rec) throw new Error(`node ${node} does not answer`);
    const token = this.deps.config.cluster.token;
    const timeout = Math.max(20_000, this.deps.config.cluster.pollTimeout * 1000);
    const res = await rec.dispatcher.request({
      method,
      path,
      headers: { ...(token ? { [CLUSTER_TOKEN_HEADER]: token } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body !== undefined ? JSON.stringify(body) : null,
      headersTimeout: timeout,
      bodyTimeout: timeout,
    });
    const text = await res.body.text();
    if (res.statusCode < 200 || res.statusCode >= 300) throw new Error(`node ${node} answered ${res.statusCode}: ${errorMessageOf(text)}`);
    return text ? JSON.parse(text) : undefined;
  }

  /** The target a request forwarded to `node` goes to; ends like any upstream at shutdown (`closing`). */
  target(node: string, closing?: AbortSignal, key?: RequestKey): UpstreamTarget {
    const rec = this.peers.node(node);
    if (!rec) throw new PoolError(503, 'node_down', `node ${node} does not answer`, 1);
    const readTimeoutMs = this.deps.config.llamaServer.readTimeout * 1000;
    const token = this.deps.config.cluster.token;
    const headers: Record<string, string> = { [FORWARDED_HEADER]: this.name, ...(token ? { [CLUSTER_TOKEN_HEADER]: token } : {}), ...(key ? { [FORWARDED_KEY_HEADER]: forwardedKey(key) } : {}) };
    return peerTarget(rec, node, headers, readTimeoutMs, closing, (reason) => this.peers.failed(node, reason));
  }

  /** The instances other nodes run (for /v1/models, /api/ps), as they last told. */
  peerInstances(): { node: string; instance: NodeState['instances'][number] }[] {
    return this.peers.up().flatMap((r) => r.state!.instances.map((instance) => ({ node: r.state!.node, instance })));
  }

  /**
   * The nodes (up, not in `exclude`) that hold `id` on their disk or run it, least busy first: where a model this
   * node cannot resolve is sent.
   */
  holders(id: string, exclude: ReadonlySet<string> = new Set()): string[] {
    return this.peers
      .up()
      .map((r) => r.state!)
      .filter((s) => !exclude.has(s.node) && (s.models.includes(id) || s.instances.some((i) => i.modelId === id && i.state !== 'stopping')))
      .sort((a, b) => a.queued - b.queued || a.node.localeCompare(b.node))
      .map((s) => s.node);
  }

  /** Model ids other nodes hold on their disks, with the nodes that hold each. */
  peerModels(): Map<string, string[]> {
    const out = new Map<string, string[]>();
    for (const r of this.peers.up()) for (const id of r.state!.models) out.set(id, [...(out.get(id) ?? []), r.state!.node]);
    return out;
  }

  /** Every node as /health and the dashboard show it, this one first. */
  async report(): Promise<ClusterNodeReport[]> {
    const now = Date.now();
    const local = await this.localState(false);
    const out = [describe(local, true, true, 0, null)];
    const seen = new Set<string>([this.name]);
    for (const rec of this.peers.list()) {
      const name = rec.state?.node ?? rec.name;
      if (name !== undefined && seen.has(name)) continue;
      if (name !== undefined) seen.add(name);
      out.push(
        rec.state
          ? describe(rec.state, false, this.peers.isUp(rec, now), Math.round((now - rec.receivedAt) / 100) / 10, rec.lastError ?? null, rec.url)
          : { name: name ?? rec.url, url: rec.url, local: false, reachable: false, lastSeenS: null, error: rec.lastError ?? 'not polled yet', gpus: [], instances: [], queued: 0, models: [] },
      );
    }
    return out;
  }
}

function describe(state: NodeState, local: boolean, reachable: boolean, lastSeenS: number | null, error: string | null, url = state.url): ClusterNodeReport {
  return {
    name: state.node,
    url,
    local,
    reachable,
    lastSeenS,
    error,
    gpus: state.gpus.map((g) => ({ index: g.index, name: g.name, totalMiB: Math.round(g.totalBytes / MIB), freeMiB: Math.round(g.freeBytes / MIB) })),
    instances: state.instances.map((i) => ({ id: i.id, model: i.modelId, state: i.state, inFlight: i.inFlight, gpus: i.gpus })),
    queued: state.queued,
    models: state.models,
  };
}

function peerTarget(rec: PeerRecord, node: string, headers: Record<string, string>, readTimeoutMs: number, closing: AbortSignal | undefined, unreachable: (reason: string) => void): UpstreamTarget {
  return {
    dispatcher: rec.dispatcher,
    name: `node ${node}`,
    headersTimeout: readTimeoutMs,
    bodyTimeout: readTimeoutMs,
    headers,
    ...(closing ? { closing } : {}),
    failure: (err) => {
      if (closing?.aborted) return { status: 503, message: 'the proxy is shutting down' };
      const code = (err as { code?: string }).code;
      if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') {
        return { status: 504, message: `node ${node} (${rec.url}) sent nothing for ${Math.round(readTimeoutMs / 1000)} s (llamaServer.readTimeout)` };
      }
      const message = `node ${node} (${rec.url}) failed: ${(err as Error).message}`;
      if (isConnectionFailure(err)) unreachable(message);
      return { status: 502, message };
    },
    unsent: (err) => !closing?.aborted && isConnectionFailure(err),
    refused: (status) => status === 503,
  };
}

