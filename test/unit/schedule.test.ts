import { describe, expect, it } from 'vitest';
import { planSchedule, type EntryView } from '../../src/pool/schedule.js';

function entry(instanceId: string, modelId: string, state: EntryView['state'], inFlight = 0, lastUsed = 0, pinned = false): EntryView {
  return { instanceId, modelId, state, inFlight, lastUsed, pinned };
}

describe('planSchedule', () => {
  it.each([
    {
      name: 'serves every waiter of a ready model',
      capacity: 1,
      entries: [entry('i1', 'a', 'ready', 3)],
      waiters: ['a', 'a'],
      plan: { serve: [{ waiter: 0, instanceId: 'i1' }, { waiter: 1, instanceId: 'i1' }], start: [], evict: [] },
    },
    {
      name: 'starts one load however many wait for a model (single flight)',
      capacity: 2,
      entries: [],
      waiters: ['a', 'a', 'a'],
      plan: { serve: [], start: ['a'], evict: [] },
    },
    {
      name: 'joins a load under way',
      capacity: 2,
      entries: [entry('i1', 'a', 'starting')],
      waiters: ['a'],
      plan: { serve: [], start: [], evict: [] },
    },
    {
      name: 'evicts the least recently used idle instance when full',
      capacity: 2,
      entries: [entry('i1', 'a', 'ready', 0, 50), entry('i2', 'b', 'ready', 0, 10)],
      waiters: ['c'],
      plan: { serve: [], start: [], evict: ['i2'] },
    },
    {
      name: 'never evicts an instance with requests in flight, nor a pinned one',
      capacity: 2,
      entries: [entry('i1', 'a', 'ready', 1, 0), entry('i2', 'b', 'ready', 0, 0, true)],
      waiters: ['c'],
      plan: { serve: [], start: [], evict: [] },
    },
    {
      name: 'does not evict an instance a waiter is about to use',
      capacity: 1,
      entries: [entry('i1', 'a', 'ready', 0, 0)],
      waiters: ['a', 'b'],
      plan: { serve: [{ waiter: 0, instanceId: 'i1' }], start: [], evict: [] },
    },
    {
      name: 'claims an eviction under way instead of evicting a second instance',
      capacity: 2,
      entries: [entry('i1', 'a', 'stopping'), entry('i2', 'b', 'ready', 0, 0)],
      waiters: ['c', 'c'],
      plan: { serve: [], start: [], evict: [] },
    },
    {
      name: 'a stopping instance still holds its slot (no overlap)',
      capacity: 1,
      entries: [entry('i1', 'a', 'stopping')],
      waiters: ['a'],
      plan: { serve: [], start: [], evict: [] },
    },
    {
      name: 'several models each get a slot, in arrival order',
      capacity: 3,
      entries: [entry('i1', 'a', 'ready', 0, 5), entry('i2', 'b', 'ready', 0, 1)],
      waiters: ['c', 'd', 'e'],
      plan: { serve: [], start: ['c'], evict: ['i2', 'i1'] },
    },
  ])('$name', ({ capacity, entries, waiters, plan }) => {
    expect(planSchedule({ capacity, entries, waiters })).toEqual(plan);
  });
});

describe('planSchedule with slots and keys (fair queueing)', () => {
  const slotted = (inFlight: number, slots = 2): EntryView => ({ ...entry('i1', 'a', 'ready', inFlight), slots });
  const k = (key: string) => ({ key, weight: 2 });
  it.each([
    { name: 'a full instance serves nobody: they wait in the pool', entries: [slotted(2)], keys: undefined, waiters: 3, serve: [] },
    { name: 'free slots go in arrival order without keys', entries: [slotted(1)], keys: undefined, waiters: 3, serve: [0] },
    { name: 'no slots given: every waiter is served (fairness off)', entries: [entry('i1', 'a', 'ready', 5)], keys: undefined, waiters: 3, serve: [0, 1, 2] },
    { name: 'a flood from A then one from B: B takes one of the two free slots', entries: [slotted(0)], keys: [k('A'), k('A'), k('A'), k('A'), k('B')], waiters: 5, serve: [0, 4] },
  ])('$name', ({ entries, keys, waiters, serve }) => {
    const plan = planSchedule({ capacity: 1, entries, waiters: Array(waiters).fill('a'), waiterKeys: keys });
    expect(plan.serve).toEqual(serve.map((waiter) => ({ waiter, instanceId: 'i1' })));
    expect(plan.start).toEqual([]);
  });

  it('carries the keys\' virtual times from plan to plan, so one freed slot at a time still alternates', () => {
    const first = planSchedule({ capacity: 1, entries: [slotted(1)], waiters: ['a', 'a', 'a'], waiterKeys: [k('A'), k('A'), k('B')] });
    expect(first.serve).toEqual([{ waiter: 0, instanceId: 'i1' }]);
    const second = planSchedule({ capacity: 1, entries: [slotted(1)], waiters: ['a', 'a'], waiterKeys: [k('A'), k('B')], vtime: first.vtime });
    expect(second.serve).toEqual([{ waiter: 1, instanceId: 'i1' }]);
  });
});
