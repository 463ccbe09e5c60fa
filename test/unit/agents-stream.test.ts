import { describe, expect, it } from 'vitest';
import { assembleCompletion, completionToChunks } from '../../src/agents/completion-stream.js';
import { parseSseStream, serializeEvent, SseParser, type SseEvent } from '../../src/agents/sse.js';

async function* bytes(parts: string[]): AsyncGenerator<Buffer> {
  for (const p of parts) yield Buffer.from(p, 'utf8');
}

async function all(parts: string[]): Promise<SseEvent[]> {
  const out: SseEvent[] = [];
  for await (const batch of parseSseStream(bytes(parts))) out.push(...batch);
  return out;
}

describe('SSE parsing', () => {
  it('splits events on blank lines, whatever the chunking, and keeps their exact text', async () => {
    const text = 'data: {"a":1}\n\ndata: {"b":"é"}\n\nerror: {"message":"x"}\n\ndata: [DONE]\n\n';
    const whole = await all([text]);
    const bytewise = await all(text.split(''));
    // a multi-byte character split across network chunks
    const buf = Buffer.from(text, 'utf8');
    const split = [];
    for await (const batch of parseSseStream((async function* () { yield buf.subarray(0, 25); yield buf.subarray(25); })())) split.push(...batch);
    for (const events of [whole, bytewise, split]) {
      expect(events).toEqual([
        { raw: 'data: {"a":1}\n\n', data: { a: 1 } },
        { raw: 'data: {"b":"é"}\n\n', data: { b: 'é' } },
        { raw: 'error: {"message":"x"}\n\n' },
        { raw: 'data: [DONE]\n\n', done: true },
      ]);
    }
    expect(whole.map(serializeEvent).join('')).toBe(text);
  });

  it('gives the events of one network chunk as one batch', async () => {
    const batches: SseEvent[][] = [];
    for await (const batch of parseSseStream(bytes(['data: {"a":1}\n\ndata: {"b":2}\n\ndata: {"c"', ':3}\n\n']))) batches.push(batch);
    expect(batches.map((b) => b.map((e) => e.data))).toEqual([[{ a: 1 }, { b: 2 }], [{ c: 3 }]]);
  });

  it('handles CRLF, multi-line data, non-JSON data and a last event without its blank line', () => {
    const parser = new SseParser();
    expect(parser.push('data: {"x":\r\ndata: 2}\r\n\r\ndata: hello\n\ndata: {"tail":')).toEqual([
      { raw: 'data: {"x":\r\ndata: 2}\r\n\r\n', data: { x: 2 } },
      { raw: 'data: hello\n\n' },
    ]);
    expect(parser.push('true}')).toEqual([]);
    expect(parser.end()).toEqual([{ raw: 'data: {"tail":true}', data: { tail: true } }]);
  });

  it('serializes a changed event from its data', () => {
    expect(serializeEvent({ data: { a: [1] } })).toBe('data: {"a":[1]}\n\n');
    expect(serializeEvent({ done: true })).toBe('data: [DONE]\n\n');
  });
});

describe('assembling a stream into a completion and back', () => {
  const chat = [
    { id: 'c', object: 'chat.completion.chunk', created: 5, model: 'm', choices: [{ index: 0, delta: { role: 'assistant', content: null }, finish_reason: null }], usage: null },
    { id: 'c', object: 'chat.completion.chunk', created: 5, model: 'm', choices: [{ index: 0, delta: { reasoning_content: 'think' }, finish_reason: null }] },
    { id: 'c', object: 'chat.completion.chunk', created: 5, model: 'm', choices: [{ index: 0, delta: { content: 'Hel' }, finish_reason: null }] },
    { id: 'c', object: 'chat.completion.chunk', created: 5, model: 'm', choices: [{ index: 0, delta: { content: 'lo' }, finish_reason: null }] },
    { id: 'c', object: 'chat.completion.chunk', created: 5, model: 'm', choices: [{ index: 0, delta: {}, finish_reason: 'stop' }], timings: { n: 2 } },
    { id: 'c', object: 'chat.completion.chunk', created: 5, model: 'm', choices: [], usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 } },
  ];

  it('chat: content, reasoning, finish reason, usage and extra fields', () => {
    expect(assembleCompletion(chat)).toEqual({
      id: 'c',
      created: 5,
      model: 'm',
      object: 'chat.completion',
      choices: [{ index: 0, message: { role: 'assistant', content: 'Hello', reasoning_content: 'think' }, logprobs: null, finish_reason: 'stop' }],
      usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 },
      timings: { n: 2 },
    });
  });

  it('chat: tool calls merged by index', () => {
    const calls = [
      { object: 'chat.completion.chunk', choices: [{ index: 0, delta: { role: 'assistant', tool_calls: [{ index: 0, id: 't1', type: 'function', function: { name: 'get', arguments: '{"a"' } }] } }] },
      { object: 'chat.completion.chunk', choices: [{ index: 0, delta: { tool_calls: [{ index: 0, function: { arguments: ':1}' } }] } }] },
      { object: 'chat.completion.chunk', choices: [{ index: 0, delta: {}, finish_reason: 'tool_calls' }] },
    ];
    const message = (assembleCompletion(calls).choices as { message: unknown }[])[0]!.message;
    expect(message).toEqual({ role: 'assistant', content: null, tool_calls: [{ id: 't1', type: 'function', function: { name: 'get', arguments: '{"a":1}' } }] });
  });

  it('text completions and several choices', () => {
    const text = [
      { id: 't', object: 'text_completion', model: 'm', choices: [{ index: 1, text: 'B', finish_reason: null }, { index: 0, text: 'A', finish_reason: null }] },
      { id: 't', object: 'text_completion', model: 'm', choices: [{ index: 0, text: 'a', finish_reason: 'length' }, { index: 1, text: 'b', finish_reason: 'stop' }] },
    ];
    const done = assembleCompletion(text);
    expect(done.object).toBe('text_completion');
    expect(done.choices).toEqual([
      { index: 0, text: 'Aa', logprobs: null, finish_reason: 'length' },
      { index: 1, text: 'Bb', logprobs: null, finish_reason: 'stop' },
    ]);
    // and back: the re-emitted stream assembles to the same completion
    expect(assembleCompletion(completionToChunks(done))).toEqual(done);
  });

  it('round trip for chat keeps what a client reads', () => {
    const done = assembleCompletion(chat);
    const again = assembleCompletion(completionToChunks(done));
    expect(again).toEqual(done);
    const chunks = completionToChunks(done);
    expect(chunks.every((c) => c.object === 'chat.completion.chunk' && c.id === 'c' && c.model === 'm')).toBe(true);
    expect(chunks.at(-1)).toMatchObject({ usage: { total_tokens: 5 }, timings: { n: 2 }, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] });
  });
});
