/**
 * Plugin discovery, once at start: every direct sub-folder of the agents folders is one agent, named after the
 * folder. A folder that cannot be loaded (no config.json, invalid manifest, no module, a module that throws on
 * import or exports no hook) is logged with the reason and listed as failed; the others load.
 */
import { existsSync, readdirSync, readFileSync, realpathSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Logger } from 'pino';
import { AGENT_NAME, argSpecOf, KNOWN_MANIFEST_KEYS, ManifestSchema, type Manifest } from './manifest.js';
import type { ArgSpec } from './slash.js';
import { AGENT_ENDPOINTS, HOOK_NAMES, type Agent, type AgentEndpoint, type HookName, type JsonObject } from './types.js';

/** The plugins shipped with the package (`<package>/plugins`, two levels above src/agents and dist/agents). */
export const BUNDLED_AGENTS_DIR = fileURLToPath(new URL('../../plugins', import.meta.url));

const MODULE_CANDIDATES = ['index.mjs', 'index.js', 'index.cjs'];

export interface LoadedAgent {
  name: string;
  /** The plugin folder. */
  dir: string;
  /** The module file. */
  file: string;
  description: string;
  agent: Agent;
  hooks: HookName[];
  endpoints: readonly AgentEndpoint[];
  args: ArgSpec | undefined;
  settings: JsonObject;
  timeoutMs: number;
}

export type AgentState = 'loaded' | 'disabled' | 'failed';

export interface AgentStatus {
  name: string;
  state: AgentState;
  dir: string;
  description?: string;
  /** Why it is disabled or failed. */
  reason?: string;
  hooks?: HookName[];
  endpoints?: readonly AgentEndpoint[];
}

export interface LoadOptions {
  /** Folders to scan, first wins when two hold the same name. */
  dirs: string[];
  /** When given, only these agents are enabled. */
  enabled?: readonly string[];
  disabled?: readonly string[];
  /** Per-agent settings from the proxy config, merged over the manifest's. */
  settings?: Readonly<Record<string, JsonObject>>;
  /** Default per-hook timeout. */
  timeoutMs: number;
  log: Logger;
}

export interface LoadResult {
  loaded: LoadedAgent[];
  statuses: AgentStatus[];
}

class PluginError extends Error {}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

function readManifest(dir: string): Manifest {
  const file = path.join(dir, 'config.json');
  if (!existsSync(file)) throw new PluginError('no config.json in the folder');
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new PluginError(`config.json is not valid JSON: ${(err as Error).message}`);
  }
  const parsed = ManifestSchema.safeParse(raw);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.length ? i.path.join('.') : '(top level)'}: ${i.message}`).join('; ');
    throw new PluginError(`config.json is invalid: ${issues}`);
  }
  return parsed.data;
}

function moduleFile(dir: string, manifest: Manifest): string {
  if (manifest.main) {
    const file = path.resolve(dir, manifest.main);
    if (!existsSync(file)) throw new PluginError(`"main" names ${manifest.main}, which does not exist`);
    return file;
  }
  for (const name of MODULE_CANDIDATES) {
    const file = path.join(dir, name);
    if (existsSync(file)) return file;
  }
  if (existsSync(path.join(dir, 'index.ts'))) throw new PluginError('index.ts must be compiled to index.js (Node does not import TypeScript)');
  throw new PluginError(`no module (${MODULE_CANDIDATES.join(', ')}) in the folder`);
}

/** The hooks of a module: its default export when that is an object, else its named exports. */
function agentOf(mod: Record<string, unknown>): { agent: Agent; hooks: HookName[] } {
  const source = typeof mod.default === 'object' && mod.default !== null ? (mod.default as Record<string, unknown>) : mod;
  const hooks: HookName[] = [];
  const agent: Agent = {};
  for (const hook of HOOK_NAMES) {
    const fn = source[hook];
    if (fn === undefined) continue;
    if (typeof fn !== 'function') throw new PluginError(`export "${hook}" is a ${typeof fn}, not a function`);
    // Bound so that hooks written as methods keep their `this`.
    (agent as Record<string, unknown>)[hook] = fn.bind(source);
    hooks.push(hook);
  }
  if (hooks.length === 0) throw new PluginError(`the module exports no hook (${HOOK_NAMES.join(', ')}), neither as default export nor named`);
  return { agent, hooks };
}

async function loadOne(name: string, dir: string, manifest: Manifest, options: LoadOptions): Promise<LoadedAgent> {
  const file = moduleFile(dir, manifest);
  let mod: Record<string, unknown>;
  try {
    mod = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  } catch (err) {
    throw new PluginError(`importing ${path.basename(file)} failed: ${(err as Error).message}`);
  }
  const { agent, hooks } = agentOf(mod);
  let args: ArgSpec | undefined;
  try {
    args = argSpecOf(manifest);
  } catch (err) {
    throw new PluginError((err as Error).message);
  }
  return {
    name,
    dir,
    file,
    description: manifest.description,
    agent,
    hooks,
    endpoints: manifest.endpoints ?? AGENT_ENDPOINTS,
    args,
    // Frozen: every request sees the same settings object, so no request may change it for the others.
    settings: deepFreeze({ ...manifest.settings, ...(options.settings?.[name] ?? {}) }),
    timeoutMs: manifest.timeout !== undefined ? manifest.timeout * 1000 : options.timeoutMs,
  };
}

function subfolders(dir: string, log: Logger): string[] {
  if (!existsSync(dir)) {
    log.info({ dir }, 'agents folder does not exist; no agents from it');
    return [];
  }
  try {
    return readdirSync(dir, { withFileTypes: true })
      .filter((e) => e.isDirectory() || e.isSymbolicLink())
      .map((e) => e.name)
      .filter((n) => !n.startsWith('.') && n !== 'node_modules')
      .sort();
  } catch (err) {
    log.warn({ dir, reason: (err as Error).message }, 'agents folder cannot be read; no agents from it');
    return [];
  }
}

function canonical(dir: string): string {
  try {
    return realpathSync(dir);
  } catch {
    return path.resolve(dir);
  }
}

export async function loadAgents(options: LoadOptions): Promise<LoadResult> {
  const { log } = options;
  const loaded: LoadedAgent[] = [];
  const statuses: AgentStatus[] = [];
  const taken = new Set<string>();
  const scanned = new Set<string>();
  for (const root of options.dirs) {
    const real = canonical(root);
    if (scanned.has(real)) continue;
    scanned.add(real);
    for (const name of subfolders(root, log)) {
      const dir = path.join(root, name);
      if (taken.has(name)) {
        log.info({ agent: name, dir }, 'agent folder shadowed by one of the same name in an earlier agents folder');
        continue;
      }
      taken.add(name);
      const fail = (reason: string) => {
        log.warn({ agent: name, dir, reason }, 'agent failed to load; skipped');
        statuses.push({ name, state: 'failed', dir, reason });
      };
      if (!AGENT_NAME.test(name)) {
        fail(`"${name}" cannot be a slash command (letters, digits, and . _ - after the first character)`);
        continue;
      }
      let manifest: Manifest;
      try {
        manifest = readManifest(dir);
      } catch (err) {
        fail((err as Error).message);
        continue;
      }
      const unknownKeys = Object.keys(manifest).filter((k) => !KNOWN_MANIFEST_KEYS.has(k));
      if (unknownKeys.length) log.info({ agent: name, keys: unknownKeys }, 'agent config.json keys ignored');
      const off = !manifest.enabled
        ? 'config.json has "enabled": false'
        : options.enabled && !options.enabled.includes(name)
          ? 'not in agents.enabled'
          : options.disabled?.includes(name)
            ? 'listed in agents.disabled'
            : undefined;
      if (off) {
        log.info({ agent: name, reason: off }, 'agent disabled');
        statuses.push({ name, state: 'disabled', dir, description: manifest.description, reason: off });
        continue;
      }
      try {
        const agent = await loadOne(name, dir, manifest, options);
        loaded.push(agent);
        statuses.push({ name, state: 'loaded', dir, description: agent.description, hooks: agent.hooks, endpoints: agent.endpoints });
        log.info({ agent: name, hooks: agent.hooks, file: agent.file }, 'agent loaded');
      } catch (err) {
        fail(err instanceof PluginError ? err.message : `unexpected error: ${(err as Error).message}`);
      }
    }
  }
  for (const name of options.enabled ?? []) {
    if (!taken.has(name)) log.warn({ agent: name }, 'agents.enabled names an agent that no agents folder holds');
  }
  return { loaded, statuses };
}
