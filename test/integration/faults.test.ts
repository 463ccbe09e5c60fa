/**
 * Faults a proxy must keep serving through (issue 12): instance ports closed to everyone but the proxy, crashes
 * caused by requests not locking a model out, a request that meets a dead instance retried, a hung instance
 * killed and replaced, an unload that lets streams finish, the host's RAM checked before a CPU load, and a
 * shutdown that ends every stream with a last event. Real llama-server, real HTTP, loopback only.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { llamaTools } from '../helpers/llama.js';
import { isAlive, waitFor } from '../helpers/processes.js';
import { modelsFolder, postJson, startTestProxy, type TestProxy } from '../helpers/proxy.js';
import { readStream } from '../helpers/sse.js';
import type { ConfigInput } from '../../src/config/index.js';

const tools = llamaTools();

/** A full collection, then the heap in use (MiB): what the proxy keeps, without V8's lazy growth. */
function heapAfterGc(): number {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
  return process.memoryUsage().heapUsed / 2 ** 20;
}
const chat = (model: string, extra: Record<string, unknown> = {}) => ({
  model,
  messages: [{ role: 'user', content: 'Tell me a story' }],
  max_tokens: 8,
  temperature: 0,
  ...extra,
});
/** A generation that runs until the client stops it (or ctx fills). */
const endless = { max_tokens: 100_000, ignore_eos: true, stream: true };

function streamRequest(url: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
}

describe.skipIf(!tools.server)(`faults${tools.reason ? ` (skipped: ${tools.reason})` : ''}`, () => {
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

  async function proxy(input: Omit<ConfigInput, 'models'> & { models?: Record<string, unknown> } = {}): Promise<TestProxy> {
    t = await startTestProxy(tools.server!, root, {
      ...input,
      pool: { size: 1, ...input.pool },
      models: (input.models ?? { a: { path: files[1]!, ctx: 4096, parallel: 2 }, b: { path: files[2]!, ctx: 1024 } }) as never,
    });
    return t;
  }

  it('keys: an instance answers nobody but the proxy, and /health without a key names no port, pid or file', async () => {
    const { url, proxy: p } = await proxy({ server: { apiKeys: ['sesame'] } });
    const auth = { authorization: 'Bearer sesame' };
    expect((await postJson(`${url}/v1/chat/completions`, chat('a'), auth)).status).toBe(200);
    const instance = p.pool.list()[0]!;
    // Straight to the instance's port, as any user of the machine could: refused.
    const direct = await postJson(`http://127.0.0.1:${instance.port}/v1/chat/completions`, chat('a'));
    expect(direct.status).toBe(401);
    expect((await fetch(`http://127.0.0.1:${instance.port}/slots`)).status).toBe(401);
    // ... also with the proxy's own key: the instance has a secret of its own.
    expect((await postJson(`http://127.0.0.1:${instance.port}/v1/chat/completions`, chat('a'), auth)).status).toBe(401);
    // Through the proxy, llama-server's own endpoints work.
    expect((await fetch(`${url}/slots?model=a`, { headers: auth })).status).toBe(200);

    const open = (await (await fetch(`${url}/health`)).json()) as Record<string, unknown>;
    expect(open.status).toBe('ok');
    expect(JSON.stringify(open)).not.toContain(String(instance.port));
    expect(JSON.stringify(open)).not.toContain(instance.file);
    expect(open.servers).toBeUndefined();
    const full = (await (await fetch(`${url}/health`, { headers: auth })).json()) as { servers: { port: number; pid: number }[] };
    expect(full.servers[0]!.port).toBe(instance.port);
    expect(full.servers[0]!.pid).toBe(instance.pid);
  });

  it('lock-out: crashes while serving are restarted at once, never a model_failing backoff for everyone', async () => {
    // A long context: the generation cannot reach its end before the first chunk is read, however loaded the machine.
    const { url, proxy: p } = await proxy({ models: { a: { path: files[1]!, ctx: 65_536, parallel: 2, args: ['--override-kv', 'llama.context_length=int:65536'] } } });
    for (let crash = 1; crash <= 4; crash++) {
      const res = await streamRequest(url, chat('a', endless));
      let pid = 0;
      const record = await readStream(res, (_text, index) => {
        if (index !== 0) return;
        pid = p.pool.list()[0]!.pid!;
        process.kill(pid, 'SIGKILL');
      });
      expect(record.text).toMatch(/"code":"upstream_error"/);
      expect(record.text).toContain('SIGKILL');
      // It was serving: a new instance starts without waiting for a request.
      expect(await waitFor(() => p.pool.list().some((i) => i.modelId === 'a' && i.pid !== pid && i.state === 'ready'), 20_000)).toBe(true);
    }
    const after = await postJson(`${url}/v1/chat/completions`, chat('a'));
    expect(after.status).toBe(200);
  });

  it('retries: an instance killed just before a request is replaced and the request answered', async () => {
    const { url, proxy: p } = await proxy();
    expect((await postJson(`${url}/v1/chat/completions`, chat('a'))).status).toBe(200);
    const pid = p.pool.list()[0]!.pid!;
    process.kill(pid, 'SIGKILL');
    // No wait: the proxy has not seen the exit yet when the request arrives.
    const res = await postJson(`${url}/v1/chat/completions`, chat('a'));
    expect(res.status).toBe(200);
    expect(res.json.choices[0].message).toBeDefined();
    expect(p.pool.list()[0]!.pid).not.toBe(pid);

    // Streamed, and through Ollama's API: the same.
    const pid2 = p.pool.list()[0]!.pid!;
    process.kill(pid2, 'SIGKILL');
    const streamed = await readStream(await streamRequest(url, chat('a', { stream: true })));
    expect(streamed.status).toBe(200);
    expect(streamed.done).toBe(true);
    const pid3 = p.pool.list()[0]!.pid!;
    process.kill(pid3, 'SIGKILL');
    const ollama = await postJson(`${url}/api/chat`, { model: 'a', messages: [{ role: 'user', content: 'hi' }], stream: false, options: { num_predict: 4 } });
    expect(ollama.status).toBe(200);
    expect(ollama.json.done).toBe(true);
  });

  it('hung child: a SIGSTOPped instance is found by its liveness probe, killed, and replaced; its clients get an error', async () => {
    const { url, proxy: p } = await proxy({ llamaServer: { healthInterval: 0.3, healthTimeout: 0.3, healthFailures: 2 } });
    const res = await streamRequest(url, chat('a', endless));
    let pid = 0;
    let stoppedAt = 0;
    const record = await readStream(res, (_text, index) => {
      if (index !== 0) return;
      pid = p.pool.list()[0]!.pid!;
      stoppedAt = Date.now();
      process.kill(pid, 'SIGSTOP');
    });
    expect(stoppedAt).toBeGreaterThan(0);
    // Two probes of 0.3 s after an interval of 0.3 s: well under 5 s, where it waited forever before.
    expect(record.endedAt - stoppedAt).toBeLessThan(5000);
    expect(record.text).toContain('did not answer /health');
    expect(await waitFor(() => !isAlive(pid), 5000)).toBe(true);
    const next = await postJson(`${url}/v1/chat/completions`, chat('a'));
    expect(next.status).toBe(200);
    expect(p.pool.list()[0]!.pid).not.toBe(pid);
  });

  it('hung child, probes off: the upstream read timeout ends the wait with a 502 naming it', async () => {
    const { url, proxy: p } = await proxy({ llamaServer: { healthFailures: 0, readTimeout: 1.5 } });
    // A warm-up answer first (on a loaded machine a first prompt may itself take over 1.5 s: then once more).
    let warm = 0;
    for (let i = 0; i < 3 && warm !== 200; i++) warm = (await postJson(`${url}/v1/chat/completions`, chat('a'))).status;
    expect(warm).toBe(200);
    const pid = p.pool.list()[0]!.pid!;
    process.kill(pid, 'SIGSTOP');
    try {
      const started = Date.now();
      const res = await postJson(`${url}/v1/chat/completions`, chat('a'));
      expect(res.status).toBe(502);
      expect(res.json.error.message).toContain('llamaServer.readTimeout');
      expect(Date.now() - started).toBeLessThan(6000);
    } finally {
      process.kill(pid, 'SIGCONT');
    }
  });

  it('draining: an unload during a stream lets the stream finish, then stops the instance', async () => {
    const { url, proxy: p } = await proxy();
    const res = await streamRequest(url, chat('a', { stream: true, max_tokens: 200, ignore_eos: true }));
    let unload: Promise<{ status: number; json: { unloaded: string[] } }> | undefined;
    const record = await readStream(res, (_text, index) => {
      if (index === 0) unload = postJson(`${url}/models/unload`, { model: 'a' });
    });
    expect(record.done).toBe(true);
    expect(record.text).not.toContain('upstream_error');
    const unloaded = await unload!;
    expect(unloaded.status).toBe(200);
    expect(unloaded.json.unloaded).toHaveLength(1);
    expect(p.pool.list()).toHaveLength(0);
  });

  it('memory: a context whose KV cache cannot fit the host RAM is refused with the numbers, nothing launched', async () => {
    const { url, proxy: p } = await proxy();
    // One slot (-np 1): its KV cache and attention buffers for 16M tokens take 24 GiB, more than this machine has.
    const res = await postJson(`${url}/api/chat`, { model: 'b', messages: [{ role: 'user', content: 'hi' }], stream: false, options: { num_ctx: 16_777_216 } });
    expect(res.status).toBe(503);
    expect(res.json.error).toMatch(/needs [\d.]+ GiB of host memory on the CPU; [\d.]+ (GiB|MiB) available \([\d.]+ GiB free of [\d.]+ GiB/);
    expect(p.pool.list()).toHaveLength(0);
  });

  it('swap soak: pool of 1, two models alternating from 8 clients, half streamed, an unload every 25: nothing lost, heap flat', async () => {
    const { url } = await proxy({ pool: { size: 1, maxQueue: 64 }, models: { a: { path: files[1]!, ctx: 1024, parallel: 4 }, b: { path: files[2]!, ctx: 1024, parallel: 4 } } });
    const run = async (count: number) => {
      let next = 0;
      const failures: string[] = [];
      await Promise.all(
        Array.from({ length: 8 }, async () => {
          while (next < count) {
            const i = next++;
            if (i % 25 === 0) void postJson(`${url}/models/unload`, {});
            const model = i % 2 === 0 ? 'a' : 'b';
            if (i % 4 < 2) {
              const r = await readStream(await streamRequest(url, chat(model, { stream: true })));
              if (r.status !== 200 || !r.done || r.text.includes('"error"')) failures.push(`stream ${i}: ${r.status} ${r.text.slice(-200)}`);
            } else {
              const r = await postJson(`${url}/v1/chat/completions`, chat(model));
              if (r.status !== 200 || !r.json.choices) failures.push(`request ${i}: ${r.status} ${JSON.stringify(r.json).slice(0, 200)}`);
            }
          }
        }),
      );
      return failures;
    };
    expect(await run(20)).toEqual([]);
    const before = heapAfterGc();
    expect(await run(120)).toEqual([]);
    // What 120 requests leave behind: a few MiB at most (a leak of one request's body or stream each would show).
    expect(heapAfterGc() - before).toBeLessThan(6);
  });

  it('shutdown: every stream under way gets a last error event at once, not a cut after the stop timeout', async () => {
    const { url, proxy: p } = await proxy({ models: { a: { path: files[1]!, ctx: 8192, parallel: 4 } }, llamaServer: { stopTimeout: 10 } });
    const streams = await Promise.all([0, 1, 2, 3].map(() => streamRequest(url, chat('a', endless))));
    const firstChunks: Promise<void>[] = [];
    const records = streams.map((res) => {
      let seen!: () => void;
      firstChunks.push(new Promise<void>((r) => (seen = r)));
      return readStream(res, (_text, index) => {
        if (index === 0) seen();
      });
    });
    await Promise.all(firstChunks);
    const pid = p.pool.list()[0]!.pid!;
    const closedAt = Date.now();
    await p.close();
    t = undefined;
    for (const record of await Promise.all(records)) {
      // Well within the stop timeout (10 s here, which is what it took before).
      expect(record.endedAt - closedAt).toBeLessThan(5000);
      expect(record.text).toContain('the proxy is shutting down');
    }
    expect(isAlive(pid)).toBe(false);
  });
});
