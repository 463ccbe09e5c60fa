/**
 * A placement: the offload devices an instance may use and how llama.cpp is told to use them
 * (-ngl, -ts). The CPU (host) is always there and is not listed.
 */

export type DeviceKind = 'cuda';

export interface Device {
  /** A label for output, e.g. "CUDA0" or "RTX 4090". */
  readonly name: string;
  readonly kind: DeviceKind;
  /**
   * Free memory, used only for llama.cpp's default tensor split (proportional to free memory)
   * when the placement gives no tensorSplit.
   */
  readonly freeBytes?: number;
  /**
   * The whole overhead beyond llama.cpp's buffers, fixed (gpu.overheadMiB). Unset: modelled (overhead.ts) from
   * runtimeBytes, the model's use of cuBLAS and the micro-batch.
   */
  readonly overheadBytes?: number;
  /** The CUDA runtime's own memory as measured on this GPU; unset: DEFAULT_RUNTIME_BYTES[kind]. */
  readonly runtimeBytes?: number;
}

export interface Placement {
  /** Offload devices in llama.cpp's device order (CUDA0, CUDA1, ...); empty for CPU only. */
  readonly devices: readonly Device[];
  /** -ngl; undefined or negative: everything (n_layer + 1, the output layer counts as one). */
  readonly ngl?: number;
  /** -ts; one entry per device. Default: proportional to freeBytes, or even. */
  readonly tensorSplit?: readonly number[];
  /** cparams.op_offload (default true; llama-server's --no-op-offload turns it off). */
  readonly opOffload?: boolean;
}

/** The CPU-only placement (`--gpus none`). */
export const CPU_ONLY: Placement = Object.freeze({ devices: Object.freeze([]) as readonly Device[] });

/** The split llama.cpp uses: the given one, else by free memory, else even. */
export function effectiveSplit(p: Placement): number[] {
  if (p.tensorSplit && p.tensorSplit.length > 0 && p.tensorSplit.some((x) => x > 0)) {
    if (p.tensorSplit.length !== p.devices.length) {
      throw new RangeError(`tensorSplit has ${p.tensorSplit.length} entries for ${p.devices.length} devices`);
    }
    return [...p.tensorSplit];
  }
  if (p.devices.length > 0 && p.devices.every((d) => d.freeBytes !== undefined)) {
    return p.devices.map((d) => d.freeBytes!);
  }
  return p.devices.map(() => 1);
}
