import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { LoadedAgent } from '../../src/agents/loader.js';
import { AgentSession, completionEvents, type SessionOptions } from '../../src/agents/session.js';
import { serializeEvent, type SseEvent } from '../../src/agents/sse.js';
import type { Agent, HookName, JsonObject } from '../../src/agents/types.js';

function agent(name: string, hooks: Agent, timeoutMs = 200): LoadedAgent {
  return {
    name,
    dir: `/plugins/${name}`,
    file: `/plugins/${name}/index.mjs`,
    description: name,
    agent: hooks,
    hooks: Object.keys(hooks) as HookName[],
    endpoints: ['chat/completions', 'completions'],
    args: undefined,
    settings: { who: name },
    timeoutMs,
  };
}

interface Harness {
  session: AgentSession;
  failures: { agent: string; hook: HookName; reason: string }[];
  client: AbortController;
  calls: { endpoint: string; body: JsonObject }[];
}

function session(agents: LoadedAgent[], options: Partial<SessionOptions> = {}): Harness {
  const failures: Harness['failures'] = [];
  const client = new AbortController();
  const calls: Harness['calls'] = [];
  const s = new AgentSession(
    agents.map((a) => ({ agent: a, args: [] })),
    {
      requestId: 'req-1',
      model: 'tiny',
      endpoint: 'chat/completions',
      stream: false,
      log: pino({ level: 'silent' }),
      signal: client.signal,
      complete: async (endpoint, body) => {
        calls.push({ endpoint, body });
        return { object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content: `echo ${calls.length}` } }] };
      },
      instance: () => undefined,
      onFailure: (a, hook, reason) => failures.push({ agent: a, hook, reason }),
      ...options,
    },
  );
  return { session: s, failures, client, calls };
}

/** Appends its name to request.trace and response.trace, remembering what it saw. */
const tracer = (name: string): Agent => ({
  onRequest(request, ctx) {
    ctx.state.sawRequest = [...((request.trace as string[]) ?? [])];
    return { ...request, trace: [...((request.trace as string[]) ?? []), name] };
  },
  onResponse(response, ctx) {
    const seen = { request: ctx.state.sawRequest, response: [...((response.trace as string[]) ?? [])] };
    return { ...response, trace: [...((response.trace as string[]) ?? []), name], [`seen_${name}`]: seen };
  },
});

describe('agent chain', () => {
  it('runs request hooks in order, each on the previous output, then response hooks in the same order', async () => {
    const { session: s } = session([agent('a', tracer('a')), agent('b', tracer('b')), agent('c', tracer('c'))]);
    const out = await s.runRequest({ model: 'tiny', messages: [] });
    expect(out.body!.trace).toEqual(['a', 'b', 'c']);
    const response = await s.runResponse({ object: 'chat.completion' });
    expect(response.trace).toEqual(['a', 'b', 'c']);
    expect(response.seen_a).toEqual({ request: [], response: [] });
    expect(response.seen_b).toEqual({ request: ['a'], response: ['a'] });
    expect(response.seen_c).toEqual({ request: ['a', 'b'], response: ['a', 'b'] });
  });

  it('skips an agent that throws (sync or async) and goes on with the last good value', async () => {
    const { session: s, failures } = session([
      agent('a', tracer('a')),
      agent('sync-boom', { onRequest: () => { throw new Error('kaput'); }, onResponse: (r) => ({ ...r, boom: true }) }),
      agent('async-boom', { onRequest: async () => { throw new TypeError('bad'); } }),
      agent('b', tracer('b')),
    ]);
    const out = await s.runRequest({ messages: [] });
    expect(out.body!.trace).toEqual(['a', 'b']);
    const response = await s.runResponse({});
    // the failed agent's response hook does not run either: it is skipped for the rest of the request
    expect(response.boom).toBeUndefined();
    expect(response.trace).toEqual(['a', 'b']);
    expect(failures).toEqual([
      { agent: 'sync-boom', hook: 'onRequest', reason: 'threw: kaput' },
      { agent: 'async-boom', hook: 'onRequest', reason: 'threw: bad' },
    ]);
    expect(s.failed).toEqual(['sync-boom', 'async-boom']);
  });

  it('skips an agent past its timeout, aborts its signal, and does not wait for it', async () => {
    let aborted: unknown;
    const slow: Agent = {
      onRequest: (request, ctx) =>
        new Promise((resolve) => {
          ctx.signal.addEventListener('abort', () => {
            aborted = ctx.signal.reason;
          });
          setTimeout(() => resolve({ ...request, slow: true }), 5000).unref();
        }),
    };
    const { session: s, failures } = session([agent('slow', slow, 50), agent('b', tracer('b'))]);
    const started = Date.now();
    const out = await s.runRequest({ messages: [] });
    expect(Date.now() - started).toBeLessThan(1000);
    expect(out.body).toEqual({ messages: [], trace: ['b'] });
    expect(failures[0]).toMatchObject({ agent: 'slow', hook: 'onRequest', reason: 'timed out after 0.05 s (agents.timeout)' });
    expect(String(aborted)).toContain('timed out');
  });

  it('treats undefined as "unchanged" and a non-object as a failure', async () => {
    const { session: s, failures } = session([
      agent('noop', { onRequest: () => undefined }),
      agent('string', { onRequest: () => 'nope' as unknown as JsonObject }),
      agent('mutate', { onRequest: (r) => { r.touched = true; } }),
    ]);
    const out = await s.runRequest({ messages: [] });
    expect(out.body).toEqual({ messages: [], touched: true });
    expect(failures.map((f) => [f.agent, f.reason])).toEqual([['string', 'returned a string; expected the request object or context.reply(...)']]);
  });

  it('short-circuits: later agents do not run; earlier ones and the answering one get the response hooks', async () => {
    const { session: s } = session([
      agent('a', tracer('a')),
      agent('answer', { onRequest: (_r, ctx) => ctx.reply({ object: 'chat.completion', choices: [] }), onResponse: (r) => ({ ...r, answered: true }) }),
      agent('never', tracer('never')),
    ]);
    const out = await s.runRequest({ messages: [] });
    expect(out.reply).toMatchObject({ kind: 'agent-reply', agent: 'answer', status: 200 });
    const response = await s.runResponse(out.reply!.body);
    expect(response.trace).toEqual(['a']);
    expect(response.answered).toBe(true);
  });

  it('a plain object that looks like a reply is not one', async () => {
    const { session: s } = session([agent('fake', { onRequest: () => ({ kind: 'agent-reply', status: 200, body: {} }) })]);
    const out = await s.runRequest({ messages: [] });
    expect(out.reply).toBeUndefined();
    expect(out.body).toEqual({ kind: 'agent-reply', status: 200, body: {} });
  });

  it('context: per-agent settings, state per request, complete() defaults to the request model', async () => {
    const seen: JsonObject[] = [];
    const probe: Agent = {
      async onRequest(request, ctx) {
        ctx.state.n = ((ctx.state.n as number) ?? 0) + 1;
        const answer = await ctx.complete({ messages: [{ role: 'user', content: 'x' }] });
        seen.push({ settings: ctx.settings, state: { ...ctx.state }, agent: ctx.agent, requestId: ctx.requestId, model: ctx.model, answer });
        return request;
      },
    };
    const one = session([agent('probe', probe)]);
    await one.session.runRequest({});
    const two = session([agent('probe', probe)]);
    await two.session.runRequest({});
    expect(seen[0]).toMatchObject({ settings: { who: 'probe' }, state: { n: 1 }, agent: 'probe', requestId: 'req-1', model: 'tiny' });
    expect(seen[1]!.state).toEqual({ n: 1 });
    expect(one.calls).toEqual([{ endpoint: 'chat/completions', body: { messages: [{ role: 'user', content: 'x' }], model: 'tiny' } }]);
  });

  it('aborts every agent signal when the client goes away', async () => {
    let signal: AbortSignal | undefined;
    const { session: s, client } = session([agent('a', { onRequest: (r, ctx) => { signal = ctx.signal; return r; } })]);
    await s.runRequest({});
    expect(signal!.aborted).toBe(false);
    client.abort();
    expect(signal!.aborted).toBe(true);
    s.finish();
  });

  it('stops waiting for a hook when the client goes away, without counting it as the agent\'s failure', async () => {
    const hanging: Agent = { onRequest: () => new Promise(() => {}) };
    const { session: s, failures, client } = session([agent('hang', hanging, 60_000), agent('b', tracer('b'))]);
    setTimeout(() => client.abort(), 20);
    const started = Date.now();
    await s.runRequest({});
    expect(Date.now() - started).toBeLessThan(1000);
    expect(failures).toEqual([]);
    expect(s.failed).toEqual(['hang']);
  });

  it('knows whether a response phase is needed', async () => {
    const onlyRequest = session([agent('a', { onRequest: (r) => r })]);
    await onlyRequest.session.runRequest({});
    expect(onlyRequest.session.hasResponseHooks(false)).toBe(false);
    expect(onlyRequest.session.hasResponseHooks(true)).toBe(false);
    const chunky = session([agent('c', { onStreamChunk: (c) => c })]);
    await chunky.session.runRequest({});
    expect(chunky.session.hasResponseHooks(false)).toBe(false);
    expect(chunky.session.hasResponseHooks(true)).toBe(true);
  });
});

function chatChunks(texts: string[]): SseEvent[] {
  const events: SseEvent[] = texts.map((t, i) => {
    const data = { id: 'c1', object: 'chat.completion.chunk', created: 1, model: 'tiny', choices: [{ index: 0, delta: i === 0 ? { role: 'assistant', content: t } : { content: t }, finish_reason: null }] };
    return { data, raw: `data: ${JSON.stringify(data)}\n\n` };
  });
  const last = { id: 'c1', object: 'chat.completion.chunk', created: 1, model: 'tiny', choices: [{ index: 0, delta: {}, finish_reason: 'length' }], usage: { completion_tokens: texts.length } };
  events.push({ data: last, raw: `data: ${JSON.stringify(last)}\n\n` });
  events.push({ raw: 'data: [DONE]\n\n', done: true });
  return events;
}

/** One batch per event (as if each came in its own network chunk). */
async function* source(events: SseEvent[], onPull?: (i: number) => void): AsyncGenerator<SseEvent[]> {
  for (const [i, e] of events.entries()) {
    onPull?.(i);
    yield [e];
  }
}

async function collect(batches: AsyncIterable<SseEvent[]>): Promise<SseEvent[]> {
  const out: SseEvent[] = [];
  for await (const batch of batches) out.push(...batch);
  return out;
}

const contentOf = (events: SseEvent[]) => events.map((e) => ((e.data?.choices as { delta?: { content?: string } }[] | undefined)?.[0]?.delta?.content ?? '')).join('');

describe('stream stages', () => {
  it('a chunk hook sees each event as it passes (no buffering) and may change, multiply or drop it', async () => {
    const pulled: number[] = [];
    const seenAt: number[] = [];
    const upper: Agent = {
      onStreamChunk(chunk) {
        seenAt.push(pulled.length);
        const choice = (chunk.choices as { delta: { content?: string } }[])[0]!;
        if (choice.delta.content === 'drop') return null;
        if (choice.delta.content === 'twice') return [chunk, chunk];
        if (choice.delta.content) choice.delta.content = choice.delta.content.toUpperCase();
        return chunk;
      },
    };
    const { session: s } = session([agent('upper', upper)], { stream: true });
    await s.runRequest({});
    const out = await collect(s.streamStages(source(chatChunks(['ab', 'drop', 'twice', 'cd']), (i) => pulled.push(i))));
    expect(contentOf(out)).toBe('ABtwicetwiceCD');
    // event i was seen right after it was pulled: streamed, not gathered
    expect(seenAt).toEqual([1, 2, 3, 4, 5]);
    expect(out.at(-1)).toEqual({ raw: 'data: [DONE]\n\n', done: true });
  });

  it('an onResponse-only agent gathers the stream, sees the assembled completion, and the change is re-emitted as SSE', async () => {
    let seen: JsonObject | undefined;
    const suffix: Agent = {
      onResponse(response) {
        seen = structuredClone(response);
        const choice = (response.choices as { message: { content: string } }[])[0]!;
        choice.message.content += '!!';
        return { ...response, x_agents: { suffix: true } };
      },
    };
    const { session: s } = session([agent('suffix', suffix)], { stream: true });
    await s.runRequest({});
    const out = await collect(s.streamStages(source(chatChunks(['Hel', 'lo']))));
    expect(seen).toMatchObject({ object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content: 'Hello' }, finish_reason: 'length' }], usage: { completion_tokens: 2 } });
    expect(contentOf(out)).toBe('Hello!!');
    expect(out.at(-2)!.data).toMatchObject({ choices: [{ finish_reason: 'length' }], x_agents: { suffix: true }, usage: { completion_tokens: 2 } });
    expect(out.at(-1)!.done).toBe(true);
    expect(out.map(serializeEvent).every((t) => t.startsWith('data: ') && t.endsWith('\n\n'))).toBe(true);
  });

  it('an onResponse-only agent that changes nothing lets the original events through', async () => {
    const { session: s } = session([agent('noop', { onResponse: (r) => r })], { stream: true });
    await s.runRequest({});
    const events = chatChunks(['a', 'b']);
    const out = await collect(s.streamStages(source(events)));
    expect(out).toEqual(events);
  });

  it('stages run in chain order: a chunk stage before a whole-response stage sees the original chunks', async () => {
    const order: string[] = [];
    const chunky: Agent = { onStreamChunk: (c) => { order.push('chunk'); return c; } };
    const whole: Agent = { onResponse: (r) => { order.push('whole'); return r; } };
    const { session: s } = session([agent('chunky', chunky), agent('whole', whole)], { stream: true });
    await s.runRequest({});
    await collect(s.streamStages(source(chatChunks(['a', 'b']))));
    expect(order).toEqual(['chunk', 'chunk', 'chunk', 'whole']);
  });

  it('a chunk hook that throws is skipped for the rest of the stream; chunks pass unchanged', async () => {
    let calls = 0;
    const flaky: Agent = { onStreamChunk: (c) => { calls++; if (calls === 2) throw new Error('oops'); return { ...c, tagged: true }; } };
    const { session: s, failures } = session([agent('flaky', flaky)], { stream: true });
    await s.runRequest({});
    const out = await collect(s.streamStages(source(chatChunks(['a', 'b', 'c']))));
    expect(calls).toBe(2);
    expect(out.filter((e) => e.data?.tagged)).toHaveLength(1);
    expect(contentOf(out)).toBe('abc');
    expect(failures).toHaveLength(1);
  });

  it('a chunk JSON cannot hold fails its agent; the original event goes out', async () => {
    const cyclic: Agent = { onStreamChunk: (c) => { const copy: JsonObject = { ...c }; copy.self = copy; return copy; } };
    const { session: s, failures } = session([agent('cyclic', cyclic)], { stream: true });
    await s.runRequest({});
    const events = chatChunks(['a', 'b']);
    const out = await collect(s.streamStages(source(events)));
    expect(out).toEqual(events);
    expect(failures).toEqual([{ agent: 'cyclic', hook: 'onStreamChunk', reason: expect.stringMatching(/not serializable/) }]);
  });

  it('a short-circuit answer streams as chunks ending with [DONE]', () => {
    const events = completionEvents({ id: 'x', object: 'chat.completion', created: 2, model: 'm', choices: [{ index: 0, message: { role: 'assistant', content: 'hi' }, finish_reason: 'stop' }], usage: { total_tokens: 3 } });
    expect(events.map(serializeEvent).join('')).toBe(
      'data: {"id":"x","created":2,"model":"m","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":"hi"},"finish_reason":null}]}\n\n' +
        'data: {"id":"x","created":2,"model":"m","object":"chat.completion.chunk","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":{"total_tokens":3}}\n\n' +
        'data: [DONE]\n\n',
    );
  });
});
