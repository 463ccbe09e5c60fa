/**
 * The estimator and planner as a tool, without loading anything:
 *   GET /plan?model=&ctx=   where a model (an alias, a file, a Hugging Face repo:variant) would go now: the
 *                           placement, what it would evict first, each device's memory as it is and what the
 *                           model would take there. A Hugging Face model not in the cache has its header read
 *                           by range from the Hub (no download): that needs an admin key when keys are set.
 *   GET /models             every configured model, cached Hub model and running instance, each with where
 *                           it would go on this machine's GPUs (the dashboard's Models page).
 */
import type { FastifyRequest } from 'fastify';
import type { Config } from '../config/index.js';
import { modelInfo, type ModelInfo } from '../estimate/index.js';
import { ClientError, quantTag, withContext, type ModelHub, type ResolvedModel } from '../models/index.js';
import type { PlacementService, PlanPreview } from '../placement/service.js';
import type { Placement, PlanResult } from '../placement/types.js';
import type { Pool } from '../pool/pool.js';
import { placementLine } from '../requests/index.js';
import { knownKeyOf } from './auth.js';
import { mib } from './health.js';
import type { ModelResolver } from './model-resolution.js';
import type { ProxyApp } from './types.js';

export interface PlanDeps {
  config: Config;
  pool: Pool;
  resolver: ModelResolver;
  placer?: PlacementService | undefined;
  hub?: ModelHub | undefined;
  /** Whether keys are configured (a plan that reads the Hub then needs an admin key). */
  keysSet: () => boolean;
}

const MAX_CTX = 10_000_000;

function ctxOf(raw: unknown): number | undefined {
  if (raw === undefined || raw === '') return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > MAX_CTX) throw new ClientError(400, 'invalid_ctx', `ctx must be a whole number of tokens from 1 to ${MAX_CTX}, got "${String(raw)}"`);
  return n;
}

/** A placement as the API shows it. */
function placementDoc(p: Placement, nLayers: number, names: ReadonlyMap<number, string>) {
  const ngl = p.ngl === 'full' ? nLayers + 1 : p.ngl;
  return {
    gpus: p.gpus,
    gpu_names: p.gpus.map((g) => names.get(g) ?? `GPU ${g}`),
    n_gpu_layers: ngl,
    n_layers: nLayers + 1,
    split_mode: p.splitMode,
    tensor_split: p.tensorSplit ?? null,
    summary: placementLine({ gpus: p.gpus.map((index) => ({ index })), ngl, splitMode: p.splitMode, ...(p.tensorSplit ? { tensorSplit: p.tensorSplit } : {}) }),
    estimate_mib: { gpus: Object.fromEntries(p.gpus.map((g, i) => [String(g), mib(p.cost.gpuBytes[i] ?? 0)])), host: mib(p.cost.hostBytes) },
    reason: p.reason,
  };
}

function reasonOf(r: PlanResult): string {
  return r.kind === 'place' ? r.placement.reason : r.reason;
}

/** The whole answer of GET /plan for a previewed model. */
export function planDocument(model: ResolvedModel, preview: PlanPreview, pool: Pool, onDisk: boolean, host: { total: number; available: number }) {
  const running = pool.list();
  const ledger = pool.ledgerView();
  const names = new Map(preview.devices.map((d) => [d.index, d.name]));
  const final = preview.final;
  const chosen = final.kind === 'place' ? final.placement : undefined;
  const modelOf = (id: string) => running.find((r) => r.id === id)?.modelId ?? id;
  return {
    model: model.id,
    file: model.file,
    on_disk: onDisk,
    ctx: model.ctx,
    parallel: model.parallel,
    decision: final.kind,
    reason: reasonOf(final),
    // `:auto` (a repo named without a variant): the variant chosen for this machine now, and every candidate's numbers.
    quantization: model.quantization ?? null,
    already_running: running.filter((r) => r.modelId === model.id && r.state !== 'stopping').map((r) => ({ instance: r.id, state: r.state, placement: placementLine(r.placement) })),
    placement: chosen ? placementDoc(chosen, preview.nLayers, names) : null,
    evicts: preview.victims.map((id) => ({ instance: id, model: modelOf(id), gpus_mib: Object.fromEntries([...(ledger.running.find((r) => r.instanceId === id)?.gpuBytes ?? new Map<number, number>())].map(([g, b]) => [String(g), mib(b)])) })),
    first_answer: preview.first.kind === preview.final.kind ? null : { decision: preview.first.kind, reason: reasonOf(preview.first) },
    reserve_mib: mib(preview.settings.reserveBytes),
    devices: preview.devices.map((d) => {
      const i = chosen ? chosen.gpus.indexOf(d.index) : -1;
      return {
        id: d.index,
        name: d.name,
        total_mib: mib(d.totalBytes),
        free_mib: mib(d.freeBytes),
        used_mib: mib(d.usedBytes),
        ours: ledger.running.filter((r) => r.gpuBytes.has(d.index)).map((r) => ({ instance: r.instanceId, model: r.modelId, mib: mib(r.gpuBytes.get(d.index) ?? 0), evicted: preview.victims.includes(r.instanceId) })),
        would_take_mib: i >= 0 ? mib(chosen!.cost.gpuBytes[i] ?? 0) : 0,
        chosen: i >= 0,
      };
    }),
    host: { total_mib: mib(host.total), available_mib: mib(host.available), would_take_mib: chosen ? mib(chosen.cost.hostBytes) : 0 },
  };
}

export function registerPlanRoutes(app: ProxyApp, deps: PlanDeps): void {
  const { config, pool, resolver, placer } = deps;

  /** The model `id` names, and its layout when it is not on disk (read from the Hub by range). */
  async function findModel(request: FastifyRequest, id: string): Promise<{ model: ResolvedModel; info?: ModelInfo }> {
    try {
      return { model: resolver.sync(id) };
    } catch (err) {
      if (!(err instanceof ClientError) || err.status !== 404 || !deps.hub) throw err;
    }
    const key = knownKeyOf(request);
    if (deps.keysSet() && key?.role !== 'admin') throw new ClientError(403, 'admin_required', `model "${id}" is not on disk: planning it reads its header from the Hub, which needs an admin key`);
    const { model, header } = await resolver.probe(id);
    return { model, ...(header ? { info: modelInfo({ ...header, tensors: header.tensors }) } : {}) };
  }

  app.get('/plan', async (request) => {
    if (!placer) throw new ClientError(501, 'no_planner', 'this proxy runs without a placement planner');
    const q = request.query as Record<string, unknown>;
    if (typeof q.model !== 'string' || q.model.trim() === '') throw new ClientError(400, 'model_required', 'GET /plan needs ?model= (an alias, a .gguf file, or a Hugging Face repo:variant)');
    const ctx = ctxOf(q.ctx);
    const found = await findModel(request, q.model.trim());
    const model = ctx === undefined ? found.model : withContext(found.model, ctx);
    const preview = await placer.preview(model, pool.ledgerView(), found.info);
    return planDocument(model, preview, pool, found.info === undefined, { total: placer.hostMemory.total(), available: placer.hostMemory.available() });
  });

  app.get('/models', async () => {
    const running = pool.list();
    const ledger = pool.ledgerView();
    const rows: Record<string, unknown>[] = [];
    const seen = new Set<string>();
    const estimate = async (id: string) => {
      if (!placer) return null;
      try {
        const model = resolver.sync(id);
        const p = await placer.preview(model, ledger);
        const f = p.final;
        return f.kind === 'place'
          ? { decision: 'place', summary: placementLine({ gpus: f.placement.gpus.map((index) => ({ index })), ngl: f.placement.ngl === 'full' ? p.nLayers + 1 : f.placement.ngl, splitMode: f.placement.splitMode, ...(f.placement.tensorSplit ? { tensorSplit: f.placement.tensorSplit } : {}) }), vram_mib: mib(f.placement.cost.gpuBytes.reduce((a, b) => a + b, 0)), host_mib: mib(f.placement.cost.hostBytes), evicts: p.victims.map((v) => running.find((r) => r.id === v)?.modelId ?? v), reason: f.placement.reason }
          : { decision: f.kind, summary: f.kind, vram_mib: null, host_mib: null, evicts: p.victims, reason: f.reason };
      } catch (err) {
        return { decision: 'unknown', summary: 'no estimate', vram_mib: null, host_mib: null, evicts: [], reason: (err as Error).message };
      }
    };
    const instancesOf = (id: string) => running.filter((r) => r.modelId === id || r.variantOf === id).map((r) => ({ id: r.id, model: r.modelId, state: r.state, placement: placementLine(r.placement), in_flight: r.inFlight }));
    for (const [id, entry] of Object.entries(config.models)) {
      seen.add(id);
      const source = entry.backend ? `${entry.backend} backend` : entry.path ? entry.path : `hf ${entry.hf}`;
      rows.push({ id, kind: 'configured', source, description: entry.description ?? null, ctx: entry.ctx ?? null, instances: instancesOf(id), estimate: entry.backend ? null : await estimate(id) });
    }
    for (const e of deps.hub?.list() ?? []) {
      if (e.kind !== 'model' || e.partial) continue;
      const tag = quantTag(e.file);
      const id = tag ? `${e.repo}:${tag}` : undefined;
      if (!id || seen.has(id)) continue;
      seen.add(id);
      rows.push({ id, kind: 'cached', source: `Hugging Face cache (${e.repo})`, description: null, ctx: null, instances: instancesOf(id), estimate: await estimate(id) });
    }
    for (const r of running) {
      if (seen.has(r.modelId) || (r.variantOf && seen.has(r.variantOf))) continue;
      seen.add(r.modelId);
      rows.push({ id: r.modelId, kind: 'running', source: r.file, description: null, ctx: r.ctx, instances: instancesOf(r.modelId), estimate: null });
    }
    return { models: rows };
  });
}
