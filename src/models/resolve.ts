/** From a client's model identifier to the GGUF file and the settings its instance gets. */
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import type { Config, ModelEntry } from '../config/index.js';
import type { GgufModelHeader } from '../gguf/index.js';
import type { QuantChoice } from '../placement/quant-choice.js';
import { ClientError } from './errors.js';
import { findCachedHfModel, hubCacheDirs } from '../hub/hf-cache.js';
import type { DownloadProgress, HubResolution, ModelHub } from '../hub/model-hub.js';
import { autoByDefault } from '../hub/config.js';
import { variantGiven } from '../hub/variants.js';
import { parseModelId, type ModelRef } from './identifier.js';
import { canonicalModelName } from './model-aliases.js';
import { isAutoVariant } from './quant-quality.js';
import { modelHeader } from './model-header.js';
import { findLmStudioModel, lmStudioDirs, type LmStudioModel } from '../sources/lmstudio.js';
import { ollamaDisplayName, parseOllamaName, type ParsedOllamaName } from '../sources/ollama-name.js';
import { findManifest, findOllamaModel, ollamaStores, type OllamaStoreModel } from '../sources/ollama-store.js';
import type { RequestRules } from '../config/schema.js';

/** Where a model's file comes from (listings show it). */
export type ModelSource = 'config' | 'folder' | 'hf-cache' | 'ollama' | 'lmstudio';

/** A model's request rules: the config's (api/request-rules.ts), and a default system prompt (Ollama's system layer). */
export type ModelRules = RequestRules & { system?: string };

/** What a model found in Ollama's store or LM Studio's folder is named by. */
export type SourceRef = { kind: 'ollama'; name: string } | { kind: 'lmstudio'; repo: string; variant: string };

export interface ResolvedModel {
  /** The identifier instances are keyed by: the alias, or the canonical file / repo:variant id. */
  id: string;
  file: string;
  ref: ModelRef | SourceRef;
  /** Where the file was found. */
  source?: ModelSource;
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
  /** Request rules from the model's config entry (api/request-rules.ts), or an Ollama model's params and system layers. */
  rules?: ModelRules;
  /** Things worth a log line once (an Ollama template that is not used, params with no equivalent). */
  notes?: string[];
  /** Environment variables of its llama-server, from the model's config entry. */
  env?: Record<string, string>;
  /** How `:auto` chose the quantization of a Hub repo named without a variant (placement/quant-choice.ts). */
  quantization?: QuantChoice;
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
      `Download it with \`llama-smart-proxy pull ${repo}:${variant}\`, put the GGUF in the models directory (${config.modelsDir}) or configure an alias with "path" ` +
      `(LM Studio's folder ${lmStudioDirs(config).join(', ')} and Ollama's store were looked in too).`,
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
    ...(Object.keys(entry.env).length > 0 ? { env: entry.env } : {}),
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

/** A model from Ollama's store: its params layer gives the context and request defaults, its system layer a default system prompt. */
export function fromOllamaStore(config: Config, m: OllamaStoreModel): ResolvedModel {
  const parallel = config.modelDefaults.parallel;
  const notes: string[] = [];
  if (m.template !== undefined) {
    let ggufTemplate = false;
    try {
      ggufTemplate = typeof modelHeader(m.file).metadata['tokenizer.chat_template'] === 'string';
    } catch {
      /* an unreadable header is llama-server's to report */
    }
    notes.push(
      ggufTemplate
        ? "Ollama's Go template is not used: llama-server applies the GGUF's own chat template"
        : "Ollama's Go template is not used and the GGUF has no chat template: llama-server applies its default one",
    );
  }
  if (m.params.ignored.length > 0) notes.push(`params with no llama-server equivalent, not applied: ${m.params.ignored.join(', ')}`);
  const rules: ModelRules = { defaults: m.params.defaults, force: {}, strip: [], ...(m.system ? { system: m.system } : {}) };
  return {
    id: m.name,
    file: m.file,
    ref: { kind: 'ollama', name: m.name },
    source: 'ollama',
    // num_ctx is what each request gets: every slot has it.
    ctx: m.params.ctx !== undefined ? m.params.ctx * parallel : config.modelDefaults.ctx,
    parallel,
    args: [...config.modelDefaults.args, ...m.adapters.flatMap((a) => ['--lora', a])],
    ttl: config.pool.ttl,
    pinned: false,
    ...(m.mmproj ? { mmproj: m.mmproj } : {}),
    ...(Object.keys(rules.defaults).length > 0 || rules.system ? { rules } : {}),
    ...(notes.length > 0 ? { notes } : {}),
  };
}

function fromLmStudio(config: Config, m: LmStudioModel): ResolvedModel {
  const variant = m.id.slice(m.repo.length + 1);
  return {
    ...withDefaults(config, { kind: 'hf', repo: m.repo, variant }, m.file),
    ref: { kind: 'lmstudio', repo: m.repo, variant },
    source: 'lmstudio',
    ...(m.mmproj ? { mmproj: m.mmproj } : {}),
  };
}

/**
 * An Ollama name (`llama3.2:1b`, `user/model:tag`, `registry.ollama.ai/...`) in Ollama's store. `explicitOnly`:
 * only names that cannot be anything else (a bare model, a registry host). Throws ClientError for a broken store entry.
 */
function ollamaModel(config: Config, id: string, env: NodeJS.ProcessEnv): ResolvedModel | undefined {
  const name = parseOllamaName(id);
  if (!name) return undefined;
  const m = findOllamaModel(ollamaStores(config, env).read, name);
  return m ? fromOllamaStore(config, m) : undefined;
}

/** The Ollama name `id` stands for when it is written as only an Ollama name can be (a bare model, a registry host). */
export function explicitOllamaName(id: string): ParsedOllamaName | undefined {
  const name = parseOllamaName(id);
  return name && name.form !== 'namespaced' ? name : undefined;
}

/** `owner/repo[:variant]` from LM Studio's folder or (as `namespace/model:tag`) Ollama's store, before any download. */
function localNonHub(config: Config, ref: Extract<ModelRef, { kind: 'hf' }>, id: string, env: NodeJS.ProcessEnv): ResolvedModel | undefined {
  const lm = findLmStudioModel(lmStudioDirs(config), ref.repo, variantGiven(id) && !isAutoVariant(ref.variant) ? ref.variant : undefined).found;
  if (lm) return fromLmStudio(config, lm);
  return ollamaModel(config, id, env);
}

/** Resolves `id` against the config and the disk; throws ClientError (400/403/404) for what cannot be served. */
export function resolveModel(config: Config, named: unknown, env: NodeJS.ProcessEnv = process.env): ResolvedModel {
  const id = canonicalModelName(config, named);
  let ref: ModelRef;
  try {
    ref = parseModelId(id, new Set(Object.keys(config.models)), config.modelsDir);
  } catch (err) {
    // Not ours to name: perhaps Ollama's (`llama3.2:1b`, `registry.ollama.ai/library/llama3.2`).
    const name = typeof id === 'string' && err instanceof ClientError ? explicitOllamaName(id) : undefined;
    if (!name) throw err;
    const model = ollamaModel(config, id as string, env);
    if (model) return model;
    throw notInOllamaStore(config, name, env, err as ClientError);
  }
  switch (ref.kind) {
    case 'alias': {
      const entry = config.models[ref.alias];
      if (!entry) throw new ClientError(404, 'model_not_found', `model "${ref.alias}" is not configured`);
      return { ...fromEntry(config, ref.alias, entry, env), source: 'config' };
    }
    case 'file':
      return { ...withDefaults(config, ref, requireFile(ref.path, `model "${String(id)}"`)), source: 'folder' };
    case 'hf': {
      const { found } = findCachedHfModel(ref.repo, ref.variant, hubCacheDirs(config.cacheDir, env));
      if (found) return { ...withDefaults(config, ref, found.file), source: 'hf-cache' };
      const local = localNonHub(config, ref, String(id), env);
      if (local) return local;
      return withDefaults(config, ref, hfFile(config, ref.repo, ref.variant, env));
    }
  }
}

/** The 404 for an Ollama name that is in no store: the refusal it got as anything else, plus where it was looked for. */
function notInOllamaStore(config: Config, name: ParsedOllamaName, env: NodeJS.ProcessEnv, original: ClientError): ClientError {
  if (original.status !== 404 && name.form !== 'host') return original;
  const display = ollamaDisplayName(name);
  const prefix = original.status === 404 ? `${original.message}; it is not in Ollama's store either` : `Ollama model ${display} is not in Ollama's store`;
  return new ClientError(
    404,
    'model_not_found',
    `${prefix} (looked in ${ollamaStores(config, env).read.join(', ')}): pull it with \`llama-smart-proxy pull ${display}\` or POST /api/pull`,
  );
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
  /**
   * Chooses the variant of a Hub repo asked for with `:auto` (or without a variant, unless hub.defaultVariant
   * is set), given the model's settings (its `file` is not known yet). Absent, or undefined returned: the fixed
   * default (hub.defaultVariant, else Q4_K_M, else the closest quantization).
   */
  pickVariant?: (repo: string, model: ResolvedModel) => Promise<QuantChoice | undefined>;
}

/**
 * resolveModel, downloading Hugging Face models that are not on disk: `owner/repo[:variant]` and aliases with
 * `hf`. Everything else (and everything when `hub` is undefined) resolves as resolveModel does. Throws ClientError
 * as resolveModel, and HubError (a ClientError) from the Hub and the download; see ModelHub.
 */
export async function resolveModelAsync(config: Config, asked: unknown, hub: ModelHub | undefined, opts: ResolveModelAsyncOptions = {}): Promise<ResolvedModel> {
  const env = opts.env ?? process.env;
  const id = canonicalModelName(config, asked);
  if (!hub) return resolveModel(config, id, env);
  let ref: ModelRef;
  try {
    ref = parseModelId(id, new Set(Object.keys(config.models)), config.modelsDir);
  } catch {
    return resolveModel(config, id, env); // an Ollama name, or the refusal
  }
  const source = hubSource(config, ref, String(id));
  if (!source) return resolveModel(config, id, env);
  if (ref.kind === 'hf' && !findCachedHfModel(ref.repo, ref.variant, hubCacheDirs(config.cacheDir, env)).found) {
    // LM Studio's folder and Ollama's store before any download.
    const local = localNonHub(config, ref, String(id), env);
    if (local) return local;
  }
  const build = (file: string, named: ModelRef = ref): ResolvedModel =>
    named.kind === 'alias' ? entrySettings(config, named.alias, config.models[named.alias]!, file) : withDefaults(config, named, file);
  const picked = source.auto && opts.pickVariant ? await opts.pickVariant(source.repo, build('')) : undefined;
  const resolution = await hub.resolve(source.repo, picked ? path.posix.basename(picked.file) : source.variant);
  // An id asking for :auto is keyed by the variant it got (`owner/repo:Q6_K`), so an explicit request for it shares the instance.
  const named: ModelRef = ref.kind === 'hf' && (picked || isAutoVariant(ref.variant)) ? { ...ref, variant: picked?.chosen ?? resolution.tag ?? resolution.variant } : ref;
  const model: ResolvedModel = {
    ...build(resolution.parts[0]!.local, named),
    source: ref.kind === 'alias' ? 'config' : 'hf-cache',
    ...(resolution.mmproj ? { mmproj: resolution.mmproj.local } : {}),
    ...(picked ? { quantization: picked } : {}),
  };
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
export async function probeModel(
  config: Config,
  id: unknown,
  hub: ModelHub | undefined,
  env: NodeJS.ProcessEnv = process.env,
  pickVariant?: ResolveModelAsyncOptions['pickVariant'],
): Promise<{ model: ResolvedModel; header?: GgufModelHeader }> {
  if (!hub) return { model: resolveModel(config, id, env) };
  const ref = parseModelId(id, new Set(Object.keys(config.models)), config.modelsDir);
  const source = hubSource(config, ref, String(id));
  if (!source) return { model: resolveModel(config, id, env) };
  const build = (file: string): ResolvedModel =>
    ref.kind === 'alias' ? entrySettings(config, ref.alias, config.models[ref.alias]!, file) : withDefaults(config, ref, file);
  // `:auto` (or no variant named): the variant the picker would choose for a request now.
  const picked = source.auto && pickVariant ? await pickVariant(source.repo, build('')) : undefined;
  const resolution = await hub.resolve(source.repo, picked ? path.posix.basename(picked.file) : source.variant);
  const model: ResolvedModel = { ...build(resolution.parts[0]!.local), ...(resolution.mmproj ? { mmproj: resolution.mmproj.local } : {}), ...(picked ? { quantization: picked } : {}) };
  if (resolution.cached) return { model };
  return { model, header: await hub.probeHeader(resolution) };
}

/**
 * The Hub repo (and the variant, only when one is named) behind a parsed id: a Hugging Face id, or an alias whose
 * entry has `hf`; undefined for anything else. `id` is the identifier as written (it tells whether a variant was).
 * `auto`: the variant is to be chosen for this machine (`:auto`, or none named and no hub.defaultVariant).
 */
function hubSource(config: Config, ref: ModelRef, id: string): { repo: string; variant?: string; auto: boolean } | undefined {
  const source = (repo: string, variant: string, given: boolean) =>
    given && !isAutoVariant(variant) ? { repo, variant, auto: false } : { repo, auto: given || autoByDefault(config) };
  if (ref.kind === 'hf') return source(ref.repo, ref.variant, variantGiven(id));
  const entry = ref.kind === 'alias' ? config.models[ref.alias] : undefined;
  if (ref.kind !== 'alias' || !entry?.hf) return undefined;
  const hf = entryHf(config, ref.alias, entry);
  return source(hf.repo, hf.variant, variantGiven(entry.hf));
}

/**
 * What pulling `model` downloads: a Hugging Face id, or an alias whose entry has `hf` (the variant only when one
 * is named). A file path, a local alias or a backend's model is a 400 saying so.
 */
export function hubTarget(config: Config, named: string): { repo: string; variant?: string; auto: boolean } {
  const model = String(canonicalModelName(config, named));
  const ref = parseModelId(model, new Set(Object.keys(config.models)), config.modelsDir);
  const entry = ref.kind === 'alias' ? config.models[ref.alias]! : undefined;
  if (entry?.backend) throw new ClientError(400, 'nothing_to_pull', `model "${model}" is served by the ${entry.backend} backend; pull it there`);
  const source = hubSource(config, ref, model);
  if (source) return source;
  if (entry) throw new ClientError(400, 'nothing_to_pull', `model "${model}" is a local file (${entry.path}); only Hugging Face models are pulled`);
  throw new ClientError(400, 'nothing_to_pull', `"${model}" is a file path; pull takes a Hugging Face "owner/repo[:variant]" or an alias with "hf"`);
}

/** What a pull fetches: a Hugging Face repo (the variant only when named), or an Ollama name from its registry. */
export type PullTarget = ({ kind: 'hf' } & { repo: string; variant?: string; auto: boolean }) | { kind: 'ollama'; name: ParsedOllamaName };

/**
 * Where pulling `model` goes. Ollama's registry for names only Ollama uses (`llama3.2:1b`, `registry.ollama.ai/...`,
 * `ollama.com/...`, `library/...`) and for `namespace/model:tag` already in Ollama's store; Hugging Face for
 * `owner/repo[:variant]` otherwise and for aliases with `hf`. Throws ClientError 400 as hubTarget.
 */
export function pullTarget(config: Config, model: string, env: NodeJS.ProcessEnv = process.env): PullTarget {
  if (!(model in config.models)) {
    const name = parseOllamaName(model);
    if (name && (name.form !== 'namespaced' || name.namespace === 'library' || findManifest(ollamaStores(config, env).read, name))) return { kind: 'ollama', name };
  }
  return { kind: 'hf', ...hubTarget(config, model) };
}
