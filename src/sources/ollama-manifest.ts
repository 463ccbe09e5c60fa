/**
 * Ollama's image manifests and what a model's layers mean for llama-server (pure):
 *
 *   application/vnd.ollama.image.model       the GGUF (llama-server's -m)
 *   application/vnd.ollama.image.projector   a vision model's projector (--mmproj)
 *   application/vnd.ollama.image.adapter     a LoRA adapter (--lora)
 *   application/vnd.ollama.image.params      JSON options: stop, temperature, num_ctx, ... (request defaults, -c)
 *   application/vnd.ollama.image.system      the default system prompt
 *   application/vnd.ollama.image.template    Ollama's Go chat template (llama-server cannot run it: the GGUF's
 *                                            own chat template is used)
 *   application/vnd.ollama.image.license, .messages, the config blob: not needed to run the model
 *
 * Blobs are named by digest: `sha256:<hex>` is the file `blobs/sha256-<hex>`.
 */
import { z } from 'zod';
import { ClientError } from '../models/errors.js';

export const MEDIA = {
  model: 'application/vnd.ollama.image.model',
  projector: 'application/vnd.ollama.image.projector',
  adapter: 'application/vnd.ollama.image.adapter',
  params: 'application/vnd.ollama.image.params',
  system: 'application/vnd.ollama.image.system',
  template: 'application/vnd.ollama.image.template',
} as const;

/** What a registry is asked for (and what Ollama writes). */
export const MANIFEST_MEDIA_TYPE = 'application/vnd.docker.distribution.manifest.v2+json';

const DIGEST = /^sha256:[0-9a-f]{64}$/;

const LayerSchema = z.object({
  mediaType: z.string().min(1),
  digest: z.string().regex(DIGEST, 'a digest is "sha256:" and 64 hex digits'),
  size: z.number().int().nonnegative(),
});

export const ManifestSchema = z.object({
  schemaVersion: z.number().int().optional(),
  mediaType: z.string().optional(),
  config: LayerSchema.optional(),
  layers: z.array(LayerSchema),
});

export type ManifestLayer = z.infer<typeof LayerSchema>;
export type OllamaManifest = z.infer<typeof ManifestSchema>;

/** A manifest's JSON text checked; throws ClientError 502 (`what` names where it came from) when it is not one. */
export function parseManifest(text: string, what: string): OllamaManifest {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ClientError(502, 'bad_manifest', `${what} is not JSON: ${(err as Error).message}`);
  }
  const r = ManifestSchema.safeParse(json);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    throw new ClientError(502, 'bad_manifest', `${what} is not an Ollama manifest: ${issue.path.join('.') || '(root)'} ${issue.message}`);
  }
  return r.data;
}

/** `sha256:<hex>` -> `sha256-<hex>`, the blob's file name in a store. */
export function blobFileName(digest: string): string {
  if (!DIGEST.test(digest)) throw new ClientError(502, 'bad_manifest', `"${digest}" is not a sha256 digest`);
  return digest.replace(':', '-');
}

/** The layers that run the model. */
export interface ModelLayers {
  model: ManifestLayer;
  projector?: ManifestLayer;
  adapters: ManifestLayer[];
  params?: ManifestLayer;
  system?: ManifestLayer;
  template?: ManifestLayer;
}

/** The manifest's layers by role; throws ClientError 422 when it has no model layer (`name` for the message). */
export function modelLayers(m: OllamaManifest, name: string): ModelLayers {
  const of = (type: string) => m.layers.filter((l) => l.mediaType === type);
  const model = of(MEDIA.model);
  if (model.length === 0) {
    const types = [...new Set(m.layers.map((l) => l.mediaType))].join(', ') || 'none';
    throw new ClientError(422, 'not_a_gguf_model', `Ollama model ${name} has no model layer (${MEDIA.model}); its layers: ${types}`);
  }
  const last = (type: string) => of(type).at(-1);
  const projector = of(MEDIA.projector)[0];
  const params = last(MEDIA.params);
  const system = last(MEDIA.system);
  const template = last(MEDIA.template);
  return {
    // Ollama's own newer models put several model layers (the text model and its vision tower) in one manifest:
    // the first is the language model.
    model: model[0]!,
    ...(projector ? { projector } : {}),
    adapters: of(MEDIA.adapter),
    ...(params ? { params } : {}),
    ...(system ? { system } : {}),
    ...(template ? { template } : {}),
  };
}

/** Every blob of a manifest (its config blob and its layers), each once. */
export function manifestBlobs(m: OllamaManifest): ManifestLayer[] {
  const seen = new Set<string>();
  return [...(m.config ? [m.config] : []), ...m.layers].filter((l) => !seen.has(l.digest) && seen.add(l.digest));
}

/** Ollama's option names -> llama-server's request fields (OpenAI names where it has them, its own otherwise). */
const OPTION_FIELDS: readonly (readonly [string, string])[] = [
  ['temperature', 'temperature'],
  ['top_p', 'top_p'],
  ['top_k', 'top_k'],
  ['min_p', 'min_p'],
  ['typical_p', 'typical_p'],
  ['seed', 'seed'],
  ['stop', 'stop'],
  ['repeat_penalty', 'repeat_penalty'],
  ['repeat_last_n', 'repeat_last_n'],
  ['presence_penalty', 'presence_penalty'],
  ['frequency_penalty', 'frequency_penalty'],
  ['mirostat', 'mirostat'],
  ['mirostat_tau', 'mirostat_tau'],
  ['mirostat_eta', 'mirostat_eta'],
  ['num_keep', 'n_keep'],
];

/** Ollama's options (a request's `options`, or a params layer) -> llama-server's sampling fields. */
export function samplingFromOptions(options: Readonly<Record<string, unknown>> | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (!options) return out;
  for (const [from, to] of OPTION_FIELDS) if (options[from] !== undefined) out[to] = options[from];
  const predict = options.num_predict;
  if (typeof predict === 'number' && predict >= 0) out.max_tokens = predict;
  return out;
}

/** What a params layer asks of the model's instance and its requests. */
export interface ParamsSettings {
  /** num_ctx: the context each request gets. */
  ctx?: number;
  /** Request defaults (llama-server's field names): set when a request does not. */
  defaults: Record<string, unknown>;
  /** Options with no equivalent here (num_gpu, num_thread, ...): said in the log, not applied. */
  ignored: string[];
}

/** A params layer's JSON -> settings. Throws ClientError 422 when it is not a JSON object. */
export function paramsSettings(text: string, name: string): ParamsSettings {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ClientError(422, 'bad_params', `the params layer of Ollama model ${name} is not JSON: ${(err as Error).message}`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new ClientError(422, 'bad_params', `the params layer of Ollama model ${name} is not a JSON object`);
  const options = json as Record<string, unknown>;
  const defaults = samplingFromOptions(options);
  const known = new Set([...OPTION_FIELDS.map(([from]) => from), 'num_predict', 'num_ctx']);
  const ctx = options.num_ctx;
  return {
    ...(typeof ctx === 'number' && Number.isInteger(ctx) && ctx > 0 ? { ctx } : {}),
    defaults,
    ignored: Object.keys(options).filter((k) => !known.has(k)).sort(),
  };
}
