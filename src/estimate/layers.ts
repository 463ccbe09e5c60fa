/**
 * Which device holds which layer, as llama.cpp decides it in llama_model::load_tensors
 * (get_layer_buft_list): the last `ngl` of the n_layer + 1 "layers" (the repeating blocks plus the
 * output layer) are offloaded, the output layer first; offloaded layers are spread over the GPUs
 * by the cumulative tensor split, in float32 arithmetic exactly as llama.cpp computes it (a
 * boundary layer can land on either side of a split point otherwise).
 */

/** Device index of a layer: a GPU index, or CPU (-1). */
export const CPU = -1;

export interface LayerAssignment {
  /** Device of each repeating layer 0..nLayer-1. */
  readonly layers: readonly number[];
  /** Device of the output layer (output norm and projection). */
  readonly output: number;
  /** The -ngl value in effect (n_layer + 1 for "all"). */
  readonly ngl: number;
}

const f32 = Math.fround;

/** llama.cpp's split points: cumulative, normalized, in float32. */
export function splitPoints(split: readonly number[]): number[] {
  const points: number[] = [];
  let sum = f32(0);
  for (const x of split) {
    sum = f32(sum + f32(x));
    points.push(sum);
  }
  return points.map((p) => f32(p / sum));
}

/**
 * Layer placement for `nLayers` repeating layers, `ngl` offloaded layers (negative or undefined:
 * all, i.e. nLayers + 1) and the tensor split over the GPUs (its length is the GPU count; all
 * zero or empty means an even split — llama.cpp itself splits by free memory then, pass that
 * as the split to mirror it).
 */
export function layerAssignment(nLayers: number, ngl: number | undefined, tensorSplit: readonly number[]): LayerAssignment {
  const nDev = tensorSplit.length;
  const n = ngl === undefined || ngl < 0 ? nLayers + 1 : ngl;
  const start = Math.max(nLayers + 1 - n, 0);
  const active = nDev === 0 ? 0 : Math.min(n, nLayers + 1);
  const split = tensorSplit.every((x) => x === 0) ? tensorSplit.map(() => 1) : tensorSplit;
  const points = nDev === 0 ? [] : splitPoints(split);
  const deviceOf = (il: number): number => {
    if (il < start || il - start >= active) return CPU;
    const x = f32(f32(il - start) / active);
    // std::upper_bound: first split point greater than x
    let d = 0;
    while (d < nDev && !(points[d]! > x)) d++;
    return Math.min(d, nDev - 1);
  };
  const layers: number[] = [];
  for (let il = 0; il < nLayers; il++) layers.push(deviceOf(il));
  return { layers, output: deviceOf(nLayers), ngl: n };
}
