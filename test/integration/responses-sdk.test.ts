import OpenAI, { toFile } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { llamaTools } from '../helpers/llama.js';
import { CANNED_AGENT, pluginsRoot } from '../helpers/plugins.js';
import { modelsFolder, postJson, startTestProxy, type TestProxy } from '../helpers/proxy.js';

const tools = llamaTools();

function writePlugins(): string {
  const { root, add } = pluginsRoot('lsp-responses-it');
  add('canned', CANNED_AGENT);
  add(
    'tag',
    `export default {
  onRequest(request) { (globalThis.__lspTag ??= []).push(request.messages); return request; },
  onResponse(r) { r.choices[0].message.content = 'TAG:' + r.choices[0].message.content; return r; },
};\n`,
  );
  return root;
}

describe.skipIf(!tools.server)(`the openai SDK's Responses API against the proxy${tools.reason ? ` (skipped: ${tools.reason})` : ''}`, () => {
  let t: TestProxy;
  let client: OpenAI;

  beforeAll(async () => {
    const { root, files } = await modelsFolder([5]);
    t = await startTestProxy(tools.server!, root, {
      models: { chat: { path: files[5]!, ctx: 1024 } },
      agents: { dir: writePlugins(), bundled: false },
    });
    client = new OpenAI({ baseURL: `${t.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  });
  afterAll(async () => {
    await t?.proxy.close();
  });

  it('creates a response', async () => {
    const res = await client.responses.create({ model: 'chat', input: 'Hi', instructions: 'Be brief.', max_output_tokens: 6 });
    expect(res.object).toBe('response');
    expect(res.output_text.length).toBeGreaterThan(0);
    expect(res.usage!.output_tokens).toBe(6);
  });

  it('streams a response as typed events', async () => {
    const stream = await client.responses.create({ model: 'chat', input: [{ role: 'user', content: 'Hi' }], max_output_tokens: 8, stream: true });
    const types: string[] = [];
    let text = '';
    for await (const event of stream) {
      types.push(event.type);
      if (event.type === 'response.output_text.delta') text += event.delta;
    }
    expect(types[0]).toBe('response.created');
    expect(types.some((x) => x === 'response.completed' || x === 'response.incomplete')).toBe(true);
    expect(text.length).toBeGreaterThan(0);
  });

  it('counts input tokens', async () => {
    const res = await postJson(`${t.url}/v1/responses/input_tokens`, { model: 'chat', input: 'Hello there, how are you?' });
    expect(res.status).toBe(200);
    expect(res.json.input_tokens).toBeGreaterThan(3);
  });

  it('answers an unknown model with a 404 in OpenAI\'s shape', async () => {
    await expect(client.responses.create({ model: 'missing-model', input: 'x' })).rejects.toMatchObject({ status: 404, message: expect.stringContaining('"missing-model"') });
  });

  it('runs agents on the input: one answering by itself, one on the model\'s answer, whole and streamed', async () => {
    const canned = await client.responses.create({ model: 'chat', input: '/canned hi' });
    expect(canned.output_text).toBe('canned answer');
    const tagged = await client.responses.create({ model: 'chat', input: [{ role: 'user', content: [{ type: 'input_text', text: '/tag say it' }] }], max_output_tokens: 4 });
    expect(tagged.output_text.startsWith('TAG:')).toBe(true);
    expect((globalThis as { __lspTag?: unknown[] }).__lspTag?.at(-1)).toEqual([{ role: 'user', content: [{ type: 'text', text: 'say it' }] }]);
    const stream = await client.responses.create({ model: 'chat', input: '/tag again', max_output_tokens: 4, stream: true });
    let final = '';
    for await (const event of stream) if (event.type === 'response.output_text.done') final = event.text;
    expect(final.startsWith('TAG:')).toBe(true);
  });

  it('forwards an audio transcription form to the model\'s instance, and names a missing model field', async () => {
    const file = await toFile(Buffer.alloc(3200), 'silence.wav', { type: 'audio/wav' });
    // The tiny model has no audio encoder: the refusal is llama-server's own (not the proxy's 404 or 415).
    const err = (await client.audio.transcriptions.create({ model: 'chat', file }).catch((e: unknown) => e)) as { status?: number; message?: string };
    expect(err.status).toBeGreaterThanOrEqual(400);
    expect(err.status).not.toBe(404);
    expect(err.status).not.toBe(415);
    expect(err.message).not.toMatch(/multipart|"model" field/);
    const form = new FormData();
    form.append('file', new Blob([Buffer.alloc(10)]), 'a.wav');
    const res = await fetch(`${t.url}/v1/audio/transcriptions`, { method: 'POST', body: form });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { message: string } }).error.message).toContain('"model" field');
    const missing = new FormData();
    missing.append('model', 'missing-model');
    missing.append('file', new Blob([Buffer.alloc(10)]), 'a.wav');
    expect((await fetch(`${t.url}/v1/audio/transcriptions`, { method: 'POST', body: missing })).status).toBe(404);
  });
});
