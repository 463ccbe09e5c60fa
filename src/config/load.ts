/**
 * Reading the configuration: file (YAML or JSON) -> zod validation -> paths made absolute
 * (relative to the file's folder) -> environment and command-line overrides.
 */
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { ConfigSchema, type ParsedConfig } from './schema.js';

export const DEFAULT_CONFIG_FILE = 'llama-smart-proxy.yaml';

/** The configuration with every path absolute and every override applied. */
export interface Config extends ParsedConfig {
  cacheDir: string;
  /** The file it came from, or null for the built-in defaults. */
  source: string | null;
  /** Folder that relative paths were taken from. */
  baseDir: string;
}

export class ConfigError extends Error {
  constructor(
    message: string,
    readonly file: string | null,
  ) {
    super(message);
    this.name = 'ConfigError';
  }
}

export interface LoadOptions {
  /** Explicit file (`--config`); missing file is an error. */
  file?: string;
  /** Working directory used to find the default file. */
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Command-line overrides; they win over the environment and the file. */
  overrides?: { host?: string; port?: number };
}

/** Where caches go when the config says nothing: $LLAMA_SMART_PROXY_CACHE, $XDG_CACHE_HOME or ~/.cache. */
export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.LLAMA_SMART_PROXY_CACHE) return path.resolve(env.LLAMA_SMART_PROXY_CACHE);
  const base = env.XDG_CACHE_HOME ? env.XDG_CACHE_HOME : path.join(os.homedir(), '.cache');
  return path.join(base, 'llama-smart-proxy');
}

export function formatIssues(issues: readonly z.core.$ZodIssue[]): string {
  return issues
    .map((issue) => {
      const where = issue.path.length > 0 ? issue.path.map(String).join('.') : '(top level)';
      return `  - ${where}: ${issue.message}`;
    })
    .join('\n');
}

function readRaw(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config file ${file}: ${(err as Error).message}`, file);
  }
  try {
    // YAML is a superset of JSON, so one parser reads both.
    const doc = parseYaml(text, { prettyErrors: true });
    return doc ?? {};
  } catch (err) {
    throw new ConfigError(`config file ${file} is not valid YAML/JSON: ${(err as Error).message}`, file);
  }
}

function parsePort(value: string, origin: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) {
    throw new ConfigError(`${origin} must be a port number 0-65535, got "${value}"`, null);
  }
  return n;
}

/** Validates an already parsed document (exported for tests and for programmatic use). */
export function buildConfig(raw: unknown, source: string | null, options: Omit<LoadOptions, 'file'> = {}): Config {
  const env = options.env ?? process.env;
  const result = ConfigSchema.safeParse(raw);
  if (!result.success) {
    const where = source ?? 'configuration';
    throw new ConfigError(`invalid ${where}:\n${formatIssues(result.error.issues)}`, source);
  }
  const parsed = result.data;
  const baseDir = source ? path.dirname(path.resolve(source)) : path.resolve(options.cwd ?? process.cwd());
  const abs = (p: string) => path.resolve(baseDir, expandHome(p));

  const models = Object.fromEntries(
    Object.entries(parsed.models).map(([alias, m]) => [alias, m.path ? { ...m, path: abs(m.path) } : m]),
  );
  const binary = parsed.llamaServer.binary;
  const config: Config = {
    ...parsed,
    models,
    modelsDir: abs(parsed.modelsDir),
    agents: { ...parsed.agents, dir: abs(parsed.agents.dir) },
    ollama: { ...parsed.ollama, ...(parsed.ollama.models ? { models: abs(parsed.ollama.models) } : {}) },
    lmstudio: { ...parsed.lmstudio, ...(parsed.lmstudio.models ? { models: abs(parsed.lmstudio.models) } : {}) },
    cacheDir: parsed.cacheDir ? abs(parsed.cacheDir) : defaultCacheDir(env),
    llamaServer: {
      ...parsed.llamaServer,
      // A bare name ("llama-server") is looked up on PATH; anything with a slash is a path.
      binary: binary && binary.includes('/') ? abs(binary) : binary,
    },
    server: { ...parsed.server },
    source: source ? path.resolve(source) : null,
    baseDir,
  };

  if (env.LLAMA_SMART_PROXY_HOST) config.server.host = env.LLAMA_SMART_PROXY_HOST;
  // Kubernetes sets <SERVICE>_PORT=tcp://ip:port for a Service named llama-smart-proxy: not a port setting.
  if (env.LLAMA_SMART_PROXY_PORT && !env.LLAMA_SMART_PROXY_PORT.includes('://')) config.server.port = parsePort(env.LLAMA_SMART_PROXY_PORT, 'LLAMA_SMART_PROXY_PORT');
  // Keys from the environment add to the config's (a secret kept out of the file).
  const envKeys = (env.LLAMA_SMART_PROXY_API_KEYS ?? '').split(',').map((k) => k.trim()).filter(Boolean);
  if (envKeys.length > 0) config.server.apiKeys = [...config.server.apiKeys, ...envKeys];
  // Added to the configured (or default) origins, as Ollama's OLLAMA_ORIGINS adds to its defaults.
  const envOrigins = (env.LLAMA_SMART_PROXY_ORIGINS ?? '').split(',').map((o) => o.trim()).filter(Boolean);
  if (envOrigins.length > 0) config.server.cors = { origins: [...config.server.cors.origins, ...envOrigins] };
  // The cluster's secret is best kept out of the file; the node's name defaults to the machine's.
  const clusterToken = env.LLAMA_SMART_PROXY_CLUSTER_TOKEN?.trim();
  if (clusterToken) {
    if (clusterToken.length < 16) throw new ConfigError('LLAMA_SMART_PROXY_CLUSTER_TOKEN: a cluster token has at least 16 characters', source);
    config.cluster = { ...config.cluster, token: clusterToken };
  }
  const peersEnv = (env.LLAMA_SMART_PROXY_CLUSTER_PEERS ?? '').split(',').map((p) => p.trim()).filter(Boolean);
  if (peersEnv.length > 0) config.cluster = { ...config.cluster, peers: [...config.cluster.peers, ...peersEnv] };
  if (env.LLAMA_SMART_PROXY_NODE) config.cluster = { ...config.cluster, node: env.LLAMA_SMART_PROXY_NODE };
  if (env.LLAMA_SMART_PROXY_ADVERTISE_URL) config.cluster = { ...config.cluster, advertiseUrl: env.LLAMA_SMART_PROXY_ADVERTISE_URL };
  if (env.LLAMA_SMART_PROXY_RPC_HOST) {
    const rpcHost = env.LLAMA_SMART_PROXY_RPC_HOST.trim();
    if (rpcHost === '0.0.0.0' || rpcHost === '::') throw new ConfigError('LLAMA_SMART_PROXY_RPC_HOST: rpc-server has no authentication: bind it to one private address, not every interface', source);
    config.cluster = { ...config.cluster, rpcHost };
  }
  if (options.overrides?.host !== undefined) config.server.host = options.overrides.host;
  if (options.overrides?.port !== undefined) config.server.port = options.overrides.port;
  return config;
}

function expandHome(p: string): string {
  return p === '~' || p.startsWith('~/') ? path.join(os.homedir(), p.slice(1)) : p;
}

/**
 * Loads the configuration: the explicit file, else ./llama-smart-proxy.yaml when present, else the built-in
 * defaults. Throws ConfigError with a message naming the key path and the problem.
 */
export function loadConfig(options: LoadOptions = {}): Config {
  const cwd = options.cwd ?? process.cwd();
  if (options.file) {
    const file = path.resolve(cwd, options.file);
    if (!existsSync(file)) throw new ConfigError(`config file ${file} does not exist`, file);
    return buildConfig(readRaw(file), file, options);
  }
  const fallback = path.join(cwd, DEFAULT_CONFIG_FILE);
  if (existsSync(fallback)) return buildConfig(readRaw(fallback), fallback, options);
  return buildConfig({}, null, options);
}
