export { ClientError } from './errors.js';
export { parseModelId, withoutHfHost, DEFAULT_HF_VARIANT, type ModelRef } from './identifier.js';
export {
  hubTarget, probeModel, pullTarget, resolveModel, resolveModelAsync, fromOllamaStore,
  type InstanceRpc, type ModelRules, type ModelSource, type PullTarget, type ResolvedModel, type ResolveModelAsyncOptions, type SourceRef,
} from './resolve.js';
export { findCachedHfModel, hubCacheDirs, pickVariantFile, matchesVariant } from './hf-cache.js';
export {
  ModelHub, describeProgress,
  type DownloadProgress, type DownloadedModel, type EnsureOptions, type EvictionResult, type HubFile, type HubLog, type HubResolution, type ModelHubOptions,
} from './hub.js';
export { createModelHub, hubOptions, hubToken, envFlag } from './hub-config.js';
export { DEFAULT_HUB_ENDPOINT, HubError, formatBytes } from './hub-protocol.js';
export { chooseVariant, quantTag, variantGiven, QUANT_BITS_PER_WEIGHT, type VariantChoice } from './hub-variants.js';
export type { CacheEntry } from './hub-store.js';
export { forEmbeddings, parseVariantId, servesEmbeddings, withContext, withEmbeddingPooling, withRunningContext, type VariantStep } from './variants.js';
export { headerHasPooling, modelHeader } from './model-header.js';
