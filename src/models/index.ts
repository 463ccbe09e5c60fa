export { ClientError } from './errors.js';
// The Hugging Face hub (src/hub/): re-exported for the many callers that resolve models through here.
export * from '../hub/index.js';
export { parseModelId, withoutHfHost, DEFAULT_HF_VARIANT, type ModelRef } from './identifier.js';
export {
  hubTarget, probeModel, pullTarget, resolveModel, resolveModelAsync, fromOllamaStore,
  type InstanceRpc, type ModelRules, type ModelSource, type PullTarget, type ResolvedModel, type ResolveModelAsyncOptions, type SourceRef,
} from './resolve.js';
export { forEmbeddings, parseVariantId, servesEmbeddings, withContext, withEmbeddingPooling, withRunningContext, type VariantStep } from './variants.js';
export { headerHasPooling, modelHeader } from './model-header.js';
