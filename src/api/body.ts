/** Request bodies kept as received (raw bytes, forwarded as they came) and parsed once; the client going away. */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ClientError } from '../models/index.js';
import { checkBodyFields, checkJsonDepth, DEFAULT_MAX_JSON_DEPTH } from './request-guard.js';

export interface ParsedBody {
  raw: Buffer;
  json: unknown;
}

declare module 'fastify' {
  interface FastifyRequest {
    parsedBody?: ParsedBody;
  }
}

export interface BodyParserLimits {
  /** Deepest nesting of arrays and objects accepted (`server.maxJsonDepth`). */
  maxJsonDepth: number;
}

type BodyParser = (request: FastifyRequest, body: Buffer | string, done: (err: Error | null, value?: unknown) => void) => void;

/**
 * A fastify content-type parser (parseAs: 'buffer') that keeps the raw bytes and parses them as JSON. Every route
 * family's body comes through here before its route runs, so this is where a body that would crash or stall
 * llama-server is refused (request-guard.ts): its depth on the raw bytes before JSON.parse, its fields after.
 */
export function jsonBodyParser(limits: BodyParserLimits = { maxJsonDepth: DEFAULT_MAX_JSON_DEPTH }): BodyParser {
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
    let json: unknown;
    try {
      json = JSON.parse(raw.toString('utf8'));
    } catch (err) {
      done(new ClientError(400, 'invalid_json', `request body is not valid JSON: ${(err as Error).message}`), undefined);
      return;
    }
    const refused = checkBodyFields(json);
    if (refused) {
      done(refused, undefined);
      return;
    }
    request.parsedBody = { raw, json };
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

/** An AbortSignal that fires when the client goes away before its response is complete. */
export function clientGone(reply: FastifyReply): AbortSignal {
  const controller = new AbortController();
  reply.raw.once('close', () => {
    if (!reply.raw.writableFinished) controller.abort();
  });
  return controller.signal;
}
