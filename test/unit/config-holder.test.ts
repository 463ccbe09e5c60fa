import { describe, expect, it } from 'vitest';
import { buildConfig, type Config } from '../../src/config/index.js';
import { ConfigHolder } from '../../src/config/holder.js';

const cfg = (models: Record<string, { path: string; ctx?: number }>) => buildConfig({ models }, null, { env: {} });

describe('ConfigHolder', () => {
  it('swaps on a good reload and tells listeners the plan', async () => {
    const next = cfg({ a: { path: '/a.gguf', ctx: 1024 }, b: { path: '/b.gguf' } });
    const live = cfg({ a: { path: '/a.gguf' } });
    const models = live.models;
    const holder = new ConfigHolder(live, () => next, () => new Date('2026-01-01T00:00:00Z'));
    const seen: string[][] = [];
    holder.on('change', (_n: Config, _p: Config, plan) => seen.push([...plan.added, ...plan.changed]));
    const outcome = await holder.reload();
    expect(outcome).toMatchObject({ ok: true, plan: { added: ['b'], changed: ['a'], removed: [] } });
    // The same object, its sections replaced: whoever holds the config sees the new models.
    expect(holder.current).toBe(live);
    expect(live.models).toBe(next.models);
    expect(live.models).not.toBe(models);
    expect(seen).toEqual([['b', 'a']]);
    expect(holder.loadedAt).toBe('2026-01-01T00:00:00.000Z');
  });
  it('keeps the running config when the file is invalid, and says why', async () => {
    const initial = cfg({ a: { path: '/a.gguf' } });
    const holder = new ConfigHolder(initial, () => buildConfig({ models: { a: { ctx: -1 } } }, null, { env: {} }));
    let changes = 0;
    holder.on('change', () => changes++);
    const outcome = await holder.reload();
    expect(outcome.ok).toBe(false);
    expect(outcome.error).toMatch(/invalid/);
    expect(holder.current).toBe(initial);
    expect(holder.lastReload).toBe(outcome);
    expect(changes).toBe(0);
  });
  it('keeps restart-only settings at their running values and reports them', async () => {
    const live = buildConfig({ server: { port: 8080, apiKeys: [] }, models: {} }, null, { env: {} });
    const holder = new ConfigHolder(live, () => buildConfig({ server: { port: 9999, apiKeys: ['sk-abcdefabcdef1234'] }, pool: { maxQueue: 3 } }, null, { env: {} }));
    const outcome = await holder.reload();
    expect(outcome.plan?.needsRestart).toEqual(['server.port']);
    expect(live.server.port).toBe(8080);
    expect(live.server.apiKeys).toEqual(['sk-abcdefabcdef1234']);
    expect(live.pool.maxQueue).toBe(3);
  });
  it('runs reloads one at a time', async () => {
    let inside = 0;
    let most = 0;
    const holder = new ConfigHolder(cfg({}), async () => {
      most = Math.max(most, ++inside);
      await new Promise((r) => setTimeout(r, 5));
      inside--;
      return cfg({ x: { path: '/x.gguf' } });
    });
    const outcomes = await Promise.all([holder.reload(), holder.reload(), holder.reload()]);
    expect(most).toBe(1);
    expect(outcomes.map((o) => o.plan?.added)).toEqual([['x'], [], []]);
  });
});
