/**
 * Every model this machine can serve without a download, with where it comes from: configured aliases, GGUF files
 * of the models folder, the Hugging Face caches, Ollama's store and LM Studio's folder. Listings (/api/tags,
 * /v1/models, `llama-smart-proxy models`) read it; names are what a request names, unique, first source wins.
 */
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import type { Config } from '../config/index.js';
import { quantTag } from '../hub/variants.js';
import type { CacheEntry } from '../hub/store.js';
import { fromOllamaStore, resolveModel, type ModelSource, type ResolvedModel } from '../models/resolve.js';
import { listLmStudioModels, lmStudioDirs } from './lmstudio.js';
import { listOllamaModels, ollamaStores } from './ollama-store.js';

export interface CatalogEntry {
  /** What a request names it by. */
  name: string;
  source: ModelSource;
  /** The model file (the first part of a split model). */
  file: string;
  mmproj?: string;
  /** Bytes on disk: the model's files (for Ollama, every layer). */
  sizeBytes: number;
  modified: Date;
  /** The Ollama manifest's sha256. */
  digest?: string;
  /** The settings its instance gets (for the estimate). */
  ctx: number;
  parallel: number;
  args: string[];
}

function fileSize(file: string): { size: number; mtime: Date } | undefined {
  const st = statSync(file, { throwIfNoEntry: false });
  return st?.isFile() ? { size: st.size, mtime: st.mtime } : undefined;
}

function fromModel(name: string, source: ModelSource, m: ResolvedModel): CatalogEntry | undefined {
  const st = fileSize(m.file);
  if (!st) return undefined;
  const mm = m.mmproj ? fileSize(m.mmproj) : undefined;
  return { name, source, file: m.file, ...(m.mmproj ? { mmproj: m.mmproj } : {}), sizeBytes: st.size + (mm?.size ?? 0), modified: st.mtime, ctx: m.ctx, parallel: m.parallel, args: m.args };
}

function folderFiles(root: string, depth = 0, prefix = ''): string[] {
  let entries;
  try {
    entries = readdirSync(path.join(root, prefix), { withFileTypes: true });
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const e of entries) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.isDirectory() && depth < 2) out.push(...folderFiles(root, depth + 1, rel));
    else if (e.isFile() && e.name.toLowerCase().endsWith('.gguf') && !/mmproj/i.test(e.name)) out.push(rel);
  }
  return out.sort();
}

export interface CatalogOptions {
  /** The Hugging Face caches' files (ModelHub.list()). */
  hubEntries?: readonly CacheEntry[];
  env?: NodeJS.ProcessEnv;
  /** Told of store entries that cannot be listed (a broken manifest, a missing blob). */
  onSkip?: (what: string, reason: string) => void;
}

/** The catalog (see the module comment). */
export function localCatalog(config: Config, opts: CatalogOptions = {}): CatalogEntry[] {
  const env = opts.env ?? process.env;
  const out = new Map<string, CatalogEntry>();
  const add = (e: CatalogEntry | undefined) => {
    if (e && !out.has(e.name)) out.set(e.name, e);
  };
  const defaults = (file: string) => ({ ctx: config.modelDefaults.ctx, parallel: config.modelDefaults.parallel, args: [...config.modelDefaults.args], file });
  for (const [alias, entry] of Object.entries(config.models)) {
    if (entry.backend) continue;
    try {
      add(fromModel(alias, 'config', resolveModel(config, alias, env)));
    } catch {
      // not on disk (yet)
    }
  }
  const files = new Set([...out.values()].map((e) => e.file));
  for (const rel of folderFiles(config.modelsDir)) {
    const file = path.join(config.modelsDir, ...rel.split('/'));
    const st = fileSize(file);
    if (!st || files.has(file)) continue;
    add({ name: rel, source: 'folder', sizeBytes: st.size, modified: st.mtime, ...defaults(file) });
  }
  for (const e of opts.hubEntries ?? []) {
    if (e.kind !== 'model' || e.partial) continue;
    const tag = quantTag(e.file);
    if (!tag) continue;
    add({ name: `${e.repo}:${tag}`, source: 'hf-cache', sizeBytes: e.sizeBytes, modified: e.lastUsed, ...defaults(e.path) });
  }
  for (const m of listOllamaModels(ollamaStores(config, env).read, (manifest, reason) => opts.onSkip?.(manifest, reason))) {
    const r = fromOllamaStore(config, m);
    add({ name: m.name, source: 'ollama', file: m.file, ...(m.mmproj ? { mmproj: m.mmproj } : {}), sizeBytes: m.sizeBytes, modified: m.modified, digest: m.digest, ctx: r.ctx, parallel: r.parallel, args: r.args });
  }
  for (const m of listLmStudioModels(lmStudioDirs(config))) {
    const st = fileSize(m.file);
    if (!st) continue;
    const mm = m.mmproj ? fileSize(m.mmproj) : undefined;
    add({ name: m.id, source: 'lmstudio', ...(m.mmproj ? { mmproj: m.mmproj } : {}), sizeBytes: st.size + (mm?.size ?? 0), modified: st.mtime, ...defaults(m.file) });
  }
  return [...out.values()];
}

/** How listings name a source. */
export const SOURCE_LABELS: Readonly<Record<ModelSource, string>> = {
  config: 'config',
  folder: 'models folder',
  'hf-cache': 'Hugging Face cache',
  ollama: 'Ollama store',
  lmstudio: 'LM Studio',
};
