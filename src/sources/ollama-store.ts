/**
 * Ollama's model store on disk, read-only here (pulls write through ollama-pull.ts):
 *
 *   <store>/manifests/<host>/<namespace>/<model>/<tag>   the manifest (JSON; see ollama-manifest.ts)
 *   <store>/blobs/sha256-<hex>                            layers, named by digest
 *
 * Stores searched: `ollama.models` when set, else $OLLAMA_MODELS, else ~/.ollama/models and the Linux service's
 * /usr/share/ollama/.ollama/models; and ours, `<cacheDir>/ollama`, where pulls go unless `ollama.models` is set.
 * Ollama need not run. A model read once is kept while its manifest is unchanged.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Config } from '../config/index.js';
import { ClientError } from '../models/errors.js';
import { blobFileName, modelLayers, parseManifest, paramsSettings, type ParamsSettings } from './ollama-manifest.js';
import { manifestSegments, ollamaDisplayName, type OllamaName } from './ollama-name.js';

export interface OllamaStores {
  /** Stores to look in, in order. */
  read: string[];
  /** Where pulls write. */
  write: string;
}

/** The stores for `config` (see the module comment). */
export function ollamaStores(config: Pick<Config, 'cacheDir' | 'ollama'>, env: NodeJS.ProcessEnv = process.env): OllamaStores {
  const ours = path.resolve(config.cacheDir, 'ollama');
  const configured = config.ollama.models;
  if (configured) return { read: unique([configured, ours]), write: path.resolve(configured) };
  const theirs = env.OLLAMA_MODELS?.trim() ? [env.OLLAMA_MODELS.trim()] : [path.join(os.homedir(), '.ollama', 'models'), '/usr/share/ollama/.ollama/models'];
  return { read: unique([ours, ...theirs]), write: ours };
}

function unique(dirs: string[]): string[] {
  return [...new Set(dirs.map((d) => path.resolve(d)))];
}

/** A model of a store, ready to run. */
export interface OllamaStoreModel {
  /** As Ollama lists it (`llama3.2:1b`). */
  name: string;
  parsed: OllamaName;
  store: string;
  manifestPath: string;
  /** The manifest's sha256 (what Ollama's /api/tags calls the model's digest). */
  digest: string;
  modified: Date;
  /** The model layer's blob (a GGUF). */
  file: string;
  mmproj?: string;
  adapters: string[];
  /** All layers' bytes. */
  sizeBytes: number;
  params: ParamsSettings;
  system?: string;
  template?: string;
}

const cache = new Map<string, { key: string; model: OllamaStoreModel }>();
const MAX_CACHED = 256;
const MAX_TEXT_LAYER = 1 << 20;

/** The path of `segments` under `root`, matching each segment case-insensitively when the exact one is missing. */
function findPath(root: string, segments: readonly string[]): string | undefined {
  const exact = path.join(root, ...segments);
  if (statSync(exact, { throwIfNoEntry: false })) return exact;
  let dir = root;
  for (const seg of segments) {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return undefined;
    }
    const hit = names.find((n) => n.toLowerCase() === seg.toLowerCase());
    if (!hit) return undefined;
    dir = path.join(dir, hit);
  }
  return dir;
}

function blobPath(store: string, digest: string): string {
  return path.join(store, 'blobs', blobFileName(digest));
}

function readText(store: string, digest: string, size: number, what: string): string {
  if (size > MAX_TEXT_LAYER) throw new ClientError(422, 'bad_layer', `${what} is ${size} bytes, more than a text layer holds`);
  try {
    return readFileSync(blobPath(store, digest), 'utf8');
  } catch {
    throw new ClientError(404, 'model_incomplete', `${what} (${digest}) is missing from ${path.join(store, 'blobs')}; pull the model again`);
  }
}

/** Reads the model a manifest describes; throws ClientError for a broken manifest or missing blobs. */
export function loadOllamaModel(store: string, manifestPath: string, name: OllamaName): OllamaStoreModel {
  const st = statSync(manifestPath);
  const key = `${st.size}:${st.mtimeMs}`;
  const hit = cache.get(manifestPath);
  if (hit && hit.key === key) return hit.model;
  const display = ollamaDisplayName(name);
  const text = readFileSync(manifestPath, 'utf8');
  const manifest = parseManifest(text, `the manifest of Ollama model ${display} (${manifestPath})`);
  const layers = modelLayers(manifest, display);
  const need = (digest: string, what: string): string => {
    const file = blobPath(store, digest);
    if (!statSync(file, { throwIfNoEntry: false })?.isFile()) {
      throw new ClientError(404, 'model_incomplete', `Ollama model ${display}: its ${what} blob ${digest} is missing from ${path.join(store, 'blobs')}; pull the model again`);
    }
    return file;
  };
  const model: OllamaStoreModel = {
    name: display,
    parsed: name,
    store,
    manifestPath,
    digest: createHash('sha256').update(text).digest('hex'),
    modified: st.mtime,
    file: need(layers.model.digest, 'model'),
    ...(layers.projector ? { mmproj: need(layers.projector.digest, 'projector') } : {}),
    adapters: layers.adapters.map((a) => need(a.digest, 'adapter')),
    sizeBytes: manifest.layers.reduce((s, l) => s + l.size, 0),
    params: layers.params ? paramsSettings(readText(store, layers.params.digest, layers.params.size, `the params layer of ${display}`), display) : { defaults: {}, ignored: [] },
    ...(layers.system ? { system: readText(store, layers.system.digest, layers.system.size, `the system layer of ${display}`) } : {}),
    ...(layers.template ? { template: readText(store, layers.template.digest, layers.template.size, `the template layer of ${display}`) } : {}),
  };
  cache.delete(manifestPath);
  cache.set(manifestPath, { key, model });
  while (cache.size > MAX_CACHED) cache.delete(cache.keys().next().value!);
  return model;
}

/** The manifest of `name` in the first store holding it. */
export function findManifest(stores: readonly string[], name: OllamaName): { store: string; manifestPath: string } | undefined {
  for (const store of stores) {
    const manifestPath = findPath(store, manifestSegments(name));
    if (manifestPath && statSync(manifestPath, { throwIfNoEntry: false })?.isFile()) return { store, manifestPath };
  }
  return undefined;
}

/** `name` from the stores, or undefined when none has its manifest; throws ClientError when it is there but broken. */
export function findOllamaModel(stores: readonly string[], name: OllamaName): OllamaStoreModel | undefined {
  const found = findManifest(stores, name);
  return found ? loadOllamaModel(found.store, found.manifestPath, name) : undefined;
}

function dirs(dir: string): string[] {
  try {
    return readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name).sort();
  } catch {
    return [];
  }
}

/** Every runnable model of the stores (the first store's wins a name); broken manifests are passed to `skipped`. */
export function listOllamaModels(stores: readonly string[], skipped: (manifest: string, reason: string) => void = () => {}): OllamaStoreModel[] {
  const out = new Map<string, OllamaStoreModel>();
  for (const store of stores) {
    const root = path.join(store, 'manifests');
    for (const host of dirs(root)) {
      for (const namespace of dirs(path.join(root, host))) {
        for (const model of dirs(path.join(root, host, namespace))) {
          let tags: string[];
          try {
            tags = readdirSync(path.join(root, host, namespace, model)).sort();
          } catch {
            continue;
          }
          for (const tag of tags) {
            const manifestPath = path.join(root, host, namespace, model, tag);
            if (tag.startsWith('.') || !statSync(manifestPath, { throwIfNoEntry: false })?.isFile()) continue;
            const name: OllamaName = { host, namespace, model, tag };
            const key = ollamaDisplayName(name).toLowerCase();
            if (out.has(key)) continue;
            try {
              out.set(key, loadOllamaModel(store, manifestPath, name));
            } catch (err) {
              skipped(manifestPath, (err as Error).message);
            }
          }
        }
      }
    }
  }
  return [...out.values()];
}
