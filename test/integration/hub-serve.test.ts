import { readFileSync } from 'node:fs';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Ollama } from 'ollama';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { writeSparseReplica, writeTinyModel } from '../../src/gguf/index.js';
import { FakeHub } from '../helpers/fake-hub.js';
import { llamaTools } from '../helpers/llama.js';
import { modelsFolder, postJson, startTestProxy, type TestProxy } from '../helpers/proxy.js';
import { readStream, streamedContent } from '../helpers/sse.js';

const tools = llamaTools();

describe.skipIf(!tools.server)(`Hugging Face models served end to end${tools.reason ? ` (skipped: ${tools.reason})` : ''}`, () => {
  let hub: FakeHub;
  let root: string;
  let t: TestProxy | undefined;

  beforeAll(async () => {
    ({ root } = await modelsFolder([]));
    const dir = mkdtempSync(path.join(os.tmpdir(), 'lsp-hub-serve-'));
    const tiny = async (seed: number) => {
      const file = path.join(dir, `t${seed}.gguf`);
      await writeTinyModel(file, { seed });
      return readFileSync(file);
    };
    const big = path.join(dir, 'llama3-Q4_K_M.gguf');
    await writeSparseReplica(big, 'llama-3-8b', 'Q4_K_M');
    hub = await FakeHub.start();
    hub.addRepo('acme/tiny-GGUF', { files: [{ path: 'tiny-Q8_0.gguf', data: await tiny(31) }, { path: 'README.md', data: Buffer.from('# tiny'), lfs: false }] });
    hub.addRepo('acme/other-GGUF', { files: [{ path: 'other-Q4_K_M.gguf', data: await tiny(32) }] });
    hub.addRepo('acme/pulled-GGUF', { files: [{ path: 'pulled-Q4_K_M.gguf', data: await tiny(33) }] });
    hub.addRepo('acme/huge-GGUF', { files: [{ path: 'huge-Q4_K_M.gguf', file: big, sha256: 'ab'.repeat(32) }] });
    process.env.HF_HUB_CACHE = path.join(dir, 'no-other-cache');
  });
  afterAll(async () => {
    await hub?.close();
    delete process.env.HF_HUB_CACHE;
  });
  afterEach(async () => {
    await t?.proxy.close();
    t = undefined;
  });

  const proxy = async (gpu: Record<string, unknown> = {}) => {
    t = await startTestProxy(tools.server!, root, { pool: { size: 2 }, hub: { endpoint: hub.hubUrl, retries: 0 }, gpu, modelDefaults: { ctx: 512 } });
    return t;
  };

  it('downloads a repo:variant once, then serves it; a second request uses the cache', async () => {
    const { url } = await proxy();
    const first = await postJson(`${url}/v1/chat/completions`, { model: 'acme/tiny-GGUF:Q8_0', messages: [{ role: 'user', content: 'hi' }], max_tokens: 4 });
    expect(first.status, JSON.stringify(first.json)).toBe(200);
    expect(first.json.model).toBe('acme/tiny-GGUF:Q8_0');
    // One full download (the header probe before it is a range read).
    const downloads = () => hub.requests({ server: 'cdn', method: 'GET' }).filter((r) => !r.range);
    expect(downloads()).toHaveLength(1);
    const again = await postJson(`${url}/v1/completions`, { model: 'acme/tiny-GGUF:Q8_0', prompt: 'hi', max_tokens: 4 });
    expect(again.status).toBe(200);
    expect(downloads()).toHaveLength(1);
    // as Ollama users name it: the same model, the same instance, nothing downloaded again
    const ollama = await postJson(`${url}/api/chat`, { model: 'hf.co/acme/tiny-GGUF:Q8_0', messages: [{ role: 'user', content: 'hi' }], stream: false, options: { num_predict: 4 } });
    expect(ollama.status, JSON.stringify(ollama.json)).toBe(200);
    expect(ollama.json.done).toBe(true);
    expect(downloads()).toHaveLength(1);
    const health = (await (await fetch(`${url}/health`)).json()) as { servers: { model_id: string }[] };
    expect(health.servers.map((s) => s.model_id)).toEqual(['acme/tiny-GGUF:Q8_0']);
    const missing = await postJson(`${url}/v1/chat/completions`, { model: 'acme/tiny-GGUF:IQ2_XS', messages: [{ role: 'user', content: 'hi' }] });
    expect(missing.status).toBe(404);
    expect(missing.json.error.message).toContain('tiny-Q8_0.gguf');
  });

  it('streams download progress as SSE comments before the answer', async () => {
    const { url } = await proxy();
    const res = await fetch(`${url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'acme/other-GGUF', messages: [{ role: 'user', content: 'hi' }], max_tokens: 6, stream: true }),
    });
    expect(res.status).toBe(200);
    const record = await readStream(res);
    expect(record.text).toMatch(/^: (downloading|downloaded) acme\/other-GGUF\/other-Q4_K_M\.gguf/m);
    expect(record.text.indexOf(': downloaded')).toBeLessThan(record.text.indexOf('data: {'));
    expect(record.done).toBe(true);
    expect(streamedContent(record).length).toBeGreaterThan(0);
  });

  it('pulls through Ollama\'s /api/pull with its progress lines, as `ollama pull hf.co/...` does', async () => {
    const { url } = await proxy();
    const ollama = new Ollama({ host: url });
    const lines: { status: string; total?: number; completed?: number; digest?: string }[] = [];
    for await (const p of await ollama.pull({ model: 'hf.co/acme/pulled-GGUF', stream: true })) lines.push(p);
    expect(lines[0]!.status).toBe('pulling manifest');
    const bars = lines.filter((l) => l.total !== undefined);
    expect(bars.length).toBeGreaterThan(0);
    expect(bars.at(-1)).toMatchObject({ completed: bars.at(-1)!.total, digest: expect.stringMatching(/^sha256:[0-9a-f]{64}$/) });
    expect(lines.at(-1)!.status).toBe('success');
    // now in the cache: listed, and served without another download
    const tags = await ollama.list();
    expect(tags.models.map((m) => m.name)).toContain('acme/pulled-GGUF:Q4_K_M');
    const gets = hub.requests({ server: 'cdn', method: 'GET' }).filter((r) => !r.range && r.path.includes('pulled')).length;
    const again = await ollama.pull({ model: 'acme/pulled-GGUF', stream: false });
    expect(again.status).toBe('success');
    const answer = await ollama.generate({ model: 'hf.co/acme/pulled-GGUF:latest', prompt: 'hi', options: { num_predict: 4 } });
    expect(answer.done).toBe(true);
    expect(hub.requests({ server: 'cdn', method: 'GET' }).filter((r) => !r.range && r.path.includes('pulled')).length).toBe(gets);
    // a repo without the file is Ollama's error line, not a hang
    const missing = await postJson(`${url}/api/pull`, { model: 'acme/pulled-GGUF:IQ1_S', stream: false });
    expect(missing.status).toBe(404);
    expect(missing.json.error).toContain('pulled-Q4_K_M.gguf');
  });

  it('refuses a model that can never fit from its header alone, downloading nothing', async () => {
    const { url } = await proxy({ source: 'simulated', forceSimulated: true, simulated: [{ name: 'Sim 2G', memoryMiB: 2048 }], cpuFallback: false, partialOffload: false });
    const before = hub.requests({ server: 'cdn', method: 'GET' }).length;
    const res = await postJson(`${url}/v1/chat/completions`, { model: 'acme/huge-GGUF', messages: [{ role: 'user', content: 'hi' }] });
    expect(res.status).toBe(503);
    expect(res.json.error.code).toBe('insufficient_memory');
    expect(res.json.error.message).toMatch(/needs [\d.]+ GiB of GPU memory.*nothing was downloaded/);
    const served = hub.requests({ server: 'cdn', method: 'GET' }).slice(before);
    expect(served.length, JSON.stringify(served)).toBeGreaterThan(0);
    expect(served.every((r) => r.range !== undefined), JSON.stringify(served)).toBe(true);
    expect(served.reduce((sum, r) => sum + r.bytes, 0)).toBeLessThan(64 * 1024 * 1024);
  });
});
