/**
 * What a config reload changes (issue 15 item 4), decided without IO: models added, removed, changed (their
 * instances drain and new requests get a new one), and settings that cannot change while the proxy runs
 * (reported as "needs a restart", not applied). Keys, CORS and limits are read per request and need nothing here.
 */
import { isDeepStrictEqual } from 'node:util';
import type { Config } from './load.js';

export interface ReloadPlan {
  added: string[];
  removed: string[];
  /** Aliases whose entry differs (args, ctx, path, rules...). */
  changed: string[];
  /** Dotted config paths that changed but only take effect after a restart. */
  needsRestart: string[];
}

/** Settings read once at start: the listening socket, the cache, cluster membership, the binary. */
const RESTART_ONLY: ReadonlyArray<readonly string[]> = [['server', 'host'], ['server', 'port'], ['cacheDir'], ['cluster'], ['llamaServer', 'binary']];

function at(config: unknown, path: readonly string[]): unknown {
  let v: unknown = config;
  for (const key of path) v = v !== null && typeof v === 'object' ? (v as Record<string, unknown>)[key] : undefined;
  return v;
}

export function reloadPlan(before: Config, after: Config): ReloadPlan {
  const old = before.models;
  const next = after.models;
  const added = Object.keys(next).filter((a) => !(a in old)).sort();
  const removed = Object.keys(old).filter((a) => !(a in next)).sort();
  const changed = Object.keys(next).filter((a) => a in old && !isDeepStrictEqual(old[a], next[a])).sort();
  const needsRestart = RESTART_ONLY.filter((p) => !isDeepStrictEqual(at(before, p), at(after, p))).map((p) => p.join('.'));
  return { added, removed, changed, needsRestart };
}
