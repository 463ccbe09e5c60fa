import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Ollama, type ChatResponse } from 'ollama';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeOllama, type FakeOllama } from '../helpers/fake-ollama.js';
import { modelsFolder, postJson, startTestProxy, type TestProxy } from '../helpers/proxy.js';

/** An agent that upper-cases answers (streamed chunk by chunk). */
function writePlugins(): string {
  const root = mkdtempSync(path.join(os.tmpdir(), 'lsp-backend-agents-'));
  mkdirSync(path.join(root, 'shout'));
  writeFileSync(path.join(root, 'shout', 'config.json'), JSON.stringify({ description: 'upper case', enabled: true }));
  writeFileSync(
    path.join(root, 'shout', 'index.mjs'),
    `export default {
  onStreamChunk(chunk) {
    for (const c of chunk.choices ?? []) if (typeof c.delta?.content === 'string') c.delta.content = c.delta.content.toUpperCase();
    return chunk;
  },
  onResponse(r) {
    for (const c of r.choices ?? []) if (typeof c.message?.content === 'string') c.message.content = c.message.content.toUpperCase();
    return r;
  },
};\n`,
  );
  return root;
}

// No llama-server is started here: every request goes to the Ollama backend (the binary is never run).
describe('an Ollama server as a backend (a fake one answering like Ollama)', () => {
  let fake: FakeOllama;
  let t: TestProxy;
  let ollama: Ollama;
  let openai: OpenAI;
  const messages = [{ role: 'user', content: 'Hi' }];
  const sent = (p: string) => fake.requests.filter((r) => r.path === p);

  beforeAll(async () => {
    fake = await startFakeOllama();
    const { root, files } = await modelsFolder([3]);
    t = await startTestProxy(process.execPath, root, {
      backends: { ollama: { url: fake.url, connectTimeout: 1, readTimeout: 1 } },
      models: {
        remote: { backend: 'ollama', name: 'llama3.2:1b', description: 'on Ollama' },
        local: { path: files[3]! },
      },
      agents: { dir: writePlugins(), bundled: false },
    });
    ollama = new Ollama({ host: t.url });
    openai = new OpenAI({ baseURL: `${t.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  });
  afterAll(async () => {
    await t?.proxy.close();
    await fake?.close();
  });

  it('streams /api/chat through as Ollama sent it, the model renamed on the way', async () => {
    const before = sent('/api/chat').length;
    const res = await fetch(`${t.url}/api/chat`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'ollama/llama3.2:1b', messages, options: { num_ctx: 8192 }, keep_alive: '1m' }) });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/x-ndjson');
    expect(await res.text()).toBe(fake.chatLines.map((l) => `${l}\n`).join(''));
    const got = sent('/api/chat').slice(before);
    expect(got).toHaveLength(1);
    // passed as it came: Ollama's own options and keep_alive included
    expect(got[0]!.body).toEqual({ model: 'llama3.2:1b', messages, options: { num_ctx: 8192 }, keep_alive: '1m' });
  });

  it('the ollama client works through a configured alias: chat (streamed and not), generate, embed, show', async () => {
    const whole = await ollama.chat({ model: 'remote', messages });
    expect(whole).toMatchObject({ message: { role: 'assistant', content: 'Hello! How' }, done: true, eval_count: 3 });
    const parts: ChatResponse[] = [];
    for await (const p of await ollama.chat({ model: 'remote', messages, stream: true })) parts.push(p);
    expect(parts.map((p) => p.message.content).join('')).toBe('Hello! How');
    expect(parts.at(-1)).toMatchObject({ done: true, done_reason: 'length', prompt_eval_count: 26 });
    expect((await ollama.generate({ model: 'remote', prompt: 'Hi' })).response).toBe('Hello! How');
    expect((await ollama.embed({ model: 'remote', input: 'Hi' })).embeddings).toEqual([[0.6, 0.8]]);
    expect((await ollama.embeddings({ model: 'remote', prompt: 'Hi' })).embedding).toEqual([1.5, 2]);
    const show = await ollama.show({ model: 'remote' });
    expect(show.capabilities).toEqual(['completion', 'tools']);
    expect(sent('/api/show').at(-1)!.body).toEqual({ model: 'llama3.2:1b' });
  });

  it('OpenAI requests go to Ollama\'s /v1 endpoints, streaming passed through', async () => {
    const r = await openai.chat.completions.create({ model: 'remote', messages: [{ role: 'user', content: 'Hi' }] });
    expect(r.choices[0]!.message.content).toBe('Hello! How');
    expect(sent('/v1/chat/completions').at(-1)!.body).toMatchObject({ model: 'llama3.2:1b' });
    const stream = await openai.chat.completions.create({ model: 'ollama/llama3.2:1b', messages: [{ role: 'user', content: 'Hi' }], stream: true });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
    expect(text).toBe('Hello! How');
    const emb = await openai.embeddings.create({ model: 'remote', input: 'Hi', encoding_format: 'float' });
    expect(emb.data[0]!.embedding).toEqual([0.6, 0.8]);
  });

  it('agents work on a backend model, through Ollama\'s /v1 endpoint, on both APIs', async () => {
    const before = sent('/v1/chat/completions').length;
    const r = await ollama.chat({ model: 'remote', messages: [{ role: 'user', content: '/shout Hi' }] });
    expect(r.message.content).toBe('HELLO! HOW');
    expect(r).toMatchObject({ done: true, done_reason: 'length', prompt_eval_count: 26, eval_count: 3 });
    let streamed = '';
    for await (const p of await ollama.chat({ model: 'remote', messages: [{ role: 'user', content: '/shout Hi' }], stream: true })) streamed += p.message.content;
    expect(streamed).toBe('HELLO! HOW');
    const upstream = sent('/v1/chat/completions').slice(before);
    expect(upstream).toHaveLength(2);
    expect(upstream[0]!.body).toMatchObject({ model: 'llama3.2:1b', messages: [{ role: 'user', content: 'Hi' }], stream: true });
    const viaOpenai = await openai.chat.completions.create({ model: 'remote', messages: [{ role: 'user', content: '/shout Hi' }] });
    expect(viaOpenai.choices[0]!.message.content).toBe('HELLO! HOW');
  });

  it('lists Ollama\'s models beside ours in /api/tags, /api/ps and /v1/models', async () => {
    const tags = (await ollama.list()).models;
    expect(tags.map((m) => m.name).sort()).toEqual(['local', 'ollama/llama3.2:1b', 'remote']);
    expect(tags.find((m) => m.name === 'remote')).toMatchObject({ model: 'remote', size: 1321098329, details: { family: 'llama', parameter_size: '1.2B' } });
    expect(tags.find((m) => m.name === 'ollama/llama3.2:1b')!.digest).toMatch(/^[0-9a-f]{64}$/);
    const ps = (await ollama.ps()).models;
    expect(ps.map((m) => m.name)).toEqual(['ollama/llama3.2:1b']);
    const models = (await openai.models.list()).data.map((m) => m.id).sort();
    expect(models).toEqual(['local', 'ollama/llama3.2:1b', 'remote']);
  });

  it('/health says whether Ollama is reachable', async () => {
    const health = (await (await fetch(`${t.url}/health`)).json()) as { backends: { ollama: Record<string, unknown> } };
    expect(health.backends.ollama).toMatchObject({ url: fake.url, reachable: true, version: '0.9.0', error: null });
  });

  it('Ollama\'s errors reach the client with their status', async () => {
    await expect(ollama.chat({ model: 'ollama/nope', messages })).rejects.toMatchObject({ status_code: 404, error: "model 'nope' not found" });
    await expect(openai.chat.completions.create({ model: 'ollama/nope', messages: [{ role: 'user', content: 'x' }] })).rejects.toMatchObject({ status: 404 });
  });

  it('a read timeout answers 504 naming the setting, in each API\'s shape', async () => {
    const started = Date.now();
    const res = await postJson(`${t.url}/api/chat`, { model: 'ollama/hang', messages });
    expect(res.status).toBe(504);
    expect(res.json.error).toMatch(/sent nothing for 1 s \(backends\.ollama\.readTimeout\)/);
    expect(Date.now() - started).toBeLessThan(5000);
    const v1 = await postJson(`${t.url}/v1/chat/completions`, { model: 'ollama/hang', messages });
    expect(v1.status).toBe(504);
    expect(v1.json.error.message).toMatch(/backends\.ollama\.readTimeout/);
  });

  it('when Ollama is down: a clear 502 on both APIs, /health says so, listings still answer', async () => {
    await fake.close();
    const res = await postJson(`${t.url}/api/chat`, { model: 'remote', messages });
    expect(res.status).toBe(502);
    expect(res.json.error).toMatch(new RegExp(`the Ollama backend at ${fake.url} is unreachable`));
    await expect(openai.chat.completions.create({ model: 'remote', messages: [{ role: 'user', content: 'x' }] })).rejects.toMatchObject({ status: 502, message: expect.stringContaining('is unreachable') });
    const streamed = await postJson(`${t.url}/api/chat`, { model: 'remote', messages: [{ role: 'user', content: '/shout Hi' }] });
    expect(streamed.status).toBe(502);
    const health = (await (await fetch(`${t.url}/health`)).json()) as { backends: { ollama: { reachable: boolean; error: string } } };
    expect(health.backends.ollama.reachable).toBe(false);
    expect(health.backends.ollama.error).toMatch(/unreachable/);
    // (Ollama's own list may be served from the few seconds' cache)
    const tags = (await ollama.list()).models.map((m) => m.name);
    expect(tags).toEqual(expect.arrayContaining(['local', 'remote']));
    // restart it on the same port: the proxy reaches it again
    fake = await startFakeOllama(fake.port);
    expect((await ollama.chat({ model: 'remote', messages })).message.content).toBe('Hello! How');
  });
});
