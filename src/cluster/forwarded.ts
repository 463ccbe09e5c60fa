/** Requests another node of the cluster forwarded here: served by this node itself, without agents (they ran at the entry). */
import type { FastifyRequest } from 'fastify';

const forwarded = new WeakMap<object, string>();

export function markForwarded(request: FastifyRequest, from: string): void {
  forwarded.set(request.raw, from);
}

/** The entry node's name when another node forwarded this request, else undefined. */
export function forwardedFrom(request: FastifyRequest): string | undefined {
  return forwarded.get(request.raw);
}
