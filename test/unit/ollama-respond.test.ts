import { describe, expect, it } from 'vitest';
import { assembleCompletion, completionEvents } from '../../src/agents/index.js';
import { canonicalModel } from '../../src/api/ollama/routes.js';
import { completionToOllama, embedResponse, normalize, StreamTranslator, toolCallsToOllama } from '../../src/api/ollama/respond.js';
import { buildConfig } from '../../src/config/index.js';
import { forEmbeddings, servesEmbeddings, withContext, type ResolvedModel } from '../../src/models/index.js';

const times = { totalNs: 5_000_000, loadNs: 1_000_000 };
const chunk = (delta: Record<string, unknown>, finish: string | null = null, extra: Record<string, unknown> = {}) => ({ object: 'chat.completion.chunk', choices: [{ index: 0, delta, finish_reason: finish }], ...extra });
const timings = { prompt_n: 2, cache_n: 3, prompt_ms: 1.5, predicted_n: 2, predicted_ms: 4 };
const iso = expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);

describe('Ollama answers from llama-server events', () => {
  it('streams a chat: a line per text delta, tool calls gathered, statistics on the last line', () => {
    const t = new StreamTranslator('chat', 'm');
    expect(t.event(chunk({ role: 'assistant', content: null }))).toEqual([]);
    expect(t.event(chunk({ content: 'Hel' }))).toEqual([{ model: 'm', created_at: iso, message: { role: 'assistant', content: 'Hel' }, done: false }]);
    expect(t.event(chunk({ reasoning_content: 'hmm' }))[0]).toMatchObject({ message: { content: '', thinking: 'hmm' } });
    expect(t.event(chunk({ tool_calls: [{ index: 0, id: 'c', type: 'function', function: { name: 'get', arguments: '{"ci' } }] }))).toEqual([]);
    expect(t.event(chunk({ tool_calls: [{ index: 0, function: { arguments: 'ty":"Oslo"}' } }] }))).toEqual([]);
    expect(t.event(chunk({}, 'tool_calls'))).toEqual([]);
    expect(t.event({ choices: [], usage: { prompt_tokens: 5, completion_tokens: 2 }, timings })).toEqual([]);
    const final = t.final(times);
    expect(final).toEqual([
      { model: 'm', created_at: iso, message: { role: 'assistant', content: '', tool_calls: [{ function: { name: 'get', arguments: { city: 'Oslo' } } }] }, done: false },
      {
        model: 'm',
        created_at: iso,
        message: { role: 'assistant', content: '' },
        done: true,
        done_reason: 'stop',
        total_duration: 5_000_000,
        load_duration: 1_000_000,
        prompt_eval_count: 5,
        prompt_eval_duration: 1_500_000,
        eval_count: 2,
        eval_duration: 4_000_000,
      },
    ]);
  });

  it('streams a generate (text completions too), the last line with an empty context', () => {
    const t = new StreamTranslator('generate', 'm');
    expect(t.event({ object: 'text_completion', choices: [{ index: 0, text: 'Once', finish_reason: null }] })).toEqual([{ model: 'm', created_at: iso, response: 'Once', done: false }]);
    expect(t.event({ choices: [{ index: 0, text: '', finish_reason: 'length' }], timings })).toEqual([]);
    expect(t.final(times)).toEqual([expect.objectContaining({ response: '', context: [], done: true, done_reason: 'length', prompt_eval_count: 5, eval_count: 2 })]);
  });

  it('an error event ends the stream with its message', () => {
    const t = new StreamTranslator('chat', 'm');
    t.event(chunk({ content: 'a' }));
    expect(t.event({ error: { code: 500, message: 'context full', type: 'server_error' } })).toEqual([]);
    expect(t.error).toBe('context full');
  });

  it('a whole answer: the assembled completion (what response hooks see) to one object', () => {
    const events = [chunk({ role: 'assistant', content: '' }), chunk({ content: 'Hi' }), chunk({ content: '!' }), chunk({}, 'length', { timings }), { choices: [], usage: { prompt_tokens: 5, completion_tokens: 2 } }];
    const completion = { ...assembleCompletion(events), x_agents: { shout: true } };
    expect(completionToOllama(completion, 'chat', 'm', times)).toEqual({
      model: 'm',
      created_at: iso,
      message: { role: 'assistant', content: 'Hi!' },
      done: true,
      done_reason: 'length',
      total_duration: 5_000_000,
      load_duration: 1_000_000,
      prompt_eval_count: 5,
      prompt_eval_duration: 1_500_000,
      eval_count: 2,
      eval_duration: 4_000_000,
      x_agents: { shout: true },
    });
    expect(completionToOllama(completion, 'generate', 'm', times)).toMatchObject({ response: 'Hi!', context: [], done: true });
    const withTools = completionToOllama({ choices: [{ message: { role: 'assistant', content: null, tool_calls: [{ id: 'x', type: 'function', function: { name: 'f', arguments: '{"a":1}' } }] }, finish_reason: 'tool_calls' }] }, 'chat', 'm', times);
    expect(withTools.message).toEqual({ role: 'assistant', content: '', tool_calls: [{ function: { name: 'f', arguments: { a: 1 } } }] });
  });

  it('an agent\'s own answer streams as the same lines', () => {
    const t = new StreamTranslator('chat', 'm');
    const lines = completionEvents({ object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content: 'canned' }, finish_reason: 'stop' }] }).flatMap((e) => (e.data ? t.event(e.data) : []));
    expect(lines.map((l) => (l.message as { content: string }).content)).toEqual(['canned']);
    expect(t.final(times)[0]).toMatchObject({ done: true, done_reason: 'stop' });
  });

  it('tool call arguments that are not JSON are kept, not lost', () => {
    expect(toolCallsToOllama([{ function: { name: 'f', arguments: 'not json' } }, { function: {} }])).toEqual([{ function: { name: 'f', arguments: { _raw: 'not json' } } }]);
  });

  it('embeddings: unit vectors in input order, cut to dimensions first', () => {
    expect(normalize([3, 4])).toEqual([0.6, 0.8]);
    expect(normalize([0, 0])).toEqual([0, 0]);
    const response = { data: [{ index: 1, embedding: [0, 2, 0] }, { index: 0, embedding: [3, 4, 12] }], usage: { prompt_tokens: 7 } };
    expect(embedResponse(response, 'm', times)).toEqual({ model: 'm', embeddings: [[3 / 13, 4 / 13, 12 / 13], [0, 1, 0]], total_duration: 5_000_000, load_duration: 1_000_000, prompt_eval_count: 7 });
    expect(embedResponse(response, 'm', times, 2).embeddings).toEqual([[0.6, 0.8], [0, 1]]);
  });
});

describe('model names and variants', () => {
  it('reads Ollama\'s spellings of our names', () => {
    const aliases = { chat: {}, 'tagged:latest': {} };
    expect(canonicalModel('chat:latest', aliases)).toBe('chat');
    expect(canonicalModel('tagged:latest', aliases)).toBe('tagged:latest');
    expect(canonicalModel('other:latest', aliases)).toBe('other:latest');
    expect(canonicalModel('hf.co/unsloth/Qwen3-0.6B-GGUF:Q4_K_M', aliases)).toBe('unsloth/Qwen3-0.6B-GGUF:Q4_K_M');
    expect(canonicalModel('https://huggingface.co/a/b', aliases)).toBe('a/b');
  });

  const base: ResolvedModel = { id: 'chat', file: '/m.gguf', ref: { kind: 'alias', alias: 'chat' }, ctx: 4096, parallel: 2, args: ['--jinja'], ttl: 60, pinned: true };

  it('a context size other than the model\'s makes a variant: its own id, never pinned', () => {
    expect(withContext(base, 4096)).toBe(base);
    expect(withContext(base, 512)).toEqual({ ...base, id: 'chat#ctx512', ctx: 512, variantOf: 'chat', pinned: false });
  });

  it('embeddings come from the model itself when its args say so, else from an #embed variant', () => {
    const embedder = { ...base, args: ['--embeddings', '--pooling', 'cls'] };
    expect(servesEmbeddings(embedder)).toBe(true);
    expect(forEmbeddings(embedder, false)).toBe(embedder);
    expect(forEmbeddings(base, false)).toMatchObject({ id: 'chat#embed', variantOf: 'chat', args: ['--jinja', '--embeddings', '--pooling', 'mean'] });
    // the GGUF names its pooling type: llama-server uses it
    expect(forEmbeddings(base, true).args).toEqual(['--jinja', '--embeddings']);
    expect(withContext(forEmbeddings(base, true), 512).id).toBe('chat#embed#ctx512');
  });
});

describe('backends in the configuration', () => {
  const build = (input: unknown) => buildConfig(input, null, { env: {} });

  it('defaults and a model served by Ollama', () => {
    const config = build({ backends: { ollama: { url: 'http://127.0.0.1:11434' } }, models: { remote: { backend: 'ollama', name: 'llama3.2:1b' } } });
    expect(config.backends.ollama).toEqual({ url: 'http://127.0.0.1:11434', prefix: 'ollama/', connectTimeout: 5, readTimeout: 300, listModels: true });
    expect(config.models.remote).toMatchObject({ backend: 'ollama', name: 'llama3.2:1b' });
    expect(build({}).backends).toEqual({});
  });

  it('refuses what cannot work', () => {
    expect(() => build({ models: { remote: { backend: 'ollama' } } })).toThrow(/backends\.ollama\.url is not set/);
    expect(() => build({ backends: { ollama: { url: 'http://x:1' } }, models: { r: { backend: 'ollama', path: '/m.gguf', pinned: true } } })).toThrow(/path, pinned only apply to models the proxy runs itself/);
    expect(() => build({ models: { r: { path: '/m.gguf', name: 'x' } } })).toThrow(/set "backend" too/);
    expect(() => build({ backends: { ollama: { url: 'ftp://x' } } })).toThrow(/backends\.ollama\.url/);
  });
});
