/**
 * How llama.cpp resolves `-fa auto`: it reserves a graph with flash attention and keeps it only when every
 * attention layer's FLASH_ATTN_EXT op lands on that layer's own device (llama_context::resolve_fused_ops). The
 * CPU backend runs every shape; the CUDA backend only the head sizes and cache types it has kernels for
 * (ggml-cuda/fattn.cu, ggml_cuda_get_best_fattn_kernel, built without GGML_CUDA_FA_ALL_QUANTS as the
 * managed build is). When one layer on a GPU has no kernel, flash attention is off for the whole model, and the
 * compute graph and KV layout change with it (measured on an H200: a model with head size 32 took the 12 MiB compute
 * buffer of the non-flash graph, not the 4 MiB of the flash one).
 */
import type { GgmlTypeInfo } from '../gguf/ggml-types.js';
import type { ModelInfo } from './model-info.js';

/** Head sizes with kernels when K and V heads are the same size. */
const PLAIN_HEAD_SIZES = new Set([40, 64, 72, 80, 96, 112, 128, 256]);
/** Cache types the CUDA kernels read (K and V must also be the same type). */
const CUDA_KV_TYPES = new Set(['F32', 'F16', 'BF16', 'Q4_0', 'Q8_0']);

/**
 * Whether CUDA has a flash-attention kernel for this model's attention with these cache types. Layers are
 * given by their GQA ratio (heads per KV head); the shapes with a "GQA optimisation" requirement also need the
 * KV length padded to 256, which llama.cpp's cache always is.
 */
export function cudaFlashAttnSupported(model: Pick<ModelInfo, 'nEmbdHeadK' | 'nEmbdHeadV' | 'nHead' | 'nHeadKv'>, typeK: GgmlTypeInfo, typeV: GgmlTypeInfo): boolean {
  if (typeK.name !== typeV.name || !CUDA_KV_TYPES.has(typeK.name)) return false;
  const k = model.nEmbdHeadK;
  const v = model.nEmbdHeadV;
  const ratios = model.nHead.map((h, il) => (model.nHeadKv[il]! > 0 ? h / model.nHeadKv[il]! : 0)).filter((r) => r > 0);
  const everyRatio = (ok: (r: number) => boolean) => ratios.every(ok);
  if (PLAIN_HEAD_SIZES.has(k)) return v === k;
  switch (k) {
    case 192:
      return v === 128 && everyRatio((r) => r >= 2 && r % 8 === 0);
    case 320:
      return v === 256 && everyRatio((r) => r >= 2 && r % 32 === 0);
    case 512:
      return v === 512 && everyRatio((r) => r >= 2);
    case 576:
      return v === 512 && everyRatio((r) => r >= 2);
    default:
      return false;
  }
}
