/**
 * Finding llama.cpp's tools. llama-server comes from, in order: the config (`llamaServer.binary`), the
 * LLAMA_SERVER environment variable, the PATH, the managed build (built on demand). A user's own binary always
 * wins over the managed build. The helper tools (llama-fit-params, llama-quantize) are looked for beside the
 * chosen llama-server first, then through their own variables, the PATH and the managed build.
 */
import path from 'node:path';
import { isExecutableFile, which } from '../util/exec.js';
import { BuildError, ensureManagedBuild, findManagedBuild, resolveBackend, type ManagedBuild } from './managed-build.js';
import type { LlamaTool } from './version.js';

export type ToolSource = 'config' | 'env' | 'path' | 'managed';

export interface LlamaTools {
  server: string;
  source: ToolSource;
  fitParams?: string;
  quantize?: string;
  managed?: ManagedBuild;
}

export interface LocateSettings {
  binary?: string;
  backend: 'auto' | 'cpu' | 'cuda';
  autoBuild: boolean;
  buildJobs?: number;
}

export interface LocateOptions {
  cacheDir: string;
  llamaServer: LocateSettings;
  env?: NodeJS.ProcessEnv;
  log?: (line: string) => void;
}

const TOOL_ENV: Record<Exclude<LlamaTool, 'llama-server'>, string> = {
  'llama-fit-params': 'LLAMA_FIT_PARAMS',
  'llama-quantize': 'LLAMA_QUANTIZE',
};

function userServer(options: LocateOptions): { server: string; source: ToolSource } | undefined {
  const env = options.env ?? process.env;
  const configured = options.llamaServer.binary;
  if (configured) {
    const found = which(configured, env);
    if (!found) throw new BuildError(`llamaServer.binary "${configured}" is not an executable file`);
    return { server: found, source: 'config' };
  }
  if (env.LLAMA_SERVER) {
    if (!isExecutableFile(env.LLAMA_SERVER)) throw new BuildError(`LLAMA_SERVER="${env.LLAMA_SERVER}" is not an executable file`);
    return { server: path.resolve(env.LLAMA_SERVER), source: 'env' };
  }
  const onPath = which('llama-server', env);
  return onPath ? { server: onPath, source: 'path' } : undefined;
}

function helperTool(tool: Exclude<LlamaTool, 'llama-server'>, server: string, managed: ManagedBuild | undefined, env: NodeJS.ProcessEnv): string | undefined {
  const beside = path.join(path.dirname(server), tool);
  if (isExecutableFile(beside)) return beside;
  const fromEnv = env[TOOL_ENV[tool]];
  if (fromEnv && isExecutableFile(fromEnv)) return path.resolve(fromEnv);
  return which(tool, env) ?? managed?.tools[tool];
}

function assemble(base: { server: string; source: ToolSource }, managed: ManagedBuild | undefined, env: NodeJS.ProcessEnv): LlamaTools {
  const tools: LlamaTools = { ...base };
  const fitParams = helperTool('llama-fit-params', base.server, managed, env);
  const quantize = helperTool('llama-quantize', base.server, managed, env);
  if (fitParams) tools.fitParams = fitParams;
  if (quantize) tools.quantize = quantize;
  if (managed) tools.managed = managed;
  return tools;
}

/** What is there now, building nothing. Undefined when no llama-server exists yet. */
export function locateLlamaTools(options: LocateOptions): LlamaTools | undefined {
  const env = options.env ?? process.env;
  const managed = findManagedBuild(options.cacheDir, resolveBackend(options.llamaServer.backend, env));
  const user = userServer(options);
  if (user) return assemble(user, managed, env);
  return managed ? assemble({ server: managed.tools['llama-server'], source: 'managed' }, managed, env) : undefined;
}

/** The tools, building the managed llama.cpp first when no llama-server is found and autoBuild allows it. */
export async function ensureLlamaTools(options: LocateOptions & { forceBuild?: boolean }): Promise<LlamaTools> {
  const env = options.env ?? process.env;
  const found = locateLlamaTools(options);
  if (found && !options.forceBuild) return found;
  if (!options.forceBuild && !options.llamaServer.autoBuild) {
    throw new BuildError(
      'no llama-server found (llamaServer.binary, LLAMA_SERVER, PATH, managed build) and llamaServer.autoBuild is off; ' +
        'run `llama-smart-proxy setup` to build one',
    );
  }
  const buildOptions = {
    cacheDir: options.cacheDir,
    backend: options.llamaServer.backend,
    env,
    ...(options.llamaServer.buildJobs !== undefined ? { jobs: options.llamaServer.buildJobs } : {}),
    ...(options.log ? { log: options.log } : {}),
  };
  const managed = await ensureManagedBuild(buildOptions);
  const user = userServer(options);
  return assemble(user ?? { server: managed.tools['llama-server'], source: 'managed' }, managed, env);
}
