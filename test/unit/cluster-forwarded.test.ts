import { describe, expect, it } from 'vitest';
import { forwardedKey, parseForwardedKey } from '../../src/cluster/forwarded.js';

describe('forwarded key header', () => {
  it('round-trips a key name with spaces and unicode, and its priority', () => {
    for (const key of [{ name: 'alice', priority: 'high' as const }, { name: 'ip:::1', priority: 'normal' as const }, { name: 'team ops/é', priority: 'low' as const }]) {
      expect(parseForwardedKey(forwardedKey(key))).toEqual(key);
    }
  });
  it('ignores what is not one', () => {
    for (const bad of [undefined, '', 'alice', 'urgent alice', 'high %E0%A4%A', ['high a'], 'high a b']) expect(parseForwardedKey(bad)).toBeUndefined();
  });
});
