/**
 * The pool's decision, as a pure function of a snapshot: which waiting requests are served now, which models
 * start loading, which idle instances are evicted. No IO, no clocks; the pool applies the plan.
 *
 * Rules:
 *   - a waiter whose model has a ready instance is served by it, up to the instance's free slots when `slots` is
 *     given (the rest keep waiting here, not in llama-server's invisible FIFO); with `waiterKeys` the free slots
 *     go across keys by `pickFair` (fair-queue.ts), else in arrival order;
 *   - a waiter whose model is loading keeps waiting (single flight: one load per model, however many wait);
 *   - otherwise the model needs a slot. Slots are `capacity` minus the instances that are starting, ready or
 *     still stopping (a stopped process must be gone before its slot is reused: no overlap). A free slot starts
 *     the model; a slot being freed already (an eviction under way) is claimed; else the least recently used
 *     idle, unpinned instance is evicted; else the waiter keeps waiting.
 *   - waiters are taken in arrival order, and one model claims at most one slot per pass;
 *   - a model blocked on memory (placement said: wait for busy instances) claims nothing until unblocked.
 */

import { pickFair, type FairWaiter } from './fair-queue.js';

export type EntryState = 'starting' | 'ready' | 'stopping';

export interface EntryView {
  instanceId: string;
  modelId: string;
  state: EntryState;
  inFlight: number;
  lastUsed: number;
  pinned: boolean;
  /** Requests the instance takes at once (llama-server's --parallel); undefined: any number (fairness off). */
  slots?: number;
}

export interface Snapshot {
  capacity: number;
  entries: readonly EntryView[];
  /** Model ids of the waiting requests, oldest first. */
  waiters: readonly string[];
  /** Models that wait for memory held by busy instances: they claim no slot until something changes. */
  blocked?: readonly string[];
  /** Key of each waiter (parallel to `waiters`): with it, a model's free slots go by `pickFair` across keys. */
  waiterKeys?: readonly FairWaiter[];
  /** Keys' virtual times (fair-queue.ts), carried from the previous plan. */
  vtime?: ReadonlyMap<string, number>;
}

export interface Plan {
  /** Waiter index -> instance that serves it. */
  serve: { waiter: number; instanceId: string }[];
  /** Models to start loading now (a free slot is there for each). */
  start: string[];
  /** Idle instances to stop to make room. */
  evict: string[];
  /** Keys' virtual times after this plan's serves (only with waiterKeys). */
  vtime?: Map<string, number>;
}

export function planSchedule(snapshot: Snapshot): Plan {
  const plan: Plan = { serve: [], start: [], evict: [] };
  const readyByModel = new Map<string, string>();
  const freeSlots = new Map<string, number>();
  const loading = new Set<string>();
  for (const e of snapshot.entries) {
    if (e.state === 'ready') {
      readyByModel.set(e.modelId, e.instanceId);
      freeSlots.set(e.instanceId, e.slots === undefined ? Infinity : Math.max(0, e.slots - e.inFlight));
    }
    if (e.state === 'starting') loading.add(e.modelId);
  }
  const busy = new Set<string>();
  const byModel = new Map<string, number[]>();
  snapshot.waiters.forEach((modelId, waiter) => {
    if (readyByModel.has(modelId)) byModel.set(modelId, [...(byModel.get(modelId) ?? []), waiter]);
  });
  const vtime = new Map(snapshot.vtime ?? []);
  for (const [modelId, indices] of byModel) {
    const instanceId = readyByModel.get(modelId)!;
    const free = freeSlots.get(instanceId) ?? Infinity;
    let chosen: number[];
    if (snapshot.waiterKeys) {
      const keys = indices.map((i) => snapshot.waiterKeys![i]!);
      const pick = pickFair(keys, vtime, Math.min(free, indices.length));
      for (const [k, v] of pick.vtime) vtime.set(k, v);
      chosen = pick.picked.map((j) => indices[j]!);
    } else {
      chosen = indices.slice(0, Math.min(free, indices.length));
    }
    for (const waiter of chosen) plan.serve.push({ waiter, instanceId });
    busy.add(instanceId);
  }
  plan.serve.sort((a, b) => a.waiter - b.waiter);
  if (snapshot.waiterKeys) plan.vtime = vtime;

  let free = snapshot.capacity - snapshot.entries.length;
  let freeing = snapshot.entries.filter((e) => e.state === 'stopping').length;
  const victims = snapshot.entries
    .filter((e) => e.state === 'ready' && e.inFlight === 0 && !e.pinned && !busy.has(e.instanceId))
    .sort((a, b) => a.lastUsed - b.lastUsed || a.instanceId.localeCompare(b.instanceId));
  const claimed = new Set<string>(snapshot.blocked ?? []);

  for (const modelId of snapshot.waiters) {
    if (readyByModel.has(modelId) || loading.has(modelId) || claimed.has(modelId)) continue;
    if (free > 0) {
      free--;
      plan.start.push(modelId);
    } else if (freeing > 0) {
      freeing--;
    } else {
      const victim = victims.shift();
      if (!victim) continue;
      plan.evict.push(victim.instanceId);
    }
    claimed.add(modelId);
  }
  return plan;
}
