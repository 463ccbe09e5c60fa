import Anthropic from '@anthropic-ai/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { llamaTools } from '../helpers/llama.js';
import { CANNED_AGENT, pluginsRoot } from '../helpers/plugins.js';
import { modelsFolder, postJson, startTestProxy, type TestProxy } from '../helpers/proxy.js';

const tools = llamaTools();

/** Agents for the bridge: one answers by itself, one upper-cases the model's answer (whole or streamed). */
function writePlugins(): string {
  const { root, add } = pluginsRoot('lsp-anthropic-it');
  add('canned', CANNED_AGENT);
  add(
    'shout',
    `export default {
  onRequest(request) { (globalThis.__lspShout ??= []).push(request.messages.at(-1).content); return request; },
  onResponse(r) { r.choices[0].message.content = 'SHOUT:' + r.choices[0].message.content; return r; },
};\n`,
  );
  return root;
}

describe.skipIf(!tools.server)(`the official @anthropic-ai/sdk against the proxy${tools.reason ? ` (skipped: ${tools.reason})` : ''}`, () => {
  let t: TestProxy;
  let client: Anthropic;

  beforeAll(async () => {
    const { root, files } = await modelsFolder([5]);
    t = await startTestProxy(tools.server!, root, {
      server: { apiKeys: ['sk-test'] },
      models: { chat: { path: files[5]!, ctx: 1024 } },
      agents: { dir: writePlugins(), bundled: false },
    });
    // x-api-key, as ANTHROPIC_API_KEY sends it; the SDK adds anthropic-version.
    client = new Anthropic({ baseURL: t.url, apiKey: 'sk-test', maxRetries: 0 });
  });
  afterAll(async () => {
    await t?.proxy.close();
  });

  it('creates a message', async () => {
    const res = await client.messages.create({ model: 'chat', max_tokens: 6, messages: [{ role: 'user', content: 'Hi' }] });
    expect(res.type).toBe('message');
    expect(res.role).toBe('assistant');
    expect(res.content[0]!.type).toBe('text');
    expect(res.stop_reason).toBe('max_tokens');
    expect(res.usage.output_tokens).toBe(6);
  });

  it('streams a message as Anthropic events, from message_start to message_stop', async () => {
    const types: string[] = [];
    const stream = client.messages.stream({ model: 'chat', max_tokens: 8, system: 'Be brief.', messages: [{ role: 'user', content: [{ type: 'text', text: 'Hi' }] }] });
    stream.on('streamEvent', (e) => types.push(e.type));
    const final = await stream.finalMessage();
    expect(types[0]).toBe('message_start');
    expect(types.at(-1)).toBe('message_stop');
    expect(types).toContain('content_block_delta');
    expect(final.content[0]!.type).toBe('text');
    expect(final.stop_reason).toBe('max_tokens');
  });

  it('counts tokens, also with ?beta=true and a Bearer key (ANTHROPIC_AUTH_TOKEN)', async () => {
    const res = await client.messages.countTokens({ model: 'chat', messages: [{ role: 'user', content: 'Hello there, how are you?' }] });
    expect(res.input_tokens).toBeGreaterThan(3);
    const beta = await postJson(`${t.url}/v1/messages/count_tokens?beta=true`, { model: 'chat', messages: [{ role: 'user', content: 'Hello there, how are you?' }] }, { authorization: 'Bearer sk-test', 'anthropic-version': '2023-06-01', 'anthropic-beta': 'claude-code-20250219' });
    expect(beta.status).toBe(200);
    expect(beta.json.input_tokens).toBe(res.input_tokens);
  });

  it('answers an unknown model with a 404 in Anthropic\'s shape', async () => {
    const err = await client.messages.create({ model: 'missing-model', max_tokens: 4, messages: [{ role: 'user', content: 'x' }] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Anthropic.NotFoundError);
    const raw = await postJson(`${t.url}/v1/messages?beta=true`, { model: 'missing-model', max_tokens: 4, messages: [{ role: 'user', content: 'x' }] }, { 'x-api-key': 'sk-test' });
    expect(raw.status).toBe(404);
    expect(raw.json).toEqual({ type: 'error', error: { type: 'not_found_error', message: expect.stringContaining('"missing-model"') } });
  });

  it('refuses a missing or wrong key with a 401 in Anthropic\'s shape', async () => {
    const none = await postJson(`${t.url}/v1/messages`, { model: 'chat', max_tokens: 4, messages: [] });
    expect(none.status).toBe(401);
    expect(none.json).toMatchObject({ type: 'error', error: { type: 'authentication_error' } });
    const wrong = new Anthropic({ baseURL: t.url, apiKey: 'nope', maxRetries: 0 });
    await expect(wrong.messages.create({ model: 'chat', max_tokens: 4, messages: [{ role: 'user', content: 'x' }] })).rejects.toBeInstanceOf(Anthropic.AuthenticationError);
    // Other families keep their own shape.
    expect((await postJson(`${t.url}/v1/chat/completions`, {})).json.error.type).toBe('authentication_error');
  });

  it('runs a slash-command agent that answers by itself, whole and streamed', async () => {
    const res = await client.messages.create({ model: 'chat', max_tokens: 4, messages: [{ role: 'user', content: '/canned hello' }] });
    expect(res.content).toEqual([{ type: 'text', text: 'canned answer' }]);
    expect(res.stop_reason).toBe('end_turn');
    const stream = client.messages.stream({ model: 'chat', max_tokens: 4, messages: [{ role: 'user', content: [{ type: 'text', text: '/canned hello' }] }] });
    const final = await stream.finalMessage();
    expect(final.content).toEqual([{ type: 'text', text: 'canned answer' }]);
  });

  it('runs an agent on the last user message and on the model\'s answer', async () => {
    const res = await client.messages.create({ model: 'chat', max_tokens: 4, messages: [{ role: 'user', content: 'first' }, { role: 'assistant', content: 'ok' }, { role: 'user', content: [{ type: 'text', text: '/shout tell me' }] }] });
    expect((globalThis as { __lspShout?: unknown[] }).__lspShout?.at(-1)).toEqual([{ type: 'text', text: 'tell me' }]);
    const block = res.content[0]!;
    expect(block.type === 'text' && block.text.startsWith('SHOUT:')).toBe(true);
    expect(res.stop_reason).toBe('max_tokens');
    const stream = client.messages.stream({ model: 'chat', max_tokens: 4, messages: [{ role: 'user', content: '/shout again' }] });
    const final = await stream.finalMessage();
    const streamed = final.content[0]!;
    expect(streamed.type === 'text' && streamed.text.startsWith('SHOUT:')).toBe(true);
  });

  it('refuses agents on content the translation cannot carry, naming it', async () => {
    const res = await postJson(`${t.url}/v1/messages`, { model: 'chat', max_tokens: 4, messages: [{ role: 'user', content: [{ type: 'document', source: {} }, { type: 'text', text: '/shout x' }] }] }, { 'x-api-key': 'sk-test' });
    expect(res.status).toBe(400);
    expect(res.json.error.message).toContain('"document" content blocks');
  });
});
