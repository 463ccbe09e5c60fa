/** server.apiKeys: every route but /health and / wants a key, in each client's usual header; a real llama-server answers. */
import { Ollama } from 'ollama';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { llamaTools } from '../helpers/llama.js';
import { modelsFolder, postJson, startTestProxy, type TestProxy } from '../helpers/proxy.js';

const tools = llamaTools();
const KEY = 'sk-test-0123456789';

describe.skipIf(!tools.server)(`API keys${tools.reason ? ` (skipped: ${tools.reason})` : ''}`, () => {
  let t: TestProxy;
  const chat = { model: 'a', messages: [{ role: 'user', content: 'hi' }], max_tokens: 4 };

  beforeAll(async () => {
    const { root, files } = await modelsFolder([51]);
    t = await startTestProxy(tools.server!, root, { server: { apiKeys: ['another-key', KEY] }, models: { a: { path: files[51]!, ctx: 512 } } });
  });
  afterAll(async () => {
    await t?.proxy.close();
  });

  it('refuses a request without a key or with a wrong one, in the route family\'s error shape', async () => {
    const none = await postJson(`${t.url}/v1/chat/completions`, chat);
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toBe('Bearer');
    expect(none.json).toEqual({ error: { message: expect.stringContaining('API key is required'), type: 'authentication_error', code: 'missing_api_key' } });
    const wrong = await postJson(`${t.url}/v1/chat/completions`, chat, { authorization: 'Bearer sk-test-0123456788' });
    expect(wrong.status).toBe(401);
    expect(wrong.json.error.code).toBe('invalid_api_key');
    const ollama = await postJson(`${t.url}/api/chat`, { model: 'a', messages: chat.messages, stream: false });
    expect(ollama).toMatchObject({ status: 401, json: { error: expect.stringContaining('API key') } });
    expect((await fetch(`${t.url}/metrics`)).status).toBe(401);
    expect((await fetch(`${t.url}/running`)).status).toBe(401);
    // nothing was started for refused requests
    expect(t.proxy.pool.list()).toHaveLength(0);
  });

  it('leaves /health and / open for probes', async () => {
    expect((await fetch(`${t.url}/health`)).status).toBe(200);
    expect((await fetch(`${t.url}/`)).status).toBe(200);
  });

  it('answers with a key from the OpenAI SDK (Bearer), x-api-key, and the Ollama client with a header', async () => {
    const openai = new OpenAI({ baseURL: `${t.url}/v1`, apiKey: KEY });
    const answer = await openai.chat.completions.create({ model: 'a', messages: [{ role: 'user', content: 'hi' }], max_tokens: 4 });
    expect(answer.choices[0]!.message.content).toEqual(expect.any(String));
    expect((await postJson(`${t.url}/v1/chat/completions`, chat, { 'x-api-key': KEY })).status).toBe(200);
    const ollama = new Ollama({ host: t.url, headers: { Authorization: `Bearer ${KEY}` } });
    const reply = await ollama.chat({ model: 'a', messages: chat.messages, options: { num_predict: 4 } });
    expect(reply.done).toBe(true);
    const metrics = await (await fetch(`${t.url}/metrics`, { headers: { authorization: `Bearer ${KEY}` } })).text();
    // the refused requests were counted too
    expect(metrics).toMatch(/^llama_smart_proxy_http_requests_total\{method="POST",route="\/v1\/chat\/completions",status="401"\} 2$/m);
  });
});
