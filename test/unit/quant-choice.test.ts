import { describe, expect, it } from 'vitest';
import { compareQuantQuality, NO_TAG_TIER, QUANT_QUALITY_TIERS, quantTier, UNKNOWN_TAG_TIER } from '../../src/models/quant-quality.js';
import { viewOf, type NodeState } from '../../src/cluster/types.js';
import { chooseQuantization, quantRoomOf, rankCandidates, type QuantCandidate, type QuantRoom, type QuantTier } from '../../src/placement/quant-choice.js';
import type { Candidate, Cost, EstimateFn, PlannerSettings } from '../../src/placement/types.js';

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

/** One node's room in a cluster: `room`, named. */
function node(name: string, gpus: [free: number, idle?: number][], hostGiB?: number, over: Partial<QuantRoom> = {}): QuantRoom {
  return { ...room(gpus, hostGiB, over), node: name };
}

/** `candidates` with a node whose estimate is `extraGiB` more per GPU (its own CUDA runtime). */
function withRuntimeOn(candidates: QuantCandidate[], name: string, extraGiB: number): QuantCandidate[] {
  return candidates.map((c) => {
    const base = c.estimate!;
    const more: EstimateFn = (cand) => {
      const cost = base(cand);
      return { ...cost, gpuBytes: cost.gpuBytes.map((b) => b + extraGiB * GiB) };
    };
    return { ...c, estimateOn: (n: string) => (n === name ? more : undefined) };
  });
}

describe('chooseQuantization over the nodes of a cluster', () => {
  it.each<[string, QuantCandidate[], QuantRoom[], string, QuantTier, string | undefined]>([
    ['a small GPU here, a big one on the peer: F16 for the peer', repo, [node('a', [[8]]), node('b', [[48]])], 'F16', 'one-gpu', 'b'],
    ['the peer down: the best for this node (Q6_K)', repo, [node('a', [[8]])], 'Q6_K', 'one-gpu', 'a'],
    ["the peer's idle instances are its room: 4 free + 6 idle holds Q8_0", repo, [node('a', [[3]]), node('b', [[4, 6]])], 'Q8_0', 'one-gpu', 'b'],
    ['equal room: this node wins the tie', repo, [node('a', [[48]]), node('b', [[48]])], 'F16', 'one-gpu', 'a'],
    ['the roomiest GPU of any node that holds it', repo, [node('a', [[18]]), node('b', [[30]]), node('c', [[20]])], 'F16', 'one-gpu', 'b'],
    ['one GPU on a node beats a better split on another', repo, [node('a', [[7.5]]), node('b', [[6], [6]])], 'Q6_K', 'one-gpu', 'a'],
    ['never a split across nodes: 4.5 here + 4.5 there holds only Q2_K on one GPU', repo, [node('a', [[4.5]]), node('b', [[4.5]])], 'Q2_K', 'one-gpu', 'a'],
    ['a split over one node\'s GPUs when no single GPU holds any', repo, [node('a', [[3.5]]), node('b', [[3.5], [3.5]])], 'Q4_K_M', 'split', 'b'],
    ['the split over the fewest GPUs, of whichever node', repo, [node('a', [[2.5], [2.5], [2.5]]), node('b', [[3.5], [3.5]])], 'Q4_K_M', 'split', 'b'],
    ['no GPU anywhere: the CPU of the node with the most RAM', repo, [node('a', [], 6.5), node('b', [], 12)], 'Q8_0', 'cpu', 'b'],
    ['CPU fallback off here: the peer\'s CPU', repo, [node('a', [[1]], 100, { cpuAllowed: false }), node('b', [], 7)], 'Q4_K_M', 'cpu', 'b'],
    ['a GPU placement needs its own node\'s host share', repo, [node('a', [[48]], 0.25), node('b', [[10]], 64)], 'Q8_0', 'one-gpu', 'b'],
    ['nothing fits any node: the smallest, no node', repo, [node('a', [[1]], 2), node('b', [[1]], 2)], 'Q2_K', 'none', undefined],
    ["a peer's own estimate: 1 GiB more runtime there, so F16 (17) misses its 17.5 GiB and Q8_0 fits", withRuntimeOn(repo, 'b', 1), [node('a', [[8]]), node('b', [[17.5]])], 'Q8_0', 'one-gpu', 'b'],
  ])('%s', (_name, candidates, rooms, chosen, tier, where) => {
    const choice = chooseQuantization(candidates, rooms);
    expect({ chosen: choice.chosen, tier: choice.tier, node: choice.node }).toEqual({ chosen, tier, node: where });
    expect(choice.reason.startsWith(`${chosen}: `)).toBe(true);
    if (where !== undefined) expect(choice.reason).toContain(`of node ${where}`);
    for (const r of rooms) expect(choice.reason).toContain(`node ${r.node}: `);
  });

  it('reports the node of each fit, and the numbers on that node', () => {
    const choice = chooseQuantization(withRuntimeOn(repo, 'b', 1), [node('a', [[8]], 64), node('b', [[12], [12]], 4)]);
    expect(choice.chosen).toBe('Q8_0');
    const [f16, q8, q6] = choice.candidates;
    // F16: split over b's GPUs (8 + 1 + 1 each), CPU on a (the most RAM).
    expect(f16).toMatchObject({ fitsOneGpu: false, fitsSplit: true, splitNode: 'b', splitGpus: [0, 1], splitBytes: [10 * GiB, 10 * GiB], fitsCpu: true, cpuNode: 'a', cpuBytes: 17 * GiB });
    // Q8_0: one GPU of b, with b's estimate (9.5 + 1).
    expect(q8).toMatchObject({ fitsOneGpu: true, node: 'b', gpu: 0, bytes: 10.5 * GiB });
    expect(q6).toMatchObject({ estimated: true, fitsOneGpu: true, node: 'b' });
    expect(choice.reason).toBe('Q8_0: the best quantization that fits one GPU (10.5 GiB on GPU 0 of node b; node a: GPU 0 8.0 GiB free; node b: GPU 0 12.0 GiB free, GPU 1 12.0 GiB free); F16 would not');
  });

  it('outside a cluster nothing names a node', () => {
    const choice = chooseQuantization(repo, room([[8]]));
    expect(choice.node).toBeUndefined();
    expect(choice.candidates.some((c) => c.node !== undefined || c.splitNode !== undefined || c.cpuNode !== undefined)).toBe(false);
    expect(choice.reason).not.toContain('node');
  });

  it('refuses an empty list of rooms', () => {
    expect(() => chooseQuantization(repo, [])).toThrow(/no room/);
  });
});

describe("a node's room (quantRoomOf), from a peer's polled state", () => {
  const settings: PlannerSettings = { strategy: 'single-gpu-preferred', fit: 'best', reserveBytes: 0.5 * GiB, maxUtilization: 90, maxMemoryUsedFraction: 0.95, partialOffload: false, cpuFallback: true };
  const instance = (id: string, state: string, inFlight: number, pinned: boolean, gpuGiB: number, hostGiB: number) => ({
    id,
    modelId: id,
    state,
    inFlight,
    slots: 1,
    pinned,
    lastUsed: 0,
    gpuBytes: [[0, gpuGiB * GiB]] as [number, number][],
    hostBytes: hostGiB * GiB,
    gpus: [0],
  });
  const state: NodeState = {
    node: 'big',
    url: 'http://big',
    version: 'x',
    at: 0,
    gpus: [
      { index: 0, uuid: 'u0', name: 'sim0', totalBytes: 24 * GiB, freeBytes: 20 * GiB, utilization: 10 },
      { index: 1, uuid: 'u1', name: 'sim1', totalBytes: 24 * GiB, freeBytes: 24 * GiB, utilization: 99 },
    ],
    host: { totalBytes: 64 * GiB, availableBytes: 40 * GiB, loadingBytes: 2 * GiB },
    instances: [
      instance('idle', 'ready', 0, false, 4, 1),
      instance('busy', 'ready', 1, false, 2, 0),
      instance('pinned', 'ready', 0, true, 3, 0),
      // promised memory: counted in `loading`, not as an instance
      instance('starting', 'starting', 0, false, 5, 0),
    ],
    loading: [[0, 1 * GiB]],
    queued: 0,
    capacity: 4,
    runtimeBytes: null,
    models: [],
    rpc: false,
  };

  it('counts usable bytes as the planner does, idle unpinned instances as evictable, and skips a busy GPU', () => {
    const r = quantRoomOf({ ...viewOf(state, false), node: 'big', settings, cpuAllowed: true });
    // GPU 0: min(20 free, 24 - 9 held) - 1 loading - 0.5 reserve; the idle instance's 4 evictable (not the pinned, not the busy).
    expect(r).toEqual({
      node: 'big',
      gpus: [{ index: 0, name: 'sim0', usableBytes: 13.5 * GiB, evictableBytes: 4 * GiB }],
      // min(40 available, 64 - 1 held) - 2 loading
      hostBytes: 38 * GiB,
      hostEvictableBytes: 1 * GiB,
      cpuAllowed: true,
    });
  });

  it('F16 (17 GiB) fits that node only once its idle instance goes', () => {
    const r = quantRoomOf({ ...viewOf(state, false), node: 'big', settings, cpuAllowed: true });
    const choice = chooseQuantization(repo, [node('here', [[8]]), r]);
    expect(choice).toMatchObject({ chosen: 'F16', node: 'big', tier: 'one-gpu' });
    expect(choice.reason).toContain('node big: GPU 0 13.5 GiB free + 4.0 GiB idle');
  });
});
