/**
 * What Ollama's listing endpoints show about our models: /api/tags (configured models and the Hugging Face
 * cache), /api/ps (running instances), /api/show (one model's details and GGUF metadata). Read from the files'
 * headers (kept per file version, see models/model-header.ts) and the pool's records.
 */
import { createHash } from 'node:crypto';
import { statSync } from 'node:fs';
import type { Config } from '../../config/index.js';
import { headerHasPooling, modelHeader, quantTag, resolveModel, type ModelHub, type ModelSource, type ResolvedModel } from '../../models/index.js';
import { localCatalog } from '../../sources/catalog.js';
import { estimateView, type ModelEstimator } from '../model-estimates.js';
import type { NodeInstance } from '../../cluster/types.js';
import type { InstanceInfo } from '../../pool/pool.js';
import { modelDetails, modelInfoMap, type OllamaDetails } from './model-details.js';

/** A model as /api/tags lists it. */
export interface TagEntry {
  name: string;
  model: string;
  modified_at: string;
  size: number;
  digest: string;
  details: OllamaDetails;
}

/** A running model as /api/ps lists it. */
export interface PsEntry extends TagEntry {
  expires_at: string;
  size_vram: number;
  context_length: number;
}

/** What /api/ps says of an instance that never expires (Go's largest time, as Ollama writes it for keep_alive -1). */
export const NEVER_EXPIRES = '2262-04-11T23:47:16.854Z';

function unknownDetails(quantization = ''): OllamaDetails {
  return { parent_model: '', format: 'gguf', family: '', families: [], parameter_size: '', quantization_level: quantization };
}

/** A GGUF file's listing: sizes of all its parts, a digest-like id of this version of it, details from its header. */
export function fileEntry(name: string, file: string): TagEntry {
  const st = statSync(file);
  let details: OllamaDetails;
  let size = st.size;
  try {
    const header = modelHeader(file);
    details = modelDetails(header);
    if (header.parts.length > 1) size = header.parts.reduce((sum, p) => sum + statSync(p.path).size, 0);
  } catch {
    details = unknownDetails(quantTag(file) ?? '');
  }
  // Not a content hash (hashing gigabytes per listing is out of the question): stable while the file is unchanged.
  const digest = createHash('sha256').update(`${file}\0${st.size}\0${st.mtimeMs}`).digest('hex');
  return { name, model: name, modified_at: st.mtime.toISOString(), size, digest, details };
}

/** A model as /api/tags lists it here: Ollama's fields, and where it comes from, and its estimate for this machine. */
export interface LocalTagEntry extends TagEntry {
  source: ModelSource | 'hf';
  estimate: ReturnType<typeof estimateView>;
}

/**
 * The models the proxy serves from disk (sources/catalog.ts: configured, the models folder, the Hugging Face
 * caches, Ollama's store, LM Studio's folder), and configured Hugging Face aliases not downloaded yet (size 0: fetched
 * on first use). Names are unique, first wins.
 */
export function localTags(config: Config, hub: ModelHub | undefined, startedAt: number, estimator?: ModelEstimator): LocalTagEntry[] {
  const out = new Map<string, LocalTagEntry>();
  for (const e of localCatalog(config, { hubEntries: hub?.list() ?? [] })) {
    let entry: TagEntry;
    try {
      entry = fileEntry(e.name, e.file);
    } catch {
      continue; // removed while listing
    }
    out.set(e.name, {
      ...entry,
      size: e.source === 'ollama' ? e.sizeBytes : entry.size,
      ...(e.digest ? { digest: e.digest } : {}),
      source: e.source,
      estimate: estimateView(estimator?.(e)),
    });
  }
  for (const [alias, entry] of Object.entries(config.models)) {
    if (entry.backend || !entry.hf || out.has(alias)) continue;
    out.set(alias, { name: alias, model: alias, modified_at: new Date(startedAt).toISOString(), size: 0, digest: createHash('sha256').update(entry.hf).digest('hex'), details: unknownDetails(quantTag(entry.hf) ?? ''), source: 'hf', estimate: null });
  }
  return [...out.values()];
}

const sum = (m: ReadonlyMap<number, number> | undefined) => [...(m?.values() ?? [])].reduce((a, b) => a + b, 0);

/** Loaded instances (not those stopping), named as the client asked for them (a variant by its model's name). */
export function runningEntries(list: readonly InstanceInfo[]): PsEntry[] {
  const out: PsEntry[] = [];
  for (const i of list) {
    if (i.state === 'stopping') continue;
    const name = i.variantOf ?? i.modelId;
    let base: TagEntry;
    try {
      base = fileEntry(name, i.file);
    } catch {
      continue;
    }
    // Best known first: measured, then what the instance logged, then the estimate.
    const vram = sum(i.actualGpuBytes) || sum(i.logged?.gpuBytes) || sum(i.estimatedGpuBytes);
    const host = i.logged?.hostBytes ?? i.placement?.estimate.hostBytes ?? 0;
    out.push({
      ...base,
      size: vram + host > 0 ? vram + host : base.size,
      size_vram: vram,
      expires_at: i.expiresAt === null ? NEVER_EXPIRES : new Date(i.expiresAt).toISOString(),
      context_length: i.ctx,
    });
  }
  return out;
}

/**
 * Instances other nodes of the cluster run, as /api/ps lists them (`node` added): sizes from what their node
 * charges them, the file's details from this node's copy when it has one.
 */
export function peerRunningEntries(config: Config, peers: readonly { node: string; instance: NodeInstance }[]): (PsEntry & { node: string })[] {
  const out: (PsEntry & { node: string })[] = [];
  for (const { node, instance: i } of peers) {
    if (i.state === 'stopping') continue;
    let base: TagEntry;
    try {
      base = fileEntry(i.modelId, resolveModel(config, i.modelId).file);
    } catch {
      base = { name: i.modelId, model: i.modelId, modified_at: new Date(i.lastUsed).toISOString(), size: 0, digest: '', details: unknownDetails() };
    }
    const vram = i.gpuBytes.reduce((a, [, b]) => a + b, 0);
    out.push({ ...base, size: vram + i.hostBytes || base.size, size_vram: vram, expires_at: NEVER_EXPIRES, context_length: 0, node });
  }
  return out;
}

function hasProjectorArg(args: readonly string[]): boolean {
  return args.some((a) => a === '--mmproj' || a === '-mm' || a === '--mmproj-url' || a === '-mmu');
}

/** Whether the model reads images: a multimodal projector came with it or its args name one. */
export function hasProjector(model: Pick<ResolvedModel, 'mmproj' | 'args'>): boolean {
  return model.mmproj !== undefined || hasProjectorArg(model.args);
}

/** /api/show for a model of ours. */
export function showModel(model: ResolvedModel): Record<string, unknown> {
  const header = modelHeader(model.file);
  const entry = fileEntry(model.id, model.file);
  const template = header.metadata['tokenizer.chat_template'];
  const templateText = typeof template === 'string' ? template : '';
  const capabilities: string[] = [];
  if (templateText || !headerHasPooling(header)) capabilities.push('completion');
  if (headerHasPooling(header)) capabilities.push('embedding');
  if (/\btools\b/.test(templateText)) capabilities.push('tools');
  if (/enable_thinking|<think>/.test(templateText)) capabilities.push('thinking');
  if (hasProjector(model)) capabilities.push('vision');
  let projector: Record<string, unknown> | undefined;
  if (model.mmproj) {
    try {
      projector = modelInfoMap(modelHeader(model.mmproj));
    } catch {
      projector = undefined;
    }
  }
  // Request defaults (an Ollama store model's params layer, or the config's rules), in llama-server's field names.
  const defaults = Object.entries(model.rules?.defaults ?? {}).map(([k, v]) => `${k} ${JSON.stringify(v)}`);
  const parameters = [`num_ctx ${model.ctx}`, ...defaults, ...(model.args.length ? [`# llama-server args: ${model.args.join(' ')}`] : [])];
  return {
    license: typeof header.metadata['general.license'] === 'string' ? header.metadata['general.license'] : '',
    modelfile: [`# Modelfile generated by llama-smart-proxy`, `FROM ${model.file}`, ...(model.mmproj ? [`FROM ${model.mmproj}`] : []), `PARAMETER num_ctx ${model.ctx}`, ''].join('\n'),
    parameters: parameters.join('\n'),
    template: templateText,
    system: model.rules?.system ?? '',
    details: entry.details,
    model_info: modelInfoMap(header),
    ...(projector ? { projector_info: projector } : {}),
    capabilities,
    modified_at: entry.modified_at,
  };
}
