/**
 * How each backend's buffers size tensors (ggml_backend_buft_get_alloc_size and
 * get_alignment): the CPU (and the pinned CUDA_Host buffer, which borrows the CPU's rules) uses
 * ggml_nbytes and 32-byte alignment; CUDA aligns to 128 bytes, pads quantized rows to a multiple
 * of 512 elements (MATRIX_ROW_PADDING, [TAG_ALLOC_SIZE_EXPAND]) and gives a flash-attention node
 * room for F16 copies of a quantized K/V (ggml_cuda_flash_attn_ext_get_alloc_size).
 */

import { rowBytes } from '../gguf/ggml-types.js';
import type { BufferKind } from './compute/gallocr.js';
import type { Tensor } from './compute/ggml.js';
import type { ModelTensor } from './model-info.js';

const CPU_ALIGNMENT = 32; // TENSOR_ALIGNMENT
const CUDA_ALIGNMENT = 128;
const MATRIX_ROW_PADDING = 512;

const pad = (n: number, a: number): number => Math.ceil(n / a) * a;

function cudaRowPadding(type: Tensor['type'], ne0: number): number {
  if (!type.quantized || ne0 % MATRIX_ROW_PADDING === 0) return 0;
  return rowBytes(type.name, MATRIX_ROW_PADDING - (ne0 % MATRIX_ROW_PADDING));
}

/**
 * Flash attention on CUDA: for a batch the MMA/tile kernels run, and they want K and V in F16;
 * the converted copies live right after the result, inside the node's allocation.
 */
function cudaFlashAttnSize(t: Tensor): number {
  const [, k, v] = t.src;
  let end = t.nbytes;
  // ggml_cuda_get_best_fattn_kernel picks the vector kernel (no conversion) for at most 2 tokens
  // per stream on Turing and newer; larger batches get the MMA (or tile) kernel.
  const needF16 = t.ne[2] > 2;
  if (needF16 && k && k.type.name !== 'F16') end = pad(end, 128) + k.nelements * 2;
  if (needF16 && v && v.type.name !== 'F16') end = pad(end, 128) + v.nelements * 2;
  return end;
}

export const CPU_BUFFER: BufferKind = {
  alignment: CPU_ALIGNMENT,
  allocSize: (t) => t.nbytes,
};

export const CUDA_BUFFER: BufferKind = {
  alignment: CUDA_ALIGNMENT,
  allocSize: (t) => (t.op === 'FLASH_ATTN_EXT' ? cudaFlashAttnSize(t) : t.nbytes) + cudaRowPadding(t.type, t.ne[0]),
};

/** Bytes a weight takes in a model buffer of the given kind (ggml_backend_alloc_ctx_tensors_from_buft_size). */
export function weightAllocBytes(t: ModelTensor, kind: 'cpu' | 'cuda'): number {
  if (kind === 'cpu') return pad(t.bytes, CPU_ALIGNMENT);
  return pad(t.bytes + cudaRowPadding(t.type, t.dims[0] ?? 1), CUDA_ALIGNMENT);
}
