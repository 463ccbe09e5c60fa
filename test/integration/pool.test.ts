import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { llamaTools } from '../helpers/llama.js';
import { isAlive, waitFor } from '../helpers/processes.js';
import { modelsFolder, postJson, startTestProxy, type TestProxy } from '../helpers/proxy.js';
import { readStream } from '../helpers/sse.js';

const tools = llamaTools();
const chat = (model: string, extra: Record<string, unknown> = {}) => ({
  model,
  messages: [{ role: 'user', content: 'Tell me a story' }],
  max_tokens: 8,
  temperature: 0,
  ...extra,
});
/** A generation that runs until the client stops it (or ctx fills). */
const endless = { max_tokens: 100_000, ignore_eos: true, stream: true };

function streamRequest(url: string, body: unknown, signal?: AbortSignal): Promise<Response> {
  return fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), ...(signal ? { signal } : {}) });
}

describe.skipIf(!tools.server)(`pool over real llama-server instances${tools.reason ? ` (skipped: ${tools.reason})` : ''}`, () => {
  let files: Record<number, string>;
  let root: string;
  let t: TestProxy | undefined;

  beforeAll(async () => {
    ({ root, files } = await modelsFolder([1, 2]));
  });
  afterEach(async () => {
    await t?.proxy.close();
    t = undefined;
  });

  async function proxy(pool: Record<string, unknown>, models?: Record<string, unknown>): Promise<TestProxy> {
    t = await startTestProxy(tools.server!, root, {
      pool: { size: 1, ...pool },
      models: (models ?? { a: { path: files[1]!, ctx: 1024, parallel: 2 }, b: { path: files[2]!, ctx: 1024, parallel: 2 } }) as never,
    });
    return t;
  }

  it('pool of 1, two models alternating: each answered, the other evicted, process lifetimes never overlap', async () => {
    const { url, proxy: p } = await proxy({});
    const seen: string[] = [];
    for (const model of ['a', 'b', 'a', 'b']) {
      const res = await postJson(`${url}/v1/chat/completions`, chat(model));
      expect(res.status).toBe(200);
      expect(res.json.model).toBe(model);
      const running = p.pool.list();
      expect(running.map((r) => r.modelId)).toEqual([model]);
      seen.push(running[0]!.id);
    }
    expect(new Set(seen).size).toBe(4);
    const instances = seen.map((id) => p.pool.instance(id)!);
    for (let i = 1; i < instances.length; i++) {
      const previous = instances[i - 1]!;
      expect(previous.exitedAt).toBeDefined();
      expect(previous.exitedAt!).toBeLessThanOrEqual(instances[i]!.createdAt);
    }
  });

  it('32 concurrent requests for an unloaded model: one llama-server start, all answered', async () => {
    const { url, proxy: p } = await proxy({ size: 2 }, { a: { path: files[1]!, ctx: 2048, parallel: 4 } });
    let starts = 0;
    p.pool.on('starting', () => starts++);
    const results = await Promise.all(Array.from({ length: 32 }, (_, i) => postJson(`${url}/v1/completions`, { model: 'a', prompt: `n${i}`, max_tokens: 4 })));
    expect(results.map((r) => r.status)).toEqual(Array(32).fill(200));
    expect(starts).toBe(1);
    expect(p.pool.list()).toHaveLength(1);
  });

  it('a busy instance is not evicted: the other model waits, and is answered after the stream ends', async () => {
    const { url, proxy: p } = await proxy({});
    const streamRes = await streamRequest(url, chat('a', { max_tokens: 200, ignore_eos: true, stream: true }));
    let bDone = 0;
    let bStatus = 0;
    let bPromise: Promise<void> | undefined;
    let aPid = 0;
    const record = await readStream(streamRes, (_text, index) => {
      if (index !== 0) return;
      aPid = p.pool.list()[0]!.pid!;
      bPromise = postJson(`${url}/v1/chat/completions`, chat('b')).then((r) => {
        bStatus = r.status;
        bDone = Date.now();
      });
    });
    await bPromise;
    expect(record.done).toBe(true);
    expect(bStatus).toBe(200);
    expect(bDone).toBeGreaterThanOrEqual(record.endedAt);
    // a was stopped only after its stream: it is gone now, b runs
    expect(isAlive(aPid)).toBe(false);
    expect(p.pool.list().map((r) => r.modelId)).toEqual(['b']);
  });

  it('the waiting request gets 503 with Retry-After when the queue timeout runs out', async () => {
    const { url } = await proxy({ queueTimeout: 1 }, { a: { path: files[1]!, ctx: 16384 }, b: { path: files[2]!, ctx: 512 } });
    const abort = new AbortController();
    const streamRes = await streamRequest(url, chat('a', endless), abort.signal);
    const reader = streamRes.body!.getReader();
    await reader.read();
    const started = Date.now();
    const res = await postJson(`${url}/v1/chat/completions`, chat('b'));
    expect(res.status, JSON.stringify(res.json)).toBe(503);
    expect(res.headers.get('retry-after')).toBe('1');
    expect(res.json.error.code).toBe('queue_timeout');
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    abort.abort();
  });

  it('503 at once when the queue is full', async () => {
    const { url } = await proxy({ maxQueue: 0 });
    const res = await postJson(`${url}/v1/chat/completions`, chat('a'));
    expect(res.status).toBe(503);
    expect(res.json.error.code).toBe('queue_full');
    expect(res.headers.get('retry-after')).toBeTruthy();
  });

  it('streams chunk by chunk: the first chunk arrives while llama-server is still generating', async () => {
    // Long enough (4000 tokens) that the slot is still busy when the first chunk has arrived.
    const { url } = await proxy({}, { a: { path: files[1]!, ctx: 8192 } });
    const res = await streamRequest(url, chat('a', { max_tokens: 4000, ignore_eos: true, stream: true }));
    expect(res.headers.get('content-type')).toContain('text/event-stream');
    let slotBusyAtFirstChunk: boolean | undefined;
    const record = await readStream(res, async (_text, index) => {
      if (index !== 0) return;
      const slots = (await (await fetch(`${url}/slots?model=a`)).json()) as { is_processing: boolean }[];
      slotBusyAtFirstChunk = slots.some((s) => s.is_processing);
    });
    expect(record.done).toBe(true);
    expect(slotBusyAtFirstChunk).toBe(true);
    expect(record.text.split('\n').filter((l) => l.startsWith('data: {')).length).toBeGreaterThan(100);
    expect(record.chunks.length).toBeGreaterThan(1);
    expect(record.chunks[0]!.at).toBeLessThan(record.endedAt);
  });

  it('a client that disconnects cancels the generation (the slot becomes idle)', async () => {
    const { url, proxy: p } = await proxy({});
    const abort = new AbortController();
    const res = await streamRequest(url, chat('a', endless), abort.signal);
    const reader = res.body!.getReader();
    for (let i = 0; i < 3; i++) await reader.read();
    abort.abort();
    const idle = await waitFor(() => p.pool.list()[0]?.inFlight === 0, 3000);
    expect(idle).toBe(true);
    let slotsIdle = false;
    const deadline = Date.now() + 5000;
    while (!slotsIdle && Date.now() < deadline) {
      const slots = (await (await fetch(`${url}/slots?model=a`)).json()) as { is_processing: boolean }[];
      slotsIdle = slots.every((s) => !s.is_processing);
      if (!slotsIdle) await new Promise((r) => setTimeout(r, 100));
    }
    expect(slotsIdle).toBe(true);
  });

  it('kill -9 of an instance mid-stream: the stream ends promptly with an error event; the next request gets a fresh instance', async () => {
    // A context of 16k tokens: the endless generation outlasts the first chunk by far, whatever the machine's load.
    const { url, proxy: p } = await proxy({}, { a: { path: files[1]!, ctx: 16384 } });
    const res = await streamRequest(url, chat('a', endless));
    let pid = 0;
    let killedAt = 0;
    const record = await readStream(res, (_text, index) => {
      if (index !== 0) return;
      pid = p.pool.list()[0]!.pid!;
      killedAt = Date.now();
      process.kill(pid, 'SIGKILL');
    });
    expect(killedAt).toBeGreaterThan(0);
    expect(record.endedAt - killedAt).toBeLessThan(3000);
    expect(record.done).toBe(false);
    expect(record.text).toMatch(/"code":"upstream_error"/);
    expect(record.text).toContain('model \\"a\\"');
    expect(record.text).toContain('SIGKILL');

    const next = await postJson(`${url}/v1/chat/completions`, chat('a'));
    expect(next.status).toBe(200);
    const newPid = p.pool.list()[0]!.pid!;
    expect(newPid).not.toBe(pid);
  });

  it('a model that fails to load gets 502 naming it, and 503 once it keeps failing', async () => {
    const { url } = await proxy({}, { broken: { path: files[1]!, args: ['--no-such-flag'] } });
    const first = await postJson(`${url}/v1/chat/completions`, chat('broken'));
    expect(first.status).toBe(502);
    expect(first.json.error.code).toBe('model_load_failed');
    expect(first.json.error.message).toContain('"broken"');
    await postJson(`${url}/v1/chat/completions`, chat('broken'));
    await postJson(`${url}/v1/chat/completions`, chat('broken'));
    const blocked = await postJson(`${url}/v1/chat/completions`, chat('broken'));
    expect(blocked.status).toBe(503);
    expect(blocked.json.error.code).toBe('model_failing');
    expect(blocked.json.error.message).toMatch(/failed 3 times/);
    expect(Number(blocked.headers.get('retry-after'))).toBeGreaterThan(0);
  });

  it('idle TTL unloads an instance; pinned models load at start and are never evicted', async () => {
    const { url, proxy: p } = await proxy({ size: 2 }, {
      pinned: { path: files[1]!, ctx: 512, pinned: true },
      brief: { path: files[2]!, ctx: 512, ttl: 1 },
      other: { path: files[2]!, ctx: 512 },
    });
    expect(await waitFor(() => p.pool.list().some((i) => i.modelId === 'pinned' && i.state === 'ready'), 20_000)).toBe(true);
    expect((await postJson(`${url}/v1/chat/completions`, chat('brief'))).status).toBe(200);
    expect(await waitFor(() => !p.pool.list().some((i) => i.modelId === 'brief'), 5000)).toBe(true);
    // pool is 2: "other" loads beside the pinned one; then "brief" must evict "other", never "pinned"
    expect((await postJson(`${url}/v1/chat/completions`, chat('other'))).status).toBe(200);
    expect((await postJson(`${url}/v1/chat/completions`, chat('brief'))).status).toBe(200);
    expect(p.pool.list().map((i) => i.modelId).sort()).toEqual(['brief', 'pinned']);
  });
});
