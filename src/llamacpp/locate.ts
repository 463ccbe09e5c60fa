/**
 * Finding llama.cpp's tools. llama-server comes from, in order: the config (`llamaServer.binary`), the
 * LLAMA_SERVER environment variable, the PATH, the managed build (built on demand). A user's own binary always
 * wins over the managed build. The helper tools (llama-fit-params, llama-quantize) are looked for beside the
 * chosen llama-server first, then through their own variables, the PATH and the managed build.
 *
 * The RPC server (llama.cpp's tools/rpc, for lending this machine's devices to another node's llama-server) is
 * `ggml-rpc-server` in this llama.cpp and `rpc-server` in older ones; both names are tried, in that order, beside
 * llama-server, then $LLAMA_RPC_SERVER, then the PATH, then the managed build. A user's llama-server built without
 * -DGGML_RPC=ON has no `--rpc`: `supportsRpc` asks the binary itself.
 */
import path from 'node:path';
import { isExecutableFile, run, which } from '../util/exec.js';
import { BuildError, ensureManagedBuild, findManagedBuild, resolveBackend, type ManagedBuild } from './managed-build.js';
import type { LlamaTool } from './version.js';

export type ToolSource = 'config' | 'env' | 'path' | 'managed';

export interface LlamaTools {
  server: string;
  source: ToolSource;
  fitParams?: string;
  quantize?: string;
  /** The RPC server (ggml-rpc-server / rpc-server), when one is found. */
  rpcServer?: string;
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

type HelperTool = Exclude<LlamaTool, 'llama-server'>;

const TOOL_ENV: Record<HelperTool, string> = {
  'llama-fit-params': 'LLAMA_FIT_PARAMS',
  'llama-quantize': 'LLAMA_QUANTIZE',
  'ggml-rpc-server': 'LLAMA_RPC_SERVER',
};

/** File names a tool may have, newest first (llama.cpp renamed rpc-server to ggml-rpc-server). */
const TOOL_NAMES: Record<HelperTool, readonly string[]> = {
  'llama-fit-params': ['llama-fit-params'],
  'llama-quantize': ['llama-quantize'],
  'ggml-rpc-server': ['ggml-rpc-server', 'rpc-server'],
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

function helperTool(tool: HelperTool, server: string, managed: ManagedBuild | undefined, env: NodeJS.ProcessEnv): string | undefined {
  const names = TOOL_NAMES[tool];
  for (const name of names) {
    const beside = path.join(path.dirname(server), name);
    if (isExecutableFile(beside)) return beside;
  }
  const fromEnv = env[TOOL_ENV[tool]];
  if (fromEnv && isExecutableFile(fromEnv)) return path.resolve(fromEnv);
  for (const name of names) {
    const onPath = which(name, env);
    if (onPath) return onPath;
  }
  return managed?.tools[tool];
}

function assemble(base: { server: string; source: ToolSource }, managed: ManagedBuild | undefined, env: NodeJS.ProcessEnv): LlamaTools {
  const tools: LlamaTools = { ...base };
  const fitParams = helperTool('llama-fit-params', base.server, managed, env);
  const quantize = helperTool('llama-quantize', base.server, managed, env);
  const rpcServer = helperTool('ggml-rpc-server', base.server, managed, env);
  if (fitParams) tools.fitParams = fitParams;
  if (quantize) tools.quantize = quantize;
  if (rpcServer) tools.rpcServer = rpcServer;
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

/**
 * Whether this llama-server takes `--rpc` (built with -DGGML_RPC=ON): llama.cpp lists the option in --help only
 * when the RPC backend is compiled in (common/arg.cpp, `llama_supports_rpc()`). The managed build always has it.
 */
export async function supportsRpc(server: string, env: NodeJS.ProcessEnv = process.env): Promise<boolean> {
  try {
    const result = await run(server, ['--help'], { env, timeoutMs: 10_000 });
    return /^\s*--rpc\b/m.test(result.stdout + result.stderr);
  } catch {
    return false;
  }
}
