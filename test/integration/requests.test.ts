/**
 * Request records against a real llama-server: GET /requests has a known request's fields (its key's name,
 * never the key; the instance; the tokens the answer reported; llama-server's speeds), the SSE feed sends it
 * live, captureBodies off keeps no body and on keeps them without the key; /plan answers without loading.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { llamaTools } from '../helpers/llama.js';
import { modelsFolder, postJson, startTestProxy, type TestProxy } from '../helpers/proxy.js';
import { readStream } from '../helpers/sse.js';

const tools = llamaTools();
const KEY = 'sk-records-0123456789';
const auth = { authorization: `Bearer ${KEY}` };

describe.skipIf(!tools.server)(`request records${tools.reason ? ` (skipped: ${tools.reason})` : ''}`, () => {
  let t: TestProxy;
  let captured: TestProxy;

  beforeAll(async () => {
    const { root, files } = await modelsFolder([71]);
    const gpu = { source: 'simulated' as const, forceSimulated: true, simulated: [{ name: 'Sim A', memoryMiB: 4096 }], reserveMiB: 0 };
    t = await startTestProxy(tools.server!, root, { server: { keys: [{ name: 'alice', key: KEY, role: 'admin' }] }, gpu, models: { a: { path: files[71]!, ctx: 512 } } });
    captured = await startTestProxy(tools.server!, root, { server: { apiKeys: [KEY], captureBodies: true, captureBodyKiB: 1, loadingProgress: 'reasoning' }, pool: { portRange: [43_900, 43_950] }, models: { a: { path: files[71]!, ctx: 512 } } });
  });
  afterAll(async () => {
    await t?.proxy.close();
    await captured?.proxy.close();
  });

  it('a non-streamed chat: its record has the key name, instance, tokens as answered, speeds and no body', async () => {
    const res = await postJson(`${t.url}/v1/chat/completions`, { model: 'a', messages: [{ role: 'user', content: 'Hello there' }], max_tokens: 8, temperature: 0 }, auth);
    expect(res.status, JSON.stringify(res.json)).toBe(200);
    const id = res.headers.get('x-llama-smart-proxy-request');
    expect(id).toMatch(/^\d+$/);
    const list = (await (await fetch(`${t.url}/requests?limit=5`, { headers: auth })).json()) as { requests: Record<string, unknown>[] };
    const r = list.requests.find((x) => x.id === id)!;
    expect(r).toMatchObject({
      family: 'openai', endpoint: 'chat/completions', method: 'POST', path: '/v1/chat/completions', model: 'a', stream: false, key: 'alice', status: 200, outcome: 'ok', aborted: false,
      prompt_tokens: res.json.usage.prompt_tokens, completion_tokens: res.json.usage.completion_tokens, error: null,
    });
    expect(r.instance).toMatch(/^i\d+$/);
    expect(r.placement).toMatch(/^GPU 0 · ngl \d+$/);
    expect(r.generation_tps).toBeGreaterThan(0);
    expect(r.prompt_tps).toBeGreaterThan(0);
    expect(r.load_ms).toBeGreaterThan(0); // the first request loaded the model
    expect(r.duration_ms).toBeGreaterThanOrEqual(r.load_ms as number);
    expect(JSON.stringify(list)).not.toContain(KEY);
    const one = (await (await fetch(`${t.url}/requests/${id}`, { headers: auth })).json()) as Record<string, unknown>;
    expect(one).not.toHaveProperty('bodies');
    expect(one.id).toBe(id);
  });

  it('a streamed chat reaches the SSE feed live, with TTFT and tokens; filters and bad input', async () => {
    const feed = await fetch(`${t.url}/requests/stream?model=a`, { headers: auth });
    expect(feed.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const reader = feed.body!.getReader();
    const stream = await fetch(`${t.url}/v1/chat/completions`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'a', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 6, stream: true, stream_options: { include_usage: true } }) });
    const id = stream.headers.get('x-llama-smart-proxy-request');
    const record = await readStream(stream);
    expect(record.done).toBe(true);
    let text = '';
    const started = Date.now();
    while (!text.includes(`"id":"${id}"`) && Date.now() - started < 5000) text += new TextDecoder().decode((await reader.read()).value);
    await reader.cancel();
    const event = JSON.parse(text.split('\n').find((l) => l.startsWith('data: {') && l.includes(`"id":"${id}"`))!.slice(6)) as Record<string, unknown>;
    expect(event).toMatchObject({ stream: true, status: 200, completion_tokens: 6, load_ms: null });
    expect(event.ttft_ms).toBeGreaterThan(0);
    expect(((await fetch(`${t.url}/requests?model=nope`, { headers: auth }).then((r) => r.json())) as { requests: unknown[] }).requests).toEqual([]);
    expect((await fetch(`${t.url}/requests?limit=0`, { headers: auth })).status).toBe(400);
    expect((await fetch(`${t.url}/requests/999999`, { headers: auth })).status).toBe(404);
    expect((await fetch(`${t.url}/requests`)).status).toBe(401);
  });

  it('a refused request is recorded with its status and reason', async () => {
    const res = await postJson(`${t.url}/v1/chat/completions`, { model: 'missing', messages: [{ role: 'user', content: 'x' }] }, auth);
    expect(res.status).toBe(404);
    const r = (await (await fetch(`${t.url}/requests/${res.headers.get('x-llama-smart-proxy-request')}`, { headers: auth })).json()) as Record<string, unknown>;
    expect(r).toMatchObject({ model: 'missing', status: 404, outcome: 'error', instance: null });
    expect(r.error).toMatch(/missing/);
  });

  it('loadingProgress reasoning: a streamed chat waiting for its load is told as reasoning_content, then gets its answer', async () => {
    const res = await fetch(`${captured.url}/v1/chat/completions`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'a', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 4, stream: true }) });
    expect(res.status).toBe(200);
    const record = await readStream(res);
    expect(record.done).toBe(true);
    const reasoning = record.text.split('\n').filter((l) => l.startsWith('data: {')).map((l) => JSON.parse(l.slice(6)) as { choices: { delta: { reasoning_content?: string; content?: string } }[] }).map((e) => e.choices[0]?.delta.reasoning_content ?? '').join('');
    expect(reasoning).toMatch(/^Loading a…\n/);
    expect(reasoning).toMatch(/Placed on CPU/);
    expect(reasoning).toMatch(/Ready after \d+\.\d s of loading/);
    // the model's own answer follows in the same stream, and the next request (model ready) gets no reasoning
    expect(record.text).toMatch(/"content":/);
    const again = await readStream(await fetch(`${captured.url}/v1/chat/completions`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'a', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 2, stream: true }) }));
    expect(again.text).not.toContain('reasoning_content');
  });

  it('captureBodies keeps the body and the answer, bounded, without the key', async () => {
    const res = await postJson(`${captured.url}/v1/chat/completions`, { model: 'a', messages: [{ role: 'user', content: 'Tell me' }], max_tokens: 4, pad: 'p'.repeat(3000) }, { ...auth, 'x-api-key': KEY });
    expect(res.status).toBe(200);
    const r = (await (await fetch(`${captured.url}/requests/${res.headers.get('x-llama-smart-proxy-request')}`, { headers: auth })).json()) as { bodies: { request: string; response: string; requestHeaders: Record<string, string>; truncated: boolean } };
    expect(r.bodies.request).toContain('"Tell me"');
    expect(r.bodies.request.length).toBe(1024);
    expect(r.bodies.truncated).toBe(true);
    expect(r.bodies.response).toContain('chat.completion');
    expect(r.bodies.requestHeaders['content-type']).toBe('application/json');
    expect(JSON.stringify(r)).not.toContain(KEY);
    // the list leaves bodies out and says there are some
    const list = (await (await fetch(`${captured.url}/requests`, { headers: auth })).json()) as { requests: Record<string, unknown>[] };
    expect(list.requests[0]).not.toHaveProperty('bodies');
    expect(list.requests[0]!.has_bodies).toBe(true);
  });

  it('GET /plan says where a model would go without loading it; bad input is a 400', async () => {
    const before = (await (await fetch(`${t.url}/health`, { headers: auth })).json()) as { servers: unknown[] };
    const plan = (await (await fetch(`${t.url}/plan?model=a&ctx=2048`, { headers: auth })).json()) as Record<string, any>;
    expect(plan).toMatchObject({ model: 'a#ctx2048', ctx: 2048, decision: 'place', on_disk: true });
    expect(plan.placement.gpus).toEqual([0]);
    expect(plan.devices[0]).toMatchObject({ id: 0, name: 'Sim A', chosen: true });
    expect(plan.devices[0].would_take_mib).toBeGreaterThan(0);
    const after = (await (await fetch(`${t.url}/health`, { headers: auth })).json()) as { servers: unknown[] };
    expect(after.servers.length).toBe(before.servers.length);
    expect((await fetch(`${t.url}/plan?model=a&ctx=abc`, { headers: auth })).status).toBe(400);
    expect((await fetch(`${t.url}/plan`, { headers: auth })).status).toBe(400);
    expect((await fetch(`${t.url}/plan?model=nope`, { headers: auth })).status).toBe(404);
    const models = (await (await fetch(`${t.url}/models`, { headers: auth })).json()) as { models: Record<string, any>[] };
    expect(models.models[0]).toMatchObject({ id: 'a', kind: 'configured' });
    expect(models.models[0]!.estimate.decision).toBe('place');
  });

  it("an instance's log lines and the proxy's own come as an SSE feed", async () => {
    const logs = (await (await fetch(`${t.url}/logs`, { headers: auth })).json()) as { logs: { id: string; kind: string }[] };
    const instance = logs.logs.find((l) => l.kind === 'instance')!;
    const feed = await fetch(`${t.url}/logs/${instance.id}/stream?tail=5`, { headers: auth });
    const reader = feed.body!.getReader();
    let text = '';
    while ((text.match(/event: line/g) ?? []).length < 5) text += new TextDecoder().decode((await reader.read()).value);
    // a new request makes new lines, which arrive live
    const mark = text.length;
    void postJson(`${t.url}/v1/chat/completions`, { model: 'a', messages: [{ role: 'user', content: 'more' }], max_tokens: 2 }, auth);
    while (!text.slice(mark).includes('event: line')) text += new TextDecoder().decode((await reader.read()).value);
    await reader.cancel();
    expect((await fetch(`${t.url}/logs/nope/stream`, { headers: auth })).status).toBe(404);
    expect((await fetch(`${t.url}/logs/proxy`, { headers: auth })).status).toBe(200);
  });
});
