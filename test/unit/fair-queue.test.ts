import { describe, expect, it } from 'vitest';
import { pickFair, PRIORITY_WEIGHT, type FairWaiter } from '../../src/pool/fair-queue.js';

const w = (key: string, weight = 2): FairWaiter => ({ key, weight });

/** Serves one slot at a time, as a pool whose slots free one by one, and returns the keys in service order. */
function serveOneByOne(waiters: FairWaiter[], arrivals: { at: number; waiter: FairWaiter }[] = []): string[] {
  const queue = [...waiters];
  let vtime = new Map<string, number>();
  const order: string[] = [];
  for (let turn = 0; queue.length > 0 || arrivals.some((a) => a.at >= turn); turn++) {
    for (const a of arrivals) if (a.at === turn) queue.push(a.waiter);
    const pick = pickFair(queue, vtime, 1);
    vtime = pick.vtime;
    const [i] = pick.picked;
    if (i === undefined) continue;
    order.push(queue[i]!.key);
    queue.splice(i, 1);
  }
  return order;
}

describe('pickFair', () => {
  it.each([
    { name: 'one key: FIFO', waiters: [w('a'), w('a'), w('a')], slots: 2, picked: [0, 1] },
    { name: 'a flood from A then one from B: B is served within one turn', waiters: [...Array(10).fill(w('a')), w('b')], slots: 2, picked: [0, 10] },
    { name: 'alternates between keys, FIFO within each', waiters: [w('a'), w('a'), w('b'), w('b')], slots: 4, picked: [0, 2, 1, 3] },
    { name: 'weights: high (4) is served 4 times for low (1) once', waiters: [...Array(6).fill(w('h', 4)), ...Array(6).fill(w('l', 1))], slots: 5, picked: [0, 6, 1, 2, 3] },
    { name: 'no more picks than waiters', waiters: [w('a')], slots: 3, picked: [0] },
    { name: 'no slots: nothing picked', waiters: [w('a')], slots: 0, picked: [] },
  ])('$name', ({ waiters, slots, picked }) => {
    expect(pickFair(waiters, new Map(), slots).picked).toEqual(picked);
  });

  it('a key behind in virtual time is served first; a key with nothing waiting is skipped and forgotten', () => {
    const pick = pickFair([w('a'), w('b')], new Map([['a', 5], ['b', 3], ['idle', 0]]), 1);
    expect(pick.picked).toEqual([1]);
    expect([...pick.vtime.keys()].sort()).toEqual(['a', 'b']);
  });

  it('a key that was idle banks no credit: it starts at the least virtual time of those waiting', () => {
    const pick = pickFair([w('a'), w('a'), w('b'), w('b')], new Map([['a', 10]]), 4);
    expect(pick.picked).toEqual([0, 2, 1, 3]);
  });

  it('slots freeing one by one: a flood of 40 from A, then B, is served by the 2nd turn', () => {
    const order = serveOneByOne(Array(40).fill(w('a')), [{ at: 3, waiter: w('b') }]);
    expect(order.indexOf('b')).toBeLessThanOrEqual(4);
    expect(order).toHaveLength(41);
  });

  it('weights from priority: low 1, normal 2, high 4', () => {
    expect(PRIORITY_WEIGHT).toEqual({ low: 1, normal: 2, high: 4 });
    const order = serveOneByOne([...Array(8).fill(w('n', PRIORITY_WEIGHT.normal)), ...Array(8).fill(w('l', PRIORITY_WEIGHT.low))]);
    expect(order.slice(0, 6).join('')).toBe('nlnnln');
  });
});
