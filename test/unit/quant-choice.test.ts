import { describe, expect, it } from 'vitest';
import { compareQuantQuality, NO_TAG_TIER, QUANT_QUALITY_TIERS, quantTier, UNKNOWN_TAG_TIER } from '../../src/models/quant-quality.js';
import { chooseQuantization, rankCandidates, type QuantCandidate, type QuantRoom, type QuantTier } from '../../src/placement/quant-choice.js';
import type { Candidate, Cost } from '../../src/placement/types.js';

const GiB = 1024 ** 3;

describe('quantization quality order', () => {
  it('ranks the issue\'s order: F32/BF16/F16 > Q8_0 > Q6_K > Q5_K_M > Q5_K_S > Q4_K_M > Q4_K_S > IQ4_XS > Q3_K_L > Q3_K_M > ... > Q2_K', () => {
    const order = ['F16', 'Q8_0', 'Q6_K', 'Q5_K_M', 'Q5_K_S', 'Q4_K_M', 'Q4_K_S', 'IQ4_XS', 'Q3_K_L', 'Q3_K_M', 'Q3_K_S', 'IQ3_XXS', 'Q2_K', 'IQ2_XXS', 'IQ1_S'];
    for (let i = 1; i < order.length; i++) expect(compareQuantQuality(order[i - 1], order[i]), `${order[i - 1]} > ${order[i]}`).toBeLessThan(0);
    expect(quantTier('F32')).toBe(quantTier('BF16'));
    expect(quantTier('BF16')).toBe(quantTier('F16'));
  });

  it.each([
    ['q4_k_m', 'Q4_K_M'],
    ['UD-Q4_K_XL', 'Q4_K_XL'],
    ['ud-q2_k_xl', 'Q2_K_XL'],
  ])('%s ranks as %s', (tag, as) => {
    expect(quantTier(tag)).toBe(quantTier(as));
    expect(quantTier(tag)).toBeLessThan(UNKNOWN_TAG_TIER);
  });

  it('puts unknown tags after every known one, and files without a tag last', () => {
    expect(quantTier('Q9_Z')).toBe(UNKNOWN_TAG_TIER);
    expect(quantTier(undefined)).toBe(NO_TAG_TIER);
    expect(compareQuantQuality('IQ1_S', 'Q9_Z')).toBeLessThan(0);
    expect(compareQuantQuality('Q9_Z', undefined)).toBeLessThan(0);
  });

  it('names every tag once', () => {
    const all = QUANT_QUALITY_TIERS.flat();
    expect(new Set(all).size).toBe(all.length);
  });
});

/**
 * A variant of `weightsGiB` whose layers are equal: each GPU holds its share of the weights plus 1 GiB (KV cache,
 * compute buffer, runtime); 0.5 GiB stays on the host beside a GPU; on the CPU the host holds weights + 1 GiB.
 */
function variant(tag: string, weightsGiB: number, estimated = true): QuantCandidate {
  const weights = weightsGiB * GiB;
  const estimate = (c: Candidate): Cost => {
    if (c.gpus.length === 0) return { gpuBytes: [], hostBytes: weights + GiB };
    const split = c.tensorSplit ?? [1];
    const sum = split.reduce((a, b) => a + b, 0);
    return { gpuBytes: c.gpus.map((_, i) => (weights * split[i]!) / sum + GiB), hostBytes: 0.5 * GiB };
  };
  return { variant: tag, tag, file: `m-${tag}.gguf`, fileBytes: weights, ...(estimated ? { estimate } : {}) };
}

const repo = [variant('Q2_K', 3), variant('Q3_K_M', 4), variant('Q4_K_M', 5), variant('Q6_K', 6.5), variant('Q8_0', 8.5), variant('F16', 16)];

function room(gpus: [free: number, idle?: number][], hostGiB?: number, over: Partial<QuantRoom> = {}): QuantRoom {
  return {
    gpus: gpus.map(([free, idle], index) => ({ index, name: `gpu${index}`, usableBytes: free * GiB, evictableBytes: (idle ?? 0) * GiB })),
    ...(hostGiB !== undefined ? { hostBytes: hostGiB * GiB } : {}),
    cpuAllowed: true,
    ...over,
  };
}

describe('chooseQuantization', () => {
  it.each<[string, QuantCandidate[], QuantRoom, string, QuantTier]>([
    ['48 GiB GPU: F16', repo, room([[48]]), 'F16', 'one-gpu'],
    ['16 GiB GPU: F16 needs 17, Q8_0 fits', repo, room([[16]]), 'Q8_0', 'one-gpu'],
    ['8 GiB GPU: Q6_K (7.5)', repo, room([[8]]), 'Q6_K', 'one-gpu'],
    ['5.5 GiB GPU: Q3_K_M', repo, room([[5.5]]), 'Q3_K_M', 'one-gpu'],
    ['idle instances count as room: 4 free + 6 idle', repo, room([[4, 6]]), 'Q8_0', 'one-gpu'],
    ['one GPU beats a split of better quality: 8 + 8', repo, room([[8], [8]]), 'Q6_K', 'one-gpu'],
    ['the roomier GPU of two', repo, room([[3], [10]]), 'Q8_0', 'one-gpu'],
    ['no single GPU holds any: the best split (Q4_K_M over 3.5 + 3.5)', repo, room([[3.5], [3.5]]), 'Q4_K_M', 'split'],
    ['a split over three holds a better one (Q6_K)', repo, room([[3.5], [3.5], [3.5]]), 'Q6_K', 'split'],
    ['no GPU: the best for the host RAM', repo, room([], 12), 'Q8_0', 'cpu'],
    ['GPUs too small: CPU', repo, room([[1], [1]], 6.5), 'Q4_K_M', 'cpu'],
    ['nothing fits: the smallest', repo, room([[1]], 2), 'Q2_K', 'none'],
    ['CPU fallback off: nothing fits, the smallest', repo, room([[2]], 100, { cpuAllowed: false }), 'Q2_K', 'none'],
    ['a GPU placement needs its host share too', repo, room([[48]], 0.25), 'Q2_K', 'none'],
    ['F32, BF16 and F16 are one tier: the smaller wins', [variant('F32', 32), variant('BF16', 16), variant('Q8_0', 8.5)], room([[48]]), 'BF16', 'one-gpu'],
    ['a candidate not estimated is never chosen', [variant('F16', 16, false), variant('Q8_0', 8.5)], room([[48]]), 'Q8_0', 'one-gpu'],
  ])('%s', (_name, candidates, r, chosen, tier) => {
    const choice = chooseQuantization(candidates, r);
    expect({ chosen: choice.chosen, tier: choice.tier }).toEqual({ chosen, tier });
    expect(choice.file).toBe(`m-${chosen}.gguf`);
    expect(choice.reason.startsWith(`${chosen}: `)).toBe(true);
  });

  it('reports every candidate, best first, with the numbers behind the choice', () => {
    const choice = chooseQuantization([...repo].reverse(), room([[8], [8]], 64));
    expect(choice.candidates.map((c) => c.variant)).toEqual(['F16', 'Q8_0', 'Q6_K', 'Q4_K_M', 'Q3_K_M', 'Q2_K']);
    const [f16, q8, q6] = choice.candidates;
    expect(f16).toMatchObject({ estimated: true, bytes: 17 * GiB, hostBytes: 0.5 * GiB, cpuBytes: 17 * GiB, fitsOneGpu: false, fitsSplit: false, fitsCpu: true });
    expect(q8).toMatchObject({ bytes: 9.5 * GiB, fitsOneGpu: false, fitsSplit: true, splitGpus: [0, 1], splitBytes: [5.25 * GiB, 5.25 * GiB] });
    expect(q6).toMatchObject({ bytes: 7.5 * GiB, fitsOneGpu: true, gpu: 0 });
    expect(choice.reason).toContain('F16, Q8_0 would not');
    expect(choice.reason).toContain('7.5 GiB on GPU 0');
  });

  it('marks candidates not read as not estimated', () => {
    const choice = chooseQuantization([variant('Q8_0', 8.5), variant('Q4_K_M', 5, false)], room([[16]]));
    expect(choice.candidates[1]).toEqual({ variant: 'Q4_K_M', file: 'm-Q4_K_M.gguf', fileBytes: 5 * GiB, estimated: false, fitsOneGpu: false, fitsSplit: false, fitsCpu: false });
  });

  it('refuses an empty list', () => {
    expect(() => chooseQuantization([], room([[8]]))).toThrow(/no quantization/);
  });

  it('ranks within a tier by size, then by file name', () => {
    const ranked = rankCandidates([
      { tag: 'F16', fileBytes: 2, file: 'b.gguf' },
      { tag: 'BF16', fileBytes: 2, file: 'a.gguf' },
      { tag: 'F32', fileBytes: 4, file: 'c.gguf' },
      { tag: 'Q8_0', fileBytes: 1, file: 'd.gguf' },
      { fileBytes: 1, file: 'e.gguf' },
    ]);
    expect(ranked.map((c) => c.file)).toEqual(['a.gguf', 'b.gguf', 'c.gguf', 'd.gguf', 'e.gguf']);
  });
});
