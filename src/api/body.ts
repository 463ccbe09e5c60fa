/** Request bodies kept as received (raw bytes, forwarded as they came) and parsed once; the client going away. */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ClientError } from '../models/index.js';

export interface ParsedBody {
  raw: Buffer;
  json: unknown;
}

declare module 'fastify' {
  interface FastifyRequest {
    parsedBody?: ParsedBody;
  }
}

/** A fastify content-type parser (parseAs: 'buffer') that keeps the raw bytes and parses them as JSON. */
export function parseJsonBody(request: FastifyRequest, body: Buffer | string, done: (err: Error | null, value?: unknown) => void): void {
  const raw = typeof body === 'string' ? Buffer.from(body) : body;
  if (raw.length === 0) {
    request.parsedBody = { raw, json: undefined };
    done(null, undefined);
    return;
  }
  try {
    const json: unknown = JSON.parse(raw.toString('utf8'));
    request.parsedBody = { raw, json };
    done(null, json);
  } catch (err) {
    done(new ClientError(400, 'invalid_json', `request body is not valid JSON: ${(err as Error).message}`), undefined);
  }
}

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
