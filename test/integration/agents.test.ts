import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { llamaTools } from '../helpers/llama.js';
import { CANNED_AGENT, pluginsRoot } from '../helpers/plugins.js';
import { modelsFolder, postJson, startTestProxy, type TestProxy } from '../helpers/proxy.js';
import { readStream, streamedContent } from '../helpers/sse.js';

const tools = llamaTools();

/** Calls the test agents record (they run in this process: the proxy is started in-process). */
const agentLog = (): string[] => ((globalThis as { __lspAgentLog?: string[] }).__lspAgentLog ??= []);

/** Test plugins, written to a temporary folder outside the repository. */
function writePlugins(): string {
  const { root, add: plugin } = pluginsRoot('lsp-agents-it');
  const record = `const record = (entry) => (globalThis.__lspAgentLog ??= []).push(entry);\n`;
  // Tracers: add their name to request.x_trace and response.x_trace, and report what they found there.
  const tracer = (name: string) => `${record}
export default {
  onRequest(request, ctx) {
    record('${name}:onRequest:' + ctx.endpoint);
    ctx.state.saw = [...(request.x_trace ?? [])];
    return { ...request, x_trace: [...(request.x_trace ?? []), '${name}'] };
  },
  onResponse(response, ctx) {
    record('${name}:onResponse');
    return { ...response, x_trace: [...(response.x_trace ?? []), '${name}'], x_seen_${name}: { request: ctx.state.saw, response: [...(response.x_trace ?? [])] } };
  },
};\n`;
  plugin('first', tracer('first'));
  plugin('second', tracer('second'));
  plugin('boom', `export default { onRequest() { throw new Error('boom agent exploded'); }, onResponse(r) { r.boom = true; return r; } };\n`);
  plugin('slow', `export default { onRequest: (r) => new Promise((resolve) => setTimeout(() => resolve(r), 5000)) };\n`, { timeout: 0.3 });
  // Async and a little slow (2 ms per chunk), so that a stream through it lasts long enough to tell streaming
  // from gathering whatever the machine's speed.
  plugin(
    'upper',
    `export default {
  async onStreamChunk(chunk, ctx) {
    await new Promise((resolve) => setTimeout(resolve, 2));
    ctx.state.seq = (ctx.state.seq ?? 0) + 1;
    for (const c of chunk.choices ?? []) {
      if (typeof c.delta?.content === 'string') c.delta.content = c.delta.content.toUpperCase();
      if (typeof c.text === 'string') c.text = c.text.toUpperCase();
    }
    return { ...chunk, x_seq: ctx.state.seq };
  },
};\n`,
  );
  plugin('exclaim', `export default { onResponse(r) { r.choices[0].message.content += '!!'; return r; } };\n`);
  plugin('canned', CANNED_AGENT);
  plugin('switch', `export default { onRequest: (r) => ({ ...r, model: 'elsewhere', stream: true }) };\n`);
  plugin('broken', `export default { onRequest( };\n`);
  plugin('empty', `export default { onRequest: (r) => r };\n`, null);
  return root;
}

const chat = (content: string, extra: Record<string, unknown> = {}) => ({ model: 'tiny', messages: [{ role: 'user', content }], max_tokens: 8, temperature: 0, ...extra });

function streamRequest(url: string, body: unknown): Promise<Response> {
  return fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
}

describe.skipIf(!tools.server)(`agents over a real llama-server${tools.reason ? ` (skipped: ${tools.reason})` : ''}`, () => {
  let t: TestProxy;

  beforeAll(async () => {
    const { root, files } = await modelsFolder([1]);
    t = await startTestProxy(tools.server!, root, {
      pool: { size: 2 },
      models: {
        tiny: { path: files[1]!, ctx: 4096, parallel: 4 },
        'tiny-gpu': { path: files[1]!, ctx: 512, agents: ['gpu'] },
      },
      agents: { dir: writePlugins(), settings: { json: { constrain: false } } },
    });
  });

  afterAll(async () => {
    await t?.proxy.close();
  });

  it('discovers the plugins of a folder outside the repo and the bundled ones; broken folders are listed, the rest load', async () => {
    const health = (await (await fetch(`${t.url}/health`)).json()) as { agents: { name: string; state: string; reason: string | null }[] };
    const state = Object.fromEntries(health.agents.map((a) => [a.name, a.state]));
    expect(state).toMatchObject({ first: 'loaded', second: 'loaded', upper: 'loaded', canned: 'loaded', json: 'loaded', gpu: 'loaded', parallel: 'loaded', broken: 'failed', empty: 'failed' });
    expect(health.agents.find((a) => a.name === 'broken')!.reason).toMatch(/importing index\.mjs failed/);
    expect(health.agents.find((a) => a.name === 'empty')!.reason).toBe('no config.json in the folder');
  });

  it('runs a chain of two agents in the order written, each seeing the previous output; the forwarded prompt has no commands', async () => {
    const plain = await postJson(`${t.url}/v1/chat/completions`, chat('Say hi'));
    const agents = await postJson(`${t.url}/v1/chat/completions`, chat('/first /second Say hi'));
    expect(agents.status).toBe(200);
    expect(agents.json.x_trace).toEqual(['first', 'second']);
    expect(agents.json.x_seen_first).toEqual({ request: [], response: [] });
    expect(agents.json.x_seen_second).toEqual({ request: ['first'], response: ['first'] });
    // llama-server saw exactly the plain prompt: same token count, same (deterministic) answer
    expect(agents.json.usage.prompt_tokens).toBe(plain.json.usage.prompt_tokens);
    expect(agents.json.choices[0].message.content).toBe(plain.json.choices[0].message.content);

    const reversed = await postJson(`${t.url}/v1/chat/completions`, chat('/second /first Say hi'));
    expect(reversed.json.x_trace).toEqual(['second', 'first']);
  });

  it('leaves unknown /commands (and what follows them) in the prompt', async () => {
    const plain = await postJson(`${t.url}/v1/chat/completions`, chat('/nope /second Say hi'));
    expect(plain.json.x_trace).toBeUndefined();
    const mixed = await postJson(`${t.url}/v1/chat/completions`, chat('/first /nope /second Say hi'));
    expect(mixed.json.x_trace).toEqual(['first']);
    expect(mixed.json.usage.prompt_tokens).toBe(plain.json.usage.prompt_tokens);
    expect(mixed.json.choices[0].message.content).toBe(plain.json.choices[0].message.content);
  });

  it('skips an agent that throws and one that runs past its timeout; the response still arrives', async () => {
    const started = Date.now();
    const res = await postJson(`${t.url}/v1/chat/completions`, chat('/boom /slow /first Say hi'));
    expect(res.status).toBe(200);
    // the slow agent alone would take 5 s
    expect(Date.now() - started).toBeLessThan(4500);
    expect(res.json.x_trace).toEqual(['first']);
    expect(res.json.boom).toBeUndefined();
    const health = (await (await fetch(`${t.url}/health`)).json()) as { agents: { name: string; failures: number; last_failure: { reason: string } | null }[] };
    const boom = health.agents.find((a) => a.name === 'boom')!;
    expect(boom.failures).toBeGreaterThanOrEqual(1);
    expect(boom.last_failure!.reason).toBe('threw: boom agent exploded');
    expect(health.agents.find((a) => a.name === 'slow')!.last_failure!.reason).toMatch(/timed out after 0.3 s/);
  });

  it('streams through a chunk-level agent chunk by chunk', async () => {
    const long = { max_tokens: 200, ignore_eos: true, stream: true };
    const plain = await readStream(await streamRequest(t.url, chat('Tell me a story', long)));
    const started = Date.now();
    const res = await streamRequest(t.url, chat('/upper Tell me a story', long));
    expect(res.headers.get('content-type')).toContain('text/event-stream');
    const record = await readStream(res);
    expect(record.done).toBe(true);
    // 200 chunks at >= 2 ms each: gathered, the first would arrive at the end; streamed, in the first half (not
    // the first quarter: on a loaded 2-core machine the prompt alone can take a quarter of the time)
    const total = record.endedAt - started;
    expect(total).toBeGreaterThan(400);
    expect(record.chunks[0]!.at - started).toBeLessThan(total / 2);
    expect(record.chunks.length).toBeGreaterThan(50);
    expect(streamedContent(record)).toBe(streamedContent(plain).toUpperCase());
    const seqs = record.text.split('\n').filter((l) => l.startsWith('data: {')).map((l) => (JSON.parse(l.slice(6)) as { x_seq: number }).x_seq);
    expect(seqs.length).toBeGreaterThan(190);
    expect(seqs).toEqual(seqs.map((_, i) => i + 1));
  });

  it('streamed requests back to back, with and without agents, all succeed (llama-server closes a connection after a stream)', async () => {
    for (let i = 0; i < 30; i++) {
      const record = await readStream(await streamRequest(t.url, chat(i % 2 ? '/first Tell me' : 'Tell me', { stream: true })));
      expect(record.status).toBe(200);
      expect(record.text).not.toContain('upstream_error');
      expect(record.done).toBe(true);
    }
  });

  it('a client that leaves mid-stream through a chunk agent cancels the generation', async () => {
    const abort = new AbortController();
    const res = await fetch(`${t.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(chat('/upper Tell me a story', { max_tokens: 100_000, ignore_eos: true, stream: true })),
      signal: abort.signal,
    });
    const reader = res.body!.getReader();
    for (let i = 0; i < 3; i++) await reader.read();
    abort.abort();
    const deadline = Date.now() + 5000;
    let idle = false;
    while (!idle && Date.now() < deadline) {
      const slots = (await (await fetch(`${t.url}/slots?model=tiny`)).json()) as { is_processing: boolean }[];
      idle = slots.every((s) => !s.is_processing) && t.proxy.pool.list().find((i) => i.modelId === 'tiny')!.inFlight === 0;
      if (!idle) await new Promise((r) => setTimeout(r, 100));
    }
    expect(idle).toBe(true);
  });

  it('with stream: true, an onResponse-only agent gets the assembled answer and the client still gets SSE', async () => {
    const plain = await readStream(await streamRequest(t.url, chat('Tell me', { stream: true })));
    const record = await readStream(await streamRequest(t.url, chat('/exclaim Tell me', { stream: true })));
    expect(record.done).toBe(true);
    expect(streamedContent(record)).toBe(`${streamedContent(plain)}!!`);
  });

  it('an agent may answer by itself (no model call), streamed or not, and earlier agents see its answer', async () => {
    const res = await postJson(`${t.url}/v1/chat/completions`, chat('/first /canned /second hi'));
    expect(res.status).toBe(200);
    expect(res.json.choices[0].message.content).toBe('canned answer');
    expect(res.json.x_trace).toEqual(['first']);
    const record = await readStream(await streamRequest(t.url, chat('/canned hi', { stream: true })));
    expect(record.done).toBe(true);
    expect(streamedContent(record)).toBe('canned answer');
  });

  it('request hooks cannot change the model or the streaming mode', async () => {
    const res = await postJson(`${t.url}/v1/chat/completions`, chat('/switch hi'));
    expect(res.status).toBe(200);
    expect(res.json.object).toBe('chat.completion');
    expect(res.json.model).toBe('tiny');
  });

  it('runs on /v1/completions; never on embeddings', async () => {
    const res = await postJson(`${t.url}/v1/completions`, { model: 'tiny', prompt: '/first Once upon', max_tokens: 4 });
    expect(res.status).toBe(200);
    expect(res.json.x_trace).toEqual(['first']);
    const before = agentLog().length;
    await postJson(`${t.url}/v1/embeddings`, { model: 'tiny', input: '/first hello' });
    await postJson(`${t.url}/v1/chat/completions`, chat('no agent here'));
    expect(agentLog().slice(before)).toEqual([]);
    expect(agentLog()).toContain('first:onRequest:completions');
  });

  it('/gpu via models.<alias>.agents reports the instance that served the request, streamed or not', async () => {
    const res = await postJson(`${t.url}/v1/chat/completions`, chat('hi', { model: 'tiny-gpu' }));
    expect(res.status).toBe(200);
    const served = t.proxy.pool.list().find((i) => i.modelId === 'tiny-gpu')!;
    expect(res.json.x_agents.gpu.instance).toMatchObject({ id: served.id, modelId: 'tiny-gpu', pid: served.pid, state: 'ready' });
    expect(res.json.x_agents.gpu.memory).toMatchObject({ on_gpu: expect.any(Boolean), gpus: expect.any(Array) });
    const record = await readStream(await streamRequest(t.url, chat('hi', { model: 'tiny-gpu', stream: true })));
    expect(record.done).toBe(true);
    const last = record.text.split('\n').filter((l) => l.startsWith('data: {')).map((l) => JSON.parse(l.slice(6)) as { x_agents?: { gpu: { instance: { id: string } } } });
    expect(last.filter((e) => e.x_agents)).toHaveLength(1);
    expect(last.find((e) => e.x_agents)!.x_agents!.gpu.instance.id).toBe(served.id);
  });

  it('/json asks for JSON, retries once when the answer is not JSON, and says so', async () => {
    const plain = await postJson(`${t.url}/v1/chat/completions`, chat('Give me an object', { ignore_eos: true }));
    const res = await postJson(`${t.url}/v1/chat/completions`, chat('/json Give me an object', { ignore_eos: true }));
    expect(res.status).toBe(200);
    // The tiny model (random weights, byte vocabulary) cannot write JSON: both attempts fail, clearly reported.
    expect(res.json.x_agents.json).toMatchObject({ valid: false, attempts: 2, error: expect.stringMatching(/JSON/), first_error: expect.any(String) });
    // two calls: the instruction and the retry make the prompt side much larger than the plain request's
    expect(res.json.usage.prompt_tokens).toBeGreaterThan(2 * plain.json.usage.prompt_tokens);
    expect(res.json.usage.completion_tokens).toBe(2 * plain.json.usage.completion_tokens);
  });

  it('/parallel 3 samples three times and answers with the chosen one', async () => {
    const res = await postJson(`${t.url}/v1/chat/completions`, chat('/parallel 3 Pick a word', { ignore_eos: true }));
    expect(res.status).toBe(200);
    expect(res.json.x_agents.parallel).toMatchObject({ samples: 3, succeeded: 3, pick: 'most-common' });
    expect(res.json.usage.completion_tokens).toBe(3 * 8);
    expect(typeof res.json.choices[0].message.content).toBe('string');
    const record = await readStream(await streamRequest(t.url, chat('/parallel 2 Pick a word', { stream: true, ignore_eos: true })));
    expect(record.done).toBe(true);
    expect(record.text).toMatch(/"parallel":\{"samples":2/);
  });
});
