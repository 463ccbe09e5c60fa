/**
 * A model's request rules applied to the body llama-server receives (after any family translation): `strip`
 * removes fields, `defaults` sets fields that are absent, `force` always sets fields. Pure: no IO.
 * Order: strip, then defaults, then force (a forced field wins; a stripped field is not re-defaulted unless
 * defaults or force name it too). A model's default system prompt (Ollama's system layer) is put first in a
 * chat body's `messages` when they hold no system message (Ollama's own rule).
 */
import type { ModelRules } from '../models/resolve.js';

type RequestRules = ModelRules;

export type JsonBody = Record<string, unknown>;

/** True when the rules change nothing (the caller keeps the raw bytes). */
export function rulesEmpty(rules: RequestRules | undefined): boolean {
  return !rules || (rules.strip.length === 0 && Object.keys(rules.defaults).length === 0 && Object.keys(rules.force).length === 0 && !rules.system);
}

/** A new body with the rules applied (the input is not modified). `model` is never touched. */
export function applyRequestRules(body: JsonBody, rules: RequestRules | undefined): JsonBody {
  if (!rules || rulesEmpty(rules)) return body;
  const out: JsonBody = { ...body };
  for (const field of rules.strip) if (field !== 'model') delete out[field];
  for (const [field, value] of Object.entries(rules.defaults)) if (field !== 'model' && out[field] === undefined) out[field] = value;
  for (const [field, value] of Object.entries(rules.force)) if (field !== 'model') out[field] = value;
  const messages = out.messages;
  if (rules.system && Array.isArray(messages) && !messages.some((m) => isSystem(m))) out.messages = [{ role: 'system', content: rules.system }, ...(messages as unknown[])];
  return out;
}

function isSystem(m: unknown): boolean {
  const role = typeof m === 'object' && m !== null ? (m as { role?: unknown }).role : undefined;
  return role === 'system' || role === 'developer';
}
