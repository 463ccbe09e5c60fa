/** Errors in OpenAI's shape: {"error": {"message", "type", "code"}} with a real HTTP status. */
import type { FastifyReply } from 'fastify';
import { ClientError } from '../models/errors.js';
import { PoolError } from '../pool/errors.js';

export interface OpenAIErrorBody {
  error: { message: string; type: string; code: string | null; param?: string | null };
}

/** A model call that failed: the status it answered (502 when it could not be reached) and why. */
export class UpstreamCallError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'UpstreamCallError';
  }
}

export function errorType(status: number): string {
  if (status === 401) return 'authentication_error';
  if (status === 403) return 'permission_error';
  if (status === 404) return 'not_found_error';
  if (status === 429) return 'rate_limit_error';
  if (status === 503) return 'unavailable_error';
  return status < 500 ? 'invalid_request_error' : 'server_error';
}

export function openaiError(status: number, message: string, code: string | null = null): OpenAIErrorBody {
  return { error: { message, type: errorType(status), code } };
}

/** Status, code, message and Retry-After for anything thrown while serving a request. */
export function describeError(err: unknown): { status: number; code: string | null; message: string; retryAfter?: number } {
  if (err instanceof PoolError) {
    return { status: err.status, code: err.code, message: err.message, ...(err.retryAfter !== undefined ? { retryAfter: err.retryAfter } : {}) };
  }
  if (err instanceof ClientError) return { status: err.status, code: err.code, message: err.message };
  if (err instanceof UpstreamCallError) return { status: err.status, code: 'upstream_error', message: err.message };
  const e = err as { statusCode?: number; code?: string; message?: string };
  if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 600) {
    return { status: e.statusCode, code: fastifyCode(e.code), message: e.message ?? 'request failed' };
  }
  return { status: 500, code: 'internal_error', message: e.message ?? String(err) };
}

function fastifyCode(code: string | undefined): string | null {
  switch (code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return 'body_too_large';
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return 'unsupported_media_type';
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return 'invalid_json';
    default:
      return code ?? null;
  }
}

/** Answers `err` in the error shape of the request's API family. */
export function sendError(reply: FastifyReply, err: unknown): FastifyReply {
  const { status, code, message, retryAfter } = describeError(err);
  if (retryAfter !== undefined) void reply.header('retry-after', String(retryAfter));
  return reply.code(status).send(errorBodyFor(reply.request.url, status, message, code));
}

/** Anthropic's error types by status (https://docs.anthropic.com/en/api/errors). */
function anthropicType(status: number): string {
  if (status === 401) return 'authentication_error';
  if (status === 403) return 'permission_error';
  if (status === 404) return 'not_found_error';
  if (status === 413) return 'request_too_large';
  if (status === 429) return 'rate_limit_error';
  if (status === 503 || status === 529) return 'overloaded_error';
  return status < 500 ? 'invalid_request_error' : 'api_error';
}

export interface AnthropicErrorBody {
  type: 'error';
  error: { type: string; message: string };
}

export function anthropicError(status: number, message: string): AnthropicErrorBody {
  return { type: 'error', error: { type: anthropicType(status), message } };
}

/** The API family a path belongs to, for the shape of its errors (each family's clients parse only their own). */
export type ErrorFamily = 'openai' | 'ollama' | 'anthropic';

export function errorFamily(url: string): ErrorFamily {
  if (url.startsWith('/api/')) return 'ollama';
  if (url === '/v1/messages' || url.startsWith('/v1/messages?') || url.startsWith('/v1/messages/')) return 'anthropic';
  return 'openai';
}

/** An error body in the shape of the family `url` belongs to. */
export function errorBodyFor(url: string, status: number, message: string, code: string | null): unknown {
  switch (errorFamily(url)) {
    case 'ollama':
      return { error: message };
    case 'anthropic':
      return anthropicError(status, message);
    default:
      return openaiError(status, message, code);
  }
}
