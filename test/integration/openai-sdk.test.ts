import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { llamaTools } from '../helpers/llama.js';
import { modelsFolder, startTestProxy, type TestProxy } from '../helpers/proxy.js';

const tools = llamaTools();

describe.skipIf(!tools.server)(`the official openai SDK against the proxy${tools.reason ? ` (skipped: ${tools.reason})` : ''}`, () => {
  let t: TestProxy;
  let client: OpenAI;

  beforeAll(async () => {
    const { root, files } = await modelsFolder([5]);
    t = await startTestProxy(tools.server!, root, {
      pool: { size: 2 },
      models: {
        chat: { path: files[5]!, ctx: 1024 },
        embed: { path: files[5]!, ctx: 512, args: ['--embeddings', '--pooling', 'mean'] },
      },
    });
    client = new OpenAI({ baseURL: `${t.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  });
  afterAll(async () => {
    await t?.proxy.close();
  });

  it('does a chat completion', async () => {
    const res = await client.chat.completions.create({ model: 'chat', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 6, temperature: 0 });
    expect(res.model).toBe('chat');
    expect(res.choices[0]!.message.role).toBe('assistant');
    expect(res.choices[0]!.message.content!.length).toBeGreaterThan(0);
    expect(res.usage!.completion_tokens).toBeGreaterThan(0);
  });

  it('streams a chat completion', async () => {
    const stream = await client.chat.completions.create({ model: 'chat', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 12, temperature: 0, stream: true });
    let text = '';
    let events = 0;
    let finish: string | null | undefined;
    for await (const chunk of stream) {
      events++;
      text += chunk.choices[0]?.delta?.content ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    expect(events).toBeGreaterThan(3);
    expect(text.length).toBeGreaterThan(0);
    expect(finish).toBe('length');
  });

  it('makes embeddings', async () => {
    const res = await client.embeddings.create({ model: 'embed', input: ['hello world', 'good bye'] });
    expect(res.data).toHaveLength(2);
    expect(res.data[0]!.embedding.length).toBe(64);
    expect(res.data[0]!.embedding).not.toEqual(res.data[1]!.embedding);
  });

  it('surfaces proxy errors as SDK errors with status and message', async () => {
    await expect(client.chat.completions.create({ model: 'missing-model', messages: [{ role: 'user', content: 'x' }] })).rejects.toMatchObject({
      status: 404,
      message: expect.stringContaining('"missing-model" is not configured'),
    });
  });
});
