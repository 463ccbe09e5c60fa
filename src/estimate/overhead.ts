/**
 * Memory a GPU loses to an instance beyond llama.cpp's own buffers: the CUDA primary context,
 * cuBLAS workspaces and the ggml CUDA memory pool (transient F32/F16 conversions). llama.cpp
 * reports it only as the "unaccounted" column of its memory breakdown.
 *
 * Default 512 MiB per CUDA device. Sources (see shared/research/vram_estimation.md §1.6): the CUDA
 * context alone measured 107 MiB on an RTX 4060 Ti and 555 MiB on an RTX PRO 6000 Blackwell
 * (llama.cpp PR #23604; it grows with the SM count, PR #20595); a whole process measured 309 MiB
 * above its logged buffers (ollama#6160); Ollama reserves 457 MiB per CUDA GPU. 512 MiB covers the
 * context of large cards plus a pool of typical size; the unaccounted 749 MiB seen on an RTX PRO
 * 6000 at long context (llama.cpp#27953) says big cards and long contexts want more, so the value
 * is per device and should be replaced by the footprint measured from the running instance's
 * memory breakdown (src/llamacpp/memory-log.ts) once one exists.
 */

import type { DeviceKind } from './placement.js';

const MiB = 1024 * 1024;

export const DEFAULT_OVERHEAD_BYTES: Readonly<Record<DeviceKind, number>> = {
  cuda: 512 * MiB,
};
