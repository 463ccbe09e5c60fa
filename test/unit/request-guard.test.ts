import { describe, expect, it } from 'vitest';
import { jsonBodyParser } from '../../src/api/body.js';
import fc from 'fast-check';
import { checkBodyFields, checkJsonDepth, DEFAULT_MAX_JSON_DEPTH, FIELD_LIMITS, grammarNesting, topLevelFields } from '../../src/api/request-guard.js';
import { buildConfig } from '../../src/config/index.js';
import { ClientError } from '../../src/models/errors.js';

const nested = (n: number, inner = '1') => '['.repeat(n) + inner + ']'.repeat(n);
const bytes = (s: string) => Buffer.from(s);
/** A schema nested `levels` objects deep, as a string (JSON.stringify of a deep one would itself overflow). */
const deepSchema = (levels: number) => '{"type":"object","properties":{"a":'.repeat(levels) + '{"type":"string"}' + '}}'.repeat(levels);
const props = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`p${i}`, { type: 'string' }]));

describe('checkJsonDepth', () => {
  it.each([
    ['a flat object', '{"a":1,"b":"x"}', 64, undefined],
    ['exactly the limit', nested(64), 64, undefined],
    ['one past the limit', nested(65), 64, 'json_too_deep'],
    ['a million deep (the issue\'s 2 MB body)', `{"model":"m","messages":[],"x":${nested(1_000_000)}}`, 64, 'json_too_deep'],
    ['brackets inside strings do not count', `{"a":"${'['.repeat(1000)}"}`, 64, undefined],
    ['an escaped quote does not end the string', `{"a":"\\"${'['.repeat(1000)}"}`, 64, undefined],
    ['an escaped backslash does', `{"a":"\\\\",${nested(100)}}`, 64, 'json_too_deep'],
    ['objects count like arrays', '{"a":'.repeat(65) + '1' + '}'.repeat(65), 64, 'json_too_deep'],
    ['unbalanced but shallow is left to JSON.parse', '{"a":[1,2', 64, undefined],
    ['an unclosed million-deep body', '['.repeat(1_000_000), 64, 'json_too_deep'],
    ['multibyte text around brackets', `{"é":"[[[","x":${nested(3)}}`, 4, undefined],
  ])('%s', (_name, body, max, code) => {
    expect(checkJsonDepth(bytes(body), max)?.code).toBe(code);
  });

  it('names the top-level field that nests too deep, the limit and the byte', () => {
    const err = checkJsonDepth(bytes(`{"model":"tiny","messages":[{"role":"user","content":"hi"}],"response_format":${nested(100)}}`), 64);
    expect(err).toBeInstanceOf(ClientError);
    expect(err?.status).toBe(400);
    expect(err?.message).toMatch(/^field "response_format" of the request body nests deeper than 64 levels .*at byte \d+/);
  });

  it('names the body itself when it is an array', () => {
    expect(checkJsonDepth(bytes(`["a",${nested(10)}]`), 4)?.message).toMatch(/^the request body nests deeper than 4/);
  });

  it('agrees with the depth of the parsed value for any JSON (strings with quotes, backslashes, brackets, unicode)', () => {
    const depthOf = (v: unknown): number => (v !== null && typeof v === 'object' ? 1 + Math.max(0, ...Object.values(v as object).map(depthOf)) : 0);
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 8 }), fc.integer({ min: 1, max: 8 }), (value, max) => {
        const err = checkJsonDepth(bytes(JSON.stringify(value)), max);
        expect(err === undefined).toBe(depthOf(value) <= max);
      }),
      { numRuns: 2000 },
    );
  });

  it('scans a million-deep body in well under a second', () => {
    const raw = bytes(`{"x":${'['.repeat(1_000_000)}]}`);
    const started = performance.now();
    checkJsonDepth(raw, 1_000_001);
    expect(performance.now() - started).toBeLessThan(1000);
  });
});

describe('topLevelFields', () => {
  const valuesOf = (text: string) => {
    const raw = bytes(text);
    const fields = topLevelFields(raw);
    return fields && Object.fromEntries([...fields].map(([k, [start, end]]) => [k, JSON.parse(raw.toString('utf8', start, end)) as unknown]));
  };

  it('finds every top-level value of any JSON object, as JSON.parse reads it (spacing, escapes, unicode keys)', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string({ unit: 'binary' }), fc.jsonValue({ maxDepth: 4 })), fc.integer({ min: 0, max: 2 }), (object, indent) => {
        const text = JSON.stringify(object, null, indent);
        expect(valuesOf(text)).toEqual(JSON.parse(text));
      }),
      { numRuns: 1000 },
    );
  });

  it.each([
    ['the last of a repeated key wins, as in JSON.parse', '{"model":"a","model":"b"}', { model: 'b' }],
    ['an escaped key is decoded: a guarded field cannot hide behind it', '{"\u0067rammar":"root ::= x"}', { grammar: 'root ::= x' }],
    ['the empty object', ' { } ', {}],
  ])('%s', (_name, text, expected) => {
    expect(valuesOf(text)).toEqual(expected);
  });

  it.each([
    ['an array', '[1,2]'],
    ['trailing bytes', '{"a":1} x'],
    ['a missing colon', '{"a" 1}'],
    ['a missing value', '{"a":}'],
    ['an unterminated string', '{"a":"x'],
    ['an unclosed object', '{"a":[1,2]'],
    ['a key that is not a string', '{a:1}'],
  ])('is undefined for a top level that is not a well-formed object: %s', (_name, text) => {
    expect(topLevelFields(bytes(text))).toBeUndefined();
  });
});

describe('grammarNesting', () => {
  it.each([
    ['root ::= "a"', 0],
    ['root ::= ("a" ("b" | "c"))*', 2],
    ['root ::= "((((" [(((] x', 0],
    ['root ::= "\\"(" ("a")', 1],
    ['root ::= [\\]((] ("a")', 1],
    ['# ((((((\nroot ::= ("a")', 1],
    [`root ::= ${'('.repeat(300)}"a"${')'.repeat(300)}`, 300],
  ])('%j nests %d', (grammar, depth) => {
    expect(grammarNesting(grammar)).toBe(depth);
  });
});

describe('checkBodyFields', () => {
  const big = 'x'.repeat(FIELD_LIMITS.schemaBytes);
  it.each<[string, unknown, string | undefined, RegExp?]>([
    ['an ordinary chat request', { model: 'm', messages: [{ role: 'user', content: 'hi' }], max_tokens: 8 }, undefined],
    ['not an object (left to the routes)', [1, 2], undefined],
    ['a small grammar', { grammar: 'root ::= "yes" | "no"' }, undefined],
    ['a grammar that is not a string', { grammar: 5 }, 'invalid_grammar', /"grammar" must be a string/],
    ['a grammar over 32 KiB', { grammar: `root ::= ${'"a" | '.repeat(6000)}"a"` }, 'grammar_too_large', /32 KiB/],
    ['a grammar 30,000 groups deep (SIGSEGV)', { grammar: `root ::= ${'('.repeat(30_000)}"a"${')'.repeat(30_000)}` }, 'grammar_too_large'],
    ['a grammar 300 groups deep', { grammar: `root ::= ${'('.repeat(300)}"a"${')'.repeat(300)}` }, 'grammar_too_deep', /nests 300 groups deep; at most 256/],
    ['a json_schema with 256 optional properties', { json_schema: { type: 'object', properties: props(256) } }, undefined],
    ['a json_schema with 257 optional properties', { json_schema: { type: 'object', properties: props(257) } }, 'schema_too_large', /"json_schema" has 257 optional properties/],
    ['1,000 required properties are fine', { json_schema: { type: 'object', properties: props(1000), required: Object.keys(props(1000)) } }, undefined],
    ['optional properties deep inside', { json_schema: { type: 'object', properties: { inner: { type: 'object', properties: props(300) } } } }, 'schema_too_large', /"json_schema\.properties\.inner" has 300/],
    ['a json_schema over 64 KiB', { json_schema: { enum: [big] } }, 'schema_too_large', /"json_schema" is a JSON schema of more than 64 KiB/],
    ['an enum of 10,000 values', { json_schema: { enum: Array.from({ length: 10_000 }, (_, i) => `value-${i}`) } }, 'schema_too_large'],
    ['response_format.json_schema.schema', { response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { enum: [big] } } } }, 'schema_too_large', /response_format\.json_schema\.schema/],
    ['response_format.schema', { response_format: { type: 'json_object', schema: { enum: [big] } } }, 'schema_too_large', /response_format\.schema/],
    ['Ollama format', { format: { type: 'object', properties: props(400) } }, 'schema_too_large', /"format" has 400/],
    ['Ollama format "json"', { format: 'json' }, undefined],
    ['a tool schema', { tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object', properties: props(10) } } }] }, undefined],
    ['a tool schema too large', { tools: [{ type: 'function', function: { name: 'f', parameters: {} } }, { type: 'function', function: { name: 'g', parameters: { enum: [big] } } }] }, 'schema_too_large', /tools\[1\]\.function\.parameters/],
    ['a Responses tool schema too large', { tools: [{ type: 'function', name: 'f', parameters: { type: 'object', properties: props(300) } }] }, 'schema_too_large', /"tools\[0\]\.parameters" has 300/],
    ['an Anthropic tool schema too large', { tools: [{ name: 'f', input_schema: { enum: [big] } }] }, 'schema_too_large', /tools\[0\]\.input_schema/],
    ['Responses text.format', { text: { format: { type: 'json_schema', name: 'x', schema: { enum: [big] } } } }, 'schema_too_large', /"text\.format\.schema"/],
    ['Anthropic output_format', { output_format: { type: 'json_schema', schema: { type: 'object', properties: props(257) } } }, 'schema_too_large', /"output_format\.schema" has 257/],
    ['text that is not an object', { text: 'hello', output_format: 5, response_format: [1] }, undefined],
    ['513 tools', { tools: Array.from({ length: 513 }, () => ({ type: 'function', function: { name: 'f' } })) }, 'too_many_tools', /513 tools; at most 512/],
    ['tools of the wrong shape are left to llama-server', { tools: [5, null, 'x'] }, undefined],
    ['4 dry_sequence_breakers', { dry_sequence_breakers: ['\n', ':', '"', '*'] }, undefined],
    ['100,000 dry_sequence_breakers (19 s stall)', { dry_sequence_breakers: Array.from({ length: 100_000 }, (_, i) => `x${i}`) }, 'invalid_parameter', /dry_sequence_breakers" has 100000 entries; at most 256/],
    ['dry_penalty_last_n -1', { dry_penalty_last_n: -1 }, undefined],
    ['dry_penalty_last_n 4096', { dry_penalty_last_n: 4096 }, undefined],
    ['dry_penalty_last_n 2^31-1 (8+ GB)', { dry_penalty_last_n: 2_147_483_647 }, 'invalid_parameter', /from -1 .* to 16777216, not 2147483647/],
    ['dry_penalty_last_n 1.5', { dry_penalty_last_n: 1.5 }, 'invalid_parameter'],
    ['dry_penalty_last_n as a string is left to llama-server', { dry_penalty_last_n: 'x' }, undefined],
    ['a boolean schema', { json_schema: true }, undefined],
  ])('%s', (_name, body, code, message) => {
    const err = checkBodyFields(body);
    expect(err?.code).toBe(code);
    if (code) expect(err?.status).toBe(400);
    if (message) expect(err?.message).toMatch(message);
  });

  it('measures a schema iteratively: a parsed 10,000-level schema is refused, not a stack overflow', () => {
    const schema: unknown = JSON.parse(deepSchema(10_000));
    expect(checkBodyFields({ json_schema: schema })?.code).toBe('schema_too_large');
  });
});

describe('jsonBodyParser', () => {
  type Request = Parameters<ReturnType<typeof jsonBodyParser>>[0];
  function parse(body: string, maxJsonDepth = DEFAULT_MAX_JSON_DEPTH): { err: Error | null; value: unknown; parsed: boolean } {
    const request = {} as Request;
    let out: { err: Error | null; value: unknown } = { err: null, value: undefined };
    jsonBodyParser({ maxJsonDepth })(request, Buffer.from(body), (err, value) => {
      out = { err, value };
    });
    return { ...out, parsed: request.parsedBody !== undefined };
  }

  it('parses a body within the limits and keeps its bytes', () => {
    const { err, value, parsed } = parse('{"model":"m","x":[[1]]}');
    expect(err).toBeNull();
    expect(value).toEqual({ model: 'm', x: [[1]] });
    expect(parsed).toBe(true);
  });

  it('refuses depth before parsing, and keeps nothing of a refused body', () => {
    const { err, parsed } = parse(`{"x":${nested(1_000_000)}}`);
    expect((err as ClientError).code).toBe('json_too_deep');
    expect(parsed).toBe(false);
  });

  it('applies the configured depth', () => {
    expect(parse(nested(20), 16).err).toBeInstanceOf(ClientError);
    expect(parse(nested(20), 32).err).toBeNull();
  });

  it('refuses the fields after parsing', () => {
    expect((parse('{"dry_penalty_last_n":1e9}').err as ClientError).code).toBe('invalid_parameter');
  });

  it('still says invalid JSON for a shallow malformed body', () => {
    expect((parse('{"a":').err as ClientError).code).toBe('invalid_json');
  });

  describe('a large body (from 16 KiB)', () => {
    const history = Array.from({ length: 400 }, (_, i) => ({ role: i % 2 ? 'assistant' : 'user', content: `line ${i}: "quoted" \\ é ${'x'.repeat(40)}` }));
    const large = (extra: Record<string, unknown> = {}) => JSON.stringify({ model: 'm', stream: true, messages: history, ...extra });

    it('reads as the parsed body: every field, spread, re-serialized', () => {
      const text = large({ temperature: 0.5 });
      expect(text.length).toBeGreaterThan(16 * 1024);
      const { err, value } = parse(text);
      expect(err).toBeNull();
      const body = value as Record<string, unknown>;
      expect(body.model).toBe('m');
      expect(body.stream).toBe(true);
      expect(Object.keys(body)).toEqual(['model', 'stream', 'messages', 'temperature']);
      expect({ ...body }).toEqual(JSON.parse(text));
      expect(JSON.parse(JSON.stringify(body))).toEqual(JSON.parse(text));
      body.model = 'other';
      expect(body.model).toBe('other');
    });

    it('checks the guarded fields when it arrives, an escaped name too', () => {
      expect((parse(large({ dry_penalty_last_n: 1e9 })).err as ClientError).code).toBe('invalid_parameter');
      const hidden = large().replace('"model"', `"gr\u0061mmar":${JSON.stringify('x ::= '.repeat(10_000))},"model"`);
      expect((parse(hidden).err as ClientError).code).toBe('grammar_too_large');
    });

    it('refuses a guarded field that is not valid JSON when it arrives, another field with a 400 when it is read', () => {
      expect((parse(large().replace('"model":"m"', '"tools":[1,}],"model":"m"')).err as ClientError).code).toBe('invalid_json');
      const { err, value } = parse(large().replace('"stream":true', '"stream":tru'));
      expect(err).toBeNull();
      expect((value as Record<string, unknown>).model).toBe('m');
      let read: unknown;
      try {
        read = (value as Record<string, unknown>).stream;
      } catch (e) {
        read = e;
      }
      expect(read).toBeInstanceOf(ClientError);
      expect((read as ClientError).status).toBe(400);
      expect((read as ClientError).message).toMatch(/^field "stream" of the request body is not valid JSON/);
    });

    it('still refuses depth and a malformed top level as a small one does', () => {
      expect((parse(large({ x: JSON.parse(nested(100)) as unknown })).err as ClientError).code).toBe('json_too_deep');
      expect((parse(`${large()} trailing`).err as ClientError).code).toBe('invalid_json');
    });
  });
});

describe('server.maxJsonDepth', () => {
  it('defaults to 64 and is bounded', () => {
    expect(buildConfig({}, null, { env: {} }).server.maxJsonDepth).toBe(64);
    expect(buildConfig({ server: { maxJsonDepth: 128 } }, null, { env: {} }).server.maxJsonDepth).toBe(128);
    expect(() => buildConfig({ server: { maxJsonDepth: 100_000 } }, null, { env: {} })).toThrow(/maxJsonDepth/);
  });
});
