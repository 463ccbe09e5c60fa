import { describe, expect, it } from 'vitest';
import { planPlacement } from '../../src/placement/planner.js';
import type { Candidate, Cost, PlanInput, PlannerGpu, PlannerSettings, RunningInstance } from '../../src/placement/types.js';

const GiB = 1024 ** 3;
const N_LAYERS = 32;
const OVERHEAD = 0.5 * GiB;

/** A model of `size` bytes whose layers are equal: each GPU gets its share of the offloaded layers plus overhead. */
function model(size: number) {
  return (c: Candidate): Cost => {
    const layers = c.ngl === 'full' ? N_LAYERS + 1 : c.ngl;
    const onGpus = (size * layers) / (N_LAYERS + 1);
    const split = c.tensorSplit ?? c.gpus.map(() => 1);
    const sum = split.reduce((a, b) => a + b, 0);
    return { gpuBytes: c.gpus.map((_, i) => (onGpus * split[i]!) / sum + OVERHEAD), hostBytes: size - onGpus + 0.2 * GiB };
  };
}

function gpu(index: number, totalGiB: number, freeGiB = totalGiB, utilization: number | null = 0): PlannerGpu {
  return { index, uuid: `GPU-${index}`, name: `gpu${index}`, totalBytes: totalGiB * GiB, freeBytes: freeGiB * GiB, utilization };
}

function instance(id: string, gpuGiB: Record<number, number>, over: Partial<RunningInstance> = {}): RunningInstance {
  return { instanceId: id, modelId: `m-${id}`, gpuBytes: new Map(Object.entries(gpuGiB).map(([g, b]) => [Number(g), b * GiB])), idle: true, pinned: false, lastUsed: 0, ...over };
}

const settings: PlannerSettings = {
  strategy: 'single-gpu-preferred',
  fit: 'best',
  reserveBytes: 0,
  maxUtilization: 90,
  maxMemoryUsedFraction: 0.9,
  partialOffload: true,
  cpuFallback: true,
};

function plan(over: Partial<PlanInput> & { sizeGiB: number }): ReturnType<typeof planPlacement> {
  return planPlacement({
    modelId: 'm',
    nLayers: N_LAYERS,
    estimate: model(over.sizeGiB * GiB),
    gpus: [],
    running: [],
    loading: new Map(),
    settings,
    ...over,
  });
}

describe('placement planner', () => {
  it('puts a model that fits on the one GPU', () => {
    const r = plan({ sizeGiB: 6, gpus: [gpu(0, 24)] });
    expect(r).toMatchObject({ kind: 'place', placement: { gpus: [0], ngl: 'full', splitMode: 'none' } });
  });

  it('never splits a model that fits on either of two GPUs: best fit takes the tighter one, most-free the roomier', () => {
    const gpus = [gpu(0, 24), gpu(1, 12)];
    expect(plan({ sizeGiB: 8, gpus })).toMatchObject({ kind: 'place', placement: { gpus: [1], splitMode: 'none' } });
    expect(plan({ sizeGiB: 8, gpus, settings: { ...settings, fit: 'most-free' } })).toMatchObject({ kind: 'place', placement: { gpus: [0] } });
  });

  it('splits over two uneven GPUs only when neither holds it, in proportion to their room', () => {
    const r = plan({ sizeGiB: 28, gpus: [gpu(0, 24), gpu(1, 12)] });
    expect(r.kind).toBe('place');
    if (r.kind !== 'place') return;
    expect(r.placement).toMatchObject({ gpus: [0, 1], splitMode: 'layer', ngl: 'full' });
    expect(r.placement.tensorSplit![0]! / r.placement.tensorSplit![1]!).toBeCloseTo(2, 1);
    expect(r.placement.cost.gpuBytes[0]!).toBeLessThanOrEqual(24 * GiB);
    expect(r.placement.cost.gpuBytes[1]!).toBeLessThanOrEqual(12 * GiB);
  });

  it('uses the fewest GPUs whose room suffices', () => {
    const r = plan({ sizeGiB: 30, gpus: [gpu(0, 16), gpu(1, 16), gpu(2, 16), gpu(3, 16)] });
    expect(r).toMatchObject({ kind: 'place', placement: { gpus: [0, 1] } });
  });

  it('skips a GPU that is busy above the utilization threshold or full of someone else\'s memory', () => {
    expect(plan({ sizeGiB: 8, gpus: [gpu(0, 12, 12, 95), gpu(1, 24)] })).toMatchObject({ placement: { gpus: [1] } });
    expect(plan({ sizeGiB: 1, gpus: [gpu(0, 24, 1), gpu(1, 24)] })).toMatchObject({ placement: { gpus: [1] } });
  });

  it('counts the ledger and loads under way, not only what the driver says', () => {
    // The driver still shows 20 GiB free on GPU 0, but an instance of ours is loading 14 GiB there.
    const r = plan({ sizeGiB: 8, gpus: [gpu(0, 24, 20), gpu(1, 16)], loading: new Map([[0, 14 * GiB]]) });
    expect(r).toMatchObject({ placement: { gpus: [1] } });
    const held = plan({ sizeGiB: 14, gpus: [gpu(0, 24, 20)], running: [instance('a', { 0: 12 }, { idle: false })], settings: { ...settings, partialOffload: false, cpuFallback: false } });
    expect(held.kind).toBe('wait');
  });

  it('evicts the smallest set of idle instances, on the GPU that helps, least recently used first', () => {
    const running = [instance('old0', { 0: 10 }, { lastUsed: 1 }), instance('new0', { 0: 10 }, { lastUsed: 5 }), instance('one1', { 1: 14 }, { lastUsed: 9 })];
    const gpus = [gpu(0, 24, 4), gpu(1, 16, 2)];
    // 12 GiB model: GPU 1 frees 14 with one victim; GPU 0 would need one of its two as well (4 + 10 = 14) -> LRU old0 on GPU 0, or one1: both one victim;
    // the tie goes to the smaller memory freed: old0 (10 GiB) beats one1 (14 GiB).
    const r = plan({ sizeGiB: 12, gpus, running, settings: { ...settings, partialOffload: false } });
    expect(r).toEqual({ kind: 'evict', victims: ['old0'], reason: expect.stringContaining('"m-old0"') });
    // Pinned and busy instances are never victims.
    const guarded = running.map((i) => (i.instanceId === 'one1' ? i : { ...i, pinned: i.instanceId === 'old0', idle: i.instanceId !== 'new0' }));
    expect(plan({ sizeGiB: 12, gpus, running: guarded, settings: { ...settings, partialOffload: false } })).toMatchObject({ kind: 'evict', victims: ['one1'] });
  });

  it('offloads as many layers as fit when the model fits on no GPU', () => {
    const r = plan({ sizeGiB: 40, gpus: [gpu(0, 24)] });
    expect(r.kind).toBe('place');
    if (r.kind !== 'place') return;
    expect(typeof r.placement.ngl).toBe('number');
    const ngl = r.placement.ngl as number;
    expect(r.placement.cost.gpuBytes[0]!).toBeLessThanOrEqual(24 * GiB);
    expect(model(40 * GiB)({ gpus: [0], ngl: ngl + 1 }).gpuBytes[0]!).toBeGreaterThan(24 * GiB);
    expect(r.placement.reason).toMatch(/partial offload: \d+ of 33 layers/);
  });

  it('falls back to the CPU when no GPU has room and partial offload is off, or when there is no GPU', () => {
    expect(plan({ sizeGiB: 40, gpus: [gpu(0, 24)], settings: { ...settings, partialOffload: false } })).toMatchObject({
      kind: 'place',
      placement: { gpus: [], ngl: 0, reason: 'CPU fallback: no GPU has room' },
    });
    expect(plan({ sizeGiB: 4, gpus: [] })).toMatchObject({ kind: 'place', placement: { gpus: [], ngl: 0, reason: 'no GPU: runs on the CPU' } });
  });

  it('refuses with the numbers when nothing may hold it', () => {
    const r = plan({ sizeGiB: 40, gpus: [gpu(0, 24, 20), gpu(1, 12, 12, 99)], settings: { ...settings, partialOffload: false, cpuFallback: false } });
    expect(r.kind).toBe('refuse');
    if (r.kind !== 'refuse') return;
    expect(r.reason).toContain('"m" needs 40.5 GiB of GPU memory');
    expect(r.reason).toContain('GPU 0 (gpu0) 20.0 GiB usable of 24.0 GiB');
    expect(r.reason).toContain('skipped as busy: GPU 1');
    expect(r.reason).toContain('CPU fallback is off');
  });

  it('refuses a CPU placement that does not fit the host memory', () => {
    const r = plan({ sizeGiB: 40, gpus: [], settings: { ...settings, hostAvailableBytes: 16 * GiB } });
    expect(r).toMatchObject({ kind: 'refuse', reason: expect.stringMatching(/needs 40.2 GiB of host memory on the CPU; 16.0 GiB available/) });
  });

  describe('host RAM on the CPU, checked like a GPU', () => {
    // CPU placements of a model of `size` GiB cost size + 0.2 GiB of host RAM.
    const host = (totalGiB: number, availableGiB: number, loadingGiB = 0) => ({ totalBytes: totalGiB * GiB, availableBytes: availableGiB * GiB, loadingBytes: loadingGiB * GiB });
    const onHost = (id: string, hostGiB: number, over: Partial<RunningInstance> = {}) => instance(id, {}, { hostBytes: hostGiB * GiB, ...over });
    const table: { name: string; sizeGiB: number; host: ReturnType<typeof host>; running?: RunningInstance[]; expected: Record<string, unknown> }[] = [
      { name: 'fits the available RAM', sizeGiB: 10, host: host(24, 20), expected: { kind: 'place', placement: { gpus: [], ngl: 0 } } },
      { name: 'more than the OS says is available', sizeGiB: 22, host: host(24, 20), expected: { kind: 'refuse' } },
      // Mapped weights and an untouched KV cache are not counted by the OS yet: the ledger's charge is.
      { name: 'OS says available, but our instances are charged for it', sizeGiB: 10, host: host(24, 20), running: [onHost('x', 7, { idle: false }), onHost('y', 7, { idle: false })], expected: { kind: 'wait' } },
      { name: 'an idle instance of ours holds the room: evicted (least recently used first, the fewest)', sizeGiB: 10, host: host(24, 20), running: [onHost('old', 8, { lastUsed: 1 }), onHost('new', 8, { lastUsed: 2 })], expected: { kind: 'evict', victims: ['old'] } },
      { name: 'a pinned instance is never evicted', sizeGiB: 10, host: host(24, 20), running: [onHost('p', 16, { pinned: true })], expected: { kind: 'refuse' } },
      { name: 'a load under way has its RAM promised', sizeGiB: 10, host: host(24, 20, 12), expected: { kind: 'refuse' } },
    ];
    for (const row of table) {
      it(row.name, () => {
        expect(plan({ sizeGiB: row.sizeGiB, gpus: [], host: row.host, running: row.running ?? [] })).toMatchObject(row.expected);
      });
    }

    it('a refusal gives the numbers: needed, available, free, total, charged', () => {
      const r = plan({ sizeGiB: 30, gpus: [], host: host(24, 20, 1), running: [onHost('x', 2, { idle: false })] });
      expect(r.kind).toBe('refuse');
      if (r.kind !== 'refuse') return;
      expect(r.reason).toBe('model "m" needs 30.2 GiB of host memory on the CPU; 19.0 GiB available (20.0 GiB free of 24.0 GiB, 2.0 GiB charged to the proxy\'s instances, 1.0 GiB to loads under way)');
    });
  });

  it('lets pins win: pinned GPUs, split and -ngl are used as given', () => {
    const gpus = [gpu(0, 24), gpu(1, 24)];
    expect(plan({ sizeGiB: 4, gpus, pins: { gpus: [1] } })).toMatchObject({ placement: { gpus: [1], reason: 'pinned: fits on GPU 1' } });
    expect(plan({ sizeGiB: 4, gpus, pins: { gpus: [0, 1], tensorSplit: [3, 1] } })).toMatchObject({ placement: { gpus: [0, 1], tensorSplit: [3, 1], splitMode: 'layer' } });
    expect(plan({ sizeGiB: 4, gpus, pins: { ngl: 10 } })).toMatchObject({ placement: { gpus: [0], ngl: 10 } });
    expect(plan({ sizeGiB: 4, gpus, pins: { ngl: 0 } })).toMatchObject({ placement: { gpus: [], ngl: 0 } });
    expect(plan({ sizeGiB: 30, gpus, pins: { maxGpus: 1 }, settings: { ...settings, partialOffload: false, cpuFallback: false } }).kind).toBe('refuse');
    expect(plan({ sizeGiB: 4, gpus, pins: { gpus: [7] } })).toMatchObject({ kind: 'refuse', reason: expect.stringContaining('pinned to GPU 7, which this machine does not have') });
  });

  it('distribute spreads over every eligible GPU', () => {
    expect(plan({ sizeGiB: 4, gpus: [gpu(0, 24), gpu(1, 24), gpu(2, 24, 24, 99)], settings: { ...settings, strategy: 'distribute' } })).toMatchObject({
      placement: { gpus: [0, 1], splitMode: 'layer', tensorSplit: [0.5, 0.5] },
    });
  });
});
