/** From a client's model identifier to the GGUF file and the settings its instance gets. */
import { existsSync, statSync } from 'node:fs';
import type { Config, ModelEntry } from '../config/index.js';
import type { GgufModelHeader } from '../gguf/index.js';
import { ClientError } from './errors.js';
import { findCachedHfModel, hubCacheDirs } from './hf-cache.js';
import type { DownloadProgress, HubResolution, ModelHub } from './hub.js';
import { variantGiven } from './hub-variants.js';
import { parseModelId, type ModelRef } from './identifier.js';

export interface ResolvedModel {
  /** The identifier instances are keyed by: the alias, or the canonical file / repo:variant id. */
  id: string;
  file: string;
  ref: ModelRef;
  ctx: number;
  parallel: number;
  args: string[];
  /** Idle seconds before unloading; 0 = never. */
  ttl: number;
  pinned: boolean;
  /** GPU pins from the model's config entry. */
  gpu?: ModelEntry['gpu'];
  /** The multimodal projector downloaded with a Hugging Face model (for llama-server's --mmproj). */
  mmproj?: string;
  /**
   * For a variant of a model (another context size, an embeddings instance; see variants.ts): the id of the model
   * it was made from. Instances are keyed by `id`; this says what the client asked for.
   */
  variantOf?: string;
  /**
   * Run over llama.cpp RPC (the cluster's choice when no node holds the model alone): rpc-servers on other
   * nodes, and this node's GPUs, with the split over them. Placement takes it as it is.
   */
  rpc?: InstanceRpc;
  /** Request rules from the model's config entry (api/request-rules.ts). */
  rules?: ModelEntry['rules'];
}

/** An instance spread over rpc-servers of other nodes (and this node's GPUs). */
export interface InstanceRpc {
  /** The rpc-servers, in the order --rpc lists them; one device each. */
  endpoints: { host: string; port: number; node: string }[];
  /** This node's GPUs in the split, after the RPC devices (llama.cpp's order). */
  localGpus: number[];
  /** One share per device: the endpoints' first, then the local GPUs. */
  tensorSplit: number[];
  /** Estimated bytes per device (same order) and on this host. */
  deviceBytes: number[];
  hostBytes: number;
  reason: string;
}

function requireFile(file: string, what: string): string {
  if (!existsSync(file) || !statSync(file).isFile()) {
    throw new ClientError(404, 'model_not_found', `${what}: file ${file} does not exist`);
  }
  return file;
}

function hfFile(config: Config, repo: string, variant: string, env: NodeJS.ProcessEnv): string {
  const { found, seen } = findCachedHfModel(repo, variant, hubCacheDirs(config.cacheDir, env));
  if (found) return found.file;
  const have = seen.length ? ` Cached files of this repo: ${seen.join(', ')}.` : '';
  throw new ClientError(
    404,
    'model_not_found',
    `model ${repo}:${variant} is not in the local cache.${have} ` +
      `Download it with \`llama-smart-proxy pull ${repo}:${variant}\`, put the GGUF in the models directory (${config.modelsDir}) or configure an alias with "path".`,
  );
}

function entryHf(config: Config, alias: string, entry: ModelEntry): Extract<ModelRef, { kind: 'hf' }> {
  const hf = parseModelId(entry.hf, new Set(), config.modelsDir);
  if (hf.kind !== 'hf') throw new ClientError(500, 'config_error', `model "${alias}": "hf" must look like owner/repo[:variant]`);
  return hf;
}

function fromEntry(config: Config, alias: string, entry: ModelEntry, env: NodeJS.ProcessEnv): ResolvedModel {
  if (entry.backend) {
    throw new ClientError(400, 'remote_model', `model "${alias}" is served by the ${entry.backend} backend (backends.${entry.backend}); the proxy runs no instance of it`);
  }
  let file: string;
  if (entry.path) {
    file = requireFile(entry.path, `model "${alias}"`);
  } else {
    const hf = entryHf(config, alias, entry);
    file = hfFile(config, hf.repo, hf.variant, env);
  }
  return entrySettings(config, alias, entry, file);
}

function entrySettings(config: Config, alias: string, entry: ModelEntry, file: string): ResolvedModel {
  return {
    id: alias,
    file,
    ref: { kind: 'alias', alias },
    ctx: entry.ctx ?? config.modelDefaults.ctx,
    parallel: entry.parallel ?? config.modelDefaults.parallel,
    args: [...config.modelDefaults.args, ...entry.args],
    ttl: entry.ttl ?? config.pool.ttl,
    pinned: entry.pinned,
    ...(entry.gpu ? { gpu: entry.gpu } : {}),
    ...(entry.rules ? { rules: entry.rules } : {}),
  };
}

/** A model named by a file path or a Hugging Face id: its instances get `modelDefaults`. */
function withDefaults(config: Config, ref: Exclude<ModelRef, { kind: 'alias' }>, file: string): ResolvedModel {
  return {
    id: ref.kind === 'file' ? ref.path : `${ref.repo}:${ref.variant}`,
    file,
    ref,
    ctx: config.modelDefaults.ctx,
    parallel: config.modelDefaults.parallel,
    args: [...config.modelDefaults.args],
    ttl: config.pool.ttl,
    pinned: false,
  };
}

/** Resolves `id` against the config and the disk; throws ClientError (400/403/404) for what cannot be served. */
export function resolveModel(config: Config, id: unknown, env: NodeJS.ProcessEnv = process.env): ResolvedModel {
  const ref = parseModelId(id, new Set(Object.keys(config.models)), config.modelsDir);
  switch (ref.kind) {
    case 'alias': {
      const entry = config.models[ref.alias];
      if (!entry) throw new ClientError(404, 'model_not_found', `model "${ref.alias}" is not configured`);
      return fromEntry(config, ref.alias, entry, env);
    }
    case 'file':
      return withDefaults(config, ref, requireFile(ref.path, `model "${String(id)}"`));
    case 'hf':
      return withDefaults(config, ref, hfFile(config, ref.repo, ref.variant, env));
  }
}

export interface ResolveModelAsyncOptions {
  env?: NodeJS.ProcessEnv;
  /** Download progress (see ModelHub.ensureDownloaded); not called when the model is on disk. */
  onProgress?: (p: DownloadProgress) => void;
  /**
   * Called before anything is downloaded, with the model's GGUF header read by range requests (a few MiB) and
   * the model as it will be resolved (its `file` is where the download will land): estimate and plan here, and
   * throw (e.g. a ClientError 503/507) to refuse a model that can never fit. Not called for models on disk.
   */
  beforeDownload?: (info: { header: GgufModelHeader; resolution: HubResolution; model: ResolvedModel }) => void | Promise<void>;
  /** Stops waiting for a download (it goes on for the others). */
  signal?: AbortSignal;
}

/**
 * resolveModel, downloading Hugging Face models that are not on disk: `owner/repo[:variant]` and aliases with
 * `hf`. Everything else (and everything when `hub` is undefined) resolves as resolveModel does. Throws ClientError
 * as resolveModel, and HubError (a ClientError) from the Hub and the download; see ModelHub.
 */
export async function resolveModelAsync(config: Config, id: unknown, hub: ModelHub | undefined, opts: ResolveModelAsyncOptions = {}): Promise<ResolvedModel> {
  const env = opts.env ?? process.env;
  if (!hub) return resolveModel(config, id, env);
  const ref = parseModelId(id, new Set(Object.keys(config.models)), config.modelsDir);
  const source = hubSource(config, ref, String(id));
  if (!source) return resolveModel(config, id, env);
  const build = (file: string): ResolvedModel =>
    ref.kind === 'alias' ? entrySettings(config, ref.alias, config.models[ref.alias]!, file) : withDefaults(config, ref, file);
  const resolution = await hub.resolve(source.repo, source.variant);
  const model: ResolvedModel = { ...build(resolution.parts[0]!.local), ...(resolution.mmproj ? { mmproj: resolution.mmproj.local } : {}) };
  if (!resolution.cached && opts.beforeDownload) {
    const header = await hub.probeHeader(resolution);
    await opts.beforeDownload({ header, resolution, model });
  }
  await hub.ensureDownloaded(resolution, {
    ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  return model;
}

/**
 * What a model would be without downloading it (for a plan): a model on disk as resolveModel has it; a Hugging
 * Face model not cached yet with its GGUF header read by range (a few MiB; `file` is where it would land).
 */
export async function probeModel(config: Config, id: unknown, hub: ModelHub | undefined, env: NodeJS.ProcessEnv = process.env): Promise<{ model: ResolvedModel; header?: GgufModelHeader }> {
  if (!hub) return { model: resolveModel(config, id, env) };
  const ref = parseModelId(id, new Set(Object.keys(config.models)), config.modelsDir);
  const source = hubSource(config, ref, String(id));
  if (!source) return { model: resolveModel(config, id, env) };
  const build = (file: string): ResolvedModel =>
    ref.kind === 'alias' ? entrySettings(config, ref.alias, config.models[ref.alias]!, file) : withDefaults(config, ref, file);
  const resolution = await hub.resolve(source.repo, source.variant);
  const model: ResolvedModel = { ...build(resolution.parts[0]!.local), ...(resolution.mmproj ? { mmproj: resolution.mmproj.local } : {}) };
  if (resolution.cached) return { model };
  return { model, header: await hub.probeHeader(resolution) };
}

/**
 * The Hub repo (and the variant, only when one is named) behind a parsed id: a Hugging Face id, or an alias whose
 * entry has `hf`; undefined for anything else. `id` is the identifier as written (it tells whether a variant was).
 */
function hubSource(config: Config, ref: ModelRef, id: string): { repo: string; variant?: string } | undefined {
  if (ref.kind === 'hf') return { repo: ref.repo, ...(variantGiven(id) ? { variant: ref.variant } : {}) };
  const entry = ref.kind === 'alias' ? config.models[ref.alias] : undefined;
  if (ref.kind !== 'alias' || !entry?.hf) return undefined;
  const hf = entryHf(config, ref.alias, entry);
  return { repo: hf.repo, ...(variantGiven(entry.hf) ? { variant: hf.variant } : {}) };
}

/**
 * What pulling `model` downloads: a Hugging Face id, or an alias whose entry has `hf` (the variant only when one
 * is named). A file path, a local alias or a backend's model is a 400 saying so.
 */
export function hubTarget(config: Config, model: string): { repo: string; variant?: string } {
  const ref = parseModelId(model, new Set(Object.keys(config.models)), config.modelsDir);
  const entry = ref.kind === 'alias' ? config.models[ref.alias]! : undefined;
  if (entry?.backend) throw new ClientError(400, 'nothing_to_pull', `model "${model}" is served by the ${entry.backend} backend; pull it there`);
  const source = hubSource(config, ref, model);
  if (source) return source;
  if (entry) throw new ClientError(400, 'nothing_to_pull', `model "${model}" is a local file (${entry.path}); only Hugging Face models are pulled`);
  throw new ClientError(400, 'nothing_to_pull', `"${model}" is a file path; pull takes a Hugging Face "owner/repo[:variant]" or an alias with "hf"`);
}
