import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { llamaTools } from '../helpers/llama.js';
import { modelsFolder, postJson, startTestProxy, type TestProxy } from '../helpers/proxy.js';

const tools = llamaTools();

/** Whether a text is how an object begins ("{" then a key or the end), as a schema-constrained answer must. */
const startsAnObject = (text: string) => /^\s*\{\s*("|\})/.test(text);

describe.skipIf(!tools.server)(`model ids clients pick from lists, Ollama num_ctx and format json${tools.reason ? ` (skipped: ${tools.reason})` : ''}`, () => {
  let t: TestProxy;
  let client: OpenAI;

  beforeAll(async () => {
    const { root, files } = await modelsFolder([5]);
    t = await startTestProxy(tools.server!, root, {
      pool: { size: 4 },
      models: {
        'tiny-a': { path: files[5]!, ctx: 1024 },
        // --embeddings without pooling: the chat GGUF names none, so it must get --pooling mean to answer.
        emb: { path: files[5]!, ctx: 512, args: ['--embeddings'] },
      },
    });
    client = new OpenAI({ baseURL: `${t.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  });
  afterAll(async () => {
    await t?.proxy.close();
  });

  it('retrieves one model (models.retrieve), and 404s an unknown one', async () => {
    const m = await client.models.retrieve('tiny-a');
    expect(m).toMatchObject({ id: 'tiny-a', object: 'model' });
    expect((await client.models.retrieve('m5.gguf')).id).toBe('m5.gguf');
    await expect(client.models.retrieve('nope')).rejects.toMatchObject({ status: 404 });
  });

  it('an Ollama num_ctx at or below a running instance\'s context is served by it; above, by a #ctx instance', async () => {
    await postJson(`${t.url}/v1/chat/completions`, { model: 'tiny-a', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 2 });
    const chat = (numCtx: number) => postJson(`${t.url}/api/chat`, { model: 'tiny-a', messages: [{ role: 'user', content: 'Hi' }], stream: false, options: { num_ctx: numCtx, num_predict: 2 } });
    expect((await chat(512)).status).toBe(200);
    expect((await chat(1024)).status).toBe(200);
    expect(t.proxy.pool.list().map((i) => i.modelId).sort()).toEqual(['tiny-a']);
    expect((await chat(2048)).status).toBe(200);
    expect(t.proxy.pool.list().map((i) => i.modelId).sort()).toEqual(['tiny-a', 'tiny-a#ctx2048']);
    // Below the #ctx2048 and the base instance, the smallest that holds it serves it.
    expect((await chat(1500)).status).toBe(200);
    expect(t.proxy.pool.list()).toHaveLength(2);
  });

  it('every id /v1/models, /api/tags and /api/ps list is accepted by chat and by models.retrieve', async () => {
    const ids = new Set<string>();
    for (const m of (await client.models.list()).data) ids.add(m.id);
    for (const m of ((await (await fetch(`${t.url}/api/tags`)).json()) as { models: { name: string }[] }).models) ids.add(m.name);
    for (const m of ((await (await fetch(`${t.url}/api/ps`)).json()) as { models: { name: string }[] }).models) ids.add(m.name);
    expect(ids).toContain('tiny-a#ctx2048');
    for (const id of ids) {
      if (id === 'emb') continue;
      const res = await postJson(`${t.url}/v1/chat/completions`, { model: id, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 2 });
      expect(res.status, `${id}: ${JSON.stringify(res.json)}`).toBe(200);
      expect((await client.models.retrieve(id)).id).toBe(id);
    }
    // The variant id reaches the variant's instance, not a new one.
    expect(t.proxy.pool.list().filter((i) => i.modelId.startsWith('tiny-a#ctx2048'))).toHaveLength(1);
    const bad = await postJson(`${t.url}/v1/chat/completions`, { model: 'tiny-a#big', messages: [{ role: 'user', content: 'Hi' }] });
    expect(bad.status).toBe(400);
    expect(bad.json.error.message).toContain('"#big" names no variant');
  });

  it('a model whose args say --embeddings without pooling gets --pooling mean and answers embeddings', async () => {
    const res = await client.embeddings.create({ model: 'emb', input: 'hello' });
    expect(res.data[0]!.embedding.length).toBe(64);
    const instance = t.proxy.pool.list().find((i) => i.modelId === 'emb')!;
    const args = t.proxy.pool.instance(instance.id)!.spec.args;
    expect(args[args.indexOf('--pooling') + 1]).toBe('mean');
  });

  it('Ollama format "json" gives JSON on chat and generate, streamed and not', async () => {
    const options = { num_predict: 12, temperature: 0 };
    const messages = [{ role: 'user', content: 'Hi' }];
    const chat = await postJson(`${t.url}/api/chat`, { model: 'tiny-a', messages, format: 'json', stream: false, options });
    expect(chat.status, JSON.stringify(chat.json)).toBe(200);
    expect(startsAnObject(chat.json.message.content), chat.json.message.content).toBe(true);
    const gen = await postJson(`${t.url}/api/generate`, { model: 'tiny-a', prompt: 'Hi', format: 'json', stream: false, options });
    expect(startsAnObject(gen.json.response), gen.json.response).toBe(true);
    const raw = await postJson(`${t.url}/api/generate`, { model: 'tiny-a', prompt: 'Hi', raw: true, format: 'json', stream: false, options });
    expect(startsAnObject(raw.json.response), raw.json.response).toBe(true);
    for (const [path, body, field] of [['/api/chat', { messages }, (l: any) => l.message?.content], ['/api/generate', { prompt: 'Hi' }, (l: any) => l.response]] as const) {
      const res = await fetch(`${t.url}${path}`, { method: 'POST', body: JSON.stringify({ model: 'tiny-a', ...body, format: 'json', options }) });
      const text = (await res.text()).trim().split('\n').map((l) => field(JSON.parse(l)) ?? '').join('');
      expect(startsAnObject(text), `${path}: ${text}`).toBe(true);
    }
    // Without format the same model writes no object (so the checks above can fail).
    const free = await postJson(`${t.url}/api/chat`, { model: 'tiny-a', messages, stream: false, options });
    expect(startsAnObject(free.json.message.content)).toBe(false);
  });
});
