import { describe, expect, it } from 'vitest';
import { AnswerTail, buildRecord, loadWait, placementLine, readAnswer, readTimings, recordedRoute, RequestLog, safeHeaders, type RequestDraft, type RequestRecord } from '../../src/requests/index.js';

const TIMINGS = '"timings":{"cache_n":3,"prompt_n":12,"prompt_ms":24.5,"prompt_per_token_ms":2.04,"prompt_per_second":489.8,"predicted_n":16,"predicted_ms":80,"predicted_per_token_ms":5,"predicted_per_second":200}';
const LAST_CHUNK = `data: {"choices":[{"finish_reason":"length","index":0,"delta":{}}],"created":1,"id":"chatcmpl-x","model":"a","object":"chat.completion.chunk","usage":{"completion_tokens":16,"prompt_tokens":15,"total_tokens":31},${TIMINGS}}\n\ndata: [DONE]\n\n`;

describe('recordedRoute', () => {
  it.each([
    ['POST', '/v1/chat/completions', 'openai', 'chat/completions'],
    ['POST', '/chat/completions?x=1', 'openai', 'chat/completions'],
    ['POST', '/v1/embeddings', 'openai', 'embeddings'],
    ['POST', '/v1/audio/transcriptions', 'openai', 'audio/transcriptions'],
    ['POST', '/v1/messages', 'anthropic', 'messages'],
    ['POST', '/v1/responses', 'responses', 'responses'],
    ['POST', '/api/chat', 'ollama', 'api/chat'],
    ['POST', '/api/embed', 'ollama', 'api/embed'],
    ['POST', '/tokenize', 'llama-server', 'tokenize'],
    ['GET', '/props?model=a', 'llama-server', 'props'],
  ])('%s %s -> %s %s', (method, url, family, endpoint) => expect(recordedRoute(method, url)).toEqual({ family, endpoint }));

  it.each([
    ['GET', '/v1/chat/completions'],
    ['GET', '/v1/models'],
    ['POST', '/models/load'],
    ['POST', '/api/pull'],
    ['POST', '/api/show'],
    ['GET', '/requests'],
    ['GET', '/dashboard'],
  ])('%s %s gets no record', (method, url) => expect(recordedRoute(method, url)).toBeUndefined());
});

describe('readAnswer', () => {
  it('reads usage and timings from the last chunk of a stream', () => {
    expect(readAnswer(LAST_CHUNK)).toEqual({
      promptTokens: 15,
      completionTokens: 16,
      timings: { cacheN: 3, promptN: 12, promptMs: 24.5, promptPerSecond: 489.8, predictedN: 16, predictedMs: 80, predictedPerSecond: 200 },
    });
  });
  it('reads Anthropic and Ollama names', () => {
    expect(readAnswer('{"usage":{"input_tokens":7,"output_tokens":3}}')).toMatchObject({ promptTokens: 7, completionTokens: 3, timings: null });
    expect(readAnswer('{"done":true,"prompt_eval_count":9,"eval_count":4}')).toMatchObject({ promptTokens: 9, completionTokens: 4 });
  });
  it('takes the last of each when several appear', () => {
    expect(readAnswer('"prompt_tokens":1,"completion_tokens":1 ... "prompt_tokens":5,"completion_tokens":6')).toMatchObject({ promptTokens: 5, completionTokens: 6 });
  });
  it('says null for what is not there, and ignores a cut timings object', () => {
    expect(readAnswer('{"choices":[]}')).toEqual({ promptTokens: null, completionTokens: null, timings: null });
    expect(readTimings('"timings":{"prompt_n":3')).toBeNull();
    expect(readTimings('"timings":{"prompt_n":3,"predicted_per_second":1.5e2}')).toMatchObject({ promptN: 3, predictedPerSecond: 150, promptMs: null });
  });
});

describe('AnswerTail', () => {
  it('keeps only the end of a long answer and still finds the last chunk', () => {
    const tail = new AnswerTail();
    for (let i = 0; i < 500; i++) tail.push(Buffer.from(`data: {"choices":[{"delta":{"content":"token ${i}"}}]}\n\n`));
    tail.push(LAST_CHUNK);
    expect(tail.read()).toMatchObject({ promptTokens: 15, completionTokens: 16 });
    expect(tail.tokens()).toEqual({ prompt: 15, completion: 16 });
    expect(tail.firstAt).toBeGreaterThan(0);
  });
  it('takes the end of a chunk larger than what it keeps', () => {
    const tail = new AnswerTail();
    tail.push(Buffer.from(`${'x'.repeat(100_000)}"prompt_tokens":4,"completion_tokens":2`));
    expect(tail.tokens()).toEqual({ prompt: 4, completion: 2 });
  });
});

const draft = (over: Partial<RequestDraft> = {}): RequestDraft => ({
  id: '7',
  startedAt: 1_000_000,
  route: { family: 'openai', endpoint: 'chat/completions' },
  method: 'POST',
  path: '/v1/chat/completions',
  model: 'a',
  stream: true,
  key: 'alice',
  ...over,
});
const end = { endedAt: 1_000_900, statusCode: 200, headersSent: true, finished: true };

describe('buildRecord', () => {
  it('a streamed answer: tokens and speeds from timings, TTFT from its first piece, wait split into queue and load', () => {
    const r = buildRecord(draft({ upstream: { label: 'i1', instance: 'i1', placement: 'GPU 1 · ngl 9', waitedMs: 500, loadMs: 420 }, firstByteAt: 1_000_600, answer: readAnswer(LAST_CHUNK) }), end);
    expect(r).toMatchObject({
      id: '7', family: 'openai', endpoint: 'chat/completions', model: 'a', key: 'alice', instance: 'i1', placement: 'GPU 1 · ngl 9', status: 200, outcome: 'ok', aborted: false,
      prompt_tokens: 15, completion_tokens: 16, cached_tokens: 3, ttft_ms: 600, prompt_tps: 489.8, generation_tps: 200, duration_ms: 900, queued_ms: 80, load_ms: 420, error: null,
    });
    expect(r.time).toBe(new Date(1_000_000).toISOString());
    expect(r).not.toHaveProperty('bodies');
  });
  it('a whole answer: TTFT is the wait plus the prompt time; no load, queue only', () => {
    const r = buildRecord(draft({ stream: false, upstream: { label: 'i1', instance: 'i1', waitedMs: 30 }, firstByteAt: 1_000_800, answer: readAnswer(LAST_CHUNK) }), end);
    expect(r).toMatchObject({ ttft_ms: 54.5, queued_ms: 30, load_ms: null });
  });
  it('generation speed from the counts when timings have no rate', () => {
    const answer = { promptTokens: 2, completionTokens: 10, timings: { cacheN: null, promptN: null, promptMs: null, promptPerSecond: null, predictedN: null, predictedMs: 50, predictedPerSecond: null } };
    expect(buildRecord(draft({ answer }), end).generation_tps).toBe(200);
  });
  it('a client that went away before the end: 499 before headers, the sent status after, aborted either way', () => {
    expect(buildRecord(draft(), { endedAt: 1_000_100, statusCode: 200, headersSent: false, finished: false })).toMatchObject({ status: 499, outcome: 'client_closed', aborted: true });
    expect(buildRecord(draft(), { endedAt: 1_000_100, statusCode: 200, headersSent: true, finished: false })).toMatchObject({ status: 200, outcome: 'client_closed', aborted: true });
  });
  it('an error answered by the proxy: its status and message, nothing upstream', () => {
    expect(buildRecord(draft({ error: 'model "x" is not configured' }), { ...end, statusCode: 404 })).toMatchObject({ status: 404, outcome: 'error', error: 'model "x" is not configured', instance: null, queued_ms: null, prompt_tokens: null, ttft_ms: null });
  });
});

describe('placementLine and loadWait', () => {
  it.each([
    [undefined, 'CPU'],
    [{ gpus: [], ngl: 0, splitMode: 'none' }, 'CPU'],
    [{ gpus: [{ index: 1 }], ngl: 33, splitMode: 'none' }, 'GPU 1 · ngl 33'],
    [{ gpus: [{ index: 0 }, { index: 1 }], ngl: 81, splitMode: 'layer', tensorSplit: [3, 1] }, 'GPU 0+1 split 3:1 · ngl 81'],
  ])('%j -> %s', (p, want) => expect(placementLine(p)).toBe(want));

  it.each([
    [1000, 500, 900, undefined], // ready before the request came
    [1000, 500, 1500, 500], // a load under way when it came: the part after it came
    [1000, 1200, 1500, 300], // the load it caused
    [1000, 1200, undefined, undefined],
  ])('request at %d, instance made %d, ready %s -> %s', (start, created, ready, want) => expect(loadWait(start, created, ready)).toBe(want));
});

describe('safeHeaders', () => {
  it('drops every header that carries a secret', () => {
    expect(safeHeaders({ authorization: 'Bearer sk-1', 'x-api-key': 'k', cookie: 'c', 'proxy-authorization': 'p', 'x-llama-smart-proxy-cluster-token': 't', 'content-type': 'application/json', accept: ['a', 'b'], 'user-agent': undefined })).toEqual({ 'content-type': 'application/json', accept: 'a, b' });
  });
});

describe('RequestLog', () => {
  const rec = (id: string, model: string) => ({ id, model }) as RequestRecord;
  it('keeps the newest `capacity`, lists newest first, filters by model and finds by id', () => {
    const log = new RequestLog(3);
    for (const [i, m] of ['a', 'b', 'a', 'b', 'a'].entries()) log.add(rec(String(i + 1), m));
    expect(log.size).toBe(3);
    expect(log.list().map((r) => r.id)).toEqual(['5', '4', '3']);
    expect(log.list({ limit: 2 }).map((r) => r.id)).toEqual(['5', '4']);
    expect(log.list({ model: 'a' }).map((r) => r.id)).toEqual(['5', '3']);
    expect(log.get('4')?.model).toBe('b');
    expect(log.get('1')).toBeUndefined();
  });
  it('tells subscribers of each record until they leave; ids never repeat', () => {
    const log = new RequestLog(2);
    const seen: string[] = [];
    const leave = log.subscribe((r) => seen.push(r.id));
    log.add(rec(log.nextId(), 'a'));
    leave();
    log.add(rec(log.nextId(), 'a'));
    expect(seen).toEqual(['1']);
    expect(log.subscribers).toBe(0);
    expect(log.nextId()).toBe('3');
  });
  it('refuses a capacity below 1', () => expect(() => new RequestLog(0)).toThrow(RangeError));
});
