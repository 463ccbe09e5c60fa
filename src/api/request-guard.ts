/**
 * The check every request body passes before it is forwarded to an instance: what would crash llama-server, or
 * stall every stream it serves, is refused here with a 400 naming the field and the limit. Pure, and never
 * recursive (a body that is hostile enough to need this check would overflow a recursive one).
 *
 * What the managed llama-server (node-llama-cpp 3.21.1's llama.cpp, CPU build, tiny model, -c 2048 -np 2)
 * does with hostile bodies, probed directly on loopback. "Stall": every other stream of the instance stops (the
 * work runs on the loop that serves all slots); "CPU": one HTTP thread busy, other streams go on.
 *
 * | body                                                              | llama-server                            |
 * |-------------------------------------------------------------------|-----------------------------------------|
 * | /v1/chat/completions with any field nested 150,000 deep (the      | SIGSEGV in < 0.5 s; 100,000 survives;   |
 * |   issue's 2 MB body is 1,000,000 deep)                            |   /completion and /tokenize survive 1M  |
 * | json_schema 10,000 object levels (chat, /completion)              | SIGSEGV in < 1 s                        |
 * | json_schema 20,000 `items` levels (/completion)                   | SIGSEGV                                 |
 * | json_schema 1,000 / 2,000 / 5,000 object levels                   | 2 s / 7 s / 26 s CPU (~ depth^2)        |
 * | json_schema 1,000 / 2,000 optional properties in one object       | 3.4 s / 12-14 s CPU (quadratic)         |
 * | json_schema enum of 10,000 / 100,000 values                       | 1.7 s / 50 s CPU                        |
 * | grammar 30,000 nested parentheses; rule chain of 100,000 rules    | SIGSEGV (10,000 / 30,000 survive)       |
 * | grammar of 10,000 / 100,000 alternatives (58 KB / 600 KB)         | stall 1.1 s / 10.6 s                    |
 * | dry_sequence_breakers with 10,000 / 100,000 entries               | stall 1.3 s / 19 s                      |
 * | dry_penalty_last_n 2e8 / 1e9 / 2^31-1 (even with DRY off)         | stall 3 s, 1.6 GB / 8.5 GB / 87 s (OOM) |
 * | 100,000 tools with tool_choice "required"                         | 18 s CPU                                |
 * | prompt longer than the context (chat, completion, streamed)       | clean 400 exceed_context_size_error     |
 * | 2 MB of text to /tokenize (tiny byte vocabulary)                  | > 60 s CPU, no stall (body limit bounds)|
 * | prompt ids < 0 or >= n_vocab, bad logit_bias/lora/id_slot ids,    | clean 4xx/5xx or ignored; alive         |
 * |   n_probs 1e18, max_tokens -100 or 1e30, n/n_cmpl 1000, wrong     |                                         |
 * |   types in messages/tools/content, garbage base64 images,         |                                         |
 * |   /detokenize ids out of range, rerank top_n < 0, junk samplers   |                                         |
 *
 * So the limits: the body's nesting depth (64: a chat request with tool schemas nests ~15-30 deep), grammars
 * (32 KiB, 256 nested groups), JSON schemas wherever llama-server reads one (64 KiB, 256 optional properties in
 * one object), tools (512), dry_sequence_breakers (256 entries), dry_penalty_last_n (no context is longer than
 * 16,777,216 tokens). Each is far below what crashed and far above what real clients send. Prompt length is
 * left to llama-server, which refuses an over-long prompt cleanly.
 */
import { ClientError } from '../models/index.js';

export const DEFAULT_MAX_JSON_DEPTH = 64;

/** What the field checks allow; fixed (not configured): each is set by what crashed or stalled the engine. */
export const FIELD_LIMITS = {
  grammarBytes: 32 * 1024,
  grammarNesting: 256,
  schemaBytes: 64 * 1024,
  optionalProperties: 256,
  tools: 512,
  drySequenceBreakers: 256,
  /** The longest context any model is run with (Ollama's num_ctx bound too). */
  penaltyWindow: 16_777_216,
} as const;

const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/** The index of the quote that ends the string whose content starts at `from`; -1 when none does. */
function stringEnd(bytes: Buffer, from: number): number {
  let end = bytes.indexOf(QUOTE, from);
  while (end > 0) {
    let slashes = 0;
    while (bytes[end - 1 - slashes] === BACKSLASH) slashes++;
    if (slashes % 2 === 0) return end;
    end = bytes.indexOf(QUOTE, end + 1);
  }
  return -1;
}

/**
 * The raw body nests deeper than `max` arrays/objects: a ClientError naming the top-level field where it does.
 * Brackets inside strings are skipped; the bytes are not validated (JSON.parse does that next). UTF-8 continuation
 * bytes are >= 0x80, so they never look like a bracket or a quote.
 */
export function checkJsonDepth(raw: Uint8Array, max: number): ClientError | undefined {
  // Strings (most of a large body: prompts, code, tool results) are skipped with memchr (Buffer#indexOf), not a
  // byte at a time: a quote ends the string unless an odd number of backslashes precedes it.
  const bytes = Buffer.isBuffer(raw) ? raw : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
  let depth = 0;
  let topObject = false;
  // In a top-level object, the last string closed at depth 1 is the key of the value that follows it.
  let key: [number, number] | undefined;
  for (let i = 0; i < bytes.length; i++) {
    const c = bytes[i]!;
    if (c === QUOTE) {
      const start = i + 1;
      const end = stringEnd(bytes, start);
      // An unterminated string: nothing after it can nest (JSON.parse refuses the body next).
      if (end < 0) return undefined;
      if (depth === 1) key = [start, end];
      i = end;
    } else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      if (depth === 0) topObject = c === OPEN_BRACE;
      if (++depth > max) {
        const where = topObject && key ? `field ${JSON.stringify(bytes.subarray(key[0], Math.min(key[1], key[0] + 64)).toString('utf8'))} of the request body` : 'the request body';
        return new ClientError(400, 'json_too_deep', `${where} nests deeper than ${max} levels of arrays and objects (at byte ${i}); at most ${max} are accepted`);
      }
    } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
      depth--;
    }
  }
  return undefined;
}

const COLON = 0x3a;
const COMMA = 0x2c;

/** Where a top-level object's values lie in the body: [start, end) of each (the last one of a repeated key). */
export type TopLevelFields = Map<string, [number, number]>;

function isSpace(c: number | undefined): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

function skipSpace(bytes: Buffer, i: number): number {
  while (isSpace(bytes[i])) i++;
  return i;
}

/** Just past the JSON value that starts at `start`: a string, a nested array or object (strings skipped), or a scalar's run of bytes. */
function valueEnd(bytes: Buffer, start: number): number {
  const c = bytes[start];
  if (c === undefined) return -1;
  if (c === QUOTE) {
    const end = stringEnd(bytes, start + 1);
    return end < 0 ? -1 : end + 1;
  }
  if (c === OPEN_BRACE || c === OPEN_BRACKET) {
    let depth = 0;
    for (let i = start; i < bytes.length; i++) {
      const b = bytes[i]!;
      if (b === QUOTE) {
        i = stringEnd(bytes, i + 1);
        if (i < 0) return -1;
      } else if (b === OPEN_BRACE || b === OPEN_BRACKET) depth++;
      else if ((b === CLOSE_BRACE || b === CLOSE_BRACKET) && --depth === 0) return i + 1;
    }
    return -1;
  }
  let i = start;
  while (i < bytes.length && bytes[i] !== COMMA && bytes[i] !== CLOSE_BRACE && bytes[i] !== CLOSE_BRACKET && !isSpace(bytes[i])) i++;
  return i === start ? -1 : i;
}

/**
 * The top-level fields of a body that is a JSON object, found by following its structure only (strings skipped
 * with memchr, nothing decoded but the keys): undefined when its top level is not a well-formed object, so that
 * JSON.parse gives the error. A key with escapes is decoded as JSON.parse would (a field cannot hide behind
 * `\u0067rammar`). The values themselves are not validated: each is parsed when it is read (body.ts).
 */
export function topLevelFields(bytes: Buffer): TopLevelFields | undefined {
  const fields: TopLevelFields = new Map();
  let i = skipSpace(bytes, 0);
  if (bytes[i] !== OPEN_BRACE) return undefined;
  i = skipSpace(bytes, i + 1);
  if (bytes[i] === CLOSE_BRACE) return skipSpace(bytes, i + 1) === bytes.length ? fields : undefined;
  for (;;) {
    if (bytes[i] !== QUOTE) return undefined;
    const keyEnd = stringEnd(bytes, i + 1);
    if (keyEnd < 0) return undefined;
    let escaped = false;
    for (let k = i + 1; k < keyEnd && !escaped; k++) escaped = bytes[k] === BACKSLASH;
    let key: string;
    if (!escaped) key = bytes.toString('utf8', i + 1, keyEnd);
    else {
      try {
        key = JSON.parse(bytes.toString('utf8', i, keyEnd + 1)) as string;
      } catch {
        return undefined;
      }
    }
    i = skipSpace(bytes, keyEnd + 1);
    if (bytes[i] !== COLON) return undefined;
    const start = skipSpace(bytes, i + 1);
    const end = valueEnd(bytes, start);
    if (end < 0) return undefined;
    fields.delete(key);
    fields.set(key, [start, end]);
    i = skipSpace(bytes, end);
    if (bytes[i] === COMMA) {
      i = skipSpace(bytes, i + 1);
      continue;
    }
    if (bytes[i] !== CLOSE_BRACE) return undefined;
    return skipSpace(bytes, i + 1) === bytes.length ? fields : undefined;
  }
}

/**
 * The elements of the JSON array at [start, end) of a body, [start, end) of each, found as topLevelFields finds
 * values (structure only); undefined when it is not a well-formed array.
 */
export function arrayElements(bytes: Buffer, start: number, end: number): Array<[number, number]> | undefined {
  if (bytes[start] !== OPEN_BRACKET) return undefined;
  const out: Array<[number, number]> = [];
  let i = skipSpace(bytes, start + 1);
  if (bytes[i] === CLOSE_BRACKET) return i + 1 === end ? out : undefined;
  for (;;) {
    const e = valueEnd(bytes, i);
    if (e < 0 || e > end) return undefined;
    out.push([i, e]);
    i = skipSpace(bytes, e);
    if (bytes[i] === COMMA) {
      i = skipSpace(bytes, i + 1);
      continue;
    }
    return bytes[i] === CLOSE_BRACKET && i + 1 === end ? out : undefined;
  }
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const kib = (bytes: number) => `${bytes / 1024} KiB`;

/** Where a value sits in a schema, kept as links (a path string per node would cost more than the walk). */
interface SchemaNode {
  v: unknown;
  parent?: SchemaNode;
  key?: string | number;
}

function nodePath(node: SchemaNode | undefined): string {
  const parts: string[] = [];
  for (let n = node; n?.parent; n = n.parent) parts.push(typeof n.key === 'number' ? `[${n.key}]` : `.${n.key}`);
  return parts.reverse().join('');
}

/**
 * Characters of `value` serialized (close to JSON.stringify's length, counted only up to just past the limit), and
 * the largest count of optional properties in one object.
 */
function measureSchema(value: unknown): { chars: number; optional: number; at: string } {
  const limit = FIELD_LIMITS.schemaBytes;
  let chars = 0;
  let optional = 0;
  let widest: SchemaNode | undefined;
  const stack: SchemaNode[] = [{ v: value }];
  const withProperties: SchemaNode[] = [];
  while (stack.length > 0 && chars <= limit) {
    const node = stack.pop()!;
    const v = node.v;
    if (typeof v === 'string') chars += v.length + 2;
    else if (typeof v === 'number') chars += String(v).length;
    else if (typeof v === 'boolean') chars += v ? 4 : 5;
    else if (v === null) chars += 4;
    else if (Array.isArray(v)) {
      // Past the limit the exact size does not matter: a huge schema costs no more than a small one.
      chars += 1 + Math.max(1, v.length);
      if (chars > limit) break;
      for (let i = 0; i < v.length; i++) stack.push({ v: v[i], parent: node, key: i });
    } else if (typeof v === 'object') {
      const keys = Object.keys(v);
      chars += 1 + Math.max(1, keys.length);
      for (const k of keys) chars += k.length + 3;
      if (chars > limit) break;
      for (const k of keys) stack.push({ v: (v as JsonObject)[k], parent: node, key: k });
      if (isObject((v as JsonObject).properties)) withProperties.push(node);
    }
  }
  // Counted once the size is known to be within the limit, so this too stays small.
  if (chars <= limit) {
    for (const node of withProperties) {
      const { properties, required } = node.v as JsonObject;
      const names = new Set(Array.isArray(required) ? required.filter((r): r is string => typeof r === 'string') : []);
      const count = Object.keys(properties as JsonObject).filter((p) => !names.has(p)).length;
      if (count > optional) {
        optional = count;
        widest = node;
      }
    }
  }
  return { chars, optional, at: nodePath(widest) };
}

function checkSchema(schema: unknown, field: string): ClientError | undefined {
  if (!isObject(schema) && !Array.isArray(schema)) return undefined;
  const { chars, optional, at } = measureSchema(schema);
  if (chars > FIELD_LIMITS.schemaBytes) {
    return new ClientError(400, 'schema_too_large', `"${field}" is a JSON schema of more than ${kib(FIELD_LIMITS.schemaBytes)}; at most ${kib(FIELD_LIMITS.schemaBytes)} are accepted (llama-server turns it into a grammar in time that grows faster than its size)`);
  }
  if (optional > FIELD_LIMITS.optionalProperties) {
    return new ClientError(400, 'schema_too_large', `"${field}${at}" has ${optional} optional properties in one object; at most ${FIELD_LIMITS.optionalProperties} are accepted (list them in "required", or split the object)`);
  }
  return undefined;
}

/** The deepest nesting of ( ) groups in a GBNF grammar, outside its "literals", [classes] and # comments. */
export function grammarNesting(grammar: string): number {
  let depth = 0;
  let deepest = 0;
  for (let i = 0; i < grammar.length; i++) {
    const c = grammar[i];
    if (c === '"' || c === '[') {
      const end = c === '"' ? '"' : ']';
      for (i++; i < grammar.length && grammar[i] !== end; i++) if (grammar[i] === '\\') i++;
    } else if (c === '#') {
      while (i < grammar.length && grammar[i] !== '\n') i++;
    } else if (c === '(') {
      if (++depth > deepest) deepest = depth;
    } else if (c === ')') {
      depth--;
    }
  }
  return deepest;
}

function checkGrammar(grammar: unknown): ClientError | undefined {
  if (grammar === undefined || grammar === null) return undefined;
  if (typeof grammar !== 'string') return new ClientError(400, 'invalid_grammar', `"grammar" must be a string (GBNF), not ${grammar === null ? 'null' : Array.isArray(grammar) ? 'an array' : `a ${typeof grammar}`}`);
  const bytes = Buffer.byteLength(grammar);
  if (bytes > FIELD_LIMITS.grammarBytes) {
    return new ClientError(400, 'grammar_too_large', `"grammar" is ${bytes} bytes; at most ${kib(FIELD_LIMITS.grammarBytes)} are accepted (llama-server parses it on the loop that serves every request)`);
  }
  const nesting = grammarNesting(grammar);
  if (nesting > FIELD_LIMITS.grammarNesting) {
    return new ClientError(400, 'grammar_too_deep', `"grammar" nests ${nesting} groups deep; at most ${FIELD_LIMITS.grammarNesting} are accepted`);
  }
  return undefined;
}

function checkTools(tools: unknown): ClientError | undefined {
  if (!Array.isArray(tools)) return undefined;
  if (tools.length > FIELD_LIMITS.tools) return new ClientError(400, 'too_many_tools', `"tools" lists ${tools.length} tools; at most ${FIELD_LIMITS.tools} are accepted`);
  for (let i = 0; i < tools.length; i++) {
    const tool = tools[i];
    if (!isObject(tool)) continue;
    // Chat Completions and Ollama nest the schema in "function"; Responses has it flat; Anthropic's is input_schema.
    const err =
      (isObject(tool.function) ? checkSchema(tool.function.parameters, `tools[${i}].function.parameters`) : undefined) ??
      checkSchema(tool.parameters, `tools[${i}].parameters`) ??
      checkSchema(tool.input_schema, `tools[${i}].input_schema`);
    if (err) return err;
  }
  return undefined;
}

function checkSampling(body: JsonObject): ClientError | undefined {
  const breakers = body.dry_sequence_breakers;
  if (Array.isArray(breakers) && breakers.length > FIELD_LIMITS.drySequenceBreakers) {
    return new ClientError(400, 'invalid_parameter', `"dry_sequence_breakers" has ${breakers.length} entries; at most ${FIELD_LIMITS.drySequenceBreakers} are accepted`);
  }
  const window = body.dry_penalty_last_n;
  if (typeof window === 'number' && !(Number.isInteger(window) && window >= -1 && window <= FIELD_LIMITS.penaltyWindow)) {
    return new ClientError(400, 'invalid_parameter', `"dry_penalty_last_n" must be a whole number from -1 (the context size) to ${FIELD_LIMITS.penaltyWindow}, not ${window}`);
  }
  return undefined;
}

/** `object.a.b...`, where each step is an object; undefined as soon as one is not. */
function at(object: JsonObject, ...keys: string[]): unknown {
  let v: unknown = object;
  for (const k of keys) {
    if (!isObject(v)) return undefined;
    v = v[k];
  }
  return v;
}

/**
 * The fields of a parsed body that llama-server crashes or stalls on, in the names of every route family: OpenAI
 * and llama-server (`grammar`, `json_schema`, `response_format`, `tools`, DRY sampling), Responses (`text.format`),
 * Anthropic (`output_format`, `tools[].input_schema`) and Ollama (`format`, `tools`). A body that is not an object
 * is left to the routes.
 */
export function checkBodyFields(json: unknown): ClientError | undefined {
  if (!isObject(json)) return undefined;
  return (
    checkGrammar(json.grammar) ??
    checkSchema(json.json_schema, 'json_schema') ??
    checkSchema(at(json, 'response_format', 'schema'), 'response_format.schema') ??
    checkSchema(at(json, 'response_format', 'json_schema', 'schema'), 'response_format.json_schema.schema') ??
    checkSchema(at(json, 'text', 'format', 'schema'), 'text.format.schema') ??
    checkSchema(at(json, 'output_format', 'schema'), 'output_format.schema') ??
    checkSchema(json.format, 'format') ??
    checkTools(json.tools) ??
    checkSampling(json)
  );
}
