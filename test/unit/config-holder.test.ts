import { describe, expect, it } from 'vitest';
import { buildConfig, type Config } from '../../src/config/index.js';
import { ConfigHolder } from '../../src/config/holder.js';

const cfg = (models: Record<string, { path: string; ctx?: number }>) => buildConfig({ models }, null, { env: {} });

describe('ConfigHolder', () => {
  it('swaps on a good reload and tells listeners the plan', async () => {
    const next = cfg({ a: { path: '/a.gguf', ctx: 1024 }, b: { path: '/b.gguf' } });
    const holder = new ConfigHolder(cfg({ a: { path: '/a.gguf' } }), () => next, () => new Date('2026-01-01T00:00:00Z'));
    const seen: string[][] = [];
    holder.on('change', (_n: Config, _p: Config, plan) => seen.push([...plan.added, ...plan.changed]));
    const outcome = await holder.reload();
    expect(outcome).toMatchObject({ ok: true, plan: { added: ['b'], changed: ['a'], removed: [] } });
    expect(holder.current).toBe(next);
    expect(seen).toEqual([['b', 'a']]);
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
});
