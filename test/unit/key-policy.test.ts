import { describe, expect, it } from 'vitest';
import { adminOnly, admit, globMatches, modelAllowed } from '../../src/policy/key-policy.js';
import { KeyLimiter } from '../../src/policy/limiter.js';
import { UsageBook } from '../../src/policy/usage.js';
import { identifyKey, knownKeys } from '../../src/api/auth.js';
import { ConfigSchema } from '../../src/config/index.js';
import { createHash } from 'node:crypto';

describe('globMatches / modelAllowed', () => {
  it.each([
    ['llama-*', 'llama-3b', true],
    ['llama-*', 'qwen', false],
    ['qwen', 'qwen', true],
    ['qwen', 'qwen2', false],
    ['unsloth/*:Q4_K_M', 'unsloth/Qwen3-0.6B-GGUF:Q4_K_M', true],
    ['tiny-?', 'tiny-a', true],
    ['a.b', 'axb', false],
  ])('%s vs %s -> %s', (glob, name, want) => expect(globMatches(glob, name)).toBe(want));
  it('no list allows all; any name of the model may match', () => {
    expect(modelAllowed(undefined, ['x'])).toBe(true);
    expect(modelAllowed(['org/*'], ['alias', 'org/repo:Q4'])).toBe(true);
    expect(modelAllowed(['org/*'], ['alias'])).toBe(false);
    expect(modelAllowed([], ['alias'])).toBe(false);
  });
});

describe('admit', () => {
  const now = 1_000_000_000_000;
  it.each([
    [{}, { inFlight: 9, recentStarts: [], tokensToday: 9e9 }, true, undefined],
    [{ maxConcurrent: 2 }, { inFlight: 1, recentStarts: [], tokensToday: 0 }, true, undefined],
    [{ maxConcurrent: 2 }, { inFlight: 2, recentStarts: [], tokensToday: 0 }, false, 'maxConcurrent'],
    [{ requestsPerMinute: 2 }, { inFlight: 0, recentStarts: [now - 70_000, now - 30_000], tokensToday: 0 }, true, undefined],
    [{ requestsPerMinute: 2 }, { inFlight: 0, recentStarts: [now - 50_000, now - 30_000], tokensToday: 0 }, false, 'requestsPerMinute'],
    [{ tokensPerDay: 100 }, { inFlight: 0, recentStarts: [], tokensToday: 99 }, true, undefined],
    [{ tokensPerDay: 100 }, { inFlight: 0, recentStarts: [], tokensToday: 100 }, false, 'tokensPerDay'],
  ] as const)('%j %j -> %s %s', (limits, usage, ok, limit) => {
    const d = admit('alice', limits, usage, now);
    expect(d.ok).toBe(ok);
    if (!d.ok) {
      expect(d.limit).toBe(limit);
      expect(d.message).toContain('"alice"');
      expect(d.retryAfterS).toBeGreaterThanOrEqual(1);
    }
  });
  it('requestsPerMinute: Retry-After is when the oldest of the window is a minute old', () => {
    const d = admit('a', { requestsPerMinute: 2 }, { inFlight: 0, recentStarts: [now - 50_000, now - 30_000], tokensToday: 0 }, now);
    expect(d.ok ? 0 : d.retryAfterS).toBe(10);
  });
});

describe('adminOnly', () => {
  it.each([
    ['POST', '/models/load', true],
    ['POST', '/models/unload', true],
    ['GET', '/logs/abc', true],
    ['POST', '/api/pull', true],
    ['DELETE', '/api/delete', true],
    ['POST', '/admin/reload', true],
    ['GET', '/usage?key=a', true],
    ['GET', '/requests?limit=5', true],
    ['GET', '/requests/stream', true],
    ['GET', '/requests/12', true],
    ['GET', '/logs/proxy/stream', true],
    ['GET', '/plan?model=a', false],
    ['GET', '/models', false],
    ['POST', '/v1/chat/completions', false],
    ['GET', '/v1/models', false],
    ['GET', '/api/tags', false],
    ['GET', '/api/ps', false],
    ['GET', '/health', false],
    ['GET', '/status', false],
    ['GET', '/metrics', false],
  ])('%s %s -> %s', (method, url, want) => expect(adminOnly(method, url)).toBe(want));
});

describe('KeyLimiter', () => {
  it('counts in flight and frees on finish; tokens renew on a new UTC day', () => {
    const l = new KeyLimiter();
    const t = Date.UTC(2026, 0, 1, 23, 59);
    expect(l.tryStart('a', { maxConcurrent: 1 }, t).ok).toBe(true);
    expect(l.tryStart('a', { maxConcurrent: 1 }, t).ok).toBe(false);
    l.finish('a');
    expect(l.tryStart('a', { maxConcurrent: 1 }, t).ok).toBe(true);
    l.addTokens('b', 50, t);
    expect(l.tryStart('b', { tokensPerDay: 50 }, t).ok).toBe(false);
    expect(l.tryStart('b', { tokensPerDay: 50 }, t + 120_000).ok).toBe(true);
  });
});

describe('UsageBook', () => {
  it('totals per key and model, and since a time', () => {
    const u = new UsageBook(0);
    u.record('a', 'm', { requests: 1, promptTokens: 3, completionTokens: 4 }, 10 * 3_600_000);
    u.record('a', 'm', { requests: 1, errors: 1 }, 20 * 3_600_000);
    expect(u.report().a!.m).toEqual({ requests: 2, errors: 1, promptTokens: 3, completionTokens: 4 });
    expect(u.report({ since: 15 * 3_600_000 }).a!.m).toEqual({ requests: 1, errors: 1, promptTokens: 0, completionTokens: 0 });
    expect(u.report({ key: 'b' })).toEqual({});
  });
});

describe('keys config', () => {
  const sha = createHash('sha256').update('s3cret').digest('hex');
  it('keys by value or SHA-256; apiKeys are admin', () => {
    const c = ConfigSchema.parse({ server: { apiKeys: ['old'], keys: [{ name: 'alice', key: 'k1' }, { name: 'ci', keySha256: sha, priority: 'low' }] } });
    const known = knownKeys(c.server.apiKeys, c.server.keys);
    expect(identifyKey('old', known)?.role).toBe('admin');
    expect(identifyKey('k1', known)?.name).toBe('alice');
    expect(identifyKey('k1', known)?.role).toBe('user');
    expect(identifyKey('s3cret', known)?.policy.priority).toBe('low');
    expect(identifyKey('nope', known)).toBeUndefined();
  });
  it.each([
    [[{ name: 'a' }], 'exactly one of'],
    [[{ name: 'a', key: 'x', keySha256: sha }], 'exactly one of'],
    [[{ name: 'a', keySha256: 'abc' }], '64 hex'],
    [[{ name: 'a', key: 'x' }, { name: 'a', key: 'y' }], 'used twice'],
  ])('refuses %j', (keys, message) => {
    const r = ConfigSchema.safeParse({ server: { keys } });
    expect(r.success).toBe(false);
    expect(JSON.stringify(r.error?.issues)).toContain(message);
  });
});
