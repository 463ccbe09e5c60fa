import { describe, expect, it } from 'vitest';
import { RingBuffer } from '../../src/util/ring-buffer.js';

describe('RingBuffer', () => {
  it('keeps the last items in order, before and after wrapping', () => {
    const r = new RingBuffer<number>(3);
    expect(r.toArray()).toEqual([]);
    r.push(1);
    r.push(2);
    expect(r.toArray()).toEqual([1, 2]);
    for (const n of [3, 4, 5, 6, 7]) r.push(n);
    expect(r.toArray()).toEqual([5, 6, 7]);
    expect(r.last(2)).toEqual([6, 7]);
    expect(r.last(10)).toEqual([5, 6, 7]);
    expect(r.last(0)).toEqual([]);
    expect(r.length).toBe(3);
    r.push(8);
    expect(r.toArray()).toEqual([6, 7, 8]);
  });

  it('refuses a capacity that cannot hold anything', () => {
    expect(() => new RingBuffer(0)).toThrow(/positive integer/);
  });
});
