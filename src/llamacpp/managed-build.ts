/**
 * The managed llama.cpp build: the source bundle from the pinned node-llama-cpp package, cloned and built with
 * cmake into a cache folder keyed by version and backend. Idempotent (a finished build is reused), safe when
 * several processes ask at once (a lock; the ones that wait find the build done), atomic (built in a work folder,
 * renamed into place when complete).
 */
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import lockfile from 'proper-lockfile';
import { run, which } from '../util/exec.js';
import { MANAGED_TOOLS, NODE_LLAMA_CPP_VERSION, REQUIRED_CMAKE_ARGS, type LlamaTool } from './version.js';

export type Backend = 'cpu' | 'cuda';

export interface ManagedBuild {
  dir: string;
  backend: Backend;
  tools: Record<LlamaTool, string>;
  info: BuildInfo;
}

export interface BuildInfo {
  nodeLlamaCpp: string;
  llamaCppTag: string;
  backend: Backend;
  builtAt: string;
  buildSeconds: number;
  cmakeArgs: string[];
}

export interface BuildOptions {
  cacheDir: string;
  backend: 'auto' | Backend;
  jobs?: number;
  /** Progress and status lines, meant for a person. */
  log?: (line: string) => void;
  env?: NodeJS.ProcessEnv;
  /** Produces the build in `target` (default: fetch, clone, cmake). Replaceable so the locking can be tested quickly. */
  builder?: (target: string, backend: Backend, options: BuildOptions, log: (line: string) => void) => Promise<BuildInfo>;
}

export class BuildError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BuildError';
  }
}

export const BUILD_INFO_FILE = 'build-info.json';

/** auto = cuda when both the CUDA compiler and an NVIDIA GPU (driver loaded) are here; a compiler alone is not enough. */
export function resolveBackend(backend: 'auto' | Backend, env: NodeJS.ProcessEnv = process.env): Backend {
  if (backend !== 'auto') return backend;
  return findNvcc(env) && hasNvidiaGpu() ? 'cuda' : 'cpu';
}

export function hasNvidiaGpu(): boolean {
  try {
    return readdirSync('/proc/driver/nvidia/gpus').length > 0;
  } catch {
    return false;
  }
}

function findNvcc(env: NodeJS.ProcessEnv): string | undefined {
  return which('nvcc', env) ?? ['/usr/local/cuda/bin/nvcc'].find((p) => existsSync(p));
}

/**
 * On x86 CPUs with AMX, this llama.cpp's AMX matmul path (compiled in by -march=native) crashes the server
 * (SIGSEGV in ggml_backend_amx_mul_mat) on the first Q8_0/Q4_K model it runs. The managed build leaves AMX out
 * there; AVX-512/AVX2 kernels still serve those types. The folder name records it.
 */
export function cpuHasAmx(cpuinfo: string = readCpuinfo()): boolean {
  return /^flags\s*:.*\bamx_int8\b/m.test(cpuinfo);
}

function readCpuinfo(): string {
  try {
    return readFileSync('/proc/cpuinfo', 'utf8');
  } catch {
    return '';
  }
}

const NO_AMX_FLAGS = '-mno-amx-tile -mno-amx-int8 -mno-amx-bf16';

export function managedBuildDir(cacheDir: string, backend: Backend, withoutAmx: boolean = cpuHasAmx()): string {
  return path.join(cacheDir, 'llama.cpp', `${NODE_LLAMA_CPP_VERSION}-${backend}${withoutAmx ? '-noamx' : ''}`);
}

/** True when the build was configured with every option the tools need (REQUIRED_CMAKE_ARGS). */
export function hasRequiredCmakeArgs(info: Pick<BuildInfo, 'cmakeArgs'>): boolean {
  return REQUIRED_CMAKE_ARGS.every((arg) => info.cmakeArgs.includes(arg));
}

/**
 * The finished managed build for this version and backend, or undefined when there is none yet. A build folder
 * missing a tool, or built without a required cmake option (an older build, before RPC), counts as none: it is
 * rebuilt in place.
 */
export function findManagedBuild(cacheDir: string, backend: Backend): ManagedBuild | undefined {
  const dir = managedBuildDir(cacheDir, backend);
  const infoFile = path.join(dir, BUILD_INFO_FILE);
  if (!existsSync(infoFile)) return undefined;
  const tools = Object.fromEntries(MANAGED_TOOLS.map((t) => [t, path.join(dir, 'bin', t)])) as Record<LlamaTool, string>;
  if (!Object.values(tools).every((t) => existsSync(t))) return undefined;
  let info: BuildInfo;
  try {
    info = JSON.parse(readFileSync(infoFile, 'utf8')) as BuildInfo;
  } catch {
    return undefined;
  }
  if (!Array.isArray(info.cmakeArgs) || !hasRequiredCmakeArgs(info)) return undefined;
  return { dir, backend, tools, info };
}

/** Names what is missing to build, with the install line a person can paste. */
export function missingBuildPrerequisites(env: NodeJS.ProcessEnv = process.env): string[] {
  const missing: string[] = [];
  if (!which('cmake', env)) missing.push('cmake');
  if (!which('git', env)) missing.push('git');
  if (!['c++', 'g++', 'clang++'].some((c) => which(c, env))) missing.push('a C++ compiler (g++ or clang++)');
  if (!['cc', 'gcc', 'clang'].some((c) => which(c, env))) missing.push('a C compiler (gcc or clang)');
  if (!which('tar', env)) missing.push('tar');
  if (!which('npm', env)) missing.push('npm');
  return missing;
}

function prerequisiteMessage(missing: string[]): string {
  return (
    `cannot build llama-server: ${missing.join(', ')} ${missing.length === 1 ? 'is' : 'are'} not installed.\n` +
    `Install them (Debian/Ubuntu: sudo apt-get install cmake build-essential git), or use your own build:\n` +
    `set llamaServer.binary in the config, or LLAMA_SERVER=/path/to/llama-server, or put llama-server on PATH.`
  );
}

async function step(
  what: string,
  command: string,
  args: string[],
  options: { cwd?: string; env: NodeJS.ProcessEnv; onLine?: (line: string) => void },
): Promise<string> {
  const result = await run(command, args, options);
  if (result.code !== 0) {
    const tail = (result.stderr || result.stdout).trim().split('\n').slice(-20).join('\n');
    throw new BuildError(`${what} failed (${command} ${args.join(' ')} exited with ${result.code ?? result.signal}):\n${tail}`);
  }
  return result.stdout;
}

/** Copies the pinned bundle out of node-llama-cpp's npm tarball into `work`; returns the bundle's path. */
async function fetchBundle(work: string, env: NodeJS.ProcessEnv): Promise<{ bundle: string; tag: string }> {
  const packOut = await step('downloading node-llama-cpp', 'npm', ['pack', `node-llama-cpp@${NODE_LLAMA_CPP_VERSION}`, '--pack-destination', work, '--silent'], {
    cwd: work,
    env,
  });
  const tarball = path.join(work, packOut.trim().split('\n').pop() ?? '');
  await step('unpacking the llama.cpp bundle', 'tar', ['-xzf', tarball, '-C', work, 'package/llama/gitRelease.bundle', 'package/llama/llama.cpp.info.json'], { env });
  const info = JSON.parse(readFileSync(path.join(work, 'package/llama/llama.cpp.info.json'), 'utf8')) as { tag?: string };
  rmSync(tarball, { force: true });
  return { bundle: path.join(work, 'package/llama/gitRelease.bundle'), tag: info.tag ?? 'unknown' };
}

function progressReporter(log: (line: string) => void): (line: string) => void {
  let lastShown = -10;
  return (line) => {
    const m = /^\[\s*(\d+)%\]/.exec(line);
    if (!m) return;
    const pct = Number(m[1]);
    if (pct >= lastShown + 10 || (pct === 100 && lastShown < 100)) {
      lastShown = pct;
      log(`  compiling llama.cpp: ${pct}%`);
    }
  };
}

async function buildInto(target: string, backend: Backend, options: BuildOptions, log: (l: string) => void): Promise<BuildInfo> {
  const env = { ...(options.env ?? process.env) };
  const started = Date.now();
  const work = `${target}.work`;
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });

  log(`fetching llama.cpp source from node-llama-cpp@${NODE_LLAMA_CPP_VERSION}`);
  const { bundle, tag } = await fetchBundle(work, env);
  const src = path.join(work, 'src');
  await step('cloning the llama.cpp bundle', 'git', ['clone', '--quiet', bundle, src], { env });

  const cmakeArgs = [
    '-DCMAKE_BUILD_TYPE=Release',
    '-DBUILD_SHARED_LIBS=OFF',
    '-DLLAMA_BUILD_TESTS=OFF',
    '-DLLAMA_BUILD_EXAMPLES=OFF',
    '-DLLAMA_OPENSSL=OFF',
    '-DGGML_NATIVE=ON',
    // RPC: the ggml-rpc backend in llama-server (`--rpc host:port,...`) and the ggml-rpc-server tool. RDMA stays
    // off so the build does not depend on whether libibverbs happens to be installed (plain TCP).
    ...REQUIRED_CMAKE_ARGS,
    '-DGGML_RPC_RDMA=OFF',
    ...(cpuHasAmx() ? [`-DCMAKE_C_FLAGS=${NO_AMX_FLAGS}`, `-DCMAKE_CXX_FLAGS=${NO_AMX_FLAGS}`] : []),
    ...(backend === 'cuda' ? ['-DGGML_CUDA=ON', '-DCMAKE_CUDA_ARCHITECTURES=native'] : []),
  ];
  const build = path.join(work, 'build');
  log(`configuring llama.cpp ${tag} (${backend}) with cmake`);
  await step('cmake configure', 'cmake', ['-S', src, '-B', build, ...cmakeArgs], { env });
  const jobs = options.jobs ?? Math.max(1, os.availableParallelism());
  log(`building ${MANAGED_TOOLS.join(', ')} with ${jobs} jobs (a few minutes; only the first run pays)`);
  await step('cmake build', 'cmake', ['--build', build, '--config', 'Release', '-j', String(jobs), '--target', ...MANAGED_TOOLS], {
    env,
    onLine: progressReporter(log),
  });

  const staged = `${target}.staged`;
  rmSync(staged, { recursive: true, force: true });
  mkdirSync(path.join(staged, 'bin'), { recursive: true });
  for (const tool of MANAGED_TOOLS) cpSync(path.join(build, 'bin', tool), path.join(staged, 'bin', tool));
  const info: BuildInfo = {
    nodeLlamaCpp: NODE_LLAMA_CPP_VERSION,
    llamaCppTag: tag,
    backend,
    builtAt: new Date().toISOString(),
    buildSeconds: Math.round((Date.now() - started) / 1000),
    cmakeArgs,
  };
  writeFileSync(path.join(staged, BUILD_INFO_FILE), JSON.stringify(info, null, 2));
  rmSync(target, { recursive: true, force: true });
  renameSync(staged, target);
  rmSync(work, { recursive: true, force: true });
  return info;
}

/**
 * Returns the managed build, building it first when needed. Concurrent callers (other processes too) wait on a
 * lock; whoever gets it second finds the finished build and returns at once.
 */
export async function ensureManagedBuild(options: BuildOptions): Promise<ManagedBuild> {
  const env = options.env ?? process.env;
  const log = options.log ?? (() => {});
  const backend = resolveBackend(options.backend, env);
  const existing = findManagedBuild(options.cacheDir, backend);
  if (existing) return existing;

  const builder = options.builder ?? buildInto;
  if (!options.builder) {
    const missing = missingBuildPrerequisites(env);
    if (missing.length > 0) throw new BuildError(prerequisiteMessage(missing));
  }

  const target = managedBuildDir(options.cacheDir, backend);
  mkdirSync(path.dirname(target), { recursive: true });
  const release = await lockfile.lock(path.dirname(target), {
    lockfilePath: `${target}.lock`,
    realpath: false,
    stale: 60_000,
    update: 15_000,
    retries: { retries: 100_000, factor: 1, minTimeout: 1000, maxTimeout: 1000 },
    onCompromised: (err) => log(`build lock lost: ${err.message}`),
  }).catch((err: Error) => {
    throw new BuildError(`cannot take the build lock ${target}.lock: ${err.message}`);
  });
  try {
    const done = findManagedBuild(options.cacheDir, backend);
    if (done) {
      log(`another process finished the llama.cpp build in ${done.dir}`);
      return done;
    }
    log(`no llama-server found; building one into ${target}`);
    const info = await builder(target, backend, options, log);
    log(`llama.cpp build finished in ${info.buildSeconds} s`);
    const built = findManagedBuild(options.cacheDir, backend);
    if (!built) throw new BuildError(`the build finished but ${target} lacks its tools`);
    return built;
  } finally {
    await release().catch(() => {});
  }
}
