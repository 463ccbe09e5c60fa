/**
 * A copy of a value that JSON.stringify renders faithfully: Maps become objects (keys as strings), Sets arrays,
 * bigints numbers (strings when too large), Dates ISO strings; functions and cycles are dropped. Used to hand
 * agents runtime records (the pool's InstanceInfo, whose per-GPU byte counts are Maps) whatever their fields.
 */
export function toJsonSafe(value: unknown, seen: WeakSet<object> = new WeakSet()): unknown {
  if (typeof value === 'bigint') return Number.isSafeInteger(Number(value)) ? Number(value) : value.toString();
  if (typeof value === 'function' || typeof value === 'symbol') return undefined;
  if (typeof value !== 'object' || value === null) return value;
  if (value instanceof Date) return value.toISOString();
  if (seen.has(value)) return undefined;
  seen.add(value);
  try {
    if (value instanceof Map) {
      const out: Record<string, unknown> = {};
      for (const [k, v] of value) out[String(k)] = toJsonSafe(v, seen);
      return out;
    }
    if (value instanceof Set) return [...value].map((v) => toJsonSafe(v, seen));
    if (Array.isArray(value)) return value.map((v) => toJsonSafe(v, seen));
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      const safe = toJsonSafe(v, seen);
      if (safe !== undefined) out[k] = safe;
    }
    return out;
  } finally {
    seen.delete(value);
  }
}
