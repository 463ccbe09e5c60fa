/**
 * Models other tools already keep on disk, and Ollama's registry: Ollama's store (read, and written by pulls of
 * Ollama names), LM Studio's folder (read). Names and manifests are parsed purely; the file IO is in the stores.
 */
import type { Config } from '../config/index.js';
import type { HubLog } from '../hub/model-hub.js';
import { OllamaPuller } from './ollama-pull.js';
import { ollamaStores } from './ollama-store.js';

export { parseOllamaName, ollamaDisplayName, manifestSegments, OLLAMA_REGISTRY_HOST, type OllamaName, type ParsedOllamaName } from './ollama-name.js';
export { MEDIA, blobFileName, manifestBlobs, modelLayers, parseManifest, paramsSettings, samplingFromOptions, type OllamaManifest, type ParamsSettings } from './ollama-manifest.js';
export { findOllamaModel, listOllamaModels, loadOllamaModel, ollamaStores, type OllamaStoreModel, type OllamaStores } from './ollama-store.js';
export { findLmStudioModel, listLmStudioModels, lmStudioDirs, type LmStudioEntry, type LmStudioModel } from './lmstudio.js';
export { OllamaPuller, type OllamaPullPlan, type OllamaPullerOptions, type PullProgress } from './ollama-pull.js';
export { DEFAULT_OLLAMA_REGISTRY, registryBase } from './ollama-registry.js';

const MiB = 1024 ** 2;

/** The puller for `config`: `ollama.registry`, the hub's timeouts and retries, the stores of ollamaStores. */
export function createOllamaPuller(config: Config, env: NodeJS.ProcessEnv = process.env, log?: HubLog, extra: { retryDelayMs?: number } = {}): OllamaPuller {
  return new OllamaPuller({
    stores: ollamaStores(config, env),
    registry: config.ollama.registry,
    connectTimeoutMs: config.hub.connectTimeout * 1000,
    readTimeoutMs: config.hub.readTimeout * 1000,
    retries: config.hub.retries,
    headerProbeBytes: Math.round(config.hub.headerProbeMiB * MiB),
    ...(extra.retryDelayMs !== undefined ? { retryDelayMs: extra.retryDelayMs } : {}),
    ...(log ? { log } : {}),
  });
}
