/**
 * The placement planner: a pure function from (what the model costs per candidate placement, the GPUs as they
 * are now, what the proxy's own instances hold, loads under way, settings, pins) to a placement, an eviction,
 * a wait, or a reasoned refusal. See README.md beside this file for the order of preference and why.
 */
import type { Candidate, Cost, EstimateFn, ModelPins, Placement, PlanInput, PlannerGpu, PlanResult, RunningInstance } from './types.js';

const MIB = 1024 * 1024;

export function formatGiB(bytes: number): string {
  return bytes >= 1024 * MIB ? `${(bytes / (1024 * MIB)).toFixed(1)} GiB` : `${Math.round(bytes / MIB)} MiB`;
}

/** Bytes the proxy's instances hold on each GPU. */
function ledger(running: readonly RunningInstance[]): Map<number, number> {
  const held = new Map<number, number>();
  for (const r of running) for (const [gpu, bytes] of r.gpuBytes) held.set(gpu, (held.get(gpu) ?? 0) + bytes);
  return held;
}

/**
 * Room a new model may take on each GPU: the smaller of what the driver says is free and what our ledger says
 * is left, minus loads under way and the reserve. The driver's figure catches other users of the GPU; the
 * ledger catches our instances that have not allocated everything yet.
 */
export function usableBytes(input: Pick<PlanInput, 'gpus' | 'running' | 'loading' | 'settings'>): Map<number, number> {
  const held = ledger(input.running);
  const usable = new Map<number, number>();
  for (const g of input.gpus) {
    const room = Math.min(g.freeBytes, g.totalBytes - (held.get(g.index) ?? 0)) - (input.loading.get(g.index) ?? 0) - input.settings.reserveBytes;
    usable.set(g.index, Math.max(0, room));
  }
  return usable;
}

/** GPUs the planner may use: not busier than the thresholds (memory counted without our own instances). */
export function eligibleGpus(input: Pick<PlanInput, 'gpus' | 'running' | 'settings'>): PlannerGpu[] {
  const held = ledger(input.running);
  return input.gpus.filter((g) => {
    if (g.utilization !== null && g.utilization > input.settings.maxUtilization) return false;
    const foreign = Math.max(0, g.totalBytes - g.freeBytes - (held.get(g.index) ?? 0));
    return foreign / g.totalBytes <= input.settings.maxMemoryUsedFraction;
  });
}

interface Attempt {
  candidate: Candidate;
  cost: Cost;
  fits: boolean;
}

function proportionalSplit(gpus: number[], usable: ReadonlyMap<number, number>): number[] {
  const room = gpus.map((g) => Math.max(0, usable.get(g) ?? 0) / MIB);
  const total = room.reduce((a, b) => a + b, 0);
  return total > 0 ? room.map((r) => Math.round((r / total) * 1000) / 1000) : gpus.map(() => 1);
}

/**
 * A split never needs less in total than the whole model on one GPU (weights and KV are shared out, compute
 * buffers and overhead are paid on every GPU): GPU sets with less room than that are skipped without an estimate.
 */
const SPLIT_BOUND_SLACK = 0.95;

/** Host RAM the proxy's instances are charged. */
function heldOnHost(running: readonly RunningInstance[]): number {
  return running.reduce((sum, r) => sum + (r.hostBytes ?? 0), 0);
}

/** Host RAM a new model may take (see PlanInput.host); undefined: not checked. */
export function usableHostBytes(input: Pick<PlanInput, 'host' | 'running' | 'settings'>): number | undefined {
  const host = input.host;
  if (!host) return input.settings.hostAvailableBytes;
  const room = Math.min(host.availableBytes, host.totalBytes - heldOnHost(input.running)) - (host.loadingBytes ?? 0);
  return Math.max(0, room);
}

function attempt(input: PlanInput, gpus: number[], usable: ReadonlyMap<number, number>, ngl: number | 'full' = 'full', split?: number[], hostRoom = usableHostBytes(input)): Attempt {
  const candidate: Candidate = { gpus, ngl };
  if (gpus.length > 1) {
    candidate.tensorSplit = split ?? proportionalSplit(gpus, usable);
    const whole = input.estimate({ gpus: [gpus[0]!], ngl });
    const room = gpus.reduce((sum, g) => sum + (usable.get(g) ?? 0), 0);
    if (room < SPLIT_BOUND_SLACK * (whole.gpuBytes[0] ?? 0)) {
      return { candidate, cost: { gpuBytes: gpus.map(() => Infinity), hostBytes: whole.hostBytes }, fits: false };
    }
  }
  const cost = input.estimate(candidate);
  const gpuFits = gpus.every((g, i) => (cost.gpuBytes[i] ?? 0) <= (usable.get(g) ?? 0));
  const hostFits = hostRoom === undefined || cost.hostBytes <= hostRoom;
  return { candidate, cost, fits: gpuFits && hostFits };
}

function placement(a: Attempt, reason: string): PlanResult {
  const p: Placement = { ...a.candidate, splitMode: a.candidate.gpus.length > 1 ? 'layer' : 'none', cost: a.cost, reason };
  return { kind: 'place', placement: p };
}

/** Target GPU sets in order of preference, for a given room per GPU. */
function targets(input: PlanInput, eligible: PlannerGpu[], usable: ReadonlyMap<number, number>): number[][] {
  const pins = input.pins;
  if (pins?.gpus && pins.gpus.length > 0) return [pins.gpus];
  const maxGpus = Math.max(1, Math.min(pins?.maxGpus ?? eligible.length, eligible.length));
  const byRoom = [...eligible].sort((a, b) => (usable.get(b.index) ?? 0) - (usable.get(a.index) ?? 0) || a.index - b.index).map((g) => g.index);
  if (input.settings.strategy === 'distribute') return byRoom.length > 0 ? [byRoom.slice(0, maxGpus).sort((a, b) => a - b)] : [];
  const out: number[][] = byRoom.map((g) => [g]);
  for (let k = 2; k <= maxGpus; k++) out.push(byRoom.slice(0, k).sort((a, b) => a - b));
  return out;
}

/** The best fitting target right now, or undefined. Single GPUs first (best fit or most free), then the fewest GPUs. */
function placeNow(input: PlanInput, eligible: PlannerGpu[], usable: ReadonlyMap<number, number>): Attempt | undefined {
  const ngl = input.pins?.ngl ?? 'full';
  const all = targets(input, eligible, usable);
  // Targets come ordered by GPU count: stop at the first count where something fits.
  let best: Attempt[] = [];
  for (const count of [...new Set(all.map((t) => t.length))]) {
    best = all
      .filter((t) => t.length === count)
      .map((gpus) => attempt(input, gpus, usable, ngl, input.pins?.tensorSplit))
      .filter((a) => a.fits);
    if (best.length > 0) break;
  }
  if (best.length === 0) return undefined;
  if (best[0]!.candidate.gpus.length === 1) {
    const leftover = (a: Attempt) => (usable.get(a.candidate.gpus[0]!) ?? 0) - (a.cost.gpuBytes[0] ?? 0);
    best.sort((a, b) => (input.settings.fit === 'best' ? leftover(a) - leftover(b) : leftover(b) - leftover(a)) || a.candidate.gpus[0]! - b.candidate.gpus[0]!);
  }
  return best[0];
}

/**
 * The smallest set of idle instances (least recently used first, only on the target's GPUs) whose memory makes
 * the target fit; undefined when even all of them are not enough.
 */
function victimsFor(input: PlanInput, gpus: number[], usable: ReadonlyMap<number, number>, evictable: RunningInstance[]): { victims: RunningInstance[]; fit: Attempt } | undefined {
  const room = new Map(usable);
  const victims: RunningInstance[] = [];
  const ngl = input.pins?.ngl ?? 'full';
  const candidates = evictable.filter((r) => gpus.some((g) => (r.gpuBytes.get(g) ?? 0) > 0));
  for (const victim of candidates) {
    victims.push(victim);
    for (const [g, bytes] of victim.gpuBytes) room.set(g, (room.get(g) ?? 0) + bytes);
    const a = attempt(input, gpus, room, ngl, input.pins?.tensorSplit);
    if (a.fits) {
      // Drop victims that turned out unnecessary (an early LRU one on a GPU that did not need room).
      for (let i = victims.length - 2; i >= 0; i--) {
        const without = new Map(room);
        for (const [g, bytes] of victims[i]!.gpuBytes) without.set(g, (without.get(g) ?? 0) - bytes);
        if (attempt(input, gpus, without, ngl, input.pins?.tensorSplit).fits) {
          for (const [g, bytes] of victims[i]!.gpuBytes) room.set(g, (room.get(g) ?? 0) - bytes);
          victims.splice(i, 1);
        }
      }
      return { victims, fit: a };
    }
  }
  return undefined;
}

function roomReport(input: PlanInput, usable: ReadonlyMap<number, number>): string {
  if (input.gpus.length === 0) return 'no GPU';
  return input.gpus.map((g) => `GPU ${g.index} (${g.name}) ${formatGiB(usable.get(g.index) ?? 0)} usable of ${formatGiB(g.totalBytes)}`).join(', ');
}

function checkPins(input: PlanInput): string | undefined {
  const pins: ModelPins | undefined = input.pins;
  if (!pins?.gpus) return undefined;
  const missing = pins.gpus.filter((g) => !input.gpus.some((d) => d.index === g));
  if (missing.length > 0) return `model "${input.modelId}" is pinned to GPU ${missing.join(', ')}, which this machine does not have (GPUs: ${input.gpus.map((g) => g.index).join(', ') || 'none'})`;
  if (pins.tensorSplit && pins.tensorSplit.length !== pins.gpus.length) return `model "${input.modelId}": tensorSplit has ${pins.tensorSplit.length} entries for ${pins.gpus.length} pinned GPUs`;
  return undefined;
}

/** Largest -ngl (from the full count down) whose share fits the best single target; undefined if not even one layer. */
function partialOffload(input: PlanInput, eligible: PlannerGpu[], usable: ReadonlyMap<number, number>): Attempt | undefined {
  const target = targets(input, eligible, usable)[0];
  if (!target) return undefined;
  // A GPU's share only grows with the layers it holds (the search below relies on that too): when one layer does
  // not fit, none does. Asked first, that is one estimate instead of log2(layers) for a model that fits nowhere.
  const one = attempt(input, target, usable, 1, input.pins?.tensorSplit);
  if (!one.fits) return undefined;
  let lo = 2;
  let hi = input.nLayers;
  let best: Attempt | undefined = one;
  while (lo <= hi) {
    const mid = Math.floor((lo + hi) / 2);
    const a = attempt(input, target, usable, mid, input.pins?.tensorSplit);
    if (a.fits) {
      best = a;
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  return best;
}

/** Each distinct candidate is estimated once per decision. */
function memoized(estimate: EstimateFn): EstimateFn {
  const seen = new Map<string, Cost>();
  return (c) => {
    const key = `${c.gpus.join(',')}|${c.ngl}|${c.tensorSplit?.join(',') ?? ''}`;
    let cost = seen.get(key);
    if (!cost) {
      cost = estimate(c);
      seen.set(key, cost);
    }
    return cost;
  };
}

/**
 * A CPU placement that does not fit the host RAM now: the fewest idle instances (least recently used first) whose
 * RAM makes it fit are evicted; if only busy ones would, it waits; else a refusal with the numbers.
 */
function hostShortage(input: PlanInput, usable: ReadonlyMap<number, number>, needed: number): PlanResult {
  const room = usableHostBytes(input) ?? 0;
  const held = heldOnHost(input.running);
  const fitsWith = (freed: number) => attempt(input, [], usable, 0, undefined, room + freed).fits;
  const onHost = input.running.filter((r) => !r.pinned && (r.hostBytes ?? 0) > 0);
  const idle = onHost.filter((r) => r.idle).sort((a, b) => a.lastUsed - b.lastUsed || a.instanceId.localeCompare(b.instanceId));
  const victims: RunningInstance[] = [];
  let freed = 0;
  for (const victim of idle) {
    victims.push(victim);
    freed += victim.hostBytes ?? 0;
    if (fitsWith(freed)) {
      return { kind: 'evict', victims: victims.map((v) => v.instanceId), reason: `needs ${formatGiB(needed)} of host memory; evicting idle ${victims.map((v) => `"${v.modelId}"`).join(', ')}` };
    }
  }
  if (fitsWith(onHost.reduce((sum, r) => sum + (r.hostBytes ?? 0), 0))) {
    return { kind: 'wait', reason: `the host memory "${input.modelId}" needs is held by instances serving requests` };
  }
  const detail = input.host
    ? ` (${formatGiB(input.host.availableBytes)} free of ${formatGiB(input.host.totalBytes)}, ${formatGiB(held)} charged to the proxy's instances${input.host.loadingBytes ? `, ${formatGiB(input.host.loadingBytes)} to loads under way` : ''})`
    : '';
  return { kind: 'refuse', reason: `model "${input.modelId}" needs ${formatGiB(needed)} of host memory on the CPU; ${formatGiB(room)} available${detail}` };
}

export function planPlacement(request: PlanInput): PlanResult {
  const input: PlanInput = { ...request, estimate: memoized(request.estimate) };
  const pinError = checkPins(input);
  if (pinError) return { kind: 'refuse', reason: pinError };
  const usable = usableBytes(input);
  const eligible = eligibleGpus(input);
  const pinned = input.pins?.gpus && input.pins.gpus.length > 0;

  // 1. CPU-only pins (ngl 0) or a machine without usable GPUs skip straight to the CPU rules.
  if (input.pins?.ngl !== 0 && (eligible.length > 0 || pinned)) {
    const now = placeNow(input, eligible, usable);
    if (now) {
      const how = now.candidate.gpus.length === 1 ? `fits on GPU ${now.candidate.gpus[0]}` : `split over GPUs ${now.candidate.gpus.join(',')} (no single GPU has room)`;
      return placement(now, pinned ? `pinned: ${how}` : how);
    }

    // 2. Evict idle instances: the target needing the fewest victims (then the least memory freed).
    const evictable = input.running.filter((r) => r.idle && !r.pinned).sort((a, b) => a.lastUsed - b.lastUsed || a.instanceId.localeCompare(b.instanceId));
    const all = targets(input, eligible, usable);
    let options: { gpus: number[]; found: NonNullable<ReturnType<typeof victimsFor>> }[] = [];
    // By GPU count, fewest first: a single GPU freed by eviction beats a split freed by eviction.
    for (const count of [...new Set(all.map((t) => t.length))]) {
      options = all
        .filter((t) => t.length === count)
        .map((gpus) => ({ gpus, found: victimsFor(input, gpus, usable, evictable) }))
        .filter((o): o is { gpus: number[]; found: NonNullable<ReturnType<typeof victimsFor>> } => o.found !== undefined);
      if (options.length > 0) break;
    }
    if (options.length > 0) {
      const freed = (vs: RunningInstance[]) => vs.reduce((sum, v) => sum + [...v.gpuBytes.values()].reduce((a, b) => a + b, 0), 0);
      options.sort((a, b) => a.gpus.length - b.gpus.length || a.found.victims.length - b.found.victims.length || freed(a.found.victims) - freed(b.found.victims));
      const best = options[0]!;
      return {
        kind: 'evict',
        victims: best.found.victims.map((v) => v.instanceId),
        reason: `needs ${formatGiB(best.found.fit.cost.gpuBytes.reduce((a, b) => a + b, 0))} on GPU ${best.gpus.join(',')}; evicting idle ${best.found.victims.map((v) => `"${v.modelId}"`).join(', ')}`,
      };
    }

    // 3. Memory held by busy instances would make it fit: wait for them.
    const busy = input.running.filter((r) => !r.pinned);
    if (busy.length > 0 && targets(input, eligible, usable).some((gpus) => victimsFor(input, gpus, usable, busy))) {
      return { kind: 'wait', reason: `the GPU memory "${input.modelId}" needs is held by instances serving requests` };
    }

    // 4. Partial offload: as many layers as fit.
    if (input.settings.partialOffload && input.pins?.ngl === undefined) {
      const partial = partialOffload(input, eligible, usable);
      if (partial) return placement(partial, `partial offload: ${partial.candidate.ngl} of ${input.nLayers + 1} layers on GPU ${partial.candidate.gpus.join(',')}`);
    }
  }

  // 5. CPU: host RAM checked as a GPU's memory is (evict idle instances, else wait for busy ones, else refuse).
  if (input.settings.cpuFallback || input.pins?.ngl === 0 || (input.gpus.length === 0 && !pinned)) {
    const cpu = attempt(input, [], usable, 0);
    if (cpu.fits) return placement(cpu, input.gpus.length === 0 ? 'no GPU: runs on the CPU' : 'CPU fallback: no GPU has room');
    return hostShortage(input, usable, cpu.cost.hostBytes);
  }

  const single = input.estimate({ gpus: [eligible[0]?.index ?? 0], ngl: input.pins?.ngl ?? 'full' });
  return {
    kind: 'refuse',
    reason:
      `model "${input.modelId}" needs ${formatGiB(single.gpuBytes[0] ?? 0)} of GPU memory (${formatGiB(single.hostBytes)} host); ` +
      `room: ${roomReport(input, usable)}${eligible.length < input.gpus.length ? `; skipped as busy: GPU ${input.gpus.filter((g) => !eligible.includes(g)).map((g) => g.index).join(', ')}` : ''}; ` +
      `partial offload ${input.settings.partialOffload ? 'does not fit either' : 'is off'}, CPU fallback is off`,
  };
}
