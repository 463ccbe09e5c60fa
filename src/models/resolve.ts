/** From a client's model identifier to the GGUF file and the settings its instance gets. */
import { existsSync, statSync } from 'node:fs';
import type { Config, ModelEntry } from '../config/index.js';
import { ClientError } from './errors.js';
import { findCachedHfModel, hubCacheDirs } from './hf-cache.js';
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
    `model ${repo}:${variant} is not in the local cache and this version does not download models.${have} ` +
      `Put the GGUF in the models directory (${config.modelsDir}) or configure an alias with "path".`,
  );
}

function fromEntry(config: Config, alias: string, entry: ModelEntry, env: NodeJS.ProcessEnv): ResolvedModel {
  let file: string;
  if (entry.path) {
    file = requireFile(entry.path, `model "${alias}"`);
  } else {
    const hf = parseModelId(entry.hf, new Set(), config.modelsDir);
    if (hf.kind !== 'hf') throw new ClientError(500, 'config_error', `model "${alias}": "hf" must look like owner/repo[:variant]`);
    file = hfFile(config, hf.repo, hf.variant, env);
  }
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
  };
}

/** Resolves `id` against the config and the disk; throws ClientError (400/403/404) for what cannot be served. */
export function resolveModel(config: Config, id: unknown, env: NodeJS.ProcessEnv = process.env): ResolvedModel {
  const ref = parseModelId(id, new Set(Object.keys(config.models)), config.modelsDir);
  const defaults = {
    ctx: config.modelDefaults.ctx,
    parallel: config.modelDefaults.parallel,
    args: [...config.modelDefaults.args],
    ttl: config.pool.ttl,
    pinned: false,
  };
  switch (ref.kind) {
    case 'alias': {
      const entry = config.models[ref.alias];
      if (!entry) throw new ClientError(404, 'model_not_found', `model "${ref.alias}" is not configured`);
      return fromEntry(config, ref.alias, entry, env);
    }
    case 'file':
      return { id: ref.path, file: requireFile(ref.path, `model "${String(id)}"`), ref, ...defaults };
    case 'hf':
      return { id: `${ref.repo}:${ref.variant}`, file: hfFile(config, ref.repo, ref.variant, env), ref, ...defaults };
  }
}
