/**
 * Request bodies kept as received (raw bytes, forwarded as they came) and parsed once, a large one field by field
 * as it is read; the client going away.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ClientError } from '../models/index.js';
import { arrayElements, checkBodyFields, checkJsonDepth, DEFAULT_MAX_JSON_DEPTH, topLevelFields, type TopLevelFields } from './request-guard.js';

export interface ParsedBody {
  raw: Buffer;
  json: unknown;
  /** Parsed a field at a time (lazyObject): the fields not read were never checked to be valid JSON. */
  partial?: true;
  /** Where a partial body's top-level values lie in `raw`. */
  fields?: TopLevelFields;
}

declare module 'fastify' {
  interface FastifyRequest {
    parsedBody?: ParsedBody;
  }
}

export interface BodyParserLimits {
  /** Deepest nesting of arrays and objects accepted (`server.maxJsonDepth`). */
  maxJsonDepth: number;
  /** Object bodies from this size on are parsed a top-level field at a time, when the field is read (default 16 KiB). */
  lazyFromBytes?: number;
}

const LAZY_FROM_BYTES = 16 * 1024;

/** The JSON value at [start, end) of `raw`; a 400 naming `what` when it is not valid. */
function parseSpan(raw: Buffer, start: number, end: number, what: string): unknown {
  try {
    return JSON.parse(raw.toString('utf8', start, end));
  } catch (err) {
    throw new ClientError(400, 'invalid_json', `${what} of the request body is not valid JSON: ${(err as Error).message}`);
  }
}

/**
 * A large object body whose top-level values are parsed when first read (a getter per field; assigning one
 * replaces it). A request forwarded as it came reads its `model`, `stream` and the guarded fields: a coding
 * agent's 200 KB history is then never decoded nor parsed by the proxy (about 0.6 ms and as many bytes again of
 * garbage). A value that is not valid JSON is a 400 when it is read; one never read is llama-server's to refuse
 * (its parser is as strict as JSON.parse), which it does with a 500 naming the parse error: serve-prompt.ts turns
 * that answer into the 400 `invalid_json` the whole body would have had, in the family's shape.
 */
function lazyObject(raw: Buffer, fields: TopLevelFields): Record<string, unknown> {
  const object: Record<string, unknown> = {};
  for (const [name, [start, end]] of fields) {
    let read = false;
    let value: unknown;
    Object.defineProperty(object, name, {
      enumerable: true,
      configurable: true,
      get() {
        if (!read) {
          value = parseSpan(raw, start, end, `field ${JSON.stringify(name.slice(0, 64))}`);
          read = true;
        }
        return value;
      },
      set(v: unknown) {
        value = v;
        read = true;
      },
    });
  }
  return object;
}

type BodyParser = (request: FastifyRequest, body: Buffer | string, done: (err: Error | null, value?: unknown) => void) => void;

/**
 * A fastify content-type parser (parseAs: 'buffer') that keeps the raw bytes and parses them as JSON. Every route
 * family's body comes through here before its route runs, so this is where a body that would crash or stall
 * llama-server is refused (request-guard.ts): its depth on the raw bytes before JSON.parse, its fields after. An
 * object body of `lazyFromBytes` or more is not parsed whole (lazyObject).
 */
export function jsonBodyParser(limits: BodyParserLimits = { maxJsonDepth: DEFAULT_MAX_JSON_DEPTH }): BodyParser {
  const lazyFrom = limits.lazyFromBytes ?? LAZY_FROM_BYTES;
  return (request, body, done) => {
    const raw = typeof body === 'string' ? Buffer.from(body) : body;
    if (raw.length === 0) {
      request.parsedBody = { raw, json: undefined };
      done(null, undefined);
      return;
    }
    const tooDeep = checkJsonDepth(raw, limits.maxJsonDepth);
    if (tooDeep) {
      done(tooDeep, undefined);
      return;
    }
    const fields = raw.length >= lazyFrom ? topLevelFields(raw) : undefined;
    let json: unknown;
    let refused: ClientError | undefined;
    try {
      json = fields ? lazyObject(raw, fields) : JSON.parse(raw.toString('utf8'));
      // The guarded fields of a lazy body are parsed here: one that is not valid JSON is refused now.
      refused = checkBodyFields(json);
    } catch (err) {
      done(err instanceof ClientError ? err : new ClientError(400, 'invalid_json', `request body is not valid JSON: ${(err as Error).message}`), undefined);
      return;
    }
    if (refused) {
      done(refused, undefined);
      return;
    }
    request.parsedBody = fields ? { raw, json, partial: true, fields } : { raw, json };
    done(null, json);
  };
}

/** The parser with the default limits. */
export const parseJsonBody: BodyParser = jsonBodyParser();

export function bodyObject(request: FastifyRequest): Record<string, unknown> {
  const json = request.parsedBody?.json;
  if (json === undefined) throw new ClientError(400, 'invalid_json', 'request body must be a JSON object (Content-Type: application/json)');
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new ClientError(400, 'invalid_json', 'request body must be a JSON object');
  return json as Record<string, unknown>;
}

/**
 * The body as agents' planning needs it: the array `field` (a chat's `messages`, a Responses `input`) with only
 * its last element that `wanted` accepts, the others left as holes (planning reads the last user message only).
 * For a body parsed a field at a time, only the elements from the end back to that one are parsed, one by one:
 * a coding agent's history is not. The body itself when it was parsed whole, or `field` is not an array.
 */
export function planningBody(request: FastifyRequest, field: string, wanted: (item: unknown) => boolean): Record<string, unknown> {
  const body = bodyObject(request);
  const parsed = request.parsedBody;
  const span = parsed?.partial ? parsed.fields?.get(field) : undefined;
  if (!parsed || !span) return body;
  const elements = arrayElements(parsed.raw, span[0], span[1]);
  if (!elements) return body;
  const sparse: unknown[] = new Array(elements.length);
  for (let i = elements.length - 1; i >= 0; i--) {
    const [start, end] = elements[i]!;
    const item = parseSpan(parsed.raw, start, end, `${JSON.stringify(field)}[${i}]`);
    if (wanted(item)) {
      sparse[i] = item;
      break;
    }
  }
  const view = Object.create(body) as Record<string, unknown>;
  Object.defineProperty(view, field, { value: sparse, enumerable: true });
  return view;
}

/** An AbortSignal that fires when the client goes away before its response is complete. */
export function clientGone(reply: FastifyReply): AbortSignal {
  const controller = new AbortController();
  reply.raw.once('close', () => {
    if (!reply.raw.writableFinished) controller.abort();
  });
  return controller.signal;
}
