/** The Hugging Face hub: the client (resolve, download once, cache), its settings, the HTTP protocol, the caches on disk. */
export { findCachedHfModel, hubCacheDirs, pickVariantFile, matchesVariant } from './hf-cache.js';
export {
  ModelHub, describeProgress,
  type DownloadProgress, type DownloadedModel, type EnsureOptions, type EvictionResult, type HubFile, type HubLog, type HubResolution, type ModelHubOptions,
} from './model-hub.js';
export { createModelHub, hubOptions, hubToken, envFlag } from './config.js';
export { DEFAULT_HUB_ENDPOINT, HubError, formatBytes } from './protocol.js';
export { chooseVariant, quantTag, variantGiven, QUANT_BITS_PER_WEIGHT, type VariantChoice } from './variants.js';
export type { CacheEntry } from './store.js';
