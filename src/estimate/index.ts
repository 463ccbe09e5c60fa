/**
 * The memory model of llama.cpp (pure): GGUF header -> ModelInfo once, then
 * estimateMemory(model, settings, placement) per candidate placement. See README.md.
 */

export { MODEL_INFO_READ_OPTIONS, modelInfo, ModelInfoError, type ModelInfo, type ModelTensor, type GraphFamily, type SwaType, type TensorLayer } from './model-info.js';
export {
  AUTO_PARALLEL, DEFAULT_BATCH, DEFAULT_UBATCH, EstimateError, KV_CACHE_TYPES, kvCacheType, resolveSettings,
  type EstimateSettings, type FlashAttn, type KvCacheType, type ResolvedSettings, type TensorOverride,
} from './settings.js';
export { bufferRules, CPU_ONLY, effectiveSplit, type Device, type DeviceKind, type Placement, type RpcBackend } from './placement.js';
export { CPU, layerAssignment, splitPoints, type LayerAssignment } from './layers.js';
export { kvPlan, type KvLayer, type KvPlan } from './kv-cache.js';
export { placeWeights, type WeightPlacement } from './weights.js';
export { CUBLAS_BYTES, DEFAULT_RUNTIME_BYTES, gpuOverhead, POOL_BASE_BYTES, poolBytes, RPC_CPU_BASE_BYTES, rpcCpuOverheadBytes, type GpuOverhead } from './overhead.js';
export { cudaFlashAttnSupported } from './flash-attn.js';
export { estimateMemory, type DeviceMemory, type MemoryEstimate } from './estimate.js';
export { toJson, type EstimateJson } from './json.js';
