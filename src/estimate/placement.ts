/**
 * A placement: the offload devices an instance may use and how llama.cpp is told to use them
 * (-ngl, -ts). The CPU (host) is always there and is not listed.
 *
 * An RPC device is a device of an rpc-server (llama.cpp's ggml-rpc, `--rpc host:port`), on another node or this
 * one. To llama.cpp it is a GPU like any other (it comes first in the default device order, takes layers, KV and
 * a compute buffer, supports every op, async and events: pipeline parallelism applies), except that it never
 * takes op offload. Its buffers are allocated by the backend behind the rpc-server (`remote`), with that
 * backend's alignment and sizes; llama-server logs them as `RPC<i>[host:port]`.
 */

export type DeviceKind = 'cuda' | 'rpc';

/** The backend an rpc-server serves: a CPU (an rpc-server without accelerators) or a CUDA GPU. */
export type RpcBackend = 'cpu' | 'cuda';

export interface Device {
  /** A label for output, e.g. "CUDA0", "RTX 4090" or "RPC0[10.0.0.2:50052]". */
  readonly name: string;
  readonly kind: DeviceKind;
  /** For kind 'rpc': what the rpc-server serves (default 'cpu'). */
  readonly remote?: RpcBackend;
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
  /** The CUDA runtime's own memory as measured on this GPU; unset: DEFAULT_RUNTIME_BYTES (CUDA, local or remote). */
  readonly runtimeBytes?: number;
}

/** Whose buffer rules a device's allocations follow (buffers.ts): a CUDA GPU's, or the CPU's. */
export function bufferRules(d: Pick<Device, 'kind' | 'remote'>): 'cpu' | 'cuda' {
  return d.kind === 'cuda' ? 'cuda' : (d.remote ?? 'cpu');
}

export interface Placement {
  /**
   * Offload devices in llama.cpp's device order (CUDA0, CUDA1, ...; RPC devices, when any, come first by
   * default, see src/llamacpp/rpc-flags.ts); empty for CPU only.
   */
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
