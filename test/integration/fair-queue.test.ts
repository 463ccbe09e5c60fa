/**
 * Fair queueing (issue 15 item 2) with the real llama-server: one instance of 2 slots; key a sends 40 streamed
 * requests at once, then key b sends one. With pool.fairness, b's request starts within a turn or two of the
 * slots freeing; without it, b waits behind every one of a's.
 */
import { afterEach, describe, expect, it } from 'vitest';
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

  /** How many of a's requests started streaming after b was sent and before b did. */
  async function aheadOfB(fairness: boolean): Promise<number> {
    const { root, files } = await modelsFolder([71]);
    t = await startTestProxy(tools.server!, root, {
      server: { keys: [{ name: 'a', key: 'key-a-000' }, { name: 'b', key: 'key-b-000' }] },
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
    await (await fetch(`${url}/models/load`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer key-a-000' }, body: JSON.stringify({ model: 'm' }) })).text();
    const floods = Array.from({ length: 40 }, () => firstChunk('key-a-000'));
    if (fairness) expect(await waitFor(() => t!.proxy.pool.queued >= 30, 10_000)).toBe(true);
    else await new Promise((r) => setTimeout(r, 300));
    const sentB = performance.now();
    const b = await firstChunk('key-b-000');
    const a = await Promise.all(floods);
    return a.filter((at) => at > sentB && at < b).length;
  }

  it("serves b within a turn of a's flood with fairness on, after all of a's with it off", async () => {
    const fair = await aheadOfB(true);
    await t!.proxy.close();
    t = undefined;
    const unfair = await aheadOfB(false);
    console.log(`a's requests that started between b's sending and b's first chunk: fairness on ${fair}, off ${unfair}`);
    expect(fair).toBeLessThan(5);
    expect(unfair).toBeGreaterThan(20);
  }, 120_000);
});
