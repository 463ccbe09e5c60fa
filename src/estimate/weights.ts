/**
 * Where each weight lives and what it costs there (llama_model_loader::create_tensor and
 * ggml_backend_alloc_ctx_tensors_from_buft_size):
 *
 * - input-layer tensors (token_embd, ...) always stay on the CPU;
 * - the output layer goes to the device of "layer n_layer" (offloaded first);
 * - blk.<il>.* go to the device of layer il, unless an override sends them to the CPU
 *   (-ot <regex>=CPU, --n-cpu-moe N = the expert tensors of layers 0..N-1, --cpu-moe = all);
 * - without output.weight the output projection is token_embd duplicated onto the output device
 *   (only when that device is not the CPU: on the CPU the same tensor serves both).
 *
 * On CUDA each tensor is padded (quantized rows to 512 elements) and aligned to 128 bytes; an RPC device follows
 * the rules of the backend behind it (a CPU rpc-server: the CPU's).
 */

import { weightAllocBytes } from './buffers.js';
import { CPU, type LayerAssignment } from './layers.js';
import type { ModelInfo, ModelTensor } from './model-info.js';
import type { ResolvedSettings } from './settings.js';

/** common.h LLM_FFN_EXPS_REGEX, per layer for --n-cpu-moe. */
const EXPS = /\.ffn_(up|down|gate|gate_up)_(ch|)exps/;

export interface WeightPlacement {
  /** Device of a weight: a GPU index or CPU (-1). */
  deviceOf(t: ModelTensor): number;
  /** Model bytes per GPU. */
  readonly gpuBytes: readonly number[];
  /**
   * The largest single weight per GPU: an rpc-server receives each weight whole in a message buffer before it
   * copies it into place, so its memory peaks at load by that much beyond its buffers.
   */
  readonly largestBytes: readonly number[];
  readonly hostBytes: number;
  /** Whether any tensor was moved off its layer's device by an override. */
  readonly overridden: boolean;
}

/**
 * `devices`: the buffer rules of each offload device, in placement order (placement.ts bufferRules), or a count
 * of CUDA GPUs.
 */
export function placeWeights(m: ModelInfo, s: ResolvedSettings, a: LayerAssignment, devices: number | readonly ('cpu' | 'cuda')[]): WeightPlacement {
  const deviceBuffers = typeof devices === 'number' ? new Array<'cuda'>(devices).fill('cuda') : devices;
  const nGpu = deviceBuffers.length;
  let overridden = false;
  const deviceOf = (t: ModelTensor): number => {
    if (t.layer.kind === 'input') return CPU;
    if (t.layer.kind === 'output') return a.output;
    const dev = a.layers[t.layer.il] ?? CPU;
    if (dev === CPU) return CPU;
    if (s.cpuMoeLayers > t.layer.il && EXPS.test(t.name)) return CPU;
    for (const o of s.overrides) if (o.pattern.test(t.name)) return CPU;
    return dev;
  };

  const gpuBytes = new Array<number>(nGpu).fill(0);
  const largestBytes = new Array<number>(nGpu).fill(0);
  const add = (dev: number, t: ModelTensor): void => {
    gpuBytes[dev]! += weightAllocBytes(t, deviceBuffers[dev]!);
    largestBytes[dev] = Math.max(largestBytes[dev]!, t.bytes);
  };
  let hostBytes = 0;
  for (const t of m.tensors) {
    const dev = deviceOf(t);
    if (t.layer.kind === 'layer' && dev === CPU && a.layers[t.layer.il] !== CPU) overridden = true;
    if (dev === CPU) hostBytes += weightAllocBytes(t, 'cpu');
    else add(dev, t);
  }
  if (m.tiedEmbeddings && a.output !== CPU) {
    const te = m.tensorByName.get('token_embd.weight');
    if (te) add(a.output, te);
  }
  return { deviceOf, gpuBytes, largestBytes, hostBytes, overridden };
}
