/**
 * Malformed and hostile request bodies, generated with fast-check, against a real proxy and llama-server (issue
 * 12, "poison"): (a) on every route family, what the proxy refuses gets a 4xx in that family's error shape, naming
 * the problem, and nothing is launched; (b) with an instance serving another client's streams, no body, refused
 * or forwarded, kills the instance or cuts a stream. Bounded: fixed seed (FUZZ_SEED to change it; fast-check prints
 * the seed and the counterexample's path on failure) and small run counts, so the file takes well under a minute.
 */
import fc from 'fast-check';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { llamaTools } from '../helpers/llama.js';
import { modelsFolder, startTestProxy, type TestProxy } from '../helpers/proxy.js';
import { readStream, type StreamRecord } from '../helpers/sse.js';

const tools = llamaTools();
const SEED = Number(process.env.FUZZ_SEED ?? 20_251_203);
const MODEL = 'tiny';

type Family = 'openai' | 'ollama' | 'anthropic';
interface Route {
  family: Family;
  path: string;
  /** An ordinary body for the route, which the hostile part is added to. */
  base: Record<string, unknown>;
}

const chat = { model: MODEL, messages: [{ role: 'user', content: 'hi' }] };
const ROUTES: readonly Route[] = [
  { family: 'openai', path: '/v1/chat/completions', base: { ...chat, max_tokens: 4 } },
  { family: 'openai', path: '/v1/completions', base: { model: MODEL, prompt: 'hi', max_tokens: 4 } },
  { family: 'openai', path: '/v1/embeddings', base: { model: MODEL, input: 'hi' } },
  { family: 'ollama', path: '/api/chat', base: { ...chat, stream: false } },
  { family: 'ollama', path: '/api/generate', base: { model: MODEL, prompt: 'hi', stream: false } },
  { family: 'ollama', path: '/api/embed', base: { model: MODEL, input: 'hi' } },
  { family: 'openai', path: '/v1/responses', base: { model: MODEL, input: 'hi', max_output_tokens: 4 } },
  { family: 'anthropic', path: '/v1/messages', base: { ...chat, max_tokens: 4 } },
];
const route = fc.constantFrom(...ROUTES);

/** A body as text: `base` with `field` set to `value`, already JSON (deep values cannot go through JSON.stringify). */
function withRawField(base: Record<string, unknown>, field: string, value: string): string {
  const head = JSON.stringify(base);
  return `${head.slice(0, -1)},${JSON.stringify(field)}:${value}}`;
}

/** `depth` levels of arrays and objects in the given repeating pattern (true: an object). */
function nestedValue(depth: number, pattern: readonly boolean[]): string {
  const open: string[] = [];
  const close: string[] = [];
  for (let i = 0; i < pattern.length; i++) {
    open.push(pattern[i] ? '{"k":' : '[');
    close.push(pattern[pattern.length - 1 - i] ? '}' : ']');
  }
  const reps = Math.floor(depth / pattern.length);
  const rest = depth - reps * pattern.length;
  return open.join('').repeat(reps) + open.slice(0, rest).join('') + '1' + close.slice(pattern.length - rest).join('') + close.join('').repeat(reps);
}

async function post(url: string, body: string, signal?: AbortSignal): Promise<{ status: number; json: unknown; text: string }> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body, signal: signal ?? AbortSignal.timeout(30_000) });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, json, text };
}

/** The error message in the family's shape, or undefined when the answer is not one. */
function errorMessage(family: Family, json: unknown): string | undefined {
  const error = (json as { error?: unknown } | undefined)?.error;
  if (family === 'ollama') return typeof error === 'string' ? error : undefined;
  if (family === 'anthropic' && (json as { type?: unknown }).type !== 'error') return undefined;
  const e = error as { message?: unknown; type?: unknown } | undefined;
  return typeof e?.message === 'string' && typeof e.type === 'string' ? e.message : undefined;
}

/** A hostile part of a body and what the refusal must say. */
interface Hostile {
  field: string;
  value: string;
  says: RegExp;
}

type Place = (schema: unknown) => [string, unknown];
const chatTool: Place = (s) => ['tools', [{ type: 'function', function: { name: 'f', parameters: s } }]];
/** Where each route family's clients put a JSON schema. */
function schemaPlaces(r: Route): fc.Arbitrary<Place> {
  if (r.family === 'ollama') return fc.constantFrom<Place>((s) => ['format', s], chatTool);
  if (r.family === 'anthropic') return fc.constantFrom<Place>((s) => ['tools', [{ name: 'f', input_schema: s }]], (s) => ['output_format', { type: 'json_schema', schema: s }]);
  if (r.path === '/v1/responses') return fc.constantFrom<Place>((s) => ['tools', [{ type: 'function', name: 'f', parameters: s }]], (s) => ['text', { format: { type: 'json_schema', name: 'x', schema: s } }]);
  return fc.constantFrom<Place>(
    (s) => ['json_schema', s],
    (s) => ['response_format', { type: 'json_schema', json_schema: { name: 'x', schema: s } }],
    (s) => ['response_format', { type: 'json_object', schema: s }],
    chatTool,
  );
}

/** Shallow, valid JSON that would crash or stall llama-server: refused by the guard. */
function hostileFields(r: Route): fc.Arbitrary<Hostile> {
  const place = (schema: fc.Arbitrary<unknown>, says: RegExp) =>
    fc.tuple(schemaPlaces(r), schema).map(([at, s]) => {
      const [field, value] = at(s);
      return { field, value: JSON.stringify(value), says };
    });
  const optional = fc.integer({ min: 257, max: 2000 }).map((n) => ({ type: 'object', properties: Object.fromEntries(Array.from({ length: n }, (_, i) => [`p${i}`, { type: 'string' }])) }));
  const bigEnum = fc.integer({ min: 66, max: 400 }).map((kib) => ({ enum: Array.from({ length: kib * 10 }, (_, i) => `${i}`.padEnd(100, 'v')) }));
  const raw = (field: string, value: fc.Arbitrary<unknown>, says: RegExp) => value.map((v) => ({ field, value: JSON.stringify(v), says }));
  return fc.oneof(
    place(optional, /optional properties in one object; at most 256/),
    place(bigEnum, /JSON schema of more than 64 KiB/),
    raw('grammar', fc.integer({ min: 5600, max: 20_000 }).map((n) => `root ::= ${'"a" | '.repeat(n)}"a"`), /"grammar" is \d+ bytes; at most 32 KiB/),
    raw('grammar', fc.integer({ min: 257, max: 10_000 }).map((n) => `root ::= ${'('.repeat(n)}"a"${')'.repeat(n)}`), /"grammar" nests \d+ groups deep; at most 256/),
    raw('grammar', fc.oneof(fc.integer(), fc.boolean(), fc.array(fc.string(), { maxLength: 3 }), fc.object({ maxDepth: 1 })), /"grammar" must be a string/),
    raw('tools', fc.integer({ min: 513, max: 2000 }).map((n) => Array.from({ length: n }, (_, i) => ({ type: 'function', function: { name: `f${i}` } }))), /at most 512/),
    raw('dry_sequence_breakers', fc.integer({ min: 257, max: 100_000 }).map((n) => Array.from({ length: n }, (_, i) => `b${i}`)), /"dry_sequence_breakers" has \d+ entries; at most 256/),
    raw('dry_penalty_last_n', fc.oneof(fc.integer({ min: 16_777_217, max: 2 ** 31 - 1 }), fc.integer({ min: -(2 ** 31), max: -2 }), fc.double({ min: -1e6, max: 1e6, noNaN: true }).filter((d) => !Number.isInteger(d))), /"dry_penalty_last_n" must be a whole number from -1/),
  );
}

/** Valid JSON nested past the limit (64) in some field: refused before parsing. */
const tooDeep: fc.Arbitrary<Hostile> = fc
  .record({
    field: fc.oneof(fc.constantFrom('messages', 'prompt', 'input', 'tools', 'response_format', 'format', 'options', 'x'), fc.stringMatching(/^[a-z_]{1,12}$/)),
    depth: fc.oneof(fc.integer({ min: 64, max: 2000 }), fc.integer({ min: 2000, max: 1_000_000 })),
    pattern: fc.array(fc.boolean(), { minLength: 1, maxLength: 6 }),
  })
  // The field's value starts at depth 2: 64 more levels in it are 65 in the body.
  .map(({ field, depth, pattern }) => ({ field, value: nestedValue(depth, pattern), says: new RegExp(`field ${JSON.stringify(field).replace(/[\\^$.*+?()[\]{}|]/g, '\\$&')} of the request body nests deeper than 64 levels`) }));

/** Bodies that are not JSON (shallow, so the JSON error is what is reported). */
const notJson = fc.oneof(fc.string({ maxLength: 200 }), fc.string({ unit: 'binary', maxLength: 200 }), fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v).slice(0, -1) + ',')).filter((s) => {
  if (s.trim() === '') return false;
  try {
    JSON.parse(s);
    return false;
  } catch {
    return true;
  }
});

/** Fields the Ollama routes check themselves, of the wrong type or out of range. */
function ollamaWrongTypes(path: string): fc.Arbitrary<{ body: Record<string, unknown>; says: RegExp }> {
  const notAString = fc.oneof(fc.integer(), fc.boolean(), fc.array(fc.integer(), { minLength: 1, maxLength: 3 }), fc.dictionary(fc.string({ maxLength: 4 }), fc.integer(), { minKeys: 1, maxKeys: 2 }));
  const common = [
    fc.record({ keep_alive: fc.oneof(fc.boolean(), fc.constantFrom('soon', '5 minutes', '1x', 'forever'), fc.array(fc.integer(), { maxLength: 2 }), fc.object({ maxDepth: 1 })) }).map((b) => ({ body: b, says: /keep_alive/ })),
    fc.record({ options: fc.record({ num_ctx: fc.oneof(fc.integer({ max: 0 }), fc.integer({ min: 16_777_217 }), fc.double({ min: 0.1, max: 1e9, noNaN: true }).filter((d) => !Number.isInteger(d)), fc.string({ minLength: 1, maxLength: 5 })) }) }).map((b) => ({ body: b, says: /num_ctx must be a whole number/ })),
  ];
  if (path === '/api/embed') {
    return fc.oneof(
      fc.record({ input: fc.oneof(fc.integer(), fc.boolean(), fc.array(fc.oneof(fc.integer(), fc.boolean(), fc.constant(null)), { minLength: 1, maxLength: 3 })) }).map((b) => ({ body: b, says: /"input" must be a string or a list of strings/ })),
      fc.record({ dimensions: fc.oneof(fc.integer({ max: 0 }), fc.double({ min: 0.1, max: 1e6, noNaN: true }).filter((d) => !Number.isInteger(d)), fc.string({ maxLength: 3 })) }).map((b) => ({ body: b, says: /"dimensions" must be a positive whole number/ })),
      ...common,
    );
  }
  const format = fc.record({ format: fc.oneof(fc.integer(), fc.boolean(), fc.string({ minLength: 1, maxLength: 8 }).filter((s) => s !== 'json')) }).map((b) => ({ body: b, says: /format must be "json" or a JSON schema/ }));
  if (path === '/api/generate') {
    return fc.oneof(fc.record({ prompt: notAString }).map((b) => ({ body: b, says: /"prompt" must be a string/ })), format, ...common);
  }
  return fc.oneof(
    fc.record({ messages: fc.array(fc.oneof(fc.integer(), fc.string(), fc.boolean(), fc.constant(null), fc.record({ role: notAString, content: fc.string() })), { minLength: 1, maxLength: 3 }) }).map((b) => ({ body: b, says: /every message needs a "role"/ })),
    fc.record({ messages: fc.constant([{ role: 'user', content: 'hi', images: [1, 2] }]) }).map((b) => ({ body: b, says: /images/ })),
    fc
      .oneof(fc.integer(), fc.string(), fc.object({ maxDepth: 1 }), fc.array(fc.oneof(fc.integer(), fc.constant(null), fc.record({ function: fc.oneof(fc.integer(), fc.constant(null), fc.record({ name: fc.integer() })) })), { minLength: 1, maxLength: 3 }))
      .filter((calls) => Boolean(calls))
      .map((calls) => ({ body: { messages: [{ role: 'assistant', content: '', tool_calls: calls }] }, says: /"tool_calls" must be a list/ })),
    format,
    ...common,
  );
}

describe.skipIf(!tools.server)(`fuzzed request bodies (seed ${SEED})${tools.reason ? ` (skipped: ${tools.reason})` : ''}`, () => {
  let t: TestProxy;

  beforeAll(async () => {
    const { root, files } = await modelsFolder([1]);
    t = await startTestProxy(tools.server!, root, {
      pool: { size: 1 },
      // Two slots of 2048 tokens: one for the long stream, one for the hostile request.
      models: { [MODEL]: { path: files[1]!, ctx: 4096, parallel: 2 } },
    });
  });

  afterAll(async () => {
    await t?.proxy.close();
  });

  describe('(a) refused with a 4xx in the family\'s shape, nothing launched', () => {
    // One test's leak (a body that got through) must not fail the next ones too.
    afterEach(async () => {
      for (const i of t.proxy.pool.list()) await t.proxy.pool.unload(i.modelId);
    });

    const refused = async (r: Route, body: string, status: number, says: RegExp) => {
      const res = await post(`${t.url}${r.path}`, body);
      const message = errorMessage(r.family, res.json);
      expect({ path: r.path, status: res.status, message }).toMatchObject({ status, message: expect.stringMatching(says) });
      if (r.family !== 'ollama' && status === 400) expect((res.json as { error: { type: string } }).error.type).toBe('invalid_request_error');
      expect(t.proxy.pool.list()).toEqual([]);
    };

    it('bodies that are not JSON', async () => {
      await fc.assert(fc.asyncProperty(route, notJson, (r, body) => refused(r, body, 400, /not valid JSON/)), { seed: SEED, numRuns: 100 });
    });

    it('JSON that is not an object, or names no model as a string', async () => {
      const notObject = fc.oneof(fc.array(fc.jsonValue({ maxDepth: 2 }), { maxLength: 3 }), fc.integer(), fc.string({ maxLength: 10 }), fc.boolean(), fc.constant(null)).map((v) => ({ body: JSON.stringify(v), says: /must be a JSON object/ }));
      const badModel = fc.oneof(fc.integer(), fc.boolean(), fc.constant(null), fc.constant(''), fc.constant('  '), fc.array(fc.string(), { maxLength: 2 }), fc.object({ maxDepth: 1 }));
      const noModel = fc.tuple(route, fc.option(badModel, { nil: undefined })).map(([r, model]) => ({ r, body: JSON.stringify({ ...r.base, model }), says: /model/ }));
      await fc.assert(
        fc.asyncProperty(fc.oneof(fc.tuple(route, notObject).map(([r, x]) => ({ r, ...x })), noModel), ({ r, body, says }) => refused(r, body, 400, says)),
        { seed: SEED, numRuns: 100 },
      );
    });

    it('bodies nested deeper than 64 levels, up to the 2 MB, 1,000,000-deep one of the issue', async () => {
      await fc.assert(fc.asyncProperty(route, tooDeep, (r, h) => refused(r, withRawField(r.base, h.field, h.value), 400, h.says)), { seed: SEED, numRuns: 60 });
    });

    it('grammars, schemas, tools and sampling fields the engine crashes or stalls on', async () => {
      const arb = route.chain((r) => hostileFields(r).map((h) => ({ r, h })));
      await fc.assert(fc.asyncProperty(arb, ({ r, h }) => refused(r, withRawField(r.base, h.field, h.value), 400, h.says)), { seed: SEED, numRuns: 60 });
    });

    it('Ollama fields of the wrong type or out of range', async () => {
      const ollama = fc.constantFrom(...ROUTES.filter((r) => r.family === 'ollama'));
      const arb = ollama.chain((r) => ollamaWrongTypes(r.path).map((x) => ({ r, ...x })));
      await fc.assert(fc.asyncProperty(arb, ({ r, body, says }) => refused(r, JSON.stringify({ ...r.base, ...body }), 400, says)), { seed: SEED, numRuns: 100 });
    });

    it('a model nobody configured: 404, nothing launched', async () => {
      for (const r of ROUTES) await refused(r, JSON.stringify({ ...r.base, model: 'no-such-model' }), 404, /no-such-model/);
    });
  });

  it('a large body (read a field at a time) with a broken value in a field the proxy never reads: 400 invalid_json in the family\'s shape', async () => {
    for (const r of ROUTES.filter((x) => x.family !== 'ollama')) {
      for (const broken of ['[1,2,}', '{"a" 1}', 'tru', '[1,,2]', '01']) {
        const body = withRawField({ ...r.base, padding: 'x'.repeat(20_000) }, 'broken', broken);
        const res = await post(`${t.url}${r.path}`, body);
        expect({ path: r.path, broken, status: res.status, message: errorMessage(r.family, res.json) }).toMatchObject({ status: 400, message: expect.stringMatching(/^request body is not valid JSON/) });
        expect((res.json as { error: { type: string } }).error.type).toBe('invalid_request_error');
      }
    }
    // The instance that read them is still there, and answers.
    const ok = await post(`${t.url}/v1/completions`, JSON.stringify({ model: MODEL, prompt: 'hi', max_tokens: 2, padding: 'x'.repeat(20_000) }));
    expect(ok.status).toBe(200);
  });

  describe('(b) with an instance serving another client\'s stream', () => {
    /** Another client: one streamed chat after another until stopped; every one must end normally. */
    function backgroundStreams(maxTokens: number): { first: Promise<void>; stop: () => Promise<StreamRecord[]> } {
      const records: StreamRecord[] = [];
      let stopped = false;
      let started!: () => void;
      const first = new Promise<void>((resolve) => (started = resolve));
      const loop = (async () => {
        while (!stopped) {
          try {
            const res = await fetch(`${t.url}/v1/chat/completions`, {
              method: 'POST',
              headers: { 'content-type': 'application/json' },
              body: JSON.stringify({ ...chat, stream: true, max_tokens: maxTokens, ignore_eos: true }),
            });
            records.push(await readStream(res, () => started()));
          } catch (err) {
            records.push({ status: 0, chunks: [], text: '', done: false, error: (err as Error).message, endedAt: Date.now() });
          }
          // A stream that failed before its first chunk must not leave the test waiting for one.
          started();
        }
      })();
      return {
        first,
        stop: async () => {
          stopped = true;
          await loop;
          return records;
        },
      };
    }

    /** A stream that ran to its end: [DONE], cut by max_tokens, no error event. */
    function expectComplete(records: StreamRecord[]): void {
      expect(records.length).toBeGreaterThan(0);
      for (const r of records) {
        expect({ status: r.status, done: r.done, error: r.error, length: r.text.includes('"finish_reason":"length"'), errorEvent: /"error"\s*:/.test(r.text) }).toEqual({ status: 200, done: true, error: undefined, length: true, errorEvent: false });
      }
    }

    const instance = () => {
      const list = t.proxy.pool.list();
      expect(list).toHaveLength(1);
      return { pid: list[0]!.pid, state: list[0]!.state };
    };

    /** The instance serving the tests' model, started if need be: its pid. */
    async function warm(): Promise<number | undefined> {
      const res = await post(`${t.url}/v1/chat/completions`, JSON.stringify({ ...chat, max_tokens: 2 }));
      expect(res.status).toBe(200);
      const { pid } = instance();
      expect(pid).toBeGreaterThan(0);
      return pid;
    }

    it('the issue\'s two crashes are refused: a 1,000,000-deep body and a deeply nested json_schema', async () => {
      const pid = await warm();
      const streams = backgroundStreams(1800);
      await streams.first;
      let records: StreamRecord[] = [];
      try {
        // Both crashed this llama-server (SIGSEGV) when forwarded. The issue's 5,000-level json_schema took 10-26 s of
        // CPU here; 10,000 levels (20,000 deep in JSON) crashed it in under a second.
        const deepBody = withRawField({ ...chat, max_tokens: 4 }, 'x', nestedValue(1_000_000, [false]));
        const deepSchema = (levels: number) => withRawField({ ...chat, max_tokens: 4 }, 'response_format', `{"type":"json_schema","json_schema":{"name":"x","schema":${'{"type":"object","properties":{"a":'.repeat(levels)}{"type":"string"}${'}}'.repeat(levels)}}}`);
        for (const body of [deepBody, deepSchema(5000), deepSchema(10_000)]) {
          const started = Date.now();
          const res = await post(`${t.url}/v1/chat/completions`, body);
          expect(res.status).toBe(400);
          expect(errorMessage('openai', res.json)).toMatch(/nests deeper than 64 levels/);
          expect(Date.now() - started).toBeLessThan(2000);
        }
      } finally {
        records = await streams.stop();
      }
      expectComplete(records);
      expect(instance()).toEqual({ pid, state: 'ready' });
    });

    it('hostile but valid bodies, refused or forwarded, never end the instance or the other stream', async () => {
      const int = fc.oneof(fc.integer({ min: -5, max: 300 }), fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), fc.constantFrom(-1, 0, 258, 259, 2 ** 31, 2 ** 40, 1e18, -1e30));
      const junk = fc.oneof(int, fc.double({ noNaN: true, noDefaultInfinity: true }), fc.string({ maxLength: 20 }), fc.boolean(), fc.constant(null), fc.array(int, { maxLength: 5 }), fc.jsonValue({ maxDepth: 3 }));
      const param = fc.constantFrom(
        'n_predict', 'max_tokens', 'n_probs', 'top_logprobs', 'logprobs', 'n', 'n_cmpl', 'id_slot', 'slot_id', 'n_keep', 'n_discard', 'n_indent', 'top_k', 'top_p', 'min_p',
        'typical_p', 'temperature', 'min_keep', 'mirostat', 'mirostat_tau', 'mirostat_eta', 'repeat_last_n', 'penalty_last_n', 'repeat_penalty', 'presence_penalty',
        'dry_multiplier', 'dry_base', 'dry_allowed_length', 'dry_penalty_last_n', 'dry_sequence_breakers', 'xtc_probability', 'xtc_threshold', 'seed', 'stop', 'samplers',
        'logit_bias', 'lora', 'grammar', 'json_schema', 'response_format', 'tools', 'tool_choice', 'messages', 'prompt', 'content', 'tokens', 'input_extra',
        'input_prefix', 'input_suffix', 'chat_template_kwargs', 'reasoning_format', 'stream', 'cache_prompt', 't_max_predict_ms', 'grammar_triggers', 'preserved_tokens',
      );
      const generated = fc.dictionary(param, junk, { minKeys: 1, maxKeys: 6 }).map((fields) => JSON.stringify({ model: MODEL, messages: chat.messages, prompt: 'hi', max_tokens: 4, n_predict: 4, ...fields }));
      // Nested up to the limit (the field's value starts at depth 2): forwarded, and survived.
      const deepButAllowed = fc.record({ depth: fc.integer({ min: 1, max: 63 }), pattern: fc.array(fc.boolean(), { minLength: 1, maxLength: 4 }), field: param }).map(({ depth, pattern, field }) => withRawField({ ...chat, prompt: 'hi', max_tokens: 4 }, field, nestedValue(depth, pattern)));
      // What step 1 found answered cleanly (forwarded), and what crashed or stalled it (refused).
      const known = fc.constantFrom(
        { prompt: [-1, 999_999, 2 ** 31 - 1] }, { prompt: [[999_999]] }, { n_probs: 1e18 }, { max_tokens: -100 }, { max_tokens: 1e30 }, { n: 1000 }, { id_slot: 99 },
        { logit_bias: [[999_999, 1], [-5, 'x']] }, { logit_bias: { '99999999999999999999': 5, hello: 1 } }, { messages: [{ role: 5, content: [5] }] },
        { messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'data:image/png;base64,!!!' } }] }] },
        { tools: [5, null, { type: 'function' }] }, { grammar: 'root ::= root "a"' }, { json_schema: { $ref: '#/nope' } }, { tokens: [999_999, -1] }, { content: [999_999], with_pieces: true },
        { input_extra: [5, null, { text: 5 }] }, { samplers: ['nope', 5, null] }, { dry_multiplier: 1, dry_sequence_breakers: [''] }, { top_n: -5, query: 'a', documents: ['b'] },
        { grammar: `root ::= ${'('.repeat(30_000)}"a"${')'.repeat(30_000)}` }, { grammar: `root ::= ${'"a" | '.repeat(100_000)}"a"` },
        { dry_multiplier: 1, dry_penalty_last_n: 2 ** 31 - 1 }, { dry_multiplier: 1, dry_sequence_breakers: Array.from({ length: 100_000 }, (_, i) => `x${i}`) },
        { json_schema: { type: 'object', properties: Object.fromEntries(Array.from({ length: 2000 }, (_, i) => [`p${i}`, { type: 'string' }])) } },
      ).map((fields) => JSON.stringify({ model: MODEL, messages: chat.messages, prompt: 'hi', max_tokens: 4, n_predict: 4, ...fields }));
      const path = fc.constantFrom('/v1/chat/completions', '/v1/completions', '/completions', '/v1/responses', '/v1/messages', '/tokenize', '/detokenize', '/apply-template', '/infill');

      const pid = await warm();
      const streams = backgroundStreams(600);
      await streams.first;
      const statuses = new Map<number, number>();
      try {
        await fc.assert(
          fc.asyncProperty(path, fc.oneof(known, generated, deepButAllowed), async (p, body) => {
            const res = await post(`${t.url}${p}`, body);
            statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
            // llama-server answers some bad input with a 500 of its own; what matters is that it is still there.
            expect(res.status).not.toBe(502);
            expect(instance()).toEqual({ pid, state: 'ready' });
          }),
          { seed: SEED, numRuns: 150 },
        );
      } finally {
        const records = await streams.stop();
        expectComplete(records);
      }
      expect(instance()).toEqual({ pid, state: 'ready' });
      // Some refused by the proxy, some answered by llama-server: both sides were exercised.
      expect(statuses.get(400) ?? 0).toBeGreaterThan(0);
      expect([...statuses.keys()].some((s) => s === 200)).toBe(true);
    });
  });
});
