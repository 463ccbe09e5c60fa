/**
 * A value computed from a part of the live config, recomputed only when that part is replaced (a reload swaps
 * config sections wholesale, so identity tells a change): hashed keys, CORS matchers, alias maps.
 */
export function derived<S, T>(source: () => S, build: (s: S) => T): () => T {
  let seen: { s: S; value: T } | undefined;
  return () => {
    const s = source();
    if (!seen || seen.s !== s) seen = { s, value: build(s) };
    return seen.value;
  };
}
