/**
 * GGUF support: reading headers, writing files (dense or sparse), GGML type sizes, a tiny
 * runnable test model and sparse replicas of real architectures.
 */

export {
  GGML_TYPES, elementCount, ggmlType, ggmlTypeById, ggmlTypeName, isGgmlTypeName, rowBytes, tensorBytes,
  type GgmlTypeInfo, type GgmlTypeName, type GgmlTypeRef,
} from './ggml-types.js';
export {
  GGUF_TYPE_ID, formatGgufType, isArrayType, kv,
  type GgufArrayType, type GgufScalar, type GgufScalarType, type GgufType, type GgufTypedValue, type GgufValue,
} from './value-types.js';
export {
  GGUF_DEFAULT_ALIGNMENT, alignTo, layoutTensors,
  type PlacedTensor, type TensorLayout, type TensorShape,
} from './layout.js';
export {
  GGUF_VERSION, writeGguf,
  type GgufTensorInput, type GgufWriteResult, type TensorDataSource, type WriteGgufOptions,
} from './writer.js';
export {
  GgufFormatError, parseGgufHeader, readGgufHeader, readGgufHeaderSync,
  readGgufModelHeader, readGgufModelHeaderSync, splitPartPaths,
  mergeSplit, readGgufHeaderFrom,
  type GgufByteSource, type GgufHeader, type GgufModelHeader, type GgufSplitPart, type GgufTensorInfo, type ReadHeaderOptions,
} from './reader.js';
export { TINY_CHAT_TEMPLATE, buildTinyModel, writeTinyModel, type TinyModelOptions } from './tiny-model.js';
export { buildTinyProjector, tinyProjectorImageTokens, writeTinyProjector, type TinyProjectorOptions } from './tiny-mmproj.js';
export {
  FILE_TYPE_ID, compareLikeLlamaLoader, quantizedTypes,
  type QuantFileType, type QuantizableTensor, type QuantizeModelInfo,
} from './quantize-mix.js';
export {
  PRESETS, PRESET_IDS, REPLICA_QUANTS, isPresetId, replicaBitsPerWeight, replicaLayout, replicaMetadata,
  replicaTensors, replicaWeightBytes, writeSparseReplica,
  type GeneralInfo, type ModelHparams, type PresetId, type PresetSpec, type ReplicaQuant, type ReplicaTensor,
  type TensorDims, type TokenizerSpec,
} from './presets.js';
export { TokenType } from './vocab.js';
