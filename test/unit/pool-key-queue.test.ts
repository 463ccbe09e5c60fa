/** pool.maxQueuePerKey and Pool.tune (a reload's queue settings), on a pool whose instances start without a process. */
import { afterEach, describe, expect, it } from 'vitest';
import type { ResolvedModel } from '../../src/models/index.js';
import { PoolError } from '../../src/pool/errors.js';
import { Pool } from '../../src/pool/pool.js';
import { fakeLauncher } from '../helpers/fake-instance.js';

const model: ResolvedModel = { id: 'a', file: '/models/a.gguf', ref: { kind: 'alias', alias: 'a' }, ctx: 512, parallel: 1, args: [], ttl: 0, pinned: false };
let pool: Pool | undefined;
afterEach(async () => {
  await pool?.shutdown();
  pool = undefined;
});

function makePool(maxQueuePerKey?: number): Pool {
  let port = 51000;
  pool = new Pool({
    capacity: 1,
    maxQueue: 10,
    maxQueuePerKey,
    fairness: true,
    queueTimeoutMs: 5000,
    launcher: fakeLauncher,
    ports: { acquire: async () => port++, release: () => {} },
  });
  return pool;
}

const key = (name: string, maxQueue?: number) => ({ key: name, weight: 2, ...(maxQueue !== undefined ? { maxQueue } : {}) });

async function refusal(p: Promise<unknown>): Promise<PoolError | undefined> {
  try {
    await p;
    return undefined;
  } catch (err) {
    return err as PoolError;
  }
}

describe('pool: per-key queue limit', () => {
  it('refuses a key over pool.maxQueuePerKey with 429 while another key still queues', async () => {
    const p = makePool(2);
    const held = await p.acquire(model, undefined, key('a'));
    const waiting = [p.acquire(model, undefined, key('a')), p.acquire(model, undefined, key('a'))];
    const over = await refusal(p.acquire(model, undefined, key('a')));
    expect(over).toMatchObject({ status: 429, code: 'key_queue_full' });
    expect(over?.message).toContain('pool.maxQueuePerKey');
    const other = p.acquire(model, undefined, key('b'));
    expect(p.queued).toBe(3);
    held.release();
    // Each released as it is served (fair order: b's may come before a's second).
    await Promise.all([...waiting, other].map((lease) => lease.then((l) => l.release())));
  });

  it("a key's own maxQueue wins over pool.maxQueuePerKey", async () => {
    const p = makePool(1);
    const held = await p.acquire(model, undefined, key('a', 3));
    const waiting = [1, 2, 3].map(() => p.acquire(model, undefined, key('a', 3)));
    const over = await refusal(p.acquire(model, undefined, key('a', 3)));
    expect(over?.message).toContain('its maxQueue');
    held.release();
    await Promise.all(waiting.map((lease) => lease.then((l) => l.release())));
  });

  it('tune applies a reload: a lower global maxQueue refuses the next waiter with 503', async () => {
    const p = makePool();
    const held = await p.acquire(model, undefined, key('a'));
    const first = p.acquire(model, undefined, key('b'));
    p.tune({ capacity: 1, maxQueue: 1, fairness: true, queueTimeoutMs: 5000, drainTimeoutMs: 1000 });
    expect(await refusal(p.acquire(model, undefined, key('c')))).toMatchObject({ status: 503, code: 'queue_full' });
    held.release();
    (await first).release();
  });
});
