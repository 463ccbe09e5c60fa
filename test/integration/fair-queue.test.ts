/**
 * Fair queueing (issue 15 item 2) with the real llama-server: one instance of 2 slots; key a sends 40 streamed
 * requests at once, then key b sends one. With pool.fairness, b's request starts within a turn or two of the
 * slots freeing; without it, b waits behind every one of a's.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { llamaTools } from '../helpers/llama.js';
import { waitFor } from '../helpers/processes.js';
import { modelsFolder, startTestProxy, type TestProxy } from '../helpers/proxy.js';

const tools = llamaTools();

describe.skipIf(!tools.server)(`fair queueing across keys${tools.reason ? ` (skipped: ${tools.reason})` : ''}`, () => {
  let t: TestProxy | undefined;
  afterEach(async () => {
    await t?.proxy.close();
    t = undefined;
  });

  /**
   * Of a's 40 requests, how many started (sent their first chunk) before b's. The instance is held (SIGSTOP)
   * while they line up, so all 40 of a's and then b are waiting when it resumes, however slowly a loaded machine
   * delivers them; with fairness on 38 of a's wait in the pool's queue (2 took the slots), off all took the
   * instance and wait in line for its connections.
   */
  async function aheadOfB(fairness: boolean): Promise<number> {
    const { root, files } = await modelsFolder([71]);
    t = await startTestProxy(tools.server!, root, {
      server: { keys: [{ name: 'a', key: 'key-a-000' }, { name: 'b', key: 'key-b-000' }, { name: 'admin', key: 'key-admin-0', role: 'admin' }] },
      pool: { size: 1, fairness, maxQueue: 100 },
      models: { m: { path: files[71]!, ctx: 2048, parallel: 2 } },
    } as never);
    const url = t.url;
    const firstChunk = async (key: string): Promise<number> => {
      const res = await fetch(`${url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
        body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }], max_tokens: 24, stream: true }),
      });
      expect(res.status).toBe(200);
      const reader = res.body!.getReader();
      await reader.read();
      const at = performance.now();
      while (!(await reader.read()).done);
      return at;
    };
    // Loaded first: the queue is for slots, not for the load.
    const load = await fetch(`${url}/models/load`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer key-admin-0' }, body: JSON.stringify({ model: 'm' }) });
    expect(load.status, await load.text()).toBe(200);
    let aAcquired = 0;
    let bLeased = false;
    const acquire = t.proxy.pool.acquire.bind(t.proxy.pool);
    vi.spyOn(t.proxy.pool, 'acquire').mockImplementation((model, signal, key, takesSlot) => {
      if (key?.key === 'a') aAcquired++;
      const lease = acquire(model, signal, key, takesSlot);
      if (key?.key === 'b') void lease.then(() => (bLeased = true));
      return lease;
    });
    const pid = t.proxy.pool.list()[0]!.pid!;
    process.kill(pid, 'SIGSTOP');
    const floods = Array.from({ length: 40 }, () => firstChunk('key-a-000'));
    let b: Promise<number>;
    try {
      expect(await waitFor(() => aAcquired >= 40, 10_000)).toBe(true);
      b = firstChunk('key-b-000');
      if (fairness) expect(await waitFor(() => t!.proxy.pool.queued === 39, 10_000)).toBe(true);
      else {
        // b took the instance too; its request goes out in the same turn of the loop as its lease.
        expect(await waitFor(() => bLeased, 10_000)).toBe(true);
        await new Promise((resolve) => setImmediate(resolve));
      }
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    const bAt = await b;
    const a = await Promise.all(floods);
    return a.filter((at) => at < bAt).length;
  }

  it("a key over its own maxQueue gets 429 with Retry-After; another key still queues", async () => {
    const { root, files } = await modelsFolder([72]);
    t = await startTestProxy(tools.server!, root, {
      server: { keys: [{ name: 'a', key: 'key-a-000', maxQueue: 1 }, { name: 'b', key: 'key-b-000' }] },
      pool: { size: 1, fairness: true },
      // --context-shift: the holder's stream runs past its context (a loaded machine's client can read its first
      // chunk after 1,024 tokens were generated, and the slot would be free again).
      models: { m: { path: files[72]!, ctx: 1024, args: ['--context-shift'] } },
    } as never);
    const url = t.url;
    // ignore_eos: a random model's answer can end at its end token before the checks are done.
    const send = (key: string, maxTokens: number, signal?: AbortSignal) =>
      fetch(`${url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
        body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }], max_tokens: maxTokens, ignore_eos: true, stream: true }),
        ...(signal ? { signal } : {}),
      });
    const abort = new AbortController();
    // The one slot is held by a long stream of a's; a's next request waits; a third is over a's maxQueue.
    const holder = await send('key-a-000', 100_000, abort.signal);
    await holder.body!.getReader().read();
    // Held for sure: the instance is stopped (SIGSTOP) until the checks are done, so the stream cannot end first.
    const pid = t.proxy.pool.list()[0]!.pid!;
    process.kill(pid, 'SIGSTOP');
    const queued = send('key-a-000', 2, abort.signal).catch(() => undefined);
    expect(await waitFor(() => t!.proxy.pool.queued === 1, 5000)).toBe(true);
    const over = await send('key-a-000', 2);
    expect(over.status).toBe(429);
    expect(Number(over.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(((await over.json()) as { error: { message: string } }).error.message).toContain('maxQueue');
    const other = send('key-b-000', 2, abort.signal).catch(() => undefined);
    expect(await waitFor(() => t!.proxy.pool.queued === 2, 5000)).toBe(true);
    process.kill(pid, 'SIGCONT');
    abort.abort();
    await Promise.all([queued, other]);
  });

  it("serves b within a turn of a's flood with fairness on, after all of a's with it off", async () => {
    const fair = await aheadOfB(true);
    await t!.proxy.close();
    t = undefined;
    const unfair = await aheadOfB(false);
    console.log(`of a's 40 requests, started before b's: fairness on ${fair}, off ${unfair}`);
    // On: the two in the slots when b arrived, a's next (b ties with it and the older waiter goes first), and at
    // most one more whose slot turned over fast (a random model's answer can end early at its end token).
    expect(fair).toBeLessThan(5);
    // Off: b waits behind every one of a's, but the last ones, which share the two slots with it.
    expect(unfair).toBeGreaterThanOrEqual(38);
  }, 120_000);
});
