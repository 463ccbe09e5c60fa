/**
 * The pool's decision, as a pure function of a snapshot: which waiting requests are served now, which models
 * start loading, which idle instances are evicted. No IO, no clocks; the pool applies the plan.
 *
 * Rules:
 *   - a waiter whose model has a ready instance is served by it (llama-server's slots take concurrent requests);
 *   - a waiter whose model is loading keeps waiting (single flight: one load per model, however many wait);
 *   - otherwise the model needs a slot. Slots are `capacity` minus the instances that are starting, ready or
 *     still stopping (a stopped process must be gone before its slot is reused: no overlap). A free slot starts
 *     the model; a slot being freed already (an eviction under way) is claimed; else the least recently used
 *     idle, unpinned instance is evicted; else the waiter keeps waiting.
 *   - waiters are taken in arrival order, and one model claims at most one slot per pass;
 *   - a model blocked on memory (placement said: wait for busy instances) claims nothing until unblocked.
 */

export type EntryState = 'starting' | 'ready' | 'stopping';

export interface EntryView {
  instanceId: string;
  modelId: string;
  state: EntryState;
  inFlight: number;
  lastUsed: number;
  pinned: boolean;
}

export interface Snapshot {
  capacity: number;
  entries: readonly EntryView[];
  /** Model ids of the waiting requests, oldest first. */
  waiters: readonly string[];
  /** Models that wait for memory held by busy instances: they claim no slot until something changes. */
  blocked?: readonly string[];
}

export interface Plan {
  /** Waiter index -> instance that serves it. */
  serve: { waiter: number; instanceId: string }[];
  /** Models to start loading now (a free slot is there for each). */
  start: string[];
  /** Idle instances to stop to make room. */
  evict: string[];
}

export function planSchedule(snapshot: Snapshot): Plan {
  const plan: Plan = { serve: [], start: [], evict: [] };
  const readyByModel = new Map<string, string>();
  const loading = new Set<string>();
  for (const e of snapshot.entries) {
    if (e.state === 'ready') readyByModel.set(e.modelId, e.instanceId);
    if (e.state === 'starting') loading.add(e.modelId);
  }
  const busy = new Set<string>();
  snapshot.waiters.forEach((modelId, waiter) => {
    const instanceId = readyByModel.get(modelId);
    if (instanceId) {
      plan.serve.push({ waiter, instanceId });
      busy.add(instanceId);
    }
  });

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
