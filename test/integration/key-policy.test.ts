/** server.keys: allow-lists (403), limits (429 + Retry-After), token budgets, roles, accounting; a real llama-server answers. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { llamaTools } from '../helpers/llama.js';
import { pluginsRoot } from '../helpers/plugins.js';
import { modelsFolder, postJson, startTestProxy, type TestProxy } from '../helpers/proxy.js';

const tools = llamaTools();
const bearer = (k: string) => ({ authorization: `Bearer ${k}` });
const msgs = [{ role: 'user', content: 'hi' }];
const openaiChat = (model: string) => ({ model, messages: msgs, max_tokens: 4 });
const anthropicChat = (model: string) => ({ model, messages: msgs, max_tokens: 4 });
const ollamaChat = (model: string) => ({ model, messages: msgs, stream: false, options: { num_predict: 4 } });

describe.skipIf(!tools.server)(`key policy${tools.reason ? ` (skipped: ${tools.reason})` : ''}`, () => {
  let t: TestProxy;

  beforeAll(async () => {
    const { root, files } = await modelsFolder([51]);
    // An agent that calls another model for its client (context.complete) and says how that went.
    const agents = pluginsRoot('lsp-key-agents');
    agents.add(
      'askother',
      `export default {
  async onRequest(request, ctx) {
    let said;
    try { const r = await ctx.complete({ model: 'other', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 }); said = 'answered ' + r.usage.completion_tokens; }
    catch (err) { said = 'refused: ' + err.message; }
    return ctx.reply({ id: 'x', object: 'chat.completion', created: 1, model: request.model, choices: [{ index: 0, message: { role: 'assistant', content: said }, finish_reason: 'stop' }] });
  },
};\n`,
    );
    t = await startTestProxy(tools.server!, root, {
      agents: { dir: agents.root },
      server: {
        apiKeys: ['old-admin'],
        keys: [
          { name: 'alice', key: 'k-alice', models: ['tiny-*'] },
          { name: 'one', key: 'k-one', maxConcurrent: 1 },
          { name: 'rpm', key: 'k-rpm', requestsPerMinute: 2 },
          { name: 'budget', key: 'k-budget', tokensPerDay: 1 },
          { name: 'ops', key: 'k-ops', role: 'admin' },
        ],
      },
      // tiny-a's context is long enough that maxConcurrent's endless stream cannot end (context full) before the
      // test's second request: on a loaded machine a 512-token one did, and that request went to the stopped instance.
      models: { 'tiny-a': { path: files[51]!, ctx: 65_536, args: ['--override-kv', 'llama.context_length=int:65536'] }, other: { path: files[51]!, ctx: 512 } },
    });
  });
  afterAll(async () => {
    await t?.proxy.close();
  });

  it('refuses a model outside the allow-list with 403 naming the key, in each family\'s shape', async () => {
    const o = await postJson(`${t.url}/v1/chat/completions`, openaiChat('other'), bearer('k-alice'));
    expect(o.status).toBe(403);
    expect(o.json.error).toMatchObject({ type: 'permission_error', code: 'model_not_allowed', message: expect.stringContaining('key "alice"') });
    expect(JSON.stringify(o.json)).not.toContain('k-alice');
    const a = await postJson(`${t.url}/v1/messages`, anthropicChat('other'), { 'x-api-key': 'k-alice' });
    expect(a.status).toBe(403);
    expect(a.json).toMatchObject({ type: 'error', error: { type: 'permission_error', message: expect.stringContaining('"alice"') } });
    const l = await postJson(`${t.url}/api/chat`, ollamaChat('other'), bearer('k-alice'));
    expect(l).toMatchObject({ status: 403, json: { error: expect.stringContaining('"alice"') } });
    const form = new FormData();
    form.append('model', 'other');
    form.append('file', new Blob([new Uint8Array(16)]), 'a.wav');
    const tr = await fetch(`${t.url}/v1/audio/transcriptions`, { method: 'POST', headers: bearer('k-alice'), body: form });
    expect(tr.status).toBe(403);
    expect(((await tr.json()) as { error: { message: string } }).error.message).toContain('"alice"');
    const ok = await postJson(`${t.url}/v1/chat/completions`, openaiChat('tiny-a'), bearer('k-alice'));
    expect(ok.status).toBe(200);
  });

  it('maxConcurrent: a second request while one is in flight is 429 with Retry-After', async () => {
    // The first request is a long stream, in flight until the client leaves (no timing to rely on; ignore_eos: a
    // random model can reach its end token).
    const abort = new AbortController();
    const first = await fetch(`${t.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...bearer('k-one') },
      body: JSON.stringify({ ...openaiChat('tiny-a'), max_tokens: 100_000, ignore_eos: true, stream: true }),
      signal: abort.signal,
    });
    expect(first.status).toBe(200);
    const reader = first.body!.getReader();
    await reader.read();
    // Held in flight for sure: its instance is stopped (SIGSTOP) until the check is done.
    const pid = t.proxy.pool.list().find((i) => i.modelId === 'tiny-a')!.pid!;
    process.kill(pid, 'SIGSTOP');
    let second;
    try {
      second = await postJson(`${t.url}/api/chat`, ollamaChat('tiny-a'), bearer('k-one'));
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    expect(second.status).toBe(429);
    expect(Number(second.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(second.json.error).toContain('maxConcurrent');
    abort.abort();
    await reader.cancel().catch(() => {});
    // Its slot comes back once the stream is gone.
    await new Promise((r) => setTimeout(r, 200));
    expect((await postJson(`${t.url}/v1/chat/completions`, openaiChat('tiny-a'), bearer('k-one'))).status).toBe(200);
  });

  it('requestsPerMinute: the third request in a minute is 429 with Retry-After, in each family\'s shape', async () => {
    expect((await postJson(`${t.url}/v1/chat/completions`, openaiChat('tiny-a'), bearer('k-rpm'))).status).toBe(200);
    expect((await postJson(`${t.url}/v1/chat/completions`, openaiChat('tiny-a'), bearer('k-rpm'))).status).toBe(200);
    const o = await postJson(`${t.url}/v1/chat/completions`, openaiChat('tiny-a'), bearer('k-rpm'));
    expect(o.status).toBe(429);
    expect(o.json.error).toMatchObject({ type: 'rate_limit_error', code: 'requestsPerMinute_exceeded' });
    const retry = Number(o.headers.get('retry-after'));
    expect(retry).toBeGreaterThanOrEqual(1);
    expect(retry).toBeLessThanOrEqual(60);
    const a = await postJson(`${t.url}/v1/messages`, anthropicChat('tiny-a'), bearer('k-rpm'));
    expect(a).toMatchObject({ status: 429, json: { type: 'error', error: { type: 'rate_limit_error' } } });
    const l = await postJson(`${t.url}/api/chat`, ollamaChat('tiny-a'), bearer('k-rpm'));
    expect(l).toMatchObject({ status: 429, json: { error: expect.stringContaining('requestsPerMinute') } });
  });

  it('tokensPerDay: once the answers used the budget, new requests are 429', async () => {
    expect((await postJson(`${t.url}/v1/chat/completions`, openaiChat('tiny-a'), bearer('k-budget'))).status).toBe(200);
    const over = await postJson(`${t.url}/v1/chat/completions`, openaiChat('tiny-a'), bearer('k-budget'));
    expect(over.status).toBe(429);
    expect(over.json.error.code).toBe('tokensPerDay_exceeded');
    expect(Number(over.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
  });

  it('admin-only routes: 403 for a user key, allowed for an admin key and an old apiKeys key', async () => {
    for (const [method, path] of [['POST', '/models/unload'], ['POST', '/models/load'], ['POST', '/api/pull'], ['GET', '/usage'], ['POST', '/admin/reload'], ['GET', '/logs/x']] as const) {
      const r = await fetch(`${t.url}${path}`, { method, headers: { ...bearer('k-alice'), 'content-type': 'application/json' }, ...(method === 'POST' ? { body: JSON.stringify({ model: 'tiny-a' }) } : {}) });
      expect(r.status, path).toBe(403);
      expect(await r.text()).toContain('admin key');
    }
    expect((await fetch(`${t.url}/v1/models`, { headers: bearer('k-alice') })).status).toBe(200);
    expect((await fetch(`${t.url}/api/tags`, { headers: bearer('k-alice') })).status).toBe(200);
    expect((await fetch(`${t.url}/usage`, { headers: bearer('k-ops') })).status).toBe(200);
    expect((await fetch(`${t.url}/usage`, { headers: bearer('old-admin') })).status).toBe(200);
    expect((await postJson(`${t.url}/models/unload`, {}, bearer('old-admin'))).status).toBe(200);
  });

  it('/usage and /metrics count per key what was sent', async () => {
    const before = (await (await fetch(`${t.url}/usage?key=alice`, { headers: bearer('k-ops') })).json()) as { keys: Record<string, Record<string, { requests: number; errors: number; promptTokens: number; completionTokens: number }>> };
    const r = await postJson(`${t.url}/v1/chat/completions`, openaiChat('tiny-a'), bearer('k-alice'));
    expect(r.status).toBe(200);
    const after = (await (await fetch(`${t.url}/usage?key=alice`, { headers: bearer('k-ops') })).json()) as typeof before;
    const b = before.keys.alice!['tiny-a']!;
    const a = after.keys.alice!['tiny-a']!;
    expect(a.requests).toBe(b.requests + 1);
    expect(a.promptTokens - b.promptTokens).toBe(r.json.usage.prompt_tokens);
    expect(a.completionTokens - b.completionTokens).toBe(r.json.usage.completion_tokens);
    expect(Object.keys(after.keys)).toEqual(["alice"]);
    expect(a.errors).toBe(b.errors);
    const metrics = await (await fetch(`${t.url}/metrics`, { headers: bearer('k-ops') })).text();
    expect(metrics).toContain(`llama_smart_proxy_key_requests_total{key="alice",model="tiny-a"} ${a.requests}`);
    expect(metrics).toContain(`llama_smart_proxy_key_tokens_total{key="alice",model="tiny-a",direction="completion"} ${a.completionTokens}`);
    expect(metrics).toContain(`llama_smart_proxy_key_errors_total{key="alice",model="other"} 4`);
  });

  it('counts the tokens of Ollama and Anthropic answers too', async () => {
    type Usage = { keys: Record<string, Record<string, { promptTokens: number; completionTokens: number }>> };
    const read = async () => ((await (await fetch(`${t.url}/usage?key=ops`, { headers: bearer('k-ops') })).json()) as Usage).keys.ops?.['tiny-a'] ?? { promptTokens: 0, completionTokens: 0 };
    const b0 = await read();
    const l = await postJson(`${t.url}/api/chat`, ollamaChat('tiny-a'), bearer('k-ops'));
    expect(l.status).toBe(200);
    const b1 = await read();
    expect(b1.promptTokens - b0.promptTokens).toBe(l.json.prompt_eval_count);
    expect(b1.completionTokens - b0.completionTokens).toBe(l.json.eval_count);
    const a = await postJson(`${t.url}/v1/messages`, anthropicChat('tiny-a'), bearer('k-ops'));
    expect(a.status).toBe(200);
    const b2 = await read();
    expect(b2.promptTokens - b1.promptTokens).toBe(a.json.usage.input_tokens);
    expect(b2.completionTokens - b1.completionTokens).toBe(a.json.usage.output_tokens);
  });

  it("an agent's model calls obey the key's allow-list", async () => {
    const ask = (key: string) => postJson(`${t.url}/v1/chat/completions`, { model: 'tiny-a', messages: [{ role: 'user', content: '/askother hi' }], max_tokens: 2 }, bearer(key));
    const alice = await ask('k-alice');
    expect(alice.status).toBe(200);
    expect(alice.json.choices[0].message.content).toMatch(/^refused: .*key "alice" may not use model "other".*called by an agent/);
    const ops = await ask('k-ops');
    expect(ops.json.choices[0].message.content).toBe('answered 2');
  });
});
