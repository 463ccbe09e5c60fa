import { statSync } from 'node:fs';
import { Ollama, type ChatResponse, type GenerateResponse } from 'ollama';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { llamaTools } from '../helpers/llama.js';
import { CANNED_AGENT, pluginsRoot } from '../helpers/plugins.js';
import { waitFor } from '../helpers/processes.js';
import { modelsFolder, postJson, startTestProxy, type TestProxy } from '../helpers/proxy.js';
import { readStream } from '../helpers/sse.js';

const tools = llamaTools();

/** Test agents, written to a temporary folder. */
function writePlugins(): string {
  const { root, add: plugin } = pluginsRoot('lsp-ollama-agents');
  // Upper-cases the answer, chunk by chunk when streamed, whole otherwise; marks the request it saw.
  plugin(
    'shout',
    `export default {
  onRequest(request) { return { ...request, x_seen_by_shout: true }; },
  onStreamChunk(chunk) {
    for (const c of chunk.choices ?? []) {
      if (typeof c.delta?.content === 'string') c.delta.content = c.delta.content.toUpperCase();
    }
    return chunk;
  },
  onResponse(response) {
    for (const c of response.choices ?? []) if (typeof c.message?.content === 'string') c.message.content = c.message.content.toUpperCase();
    return { ...response, x_agents: { shout: true } };
  },
};\n`,
  );
  plugin('canned', CANNED_AGENT);
  return root;
}

const isoDate = (s: unknown) => typeof s === 'string' && !Number.isNaN(Date.parse(s)) && /^\d{4}-\d\d-\d\dT/.test(s);

function expectFinalStats(r: ChatResponse | GenerateResponse, evalCount: number): void {
  expect(r.done).toBe(true);
  expect(r.done_reason).toBe('length');
  expect(isoDate(r.created_at)).toBe(true);
  for (const field of ['total_duration', 'load_duration', 'prompt_eval_count', 'prompt_eval_duration', 'eval_count', 'eval_duration'] as const) {
    expect(Number.isInteger(r[field]), field).toBe(true);
  }
  expect(r.total_duration).toBeGreaterThan(0);
  expect(r.prompt_eval_count).toBeGreaterThan(0);
  expect(r.eval_count).toBe(evalCount);
  expect(r.eval_duration).toBeGreaterThan(0);
}

describe.skipIf(!tools.server)(`the official ollama client against the proxy${tools.reason ? ` (skipped: ${tools.reason})` : ''}`, () => {
  let t: TestProxy;
  let ollama: Ollama;
  let file: string;
  const messages = [{ role: 'user', content: 'Hi there' }];
  const options = { num_predict: 6, temperature: 0, seed: 1 };

  beforeAll(async () => {
    const { root, files } = await modelsFolder([5]);
    file = files[5]!;
    t = await startTestProxy(tools.server!, root, {
      pool: { size: 3 },
      models: {
        chat: { path: file, ctx: 1024 },
        ka: { path: file, ctx: 1024 },
        long: { path: file, ctx: 16384 },
      },
      agents: { dir: writePlugins(), bundled: false },
    });
    ollama = new Ollama({ host: t.url });
  });
  afterAll(async () => {
    await t?.proxy.close();
  });

  it('answers / and /api/version like Ollama', async () => {
    const root = await fetch(`${t.url}/`);
    expect(root.status).toBe(200);
    expect(await root.text()).toBe('Ollama is running');
    expect((await fetch(`${t.url}/`, { method: 'HEAD' })).status).toBe(200);
    expect((await ollama.version()).version).toMatch(/^\d+\.\d+\.\d+$/);
  });

  it('chat, not streamed: message and final statistics from llama-server timings', async () => {
    const r = await ollama.chat({ model: 'chat', messages, options });
    expect(r.model).toBe('chat');
    expect(r.message.role).toBe('assistant');
    expect(typeof r.message.content).toBe('string');
    expect(r.message.content.length).toBeGreaterThan(0);
    expectFinalStats(r, 6);
  });

  it('chat, streamed: one line per token, the same text, statistics on the last line only', async () => {
    const whole = await ollama.chat({ model: 'chat', messages, options });
    const parts: ChatResponse[] = [];
    for await (const part of await ollama.chat({ model: 'chat', messages, options, stream: true })) parts.push(part);
    expect(parts.length).toBeGreaterThanOrEqual(3);
    const last = parts.at(-1)!;
    for (const p of parts.slice(0, -1)) {
      expect(p.done).toBe(false);
      expect(p.model).toBe('chat');
      expect(isoDate(p.created_at)).toBe(true);
      expect(p.message.role).toBe('assistant');
      expect(typeof p.message.content).toBe('string');
    }
    expectFinalStats(last, 6);
    expect(parts.map((p) => p.message.content).join('')).toBe(whole.message.content);
  });

  it('streams lines as llama-server produces them; a client that leaves stops the generation', async () => {
    const body = (extra: Record<string, unknown>) => JSON.stringify({ model: 'long', messages, options: { temperature: 0, ...extra } });
    await ollama.chat({ model: 'long', messages, options }); // loaded before the clock starts
    const started = Date.now();
    const res = await fetch(`${t.url}/api/chat`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: body({ num_predict: 3000 }) });
    expect(res.headers.get('content-type')).toBe('application/x-ndjson');
    const record = await readStream(res);
    const lines = record.text.trim().split('\n').map((l) => JSON.parse(l) as { done: boolean; eval_count?: number });
    expect(lines.at(-1)).toMatchObject({ done: true, eval_count: lines.length - 1 });
    // arrived in pieces over the generation, the first one early
    expect(record.chunks.length).toBeGreaterThan(2);
    expect(record.chunks[0]!.at - started).toBeLessThan((record.endedAt - started) / 2);

    const predicted = async () => {
      // Straight to the instance, with the key only the proxy holds (its port answers nobody else).
      const info = t.proxy.pool.list().find((i) => i.modelId === 'long')!;
      const text = await (await fetch(`${info.url}/metrics`, { headers: t.proxy.pool.instance(info.id)!.authHeaders })).text();
      return Number(/^llamacpp:tokens_predicted_total (\d+)/m.exec(text)![1]);
    };
    const before = await predicted();
    const abort = new AbortController();
    const endless = await fetch(`${t.url}/api/chat`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: body({ num_predict: 100_000 }), signal: abort.signal });
    const reader = endless.body!.getReader();
    for (let i = 0; i < 3; i++) await reader.read();
    abort.abort();
    const idle = await waitFor(() => t.proxy.pool.list().find((i) => i.modelId === 'long')!.inFlight === 0, 5000);
    expect(idle).toBe(true);
    // llama-server notices the closed connection at its next token: poll until the slot is free (load-dependent).
    let slotsIdle = false;
    for (const deadline = Date.now() + 5000; !slotsIdle && Date.now() < deadline; ) {
      const slots = (await (await fetch(`${t.url}/slots?model=long`)).json()) as { is_processing: boolean }[];
      slotsIdle = slots.every((s) => !s.is_processing);
      if (!slotsIdle) await new Promise((r) => setTimeout(r, 100));
    }
    expect(slotsIdle).toBe(true);
    // stopped early: far fewer tokens than the ~16000 left in its context (how many depends on the machine's load)
    expect((await predicted()) - before).toBeLessThan(12_000);
  });

  it('generate, streamed and not, raw too', async () => {
    const r = await ollama.generate({ model: 'chat', prompt: 'Once upon a time', options });
    expect(typeof r.response).toBe('string');
    expect(r.response!.length).toBeGreaterThan(0);
    expect(Array.isArray(r.context)).toBe(true);
    expectFinalStats(r, 6);
    const parts: GenerateResponse[] = [];
    for await (const part of await ollama.generate({ model: 'chat', prompt: 'Once upon a time', options, stream: true })) parts.push(part);
    expectFinalStats(parts.at(-1)!, 6);
    expect(parts.map((p) => p.response).join('')).toBe(r.response);
    const raw = await ollama.generate({ model: 'chat', prompt: 'Once upon a time', raw: true, options: { ...options, num_predict: 3 } });
    expectFinalStats(raw, 3);
  });

  it('embed: unit vectors from an instance started for embeddings; the older /api/embeddings too', async () => {
    const r = await ollama.embed({ model: 'chat', input: ['hello world', 'good bye'] });
    expect(r.model).toBe('chat');
    expect(r.embeddings).toHaveLength(2);
    expect(r.embeddings[0]!.length).toBe(64);
    expect(r.embeddings[0]).not.toEqual(r.embeddings[1]);
    const norm = Math.hypot(...r.embeddings[0]!);
    expect(norm).toBeCloseTo(1, 5);
    expect(r.prompt_eval_count).toBeGreaterThan(0);
    expect(Number.isInteger(r.total_duration)).toBe(true);
    expect(Number.isInteger(r.load_duration)).toBe(true);
    const embedInstance = t.proxy.pool.list().find((i) => i.modelId === 'chat#embed')!;
    expect(embedInstance.variantOf).toBe('chat');
    expect(t.proxy.pool.instance(embedInstance.id)!.spec.args).toEqual(expect.arrayContaining(['--embeddings', '--pooling', 'mean']));
    const cut = await ollama.embed({ model: 'chat', input: 'hello world', dimensions: 16 });
    expect(cut.embeddings[0]!.length).toBe(16);
    expect(Math.hypot(...cut.embeddings[0]!)).toBeCloseTo(1, 5);
    const legacy = await ollama.embeddings({ model: 'chat', prompt: 'hello world' });
    expect(legacy.embedding.length).toBe(64);
  });

  it('list: configured models with size, digest and details from the GGUF header', async () => {
    const { models } = await ollama.list();
    const chat = models.find((m) => m.name === 'chat')!;
    expect(chat).toBeDefined();
    expect(chat.model).toBe('chat');
    expect(chat.size).toBe(statSync(file).size);
    expect(chat.digest).toMatch(/^[0-9a-f]{64}$/);
    expect(isoDate(chat.modified_at)).toBe(true);
    expect(chat.details).toMatchObject({ format: 'gguf', family: 'llama', families: ['llama'] });
    expect(chat.details.parameter_size).toMatch(/^\d+(\.\d)?[KMB]?$/);
    expect(typeof chat.details.quantization_level).toBe('string');
    expect(typeof chat.details.parent_model).toBe('string');
  });

  it('ps: loaded instances with size, size_vram, expires_at and context_length', async () => {
    await ollama.chat({ model: 'chat', messages, options });
    const { models } = await ollama.ps();
    const chat = models.find((m) => m.name === 'chat' && (m as { context_length?: number }).context_length === 1024)!;
    expect(chat).toBeDefined();
    expect(chat.size).toBeGreaterThan(0);
    expect(Number.isInteger(chat.size_vram)).toBe(true);
    expect(isoDate(chat.expires_at)).toBe(true);
    expect(chat.digest).toMatch(/^[0-9a-f]{64}$/);
    expect(chat.details.family).toBe('llama');
  });

  it('show: details, GGUF metadata, template, capabilities', async () => {
    const r = await ollama.show({ model: 'chat' });
    expect(r.details).toMatchObject({ format: 'gguf', family: 'llama' });
    const info = r.model_info as unknown as Record<string, unknown>;
    expect(info['general.architecture']).toBe('llama');
    expect(info['llama.context_length']).toEqual(expect.any(Number));
    expect(info['general.parameter_count']).toEqual(expect.any(Number));
    expect(typeof r.template).toBe('string');
    expect(r.template.length).toBeGreaterThan(0);
    expect(r.capabilities).toContain('completion');
    expect(r.parameters).toContain('num_ctx 1024');
    expect(r.modelfile).toContain(`FROM ${file}`);
    expect(isoDate(r.modified_at)).toBe(true);
    // an Ollama-style tag on an alias is the alias
    expect((await ollama.show({ model: 'chat:latest' })).details.family).toBe('llama');
  });

  it('errors in Ollama\'s shape with the right status', async () => {
    await expect(ollama.chat({ model: 'missing-model', messages })).rejects.toMatchObject({ status_code: 404, error: expect.stringContaining('"missing-model" is not configured') });
    const badJson = await postJson(`${t.url}/api/chat`, '{"model": ');
    expect(badJson.status).toBe(400);
    expect(badJson.json).toEqual({ error: expect.stringContaining('not valid JSON') });
    const noModel = await postJson(`${t.url}/api/generate`, { prompt: 'x' });
    expect(noModel).toMatchObject({ status: 400, json: { error: 'model is required' } });
    const images = await postJson(`${t.url}/api/chat`, { model: 'chat', messages: [{ role: 'user', content: 'what is it', images: ['aGVsbG8='] }] });
    expect(images.status).toBe(400);
    expect(images.json.error).toMatch(/no multimodal projector/);
    const badKeepAlive = await postJson(`${t.url}/api/chat`, { model: 'chat', messages, keep_alive: 'soon' });
    expect(badKeepAlive).toMatchObject({ status: 400, json: { error: expect.stringContaining('not a duration') } });
    const route = await fetch(`${t.url}/api/nothing-here`);
    expect(route.status).toBe(404);
    expect(await route.json()).toEqual({ error: expect.stringContaining('no route') });
    // pull takes Hugging Face models; a local one is a 400 saying so, and push is not there at all
    const pull = await postJson(`${t.url}/api/pull`, { model: 'chat' });
    expect(pull).toMatchObject({ status: 400, json: { error: expect.stringContaining('only Hugging Face models are pulled') } });
    const push = await postJson(`${t.url}/api/push`, { model: 'chat' });
    expect(push.status).toBe(501);
    // a body sent the way `curl -d` sends it (as a form) is read as JSON, as Ollama does
    const form = await fetch(`${t.url}/api/show`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: JSON.stringify({ model: 'chat' }) });
    expect(form.status).toBe(200);
  });

  it('agents run on /api/chat and /api/generate, streamed and not; the forwarded prompt has no command', async () => {
    const plain = await ollama.chat({ model: 'chat', messages, options });
    const shouted = await ollama.chat({ model: 'chat', messages: [{ role: 'user', content: `/shout ${messages[0]!.content}` }], options });
    expect(shouted.message.content).toBe(plain.message.content.toUpperCase());
    expect(shouted.prompt_eval_count).toBe(plain.prompt_eval_count);
    expect((shouted as unknown as { x_agents: unknown }).x_agents).toEqual({ shout: true });

    let streamed = '';
    for await (const part of await ollama.chat({ model: 'chat', messages: [{ role: 'user', content: `/shout ${messages[0]!.content}` }], options, stream: true })) streamed += part.message.content;
    expect(streamed).toBe(plain.message.content.toUpperCase());

    const gen = await ollama.generate({ model: 'chat', prompt: 'Once upon a time', options });
    const genShout = await ollama.generate({ model: 'chat', prompt: '/shout Once upon a time', options });
    expect(genShout.response).toBe(gen.response!.toUpperCase());
    expect(genShout.prompt_eval_count).toBe(gen.prompt_eval_count);

    const canned = await ollama.generate({ model: 'chat', prompt: '/canned hello' });
    expect(canned).toMatchObject({ response: 'canned answer', done: true, done_reason: 'stop' });
    let cannedStream = '';
    for await (const part of await ollama.chat({ model: 'chat', messages: [{ role: 'user', content: '/canned hello' }], stream: true })) cannedStream += part.message.content;
    expect(cannedStream).toBe('canned answer');
  });

  it('num_ctx starts an instance with that context, beside the configured one', async () => {
    await ollama.chat({ model: 'ka', messages, options: { ...options, num_predict: 2, num_ctx: 512 } });
    const variant = t.proxy.pool.list().find((i) => i.modelId === 'ka#ctx512')!;
    expect(variant).toMatchObject({ ctx: 512, variantOf: 'ka', state: 'ready' });
    const args = t.proxy.pool.instance(variant.id)!.spec.args;
    expect(args[args.indexOf('-c') + 1]).toBe('512');
    const props = (await (await fetch(`${variant.url}/props`, { headers: t.proxy.pool.instance(variant.id)!.authHeaders })).json()) as { default_generation_settings: { n_ctx: number } };
    expect(props.default_generation_settings.n_ctx).toBe(512);
    const ps = await ollama.ps();
    expect(ps.models.some((m) => m.name === 'ka' && (m as { context_length?: number }).context_length === 512)).toBe(true);
  });

  it('keep_alive: a duration sets the expiry, -1 never, 0 unloads right after the request; an empty prompt loads or unloads', async () => {
    const expiry = async () => (await ollama.ps()).models.find((m) => m.name === 'ka' && (m as { context_length?: number }).context_length === 1024)?.expires_at as unknown as string | undefined;
    await ollama.chat({ model: 'ka', messages, options, keep_alive: '10m' });
    const in10m = Date.parse((await expiry())!) - Date.now();
    expect(in10m).toBeGreaterThan(9 * 60_000);
    expect(in10m).toBeLessThanOrEqual(10 * 60_000 + 1000);
    await ollama.chat({ model: 'ka', messages, options, keep_alive: -1 });
    expect(Date.parse((await expiry())!)).toBeGreaterThan(Date.now() + 100 * 365 * 24 * 3600_000);

    const running = () => t.proxy.pool.list().filter((i) => i.modelId === 'ka');
    const before = running()[0]!;
    const r = await ollama.chat({ model: 'ka', messages, options, keep_alive: 0 });
    expect(r.done).toBe(true);
    expect(await waitFor(() => running().length === 0, 10_000)).toBe(true);
    expect(t.proxy.pool.instance(before.id)!.exitedAt).toBeDefined();

    const load = await ollama.generate({ model: 'ka', prompt: '' });
    expect(load).toMatchObject({ done: true, done_reason: 'load', response: '' });
    expect(running().map((i) => i.state)).toEqual(['ready']);
    const unload = await ollama.generate({ model: 'ka', prompt: '', keep_alive: 0 });
    expect(unload).toMatchObject({ done: true, done_reason: 'unload' });
    expect(running()).toEqual([]);
    // the ctx variant went with it
    expect(t.proxy.pool.list().filter((i) => i.variantOf === 'ka')).toEqual([]);
  });
});
