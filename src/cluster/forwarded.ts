/** Requests another node of the cluster forwarded here: served by this node itself, without agents (they ran at the entry). */
import type { FastifyRequest } from 'fastify';
import type { KeyPriority, RequestKey } from '../api/request-key.js';

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
