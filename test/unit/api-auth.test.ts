import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { keyAllowed, presentedKey } from '../../src/api/auth.js';

const digest = (k: string) => createHash('sha256').update(k).digest();

describe('API key checks', () => {
  it('reads Bearer (any case) and x-api-key', () => {
    expect(presentedKey({ authorization: 'Bearer abc' })).toBe('abc');
    expect(presentedKey({ authorization: 'bearer   abc  ' })).toBe('abc');
    expect(presentedKey({ 'x-api-key': 'xyz' })).toBe('xyz');
    expect(presentedKey({ authorization: 'Basic dXNlcjpwYXNz' })).toBeUndefined();
    expect(presentedKey({})).toBeUndefined();
  });

  it('accepts only a listed key', () => {
    const allowed = [digest('one'), digest('two')];
    expect(keyAllowed('two', allowed)).toBe(true);
    expect(keyAllowed('three', allowed)).toBe(false);
    expect(keyAllowed(undefined, allowed)).toBe(false);
  });
});
