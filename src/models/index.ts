export { ClientError } from './errors.js';
export { parseModelId, DEFAULT_HF_VARIANT, type ModelRef } from './identifier.js';
export { resolveModel, type ResolvedModel } from './resolve.js';
export { findCachedHfModel, hubCacheDirs, pickVariantFile, matchesVariant } from './hf-cache.js';
