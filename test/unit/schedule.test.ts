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
