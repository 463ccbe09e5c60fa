/**
 * Writing an Ollama model store as Ollama does (manifests/<host>/<namespace>/<model>/<tag>, blobs/sha256-<hex>),
 * for tests: a model layer (a GGUF), optionally a projector, params, system and template layers, and the config blob.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export interface StoreModelInput {
  model: Buffer;
  projector?: Buffer;
  params?: Record<string, unknown>;
  system?: string;
  template?: string;
  license?: string;
}

export interface StoreLayer {
  mediaType: string;
  digest: string;
  size: number;
  data: Buffer;
}

export interface BuiltManifest {
  manifest: Record<string, unknown>;
  text: string;
  /** Every blob, config first. */
  blobs: StoreLayer[];
}

function layer(mediaType: string, data: Buffer): StoreLayer {
  return { mediaType, digest: `sha256:${createHash('sha256').update(data).digest('hex')}`, size: data.length, data };
}

/** A manifest and its blobs (nothing written). */
export function buildManifest(input: StoreModelInput): BuiltManifest {
  const layers = [
    layer('application/vnd.ollama.image.model', input.model),
    ...(input.projector ? [layer('application/vnd.ollama.image.projector', input.projector)] : []),
    ...(input.template ? [layer('application/vnd.ollama.image.template', Buffer.from(input.template))] : []),
    ...(input.system ? [layer('application/vnd.ollama.image.system', Buffer.from(input.system))] : []),
    ...(input.license ? [layer('application/vnd.ollama.image.license', Buffer.from(input.license))] : []),
    ...(input.params ? [layer('application/vnd.ollama.image.params', Buffer.from(JSON.stringify(input.params)))] : []),
  ];
  const config = layer('application/vnd.docker.container.image.v1+json', Buffer.from(JSON.stringify({ model_format: 'gguf', model_family: 'llama', file_type: 'F32' })));
  const strip = ({ mediaType, digest, size }: StoreLayer) => ({ mediaType, digest, size });
  const manifest = { schemaVersion: 2, mediaType: 'application/vnd.docker.distribution.manifest.v2+json', config: strip(config), layers: layers.map(strip) };
  return { manifest, text: JSON.stringify(manifest), blobs: [config, ...layers] };
}

/** Writes `name` (host/namespace/model/tag) into `store`; returns what was written. */
export function writeStoreModel(store: string, name: { host?: string; namespace?: string; model: string; tag?: string }, input: StoreModelInput): BuiltManifest {
  const built = buildManifest(input);
  mkdirSync(path.join(store, 'blobs'), { recursive: true });
  for (const b of built.blobs) writeFileSync(path.join(store, 'blobs', b.digest.replace(':', '-')), b.data);
  const dir = path.join(store, 'manifests', name.host ?? 'registry.ollama.ai', name.namespace ?? 'library', name.model);
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, name.tag ?? 'latest'), built.text);
  return built;
}
