/**
 * A model's request rules applied to the body llama-server receives (after any family translation): `strip`
 * removes fields, `defaults` sets fields that are absent, `force` always sets fields. Pure: no IO.
 * Order: strip, then defaults, then force (a forced field wins; a stripped field is not re-defaulted unless
 * defaults or force name it too).
 */
import type { RequestRules } from '../config/schema.js';

export type JsonBody = Record<string, unknown>;

/** True when the rules change nothing (the caller keeps the raw bytes). */
export function rulesEmpty(rules: RequestRules | undefined): boolean {
  return !rules || (rules.strip.length === 0 && Object.keys(rules.defaults).length === 0 && Object.keys(rules.force).length === 0);
}

/** A new body with the rules applied (the input is not modified). `model` is never touched. */
export function applyRequestRules(body: JsonBody, rules: RequestRules | undefined): JsonBody {
  if (!rules || rulesEmpty(rules)) return body;
  const out: JsonBody = { ...body };
  for (const field of rules.strip) if (field !== 'model') delete out[field];
  for (const [field, value] of Object.entries(rules.defaults)) if (field !== 'model' && out[field] === undefined) out[field] = value;
  for (const [field, value] of Object.entries(rules.force)) if (field !== 'model') out[field] = value;
  return out;
}
