/**
 * The part of serving a prompt that does not depend on the API it came in (OpenAI or Ollama): where the model is
 * served (an instance of ours, or the Ollama backend), taking that upstream for one request, a request's agent
 * session, and agents' own model calls (`context.complete`). The routes translate bodies and write answers in
 * their API's format around these steps.
 */
import type { ModelRules } from '../models/resolve.js';
import { rulesEmpty } from './request-rules.js';
import type { ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { AgentSession, toJsonSafe, type AgentEndpoint, type AgentPlan, type AgentRegistry, type JsonObject, type ServingInstance } from '../agents/index.js';
import type { Cluster } from '../cluster/cluster.js';
import { NODE_HEADER } from '../cluster/peers.js';
import { ClientError, type ResolvedModel } from '../models/index.js';
import { PoolError } from '../pool/errors.js';
import { PRIORITY_WEIGHT } from '../pool/fair-queue.js';
import type { RequestKey } from './request-key.js';
import type { Lease, Pool } from '../pool/pool.js';
import type { ModelResolver, ResolveContext } from './model-resolution.js';
import type { OllamaBackend } from './ollama/backend.js';
import { loadWait, placementLine } from '../requests/index.js';
import { draftOf, noteUpstream } from './request-records.js';
import { requestJson, UpstreamUnsent, type UpstreamClients, type UpstreamTarget } from './upstream.js';

/** A model of the Ollama backend: `id` as the client named it, `name` as Ollama knows it. */
export interface BackendRoute {
  kind: 'backend';
  backend: OllamaBackend;
  id: string;
  name: string;
}

/** A model this node cannot resolve but other nodes of the cluster hold on their disks. */
export interface PeerRoute {
  kind: 'peer';
  id: string;
}

/** Where a model is served. */
export type ModelRoute = { kind: 'local'; model: ResolvedModel } | BackendRoute | PeerRoute;

/** The id agents and logs know a routed model by. */
export function routeId(route: ModelRoute): string {
  return route.kind === 'local' ? (route.model.variantOf ?? route.model.id) : route.id;
}

/** The request rules of a routed model (only models the proxy runs have them). */
export function routeRules(route: ModelRoute): ModelRules | undefined {
  return route.kind === 'local' && !rulesEmpty(route.model.rules) ? route.model.rules : undefined;
}

/** An upstream taken for one request. */
export interface Upstream {
  target: UpstreamTarget;
  /** "model" as upstream knows it (Ollama's name); undefined: the body's is sent as it is. */
  upstreamModel: string | undefined;
  /** The pool's lease, for an instance of ours. */
  lease: Lease | undefined;
  /** Milliseconds spent waiting for it (queue and load). */
  waitedMs: number;
  /** What log lines call it: the instance id, the backend's address, or the cluster node. */
  label: string;
  /** The cluster node it is on, when it is another node's proxy. */
  node?: string;
  /** Its log fields: `{ instance }`, `{ backend }` or `{ node }`. */
  logFields(): Record<string, string>;
  /** Ends the request's hold on it; idempotent. */
  release(): void;
}

export interface PipelineDeps {
  pool: Pool;
  resolver: ModelResolver;
  agents: AgentRegistry;
  clients: UpstreamClients;
  backend?: OllamaBackend | undefined;
  /** The other nodes (absent: this proxy is alone). */
  cluster?: Cluster | undefined;
  /** server.loadingProgress (default off). */
  loadingProgress?: 'off' | 'reasoning';
}

/** How one exchange may go. */
export interface ExchangeOptions {
  /** Served by this node whatever the cluster says (a request another node forwarded here). */
  stay?: boolean;
  /** The client's response: told which node serves it (x-llama-smart-proxy-node) before anything is written. */
  res?: ServerResponse;
  /** Who the request is for: its turn in the pool's fair queue (pool.fairness). */
  key?: RequestKey;
  /** False for a request that generates nothing (tokenize, props, slots): it never waits for a free slot. */
  takesSlot?: boolean;
}

/**
 * Request hooks may rewrite anything but the model (resolved before them) and `stream` (the client's choice of
 * format): those two are put back, with a warning. To use another model, an agent calls context.complete.
 */
export function keepModelAndStream(out: JsonObject, original: JsonObject, log: Logger): JsonObject {
  if (out.model === original.model && out.stream === original.stream) return out;
  log.warn({ from: { model: original.model, stream: original.stream }, to: { model: out.model, stream: out.stream } }, 'a request hook changed "model" or "stream"; restored');
  const fixed: JsonObject = { ...out, model: original.model };
  if ('stream' in original) fixed.stream = original.stream;
  else delete fixed.stream;
  return fixed;
}

export interface SessionInit {
  requestId: string;
  route: ModelRoute;
  /** The model field as the client wrote it. */
  modelField: unknown;
  endpoint: AgentEndpoint;
  plan: AgentPlan;
  stream: boolean;
  log: Logger;
  signal: AbortSignal;
  /** Whom the request is for: the models its agents call take that key's turns and obey its allow-list. */
  caller?: ModelCaller;
}

/** Who calls a model from an agent (context.complete): the request's key and its allow-list. */
export interface ModelCaller {
  key?: RequestKey;
  /** Why the key may not use `model`, or undefined when it may. */
  refusal?: (model: string) => string | undefined;
}

/** A request's agent session, told which upstream serves it once there is one (for context.instance()). */
export interface ServedSession {
  session: AgentSession;
  served(upstream: Upstream): void;
}

export class PromptPipeline {
  constructor(private readonly deps: PipelineDeps) {}

  get agents(): AgentRegistry {
    return this.deps.agents;
  }

  get pool(): Pool {
    return this.deps.pool;
  }

  get loadingProgress(): 'off' | 'reasoning' {
    return this.deps.loadingProgress ?? 'off';
  }

  /** Whether an instance of the model is ready now (a request for it waits for no load). */
  modelReady(modelId: string): boolean {
    return this.deps.pool.list().some((i) => i.modelId === modelId && i.state === 'ready');
  }

  /** The backend route of a model field, when the Ollama backend serves it. */
  backendRoute(field: unknown): BackendRoute | undefined {
    const backend = this.deps.backend;
    const name = backend?.route(field);
    return backend && name !== undefined ? { kind: 'backend', backend, id: String(field), name } : undefined;
  }

  /**
   * Where `field` is served: the backend, else a model of ours (resolved, downloaded if need be); in a cluster, a
   * model not on this node's disk that another node holds goes to that node rather than being downloaded here.
   */
  async route(field: unknown, ctx: ResolveContext = {}): Promise<ModelRoute> {
    const backend = this.backendRoute(field);
    if (backend) return backend;
    return this.heldRoute(field) ?? { kind: 'local', model: await this.deps.resolver.async(field, ctx) };
  }

  /**
   * In a cluster, a model some node holds (on disk or running): this node's when it resolves here without a
   * download, else the peer's. Undefined when no node holds it (or there is no cluster).
   */
  heldRoute(field: unknown): ModelRoute | undefined {
    const cluster = this.deps.cluster;
    if (!cluster || typeof field !== 'string' || cluster.holders(field).length === 0) return undefined;
    try {
      return { kind: 'local', model: this.deps.resolver.sync(field) };
    } catch (err) {
      if (!(err instanceof ClientError) || err.status !== 404) throw err;
      return { kind: 'peer', id: field };
    }
  }

  /** The upstream of a request forwarded to `node`'s proxy. */
  private peerUpstream(cluster: Cluster, node: string, reason: string, upstreamModel: string | undefined, started: number, key: RequestKey | undefined): Upstream {
    return {
      target: cluster.target(node, this.deps.clients.closingSignal, key),
      upstreamModel,
      lease: undefined,
      waitedMs: Date.now() - started,
      label: `node ${node}`,
      node,
      logFields: () => ({ node, placedBy: reason }),
      release: () => {},
    };
  }

  /**
   * Takes the upstream for one request: a lease on the model's instance (loading it if needed), the backend, or
   * (in a cluster) the proxy of the node the cluster planner picks, skipping nodes in `exclude`.
   */
  async acquire(route: ModelRoute, signal: AbortSignal, exclude: ReadonlySet<string> = new Set(), stay = false, key?: RequestKey, takesSlot = true): Promise<Upstream> {
    if (route.kind === 'backend') {
      const url = route.backend.url;
      return { target: route.backend.target(), upstreamModel: route.name, lease: undefined, waitedMs: 0, label: url, logFields: () => ({ backend: url }), release: () => {} };
    }
    const started = Date.now();
    const cluster = this.deps.cluster;
    if (route.kind === 'peer') {
      const node = cluster?.holders(route.id, exclude)[0];
      if (!cluster || !node) throw new PoolError(503, 'node_down', `model "${route.id}" is on no other node that answers (and not on this one's disk)`, 5);
      return this.peerUpstream(cluster, node, `holds "${route.id}" on its disk`, undefined, started, key);
    }
    if (cluster && !stay) {
      const choice = await cluster.choose(route.model, exclude);
      // A variant (its own context, embeddings) is named by its id, and so is a Hub repo whose quantization `:auto`
      // chose here (`owner/repo:Q8_0`: the node runs the file chosen, it does not choose again); anything else as
      // the client wrote it.
      const named = route.model.variantOf || (route.model.quantization && route.model.ref.kind === 'hf') ? route.model.id : undefined;
      if (choice.kind === 'peer') return this.peerUpstream(cluster, choice.node, choice.reason, named, started, key);
      // Over RPC: the local pool runs the model with the placement the cluster set up.
      if (choice.model) route = { kind: 'local', model: choice.model };
    }
    const lease = await this.deps.pool.acquire(route.model, signal, key ? { key: key.name, weight: PRIORITY_WEIGHT[key.priority], ...(key.maxQueue !== undefined ? { maxQueue: key.maxQueue } : {}) } : undefined, takesSlot);
    return {
      target: this.deps.clients.target(lease.instance, route.model.parallel + 1),
      upstreamModel: undefined,
      lease,
      waitedMs: Date.now() - started,
      label: lease.instance.id,
      logFields: () => ({ instance: lease.instance.id }),
      release: () => lease.release(),
    };
  }

  /**
   * One exchange with the model's upstream: takes it (acquire), runs `run`, releases it. An exchange that failed
   * before the upstream answered anything (its instance died or was killed just then: UpstreamUnsent, nothing
   * written to the client) runs once more, on a fresh instance. `run` is told whether it may throw that (not on
   * the last try: then it writes the error itself). Counted as under way for shutdown.
   */
  exchange<T>(route: ModelRoute, signal: AbortSignal, run: (upstream: Upstream, retryable: boolean) => Promise<T>, log?: Logger, options: ExchangeOptions = {}): Promise<T> {
    return this.deps.clients.track(
      (async () => {
        // Nodes that failed this request before answering: the second try goes elsewhere.
        const failedNodes = new Set<string>();
        for (let attempt = 1; ; attempt++) {
          const upstream = await this.acquire(route, signal, failedNodes, options.stay, options.key, options.takesSlot);
          if (this.deps.cluster && options.res && !options.res.headersSent) options.res.setHeader(NODE_HEADER, upstream.node ?? this.deps.cluster.name);
          if (options.res) this.note(options.res, upstream);
          try {
            return await run(upstream, attempt === 1);
          } catch (err) {
            if (!(err instanceof UpstreamUnsent) || attempt > 1 || signal.aborted) throw err;
            if (upstream.node) {
              failedNodes.add(upstream.node);
              // Its answer overrides what this node guessed: its fresh state for the next decisions.
              void this.deps.cluster?.peers.refresh(upstream.node);
            }
            log?.warn({ model: routeId(route), ...upstream.logFields(), reason: err.message }, 'upstream failed before answering; sending the request again');
          } finally {
            upstream.release();
          }
        }
      })(),
    );
  }

  /** The request's record is told where it went, how long it waited and whether for a load. */
  private note(res: ServerResponse, upstream: Upstream): void {
    const draft = draftOf(res);
    if (!draft) return;
    const instance = upstream.lease?.instance;
    const loadMs = instance ? loadWait(draft.startedAt, instance.createdAt, instance.readyAt) : undefined;
    noteUpstream(res, {
      label: upstream.label,
      ...(instance ? { instance: instance.id, placement: placementLine(this.deps.pool.placementOf(instance.id)) } : {}),
      ...(upstream.node ? { node: upstream.node, placement: `node ${upstream.node}` } : {}),
      ...(!instance && !upstream.node ? { placement: 'Ollama backend' } : {}),
      waitedMs: upstream.waitedMs,
      ...(loadMs !== undefined ? { loadMs } : {}),
    });
  }

  /** context.complete: one model call through the pool (or the backend), no agents, not streamed. */
  readonly callModel = async (endpoint: AgentEndpoint, body: JsonObject, signal: AbortSignal, caller: ModelCaller = {}): Promise<JsonObject> => {
    // An agent calls models for the request's client: a model outside that key's list is refused as the request would be.
    const refused = typeof body.model === 'string' ? caller.refusal?.(body.model) : undefined;
    if (refused) throw new ClientError(403, 'model_not_allowed', refused);
    const route = await this.route(body.model, { signal });
    const { stream: _stream, stream_options: _streamOptions, ...rest } = body;
    return this.exchange(
      route,
      signal,
      (upstream) => {
        const sent = upstream.upstreamModel === undefined ? rest : { ...rest, model: upstream.upstreamModel };
        return requestJson(upstream.target, `/v1/${endpoint}`, sent, signal, routeId(route));
      },
      undefined,
      caller.key ? { key: caller.key } : {},
    );
  };

  /** The agent session of one request. */
  session(init: SessionInit): ServedSession {
    const { pool, agents } = this.deps;
    let served: Upstream | undefined;
    // Read when an agent asks (not before: the record can be large), fresh from the pool, every field as the pool
    // reports it, made JSON-friendly (its per-GPU byte counts are Maps). An instance gone since is described by
    // what its process object still knows; the backend by its address.
    const instanceInfo = (upstream: Upstream): ServingInstance => {
      const lease = upstream.lease;
      if (!lease) return { id: 'ollama', backend: 'ollama', url: upstream.label, model: upstream.upstreamModel ?? null };
      const instance = lease.instance;
      const info = pool.list().find((i) => i.id === instance.id);
      if (info) return toJsonSafe(info) as ServingInstance;
      return { id: instance.id, modelId: instance.spec.modelId, state: instance.state, pid: instance.pid ?? null, exitedAt: instance.exitedAt ?? null };
    };
    const session = new AgentSession(init.plan.chain, {
      requestId: init.requestId,
      model: routeId(init.route),
      modelField: init.modelField,
      endpoint: init.endpoint,
      stream: init.stream,
      log: init.log,
      signal: init.signal,
      complete: (endpoint, body, signal) => this.callModel(endpoint, body, signal, init.caller),
      instance: () => (served ? instanceInfo(served) : undefined),
      onFailure: (name, hook, reason) => agents.recordFailure(name, hook, reason),
    });
    return {
      session,
      served: (upstream) => {
        served = upstream;
      },
    };
  }
}
