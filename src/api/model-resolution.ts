/**
 * From a request's "model" to a model on disk: configured and local models resolve at once; a Hugging Face
 * model not yet cached is looked up, its header fetched by range and checked against the machine (a model that
 * can never fit is refused before gigabytes move), then downloaded once however many requests wait for it.
 * A streamed request sees the download's progress as SSE comments while it waits.
 */
import type { ServerResponse } from 'node:http';
import type { GgufModelHeader } from '../gguf/index.js';
import type { Config } from '../config/index.js';
import { modelInfo } from '../estimate/index.js';
import {
  ClientError,
  describeProgress,
  forEmbeddings,
  headerHasPooling,
  modelHeader,
  parseVariantId,
  probeModel,
  resolveModel,
  resolveModelAsync,
  withContext,
  withEmbeddingPooling,
  type DownloadProgress,
  type ModelHub,
  type ResolvedModel,
} from '../models/index.js';
import type { Cluster } from '../cluster/cluster.js';
import type { PlacementService } from '../placement/service.js';
import type { Pool } from '../pool/pool.js';
import { QuantizationPicker, type QuantizationRecord } from './quantization-picker.js';

export interface ResolutionDeps {
  config: Config;
  pool: Pool;
  hub?: ModelHub | undefined;
  placer?: PlacementService | undefined;
  /** Said once per model: its resolution's notes (an Ollama template not used, params not applied); the `:auto` choices. */
  log?: (msg: string, fields: Record<string, unknown>) => void;
  /** In a cluster, `:auto` chooses for every reachable node (see QuantizationPicker). */
  cluster?: Pick<Cluster, 'name' | 'peerViews'> | undefined;
}

/**
 * The check made before a download: a model that can never fit this machine (its estimate from the header read by
 * range requests) is refused with 503, nothing downloaded. Absent without a placer.
 */
export function neverFitsCheck(deps: Pick<ResolutionDeps, 'placer' | 'pool'>): ((model: ResolvedModel, header: GgufModelHeader) => Promise<void>) | undefined {
  const placer = deps.placer;
  if (!placer) return undefined;
  return async (model, header) => {
    const info = modelInfo({ ...header, tensors: header.tensors });
    const refusal = await placer.refusalIfNeverFits(model, info, () => deps.pool.charges());
    if (refusal) throw new ClientError(503, 'insufficient_memory', `${refusal} (checked from its header; nothing was downloaded)`);
  };
}

export interface ResolveContext {
  signal?: AbortSignal;
  /** Where to write progress comments (a streamed request); headers are sent on the first one. */
  progressTo?: ServerResponse;
  /** Progress as lines instead (server.loadingProgress: reasoning), at most one a second. */
  progressLine?: (text: string) => void;
}

/** Whether progress comments were written: the response is then an SSE stream already (status 200 sent). */
export function progressStarted(res: ServerResponse): boolean {
  return res.headersSent;
}

export interface ModelResolver {
  /** Configured and local models only (ClientError 404 for a model not on disk). */
  sync(id: unknown): ResolvedModel;
  /** Downloads a Hugging Face model not on disk yet (when a hub is configured). */
  async(id: unknown, ctx?: ResolveContext): Promise<ResolvedModel>;
  /** The latest `:auto` quantization decisions, newest first, with the numbers behind them (for /plan). */
  quantizations(): readonly QuantizationRecord[];
  /**
   * A model not on disk, as a request would get it (`:auto` choosing its variant), with its header read by range
   * from the Hub when it is not cached: nothing is downloaded (for /plan).
   */
  probe(id: string): Promise<{ model: ResolvedModel; header?: GgufModelHeader }>;
}

/** Whether the model's GGUF names a pooling type (false when its header cannot be read: its start says why). */
function poolingOf(model: ResolvedModel): boolean {
  try {
    return headerHasPooling(modelHeader(model.file));
  } catch {
    return false;
  }
}

/**
 * The instance that answers embeddings for a model: its own when its args say `--embeddings`, else its `#embed`
 * variant (started with `--embeddings`, and `--pooling mean` unless the GGUF names a pooling type).
 */
export function embeddingsModel(model: ResolvedModel): ResolvedModel {
  return forEmbeddings(model, poolingOf(model));
}

/** What every resolution ends with: an embeddings model of the config gets a pooling it can answer with. */
function finish(model: ResolvedModel): ResolvedModel {
  return model.args.length === 0 ? model : withEmbeddingPooling(model, poolingOf(model));
}

/**
 * The ids the pool lists for variants (`tiny-a#ctx1024`, what /v1/models shows and clients pick) name the
 * same instance again: the model's id is resolved (`base`), then each step made on it (`apply`).
 */
function variantOf(id: unknown): { base: unknown; apply: (model: ResolvedModel) => ResolvedModel } {
  let parsed;
  try {
    parsed = typeof id === 'string' ? parseVariantId(id) : undefined;
  } catch (err) {
    throw new ClientError(400, 'invalid_model', `model "${String(id)}": ${(err as Error).message}`);
  }
  if (!parsed) return { base: id, apply: finish };
  const steps = parsed.steps;
  return {
    base: parsed.base,
    apply: (model) => steps.reduce((m, step) => (step.kind === 'ctx' ? withContext(m, step.ctx) : embeddingsModel(m)), finish(model)),
  };
}

/** How long a request id's resolution (its model file found on disk included) is reused. */
const RECENT_MS = 1000;

/**
 * The last resolutions of request ids, each for a second: every request resolves its model, and doing it again
 * costs tens of microseconds on the proxy's hot path (the id parsed twice, the entry copied, its variant steps
 * applied). An entry holds only while the config sections resolution reads are the ones it was made from (a
 * reload replaces them); failures and `:auto` choices are not kept.
 */
class RecentResolutions {
  private readonly entries = new Map<string, { model: ResolvedModel; at: number; from: readonly unknown[] }>();

  constructor(private readonly config: Config) {}

  private inputs(): unknown[] {
    const c = this.config;
    return [c.models, c.modelDefaults, c.pool, c.hub, c.modelsDir, c.cacheDir, c.ollama, c.lmstudio];
  }

  get(id: unknown): ResolvedModel | undefined {
    if (typeof id !== 'string') return undefined;
    const hit = this.entries.get(id);
    if (!hit) return undefined;
    const now = this.inputs();
    if (Date.now() - hit.at >= RECENT_MS || hit.from.some((v, i) => v !== now[i])) {
      this.entries.delete(id);
      return undefined;
    }
    return hit.model;
  }

  set(id: unknown, model: ResolvedModel): void {
    if (typeof id !== 'string') return;
    if (this.entries.size >= 256) this.entries.clear();
    this.entries.set(id, { model, at: Date.now(), from: this.inputs() });
  }
}

export function modelResolver(deps: ResolutionDeps): ModelResolver {
  const said = new Set<string>();
  const noted = (model: ResolvedModel) => {
    if (!model.notes || !deps.log || said.has(model.id)) return;
    said.add(model.id);
    for (const note of model.notes) deps.log(note, { model: model.id, file: model.file, source: model.source });
  };
  const check = neverFitsCheck(deps);
  const sync = (id: unknown): ResolvedModel => {
    const { base, apply } = variantOf(id);
    const model = resolveModel(deps.config, base);
    noted(model);
    return apply(model);
  };
  const recent = new RecentResolutions(deps.config);
  if (!deps.hub) {
    return {
      sync,
      async: async (id) => {
        const known = recent.get(id);
        if (known) return known;
        const model = sync(id);
        recent.set(id, model);
        return model;
      },
      quantizations: () => [],
      probe: async (id) => ({ model: sync(id) }),
    };
  }
  const hub = deps.hub;
  const picker = deps.placer
    ? new QuantizationPicker({ hub, placer: deps.placer, ledger: () => deps.pool.ledgerView(), ...(deps.log ? { log: deps.log } : {}), ...(deps.cluster ? { cluster: deps.cluster } : {}) })
    : undefined;
  return {
    sync,
    quantizations: () => picker?.recent() ?? [],
    probe: (id) => probeModel(deps.config, id, hub, process.env, picker ? (repo: string, settings: ResolvedModel) => picker.pick(repo, settings) : undefined),
    async: async (id, ctx = {}) => {
      const known = recent.get(id);
      if (known) return known;
      const { base, apply } = variantOf(id);
      const model = await resolveModelAsync(deps.config, base, hub, {
        // A pinned model is loaded here at start and stays here: its variant is chosen for this node alone.
        ...(picker ? { pickVariant: (repo: string, settings: ResolvedModel) => picker.pick(repo, settings, { here: settings.pinned }) } : {}),
        ...(ctx.signal ? { signal: ctx.signal } : {}),
        ...(ctx.progressLine ? { onProgress: throttledLines(ctx.progressLine) } : ctx.progressTo ? { onProgress: (p: DownloadProgress) => writeProgress(ctx.progressTo!, p) } : {}),
        beforeDownload: async ({ header, model }) => {
          // A variant `:auto` chose for another node's room is that node's to hold: this one need not fit it.
          const elsewhere = deps.cluster && model.quantization?.node !== undefined && model.quantization.node !== deps.cluster.name;
          if (!elsewhere) await check?.(model, header);
        },
      });
      noted(model);
      const applied = apply(model);
      // `:auto`'s choice follows the GPUs' room and the cluster's nodes, not the config: chosen again each time.
      if (!applied.quantization) recent.set(id, applied);
      return applied;
    },
  };
}

/** Download progress as lines, one a second at most (and every phase change). */
function throttledLines(line: (text: string) => void): (p: DownloadProgress) => void {
  let last = 0;
  let phase = '';
  return (p) => {
    const now = Date.now();
    if (now - last < 1000 && p.phase === phase) return;
    last = now;
    phase = p.phase;
    line(`${describeProgress(p)[0]!.toUpperCase()}${describeProgress(p).slice(1)}.`);
  };
}

function writeProgress(res: ServerResponse, p: DownloadProgress): void {
  if (res.writableEnded || res.destroyed) return;
  if (!res.headersSent) res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  res.write(`: ${describeProgress(p)}\n\n`);
}
