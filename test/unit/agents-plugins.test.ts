import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { Agent, AgentContext, AgentReply, JsonObject } from '../../src/agents/types.js';
// The bundled plugins are plain ES modules without types: loaded by URL and typed here.
const plugin = async <T>(file: string): Promise<T> => (await import(new URL(`../../plugins/${file}`, import.meta.url).href)) as T;
const { extractJson } = await plugin<{ extractJson: (text: unknown) => { ok: true; value: unknown; json: string } | { ok: false; error: string } }>('json/extract.mjs');
const { chooseAnswer } = await plugin<{ chooseAnswer: (texts: string[], pick?: string) => { index: number; votes: number; distinct: number } }>('parallel/vote.mjs');
const { memorySummary, default: gpuAgent } = await plugin<{ memorySummary: (instance: JsonObject) => JsonObject; default: Agent }>('gpu/index.mjs');
const json = (await plugin<{ default: Agent }>('json/index.mjs')).default;
const parallel = (await plugin<{ default: Agent }>('parallel/index.mjs')).default;

function context(settings: JsonObject, complete: (body: JsonObject) => Promise<JsonObject>, extra: Partial<AgentContext> = {}): AgentContext & { calls: JsonObject[] } {
  const calls: JsonObject[] = [];
  return {
    requestId: 'r1',
    agent: 'x',
    args: [],
    model: 'tiny',
    endpoint: 'chat/completions',
    stream: false,
    settings,
    log: pino({ level: 'silent' }),
    signal: new AbortController().signal,
    state: {},
    complete: (body) => {
      calls.push(body);
      return complete(body);
    },
    reply: (body, status = 200) => ({ kind: 'agent-reply', agent: 'x', status, body }) as AgentReply,
    instance: () => undefined,
    calls,
    ...extra,
  };
}

const completion = (content: string, usage = { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 }) => ({
  object: 'chat.completion',
  model: 'tiny',
  choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }],
  usage,
});

describe('/json extraction', () => {
  it.each([
    ['{"a": 1}', '{"a":1}'],
    ['  [1, 2] ', '[1,2]'],
    ['```json\n{"a": [1, "}"]}\n```', '{"a":[1,"}"]}'],
    ['Sure! Here it is: {"name": "x", "tags": ["a", "b"]} Hope that helps.', '{"name":"x","tags":["a","b"]}'],
    ['noise { not json } then {"ok": true}', '{"ok":true}'],
    ['{"s": "a \\" quote { inside"}', '{"s":"a \\" quote { inside"}'],
  ])('finds JSON in %j', (text, expected) => {
    const r = extractJson(text);
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.json).toBe(expected);
  });

  it.each([
    ['', /empty/],
    ['42', /not valid JSON: expected an object or array, got a number/],
    ['"just a string"', /got a string/],
    ['{"a": 1', /not valid JSON/],
    ['\u0001\u0002 gibberish', /not valid JSON/],
  ])('refuses %j', (text, error) => {
    const r = extractJson(text);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toMatch(error);
  });
  it('refuses a missing content', () => expect(extractJson(null).ok).toBe(false));
});

describe('/json agent', () => {
  it('asks for JSON: system instruction and response_format (unless the client chose one)', async () => {
    const ctx = context({ constrain: true, instruction: 'JSON only.' }, async () => ({}));
    const out = (await json.onRequest!({ model: 'tiny', messages: [{ role: 'user', content: 'hi' }] }, ctx)) as JsonObject;
    expect(out.messages).toEqual([{ role: 'system', content: 'JSON only.' }, { role: 'user', content: 'hi' }]);
    expect(out.response_format).toEqual({ type: 'json_object' });
    const own = (await json.onRequest!({ messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'hi' }], response_format: { type: 'text' } }, ctx)) as JsonObject;
    expect((own.messages as JsonObject[])[0]).toEqual({ role: 'system', content: 'Be brief.\n\nJSON only.' });
    expect(own.response_format).toEqual({ type: 'text' });
    const free = (await json.onRequest!({ messages: [] }, context({ constrain: false }, async () => ({})))) as JsonObject;
    expect(free.response_format).toBeUndefined();
  });

  it('valid answer: content becomes the JSON, no retry', async () => {
    const ctx = context({}, async () => completion('{}'));
    await json.onRequest!({ messages: [{ role: 'user', content: 'x' }] }, ctx);
    const out = (await json.onResponse!(completion('```json\n{"a": 1}\n```'), ctx)) as JsonObject;
    expect((out.choices as { message: { content: string } }[])[0]!.message.content).toBe('{"a":1}');
    expect(out.x_agents).toEqual({ json: { valid: true, attempts: 1 } });
    expect(ctx.calls).toHaveLength(0);
  });

  it('invalid answer: retries once with the bad answer and the error; usage covers both', async () => {
    const ctx = context({}, async () => completion('{"fixed": true}', { prompt_tokens: 20, completion_tokens: 4, total_tokens: 24 }));
    await json.onRequest!({ model: 'tiny', messages: [{ role: 'user', content: 'x' }] }, ctx);
    const out = (await json.onResponse!(completion('not json'), ctx)) as JsonObject;
    expect(ctx.calls).toHaveLength(1);
    const retryMessages = ctx.calls[0]!.messages as JsonObject[];
    expect(retryMessages.at(-2)).toEqual({ role: 'assistant', content: 'not json' });
    expect(retryMessages.at(-1)!.content).toMatch(/not valid JSON .*Reply again with only the JSON/);
    expect(ctx.calls[0]!.response_format).toEqual({ type: 'json_object' });
    expect((out.choices as { message: { content: string } }[])[0]!.message.content).toBe('{"fixed":true}');
    expect(out.usage).toEqual({ prompt_tokens: 30, completion_tokens: 9, total_tokens: 39 });
    expect(out.x_agents).toMatchObject({ json: { valid: true, attempts: 2, first_error: expect.stringMatching(/not valid JSON/) } });
  });

  it('still invalid after the retry, or the retry fails: says so clearly', async () => {
    const ctx = context({}, async () => completion('still not'));
    await json.onRequest!({ messages: [{ role: 'user', content: 'x' }] }, ctx);
    const out = (await json.onResponse!(completion('nope'), ctx)) as JsonObject;
    expect(out.x_agents).toMatchObject({ json: { valid: false, attempts: 2, error: expect.stringMatching(/not valid JSON/) } });
    expect((out.choices as { message: { content: string } }[])[0]!.message.content).toBe('still not');

    const failing = context({}, async () => {
      throw new Error('model "tiny" answered 500: boom');
    });
    await json.onRequest!({ messages: [{ role: 'user', content: 'x' }] }, failing);
    const out2 = (await json.onResponse!(completion('nope'), failing)) as JsonObject;
    expect(out2.x_agents).toMatchObject({ json: { valid: false, attempts: 1, retry_error: 'model "tiny" answered 500: boom' } });

    const noRetry = context({ retry: false }, async () => completion('{}'));
    await json.onRequest!({ messages: [] }, noRetry);
    expect(((await json.onResponse!(completion('nope'), noRetry)) as JsonObject).x_agents).toMatchObject({ json: { valid: false, attempts: 1 } });
    expect(noRetry.calls).toHaveLength(0);
  });
});

describe('/parallel', () => {
  it.each([
    [['a', 'b', 'a'], 'most-common', 0, 2, 2],
    [['x', 'yy', 'yy ', 'x'], 'most-common', 1, 2, 2],
    [['short', 'the longest one', 'mid one'], 'most-common', 1, 1, 3],
    [['a', 'a', 'much longer'], 'longest', 2, 1, 2],
    [['only'], 'most-common', 0, 1, 1],
  ])('chooses among %j (%s)', (texts, pick, index, votes, distinct) => {
    expect(chooseAnswer(texts, pick)).toEqual({ index, votes, distinct });
  });

  it('samples N times with distinct seeds and answers with the winner, usage summed', async () => {
    let n = 0;
    const answers = ['A', 'B', 'A'];
    const ctx = context({ defaultSamples: 3, maxSamples: 8, temperature: 0.7 }, async () => completion(answers[n++]!, { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 }), { args: ['3'] });
    const out = (await parallel.onRequest!({ model: 'tiny', messages: [{ role: 'user', content: 'q' }], stream: true, seed: 100, temperature: 0 }, ctx)) as AgentReply;
    expect(out.kind).toBe('agent-reply');
    expect(ctx.calls.map((c) => [c.seed, c.temperature, c.stream])).toEqual([[100, 0.7, undefined], [101, 0.7, undefined], [102, 0.7, undefined]]);
    expect((out.body.choices as { message: { content: string } }[])[0]!.message.content).toBe('A');
    expect(out.body.usage).toEqual({ prompt_tokens: 3, completion_tokens: 6, total_tokens: 9 });
    expect(out.body.x_agents).toEqual({ parallel: { samples: 3, succeeded: 3, votes: 2, distinct: 2, pick: 'most-common', seeds: [100, 102] } });
  });

  it('caps N at maxSamples, tolerates failed samples, fails only when all fail', async () => {
    let i = 0;
    const ctx = context({ maxSamples: 4 }, async () => {
      if (i++ % 2) throw new Error('busy');
      return completion('ok');
    }, { args: ['50'] });
    const out = (await parallel.onRequest!({ messages: [] }, ctx)) as AgentReply;
    expect(ctx.calls).toHaveLength(4);
    expect(out.body.x_agents).toMatchObject({ parallel: { samples: 4, succeeded: 2 } });
    const dead = context({}, async () => {
      throw new Error('down');
    });
    await expect(parallel.onRequest!({ messages: [] }, dead)).rejects.toThrow('all 3 samples failed: down');
  });
});

describe('/gpu', () => {
  it('summarizes estimate vs actual per GPU from the instance record', () => {
    const MiB = 1024 * 1024;
    expect(memorySummary({ id: 'i1', estimatedGpuBytes: { '0': 1000 * MiB, '1': 500 * MiB }, actualGpuBytes: { '0': 1100 * MiB }, placement: { estimate: { hostBytes: 64 * MiB } } })).toEqual({
      on_gpu: true,
      gpus: [
        { gpu: 0, estimated_mib: 1000, actual_mib: 1100, difference_mib: 100, estimate_error_percent: -9.1 },
        { gpu: 1, estimated_mib: 500, actual_mib: null, difference_mib: null, estimate_error_percent: null },
      ],
      estimated_host_mib: 64,
    });
    expect(memorySummary({ id: 'cpu', estimatedGpuBytes: {}, actualGpuBytes: {} })).toEqual({ on_gpu: false, gpus: [], estimated_host_mib: null });
  });

  it('annotates the response, or the finishing chunk of a stream once', async () => {
    const instance = { id: 'inst-1', modelId: 'tiny', estimatedGpuBytes: {}, actualGpuBytes: {} };
    const ctx = context({}, async () => ({}), { instance: () => instance });
    const out = (await gpuAgent.onResponse!({ choices: [] }, ctx)) as JsonObject;
    expect(out.x_agents).toMatchObject({ gpu: { instance, memory: { on_gpu: false } } });
    const chunk = (finish: string | null) => ({ choices: [{ index: 0, delta: {}, finish_reason: finish }] });
    expect(await gpuAgent.onStreamChunk!(chunk(null), ctx)).toEqual(chunk(null));
    expect(((await gpuAgent.onStreamChunk!(chunk('stop'), ctx)) as JsonObject).x_agents).toMatchObject({ gpu: { instance: { id: 'inst-1' } } });
    expect(((await gpuAgent.onStreamChunk!(chunk('stop'), ctx)) as JsonObject).x_agents).toBeUndefined();
    const none = (await gpuAgent.onResponse!({}, context({}, async () => ({})))) as JsonObject;
    expect(none.x_agents).toMatchObject({ gpu: { instance: null, note: expect.stringMatching(/an agent replied/) } });
  });
});
