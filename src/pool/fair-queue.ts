/**
 * Fair queueing across keys (issue 15 item 2), as a pure decision: given the requests waiting for one model (in
 * arrival order, each with its key and weight) and each key's virtual time, which of them take the `slots` that
 * just freed. No IO, no clocks.
 *
 * Rule (virtual-time weighted fair queueing, the continuous form of deficit round-robin):
 *   - each key with waiters has a virtual time; serving one of its requests advances it by 1 / weight;
 *   - the next request served is the oldest waiter (FIFO within a key) of the key with the least virtual time,
 *     ties going to the key whose oldest waiter arrived first;
 *   - a key that had nothing waiting starts at the least virtual time among the keys waiting now (no credit is
 *     banked while idle, so it cannot burst, and it is never behind a flood by more than one turn);
 *   - keys with nothing waiting are skipped and forgotten.
 * Weights from priority: low 1, normal 2, high 4 — a high key is served four times for a low key's once.
 */
import type { KeyPriority } from '../api/request-key.js';

export const PRIORITY_WEIGHT: Readonly<Record<KeyPriority, number>> = { low: 1, normal: 2, high: 4 };

export interface FairWaiter {
  key: string;
  weight: number;
  /** Requests of this key that may wait at once (absent: only pool.maxQueue). */
  maxQueue?: number;
}

export interface FairPick {
  /** Indices into the waiters, in the order they are served. */
  picked: number[];
  /** Virtual time of each key that had waiters, after the picks. */
  vtime: Map<string, number>;
}

export function pickFair(waiters: readonly FairWaiter[], vtime: ReadonlyMap<string, number>, slots: number): FairPick {
  const queues = new Map<string, { weight: number; indices: number[] }>();
  waiters.forEach((w, i) => {
    const q = queues.get(w.key);
    if (q) q.indices.push(i);
    else queues.set(w.key, { weight: Math.max(w.weight, Number.MIN_VALUE), indices: [i] });
  });
  const known = [...queues.keys()].map((k) => vtime.get(k)).filter((v): v is number => v !== undefined);
  const floor = known.length > 0 ? Math.min(...known) : 0;
  const next = new Map<string, number>();
  for (const key of queues.keys()) next.set(key, Math.max(vtime.get(key) ?? floor, floor));

  const picked: number[] = [];
  const heads = new Map<string, number>([...queues.keys()].map((k) => [k, 0]));
  while (picked.length < slots) {
    let best: string | undefined;
    for (const [key, q] of queues) {
      const head = heads.get(key) ?? 0;
      if (head >= q.indices.length) continue;
      if (best === undefined) { best = key; continue; }
      const bq = queues.get(best)!;
      const dv = (next.get(key) ?? 0) - (next.get(best) ?? 0);
      if (dv < 0 || (dv === 0 && q.indices[head]! < bq.indices[heads.get(best) ?? 0]!)) best = key;
    }
    if (best === undefined) break;
    const q = queues.get(best)!;
    const head = heads.get(best) ?? 0;
    picked.push(q.indices[head]!);
    heads.set(best, head + 1);
    next.set(best, (next.get(best) ?? 0) + 1 / q.weight);
  }
  return { picked, vtime: next };
}
