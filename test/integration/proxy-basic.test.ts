import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeTinyModel } from '../../src/gguf/index.js';
import { llamaTools } from '../helpers/llama.js';
import { isAlive } from '../helpers/processes.js';
import { modelsFolder, postJson, startTestProxy, type TestProxy } from '../helpers/proxy.js';

const tools = llamaTools();

describe.skipIf(!tools.server)(`proxy over a real llama-server${tools.reason ? ` (skipped: ${tools.reason})` : ''}`, () => {
  let t: TestProxy;

  beforeAll(async () => {
    const { root, files } = await modelsFolder([1]);
    t = await startTestProxy(tools.server!, root, {
      server: { bodyLimitMiB: 0.05 },
      pool: { size: 1 },
      models: { 'tiny-a': { path: files[1]!, ctx: 512, parallel: 2 } },
    });
  });

  afterAll(async () => {
    await t?.proxy.close();
  });

  it('answers /health with the pool and no servers before the first request', async () => {
    const res = await fetch(`${t.url}/health`);
    expect(res.status).toBe(200);
    const health = (await res.json()) as any;
    expect(health.status).toBe('ok');
    expect(health.pool).toMatchObject({ capacity: 1, running: 0 });
    expect(health.llama_server.path).toBe(tools.server);
    expect(health.gpu_pool_status).toBeNull();
  });

  it('starts llama-server on the first chat request and answers it', async () => {
    const res = await postJson(`${t.url}/v1/chat/completions`, {
      model: 'tiny-a',
      messages: [{ role: 'user', content: 'Hello there' }],
      max_tokens: 8,
      temperature: 0,
    });
    expect(res.status).toBe(200);
    expect(res.json.object).toBe('chat.completion');
    expect(res.json.model).toBe('tiny-a');
    expect(typeof res.json.choices[0].message.content).toBe('string');
    expect(res.json.usage.completion_tokens).toBeGreaterThan(0);
    // A whole answer passed through keeps llama-server's length (one write to the client, no chunked framing).
    const whole = await fetch(`${t.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'tiny-a', prompt: 'Hello', max_tokens: 4 }) });
    const bytes = (await whole.arrayBuffer()).byteLength;
    expect(whole.status).toBe(200);
    expect(whole.headers.get('content-length')).toBe(String(bytes));
    expect(whole.headers.get('transfer-encoding')).toBeNull();

    const health = (await (await fetch(`${t.url}/health`)).json()) as any;
    expect(health.servers).toHaveLength(1);
    expect(health.servers[0]).toMatchObject({ model_id: 'tiny-a', status: 'ready', host: '127.0.0.1' });
    expect(isAlive(health.servers[0].pid)).toBe(true);
  });

  it('lists configured models with their state', async () => {
    const res = await fetch(`${t.url}/v1/models`);
    const body = (await res.json()) as any;
    expect(body.object).toBe('list');
    expect(body.data.map((m: { id: string }) => m.id)).toEqual(['tiny-a']);
  });

  it.each([
    ['an unknown model', { model: 'nope', messages: [] }, 404, 'model_not_found', /"nope" is not configured/],
    ['a path outside the models directory', { model: '../../etc/x.gguf', messages: [] }, 403, 'model_path_forbidden', /outside the models directory/],
    ['a missing model field', { messages: [] }, 400, 'model_required', /needs a "model" field/],
    ['a JSON array body', [1, 2], 400, 'invalid_json', /JSON object/],
    ['malformed JSON', '{"model": ', 400, 'invalid_json', /not valid JSON/],
    ['a body over the limit', { model: 'tiny-a', prompt: 'x'.repeat(80_000) }, 413, 'body_too_large', /.+/],
  ])('refuses %s with %i in OpenAI\'s error shape, launching nothing', async (_name, body, status, code, message) => {
    const before = t.proxy.pool.list().length;
    const res = await postJson(`${t.url}/v1/chat/completions`, body);
    expect(res.status).toBe(status);
    expect(res.json.error.code).toBe(code);
    expect(res.json.error.message).toMatch(message);
    expect(typeof res.json.error.type).toBe('string');
    expect(t.proxy.pool.list().length).toBe(before);
  });

  it.skipIf(!tools.quantize)('serves Q8_0 and Q4_K_M models (the managed CPU build must not crash on them)', async () => {
    const f16 = path.join(t.root, 'models', 'wide-f16.gguf');
    await writeTinyModel(f16, { seed: 9, embd: 256, type: 'F16' });
    for (const quant of ['Q8_0', 'Q4_K_M']) {
      const out = path.join(t.root, 'models', `wide-${quant}.gguf`);
      const q = spawnSync(tools.quantize!, [f16, out, quant], { encoding: 'utf8' });
      expect(q.status, q.stderr).toBe(0);
      const res = await postJson(`${t.url}/v1/completions`, { model: `wide-${quant}.gguf`, prompt: 'Hi', max_tokens: 4 });
      expect(res.status, JSON.stringify(res.json)).toBe(200);
      expect(res.json.usage.completion_tokens).toBe(4);
    }
  });

  it('stops every llama-server when closed', async () => {
    const pids = t.proxy.pool.list().map((s) => s.pid!);
    expect(pids.length).toBeGreaterThan(0);
    await t.proxy.close();
    for (const pid of pids) expect(isAlive(pid)).toBe(false);
  });
});
