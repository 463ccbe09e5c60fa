/** Requests another node of the cluster forwarded here: served by this node itself, without agents (they ran at the entry). */
import type { FastifyRequest } from 'fastify';
import type { KeyPriority, RequestKey } from '../api/request-key.js';
import type { IdleTimeout } from '../pool/pool.js';

const forwarded = new WeakMap<object, string>();

export function markForwarded(request: FastifyRequest, from: string): void {
  forwarded.set(request.raw, from);
}

/** The entry node's name when another node forwarded this request, else undefined. */
export function forwardedFrom(request: FastifyRequest): string | undefined {
  return forwarded.get(request.raw);
}

/** The FORWARDED_KEY_HEADER value for a request's key: `<priority> <name>`, the name URI-encoded. */
export function forwardedKey(key: RequestKey): string {
  return `${key.priority} ${encodeURIComponent(key.name)}`;
}

const PRIORITIES: ReadonlySet<string> = new Set<KeyPriority>(['low', 'normal', 'high']);

/** The key a forwarded request was served for at the entry (undefined when the header is absent or malformed). */
export function parseForwardedKey(value: unknown): RequestKey | undefined {
  if (typeof value !== 'string') return undefined;
  const m = /^(\w+) (\S+)$/.exec(value.trim());
  if (!m || !PRIORITIES.has(m[1]!)) return undefined;
  try {
    return { name: decodeURIComponent(m[2]!), priority: m[1] as KeyPriority };
  } catch {
    return undefined;
  }
}

/**
 * On a request the entry translated from Ollama's API before forwarding it: the client's keep_alive, in seconds
 * (0 unload when done, -1 never idle), for the serving node's instance. Believed only on a forwarded request.
 */
export const KEEP_ALIVE_HEADER = 'x-llama-smart-proxy-keep-alive';

/** The KEEP_ALIVE_HEADER for an idle timeout (none for the model's default). */
export function keepAliveHeaders(timeout: IdleTimeout): Record<string, string> {
  if (timeout === 'default') return {};
  const seconds = timeout === 'unload' ? 0 : timeout === 'forever' ? -1 : timeout.seconds;
  return { [KEEP_ALIVE_HEADER]: String(seconds) };
}

/** The idle timeout the entry asked for, on a forwarded request (undefined otherwise, or when malformed). */
export function forwardedKeepAlive(request: FastifyRequest): IdleTimeout | undefined {
  const value = request.headers[KEEP_ALIVE_HEADER];
  if (forwardedFrom(request) === undefined || typeof value !== 'string' || !/^-?\d+(\.\d+)?$/.test(value.trim())) return undefined;
  const seconds = Number(value);
  return seconds < 0 ? 'forever' : seconds === 0 ? 'unload' : { seconds };
}
