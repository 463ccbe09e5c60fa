import { describe, expect, it } from 'vitest';
import { formatParameterCount, modelDetails, modelInfoMap } from '../../src/api/ollama/model-details.js';
import { chatRequest, contextSize, doneFields, formatFields, generateRequest, parseKeepAlive, samplingFromOptions } from '../../src/api/ollama/translate.js';
import { ClientError } from '../../src/models/errors.js';

describe('Ollama translation', () => {
  it.each([
    [undefined, { kind: 'default' }],
    ['5m', { kind: 'seconds', seconds: 300 }],
    ['1h30m', { kind: 'seconds', seconds: 5400 }],
    ['90s', { kind: 'seconds', seconds: 90 }],
    ['300', { kind: 'seconds', seconds: 300 }],
    [120, { kind: 'seconds', seconds: 120 }],
    [0, { kind: 'unload' }],
    ['0', { kind: 'unload' }],
    [-1, { kind: 'forever' }],
    ['-1m', { kind: 'forever' }],
  ])('keep_alive %j -> %j', (value, expected) => {
    expect(parseKeepAlive(value)).toEqual(expected);
  });

  it('refuses a malformed keep_alive', () => {
    expect(() => parseKeepAlive('soon')).toThrow(ClientError);
    expect(() => parseKeepAlive('5 minutes')).toThrow(/not a duration/);
  });

  it('maps options to llama-server sampling parameters', () => {
    expect(samplingFromOptions({ temperature: 0.2, top_p: 0.9, top_k: 40, seed: 7, num_predict: 64, stop: ['\n'], repeat_penalty: 1.1, num_keep: 5, num_ctx: 8192 })).toEqual({
      temperature: 0.2,
      top_p: 0.9,
      top_k: 40,
      seed: 7,
      max_tokens: 64,
      stop: ['\n'],
      repeat_penalty: 1.1,
      n_keep: 5,
    });
    expect(samplingFromOptions({ num_predict: -1 })).toEqual({});
  });

  it('maps format to response_format', () => {
    expect(formatFields('json')).toEqual({ grammar: expect.stringContaining('root   ::= object') });
    expect(formatFields({ type: 'object', properties: { a: { type: 'number' } } })).toEqual({
      response_format: { type: 'json_schema', json_schema: { name: 'response', schema: { type: 'object', properties: { a: { type: 'number' } } } } },
    });
    expect(formatFields(undefined)).toEqual({});
    expect(() => formatFields('yaml')).toThrow(/format must be "json" or a JSON schema/);
  });

  it('builds a streamed chat request with images as data URIs and tool calls as JSON strings', () => {
    const r = chatRequest({
      model: 'm',
      messages: [
        { role: 'user', content: 'what is this', images: ['aGVsbG8='] },
        { role: 'assistant', content: '', tool_calls: [{ function: { name: 'f', arguments: { x: 1 } } }] },
        { role: 'tool', content: '42', tool_name: 'f' },
      ],
      options: { temperature: 0 },
      format: 'json',
    });
    expect(r).toMatchObject({ model: 'm', stream: true, temperature: 0, grammar: expect.stringContaining('root   ::= object') });
    const messages = r.messages as Record<string, unknown>[];
    expect(messages[0]!.content).toEqual([
      { type: 'text', text: 'what is this' },
      { type: 'image_url', image_url: { url: 'data:image/png;base64,aGVsbG8=' } },
    ]);
    expect(messages[1]!.tool_calls).toEqual([{ id: 'call_0', type: 'function', function: { name: 'f', arguments: '{"x":1}' } }]);
    expect(messages[2]).toMatchObject({ role: 'tool', name: 'f', content: '42' });
  });

  it('turns generate into a chat request, or a raw completion', () => {
    expect(generateRequest({ model: 'm', prompt: 'hi', system: 'be brief' })).toEqual({
      path: '/v1/chat/completions',
      endpoint: 'chat/completions',
      body: { model: 'm', stream: true, messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content: 'hi' }] },
    });
    expect(generateRequest({ model: 'm', prompt: 'hi', raw: true, options: { num_predict: 3 } })).toEqual({
      path: '/v1/completions',
      endpoint: 'completions',
      body: { model: 'm', prompt: 'hi', stream: true, max_tokens: 3 },
    });
    expect(() => generateRequest({ model: 'm' })).toThrow(/"prompt" must be a string/);
  });

  it('reads num_ctx, refusing what is not a token count', () => {
    expect(contextSize(undefined)).toBeUndefined();
    expect(contextSize({ temperature: 1 })).toBeUndefined();
    expect(contextSize({ num_ctx: 8192 })).toBe(8192);
    expect(() => contextSize({ num_ctx: 0 })).toThrow(/num_ctx must be a whole number/);
    expect(() => contextSize({ num_ctx: '4k' })).toThrow(ClientError);
  });

  it('maps think to the chat template\'s enable_thinking', () => {
    expect(chatRequest({ model: 'm', messages: [], think: false }).chat_template_kwargs).toEqual({ enable_thinking: false });
    expect(chatRequest({ model: 'm', messages: [], think: 'high' }).chat_template_kwargs).toEqual({ enable_thinking: true });
    expect(chatRequest({ model: 'm', messages: [] })).not.toHaveProperty('chat_template_kwargs');
  });

  it('refuses malformed messages with 400', () => {
    expect(() => chatRequest({ model: 'm', messages: [null] })).toThrow(/needs a "role"/);
    expect(() => chatRequest({ model: 'm', messages: [{ role: 'user', content: 'x', images: [1] }] })).toThrow(/base64-encoded strings/);
  });

  it('fills the final chunk\'s statistics in nanoseconds', () => {
    expect(doneFields({ totalNs: 5e6, loadNs: 1e6, finishReason: 'length', timings: { prompt_n: 4, prompt_ms: 1.5, predicted_n: 8, predicted_ms: 2.25 } })).toEqual({
      done: true,
      done_reason: 'length',
      total_duration: 5000000,
      load_duration: 1000000,
      prompt_eval_count: 4,
      prompt_eval_duration: 1500000,
      eval_count: 8,
      eval_duration: 2250000,
    });
  });

  it('counts the whole prompt: usage first, else prompt_n plus the cached tokens', () => {
    const base = { totalNs: 1, loadNs: 0, finishReason: 'stop' };
    expect(doneFields({ ...base, timings: { prompt_n: 1, cache_n: 29, predicted_n: 4 }, usage: { prompt_tokens: 30, completion_tokens: 4 } })).toMatchObject({ prompt_eval_count: 30, eval_count: 4, done_reason: 'stop' });
    expect(doneFields({ ...base, timings: { prompt_n: 1, cache_n: 29 } })).toMatchObject({ prompt_eval_count: 30 });
    expect(doneFields({ ...base, finishReason: 'tool_calls' })).toMatchObject({ done_reason: 'stop', prompt_eval_count: 0, eval_count: 0 });
  });

  it('describes a model from its GGUF header', () => {
    const header = {
      metadata: { 'general.architecture': 'llama', 'general.file_type': 15, 'tokenizer.ggml.tokens': Array(1000).fill('t'), 'llama.block_count': 32 },
      tensors: [
        { name: 'a', dims: [4096, 128256], type: 12, offset: 0 },
        { name: 'b', dims: [4096], type: 0, offset: 0 },
      ],
    };
    expect(modelDetails(header)).toEqual({ parent_model: '', format: 'gguf', family: 'llama', families: ['llama'], parameter_size: '525.3M', quantization_level: 'Q4_K_M' });
    const info = modelInfoMap(header);
    expect(info['tokenizer.ggml.tokens']).toBeNull();
    expect(info['llama.block_count']).toBe(32);
    expect(formatParameterCount(8.03e9)).toBe('8.0B');
  });
});
