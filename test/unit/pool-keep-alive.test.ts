import { afterEach, describe, expect, it } from 'vitest';
import type { ResolvedModel } from '../../src/models/index.js';
import { Pool } from '../../src/pool/pool.js';
import { fakeLauncher } from '../helpers/fake-instance.js';

function model(id: string, extra: Partial<ResolvedModel> = {}): ResolvedModel {
  return { id, file: `/models/${id}.gguf`, ref: { kind: 'alias', alias: id }, ctx: 512, parallel: 1, args: [], ttl: 0, pinned: false, ...extra };
}

let pool: Pool | undefined;
afterEach(async () => {
  await pool?.shutdown();
  pool = undefined;
});

function makePool(): Pool {
  let port = 50000;
  pool = new Pool({
    capacity: 4,
    maxQueue: 10,
    queueTimeoutMs: 5000,
    sweepIntervalMs: 10,
    launcher: fakeLauncher,
    ports: { acquire: async () => port++, release: () => {} },
  });
  return pool;
}

const ids = (p: Pool) => p.list().map((i) => i.modelId);
const settle = () => new Promise((r) => setTimeout(r, 30));

describe('pool: per-instance idle timeout (Ollama keep_alive)', () => {
  it('unload: stopped when its last request is released, not before', async () => {
    const p = makePool();
    const first = await p.acquire(model('a'));
    const second = await p.acquire(model('a'));
    first.keepAlive('unload');
    first.release();
    await settle();
    expect(ids(p)).toEqual(['a']);
    second.release();
    await settle();
    expect(ids(p)).toEqual([]);
  });

  it('seconds: a timeout of its own, shown as expiresAt; a later request without one restores the model\'s ttl', async () => {
    const p = makePool();
    const lease = await p.acquire(model('a', { ttl: 0 }));
    lease.keepAlive({ seconds: 0.05 });
    lease.release();
    const info = p.list()[0]!;
    expect(info.ttl).toBe(0.05);
    expect(info.expiresAt).toBeGreaterThanOrEqual(info.lastUsed);
    expect(info.expiresAt).toBeLessThanOrEqual(info.lastUsed + 50);
    await new Promise((r) => setTimeout(r, 120));
    expect(ids(p)).toEqual([]);

    const again = await p.acquire(model('a', { ttl: 0 }));
    again.keepAlive({ seconds: 0.05 });
    again.release();
    const third = await p.acquire(model('a', { ttl: 0 }));
    third.keepAlive('default');
    third.release();
    expect(p.list()[0]).toMatchObject({ ttl: 0, expiresAt: null });
    await new Promise((r) => setTimeout(r, 120));
    expect(ids(p)).toEqual(['a']);
  });

  it('forever: never stopped for idleness, even when the model has a ttl', async () => {
    const p = makePool();
    const lease = await p.acquire(model('a', { ttl: 0.05 }));
    lease.keepAlive('forever');
    lease.release();
    expect(p.list()[0]!.expiresAt).toBeNull();
    await new Promise((r) => setTimeout(r, 120));
    expect(ids(p)).toEqual(['a']);
  });

  it('a pinned model ignores keep_alive', async () => {
    const p = makePool();
    const lease = await p.acquire(model('a', { pinned: true }));
    lease.keepAlive('unload');
    lease.release();
    await settle();
    expect(ids(p)).toEqual(['a']);
  });

  it('unload(model) stops its variants too', async () => {
    const p = makePool();
    (await p.acquire(model('a'))).release();
    (await p.acquire(model('a#ctx1024', { variantOf: 'a', ctx: 1024 }))).release();
    (await p.acquire(model('b'))).release();
    expect(p.list().find((i) => i.modelId === 'a#ctx1024')).toMatchObject({ ctx: 1024, variantOf: 'a' });
    await p.unload('a');
    expect(ids(p)).toEqual(['b']);
  });
});
