/**
 * Who a request is for, as the policy and the fair queue see it: the API key's name (never the key) when keys
 * are configured, else the client's address. Set by the key check (auth.ts), read by the pipeline and accounting.
 */
import type { FastifyRequest } from 'fastify';

export type KeyPriority = 'low' | 'normal' | 'high';

export interface RequestKey {
  /** The key's configured name, or `ip:<address>` without keys. */
  name: string;
  priority: KeyPriority;
  /** Requests of this key that may wait at once (undefined: only the global pool.maxQueue). */
  maxQueue?: number;
}

const keys = new WeakMap<object, RequestKey>();

export function setRequestKey(request: FastifyRequest, key: RequestKey): void {
  keys.set(request.raw, key);
}

/** The request's key; a request without one counts as its client address at normal priority. */
export function requestKey(request: FastifyRequest): RequestKey {
  return keys.get(request.raw) ?? { name: `ip:${request.ip}`, priority: 'normal' };
}
