import { describe, expect, it } from 'vitest';
import { CPU, layerAssignment, splitPoints } from '../../src/estimate/index.js';

describe('layer assignment (llama_model::load_tensors)', () => {
  it('puts everything on the CPU without devices', () => {
    const a = layerAssignment(32, undefined, []);
    expect(a.layers.every((d) => d === CPU)).toBe(true);
    expect(a.output).toBe(CPU);
  });

  it('offloads everything by default, the output layer counting as one', () => {
    const a = layerAssignment(32, undefined, [1]);
    expect(a.ngl).toBe(33);
    expect(a.layers.every((d) => d === 0)).toBe(true);
    expect(a.output).toBe(0);
    expect(layerAssignment(32, -1, [1]).ngl).toBe(33);
  });

  it('offloads the output layer first, then the last repeating layers', () => {
    // -ngl 1: only the output layer
    const one = layerAssignment(32, 1, [1]);
    expect(one.output).toBe(0);
    expect(one.layers.filter((d) => d === 0)).toHaveLength(0);
    // -ngl 32 of 33: layer 0 stays on the CPU
    const most = layerAssignment(32, 32, [1]);
    expect(most.layers[0]).toBe(CPU);
    expect(most.layers.slice(1).every((d) => d === 0)).toBe(true);
    // -ngl 17: output + layers 16..31
    const half = layerAssignment(32, 17, [1]);
    expect(half.layers.findIndex((d) => d === 0)).toBe(16);
    // -ngl 0
    const none = layerAssignment(32, 0, [1]);
    expect(none.output).toBe(CPU);
    expect(none.layers.every((d) => d === CPU)).toBe(true);
    // more than there are: capped
    expect(layerAssignment(32, 99, [1]).layers.every((d) => d === 0)).toBe(true);
  });

  it('spreads offloaded layers by the cumulative split, output on the last device', () => {
    const a = layerAssignment(32, undefined, [1, 1]);
    // 33 layers: (il / 33) < 0.5 -> device 0, so layers 0..16 on device 0
    expect(a.layers.filter((d) => d === 0)).toHaveLength(17);
    expect(a.layers.filter((d) => d === 1)).toHaveLength(15);
    expect(a.output).toBe(1);
    // 3:1 split
    const b = layerAssignment(32, undefined, [3, 1]);
    expect(b.layers.filter((d) => d === 0)).toHaveLength(25); // il/33 < 0.75 -> il <= 24
    // partial offload on two devices: -ngl 9 -> layers 24..31 + output, split 1:1
    const c = layerAssignment(32, 9, [1, 1]);
    expect(c.layers.slice(0, 24).every((d) => d === CPU)).toBe(true);
    expect(c.layers.slice(24, 29)).toEqual([0, 0, 0, 0, 0]);
    expect(c.layers.slice(29)).toEqual([1, 1, 1]);
    expect(c.output).toBe(1);
  });

  it('computes split points in float32 like llama.cpp', () => {
    expect(splitPoints([1, 1, 1])).toEqual([Math.fround(1 / 3), Math.fround(2 / 3), 1]);
    // an all-zero split means even
    expect(layerAssignment(8, undefined, [0, 0]).layers).toEqual(layerAssignment(8, undefined, [1, 1]).layers);
    // with 3 devices and 30 layers + output the boundaries follow float32 rounding of il/31
    const a = layerAssignment(30, undefined, [1, 1, 1]);
    const firstOn = (d: number): number => a.layers.indexOf(d);
    expect([firstOn(0), firstOn(1), firstOn(2)]).toEqual([0, 11, 21]);
  });
});
