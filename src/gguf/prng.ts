/**
 * Small deterministic PRNG for reproducible synthetic weights. mulberry32 is fast, has a 2^32
 * period (plenty for a few hundred thousand weights) and, unlike Math.random, is seedable; the
 * seed is first scrambled with splitmix32 so neighbouring seeds start far apart.
 */

function splitmix32(x: number): number {
  let z = (x + 0x9e3779b9) | 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

/** Returns a function yielding uniform floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  if (!Number.isSafeInteger(seed)) throw new RangeError(`seed must be an integer, got ${seed}`);
  // Fold the high bits in, so seeds that differ only above 2^32 still differ.
  let state = splitmix32((seed >>> 0) ^ splitmix32(Math.floor(seed / 2 ** 32) >>> 0));
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
