/**
 * What a config reload changes (issue 15 item 4), decided without IO: models added, removed, changed (their
 * instances drain and new requests get a new one), and settings that cannot change while the proxy runs
 * (reported as "needs a restart" and kept at their running values). Keys, limits, CORS, request rules, the pool's
 * queue settings and llama-server's per-instance settings are read as they are used and take effect at once.
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

/**
 * Settings read once at start: the listening socket and its limits, the cache, cluster membership, the binary and
 * its build, the instances' port range, the GPU source, the Hub client, the Ollama registry client and store, the
 * agents, the Ollama backend.
 */
export const RESTART_ONLY: ReadonlyArray<readonly string[]> = [
  ['server', 'host'],
  ['server', 'port'],
  ['server', 'bodyLimitMiB'],
  ['server', 'headersTimeout'],
  ['server', 'requestTimeout'],
  ['server', 'keepAliveTimeout'],
  ['server', 'maxConnectionsPerClient'],
  ['server', 'maxJsonDepth'],
  ['server', 'requestLog'],
  ['server', 'captureBodies'],
  ['server', 'captureBodyKiB'],
  ['server', 'loadingProgress'],
  ['cacheDir'],
  ['cluster'],
  ['llamaServer', 'binary'],
  ['llamaServer', 'backend'],
  ['llamaServer', 'autoBuild'],
  ['llamaServer', 'buildJobs'],
  ['pool', 'portRange'],
  ['gpu'],
  ['hub'],
  ['ollama'],
  ['agents'],
  ['backends'],
  ['log', 'format'],
];

type Obj = Record<string, unknown>;

function at(config: unknown, path: readonly string[]): unknown {
  let v: unknown = config;
  for (const key of path) v = v !== null && typeof v === 'object' ? (v as Obj)[key] : undefined;
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

/** `after` with every restart-only setting put back to its running value (`before`'s); `after` is not modified. */
export function keepRestartOnly(before: Config, after: Config): Config {
  const merged = { ...after } as unknown as Obj;
  for (const path of RESTART_ONLY) {
    let target = merged;
    for (const key of path.slice(0, -1)) {
      const child = { ...((target[key] as Obj | undefined) ?? {}) };
      target[key] = child;
      target = child;
    }
    const last = path[path.length - 1]!;
    const value = at(before, path);
    if (value === undefined) delete target[last];
    else target[last] = value;
  }
  return merged as unknown as Config;
}
