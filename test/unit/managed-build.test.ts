import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  BUILD_INFO_FILE,
  BuildError,
  cpuHasAmx,
  ensureLlamaTools,
  ensureManagedBuild,
  findManagedBuild,
  locateLlamaTools,
  managedBuildDir,
  MANAGED_TOOLS,
  missingBuildPrerequisites,
  REQUIRED_CMAKE_ARGS,
  supportsRpc,
  type Backend,
  type BuildInfo,
} from '../../src/llamacpp/index.js';

/** Stands in for cmake: writes executable tool files after a delay, counting its runs. */
function fakeBuilder(counter: { runs: number }, delayMs: number) {
  return async (target: string, backend: Backend): Promise<BuildInfo> => {
    counter.runs++;
    await new Promise((r) => setTimeout(r, delayMs));
    mkdirSync(path.join(target, 'bin'), { recursive: true });
    for (const tool of MANAGED_TOOLS) writeFileSync(path.join(target, 'bin', tool), '#!/bin/sh\necho fake\n', { mode: 0o755 });
    const info: BuildInfo = { nodeLlamaCpp: 'test', llamaCppTag: 'test', backend, builtAt: new Date().toISOString(), buildSeconds: 0, cmakeArgs: [...REQUIRED_CMAKE_ARGS] };
    writeFileSync(path.join(target, BUILD_INFO_FILE), JSON.stringify(info));
    return info;
  };
}

describe('managed llama.cpp build', () => {
  it('builds once when several callers ask at once (lock), and reuses the build afterwards', async () => {
    const cacheDir = mkdtempSync(path.join(os.tmpdir(), 'lsp-build-'));
    const counter = { runs: 0 };
    const lines: string[] = [];
    const options = { cacheDir, backend: 'cpu' as const, builder: fakeBuilder(counter, 1500), log: (l: string) => lines.push(l) };
    const builds = await Promise.all([ensureManagedBuild(options), ensureManagedBuild(options), ensureManagedBuild(options)]);
    expect(counter.runs).toBe(1);
    for (const b of builds) expect(b.tools['llama-server']).toBe(path.join(managedBuildDir(cacheDir, 'cpu'), 'bin', 'llama-server'));
    expect(lines.filter((l) => l.includes('another process finished'))).toHaveLength(2);
    await ensureManagedBuild(options);
    expect(counter.runs).toBe(1);
  });

  it('names the missing tools and how to get them', async () => {
    const env = { PATH: '/nonexistent' };
    expect(missingBuildPrerequisites(env)).toEqual(expect.arrayContaining(['cmake', 'git', 'a C++ compiler (g++ or clang++)']));
    const cacheDir = mkdtempSync(path.join(os.tmpdir(), 'lsp-build-'));
    const attempt = ensureManagedBuild({ cacheDir, backend: 'cpu', env });
    await expect(attempt).rejects.toBeInstanceOf(BuildError);
    await expect(attempt).rejects.toThrow(/cmake.*not installed[\s\S]*apt-get install cmake build-essential git[\s\S]*LLAMA_SERVER/);
  });

  it('prefers the configured binary, then LLAMA_SERVER, then PATH, over the managed build', async () => {
    const root = mkdtempSync(path.join(os.tmpdir(), 'lsp-locate-'));
    const make = (dir: string) => {
      mkdirSync(dir, { recursive: true });
      const file = path.join(dir, 'llama-server');
      writeFileSync(file, '#!/bin/sh\n', { mode: 0o755 });
      return file;
    };
    const fromConfig = make(path.join(root, 'config'));
    const fromEnv = make(path.join(root, 'env'));
    const onPath = make(path.join(root, 'path'));
    const counter = { runs: 0 };
    const cacheDir = path.join(root, 'cache');
    await ensureManagedBuild({ cacheDir, backend: 'cpu', builder: fakeBuilder(counter, 0) });
    const base = { cacheDir, llamaServer: { backend: 'cpu' as const, autoBuild: false } };
    const env = { LLAMA_SERVER: fromEnv, PATH: path.dirname(onPath) };
    expect(await ensureLlamaTools({ ...base, llamaServer: { ...base.llamaServer, binary: fromConfig }, env })).toMatchObject({ server: fromConfig, source: 'config' });
    expect(await ensureLlamaTools({ ...base, env })).toMatchObject({ server: fromEnv, source: 'env' });
    expect(await ensureLlamaTools({ ...base, env: { PATH: path.dirname(onPath) } })).toMatchObject({ server: onPath, source: 'path' });
    const managed = await ensureLlamaTools({ ...base, env: { PATH: '/nonexistent' } });
    expect(managed).toMatchObject({ source: 'managed' });
    expect(managed.fitParams).toBe(path.join(managedBuildDir(cacheDir, 'cpu'), 'bin', 'llama-fit-params'));
    await expect(ensureLlamaTools({ ...base, llamaServer: { ...base.llamaServer, binary: '/no/such/llama-server' }, env })).rejects.toThrow(/llamaServer.binary "\/no\/such\/llama-server" is not an executable file/);
    await expect(ensureLlamaTools({ cacheDir: path.join(root, 'empty'), llamaServer: { backend: 'cpu', autoBuild: false }, env: { PATH: '/nonexistent' } })).rejects.toThrow(/autoBuild is off/);
    expect(counter.runs).toBe(1);
  });
});

describe('RPC in the managed build and beside a user llama-server', () => {
  it('builds ggml-rpc-server with -DGGML_RPC=ON, and takes a build without it for none (rebuilt in place)', async () => {
    expect(MANAGED_TOOLS).toContain('ggml-rpc-server');
    expect(REQUIRED_CMAKE_ARGS).toContain('-DGGML_RPC=ON');
    const cacheDir = mkdtempSync(path.join(os.tmpdir(), 'lsp-build-'));
    const counter = { runs: 0 };
    await ensureManagedBuild({ cacheDir, backend: 'cpu', builder: fakeBuilder(counter, 0) });
    const found = findManagedBuild(cacheDir, 'cpu');
    expect(found?.tools['ggml-rpc-server']).toBe(path.join(managedBuildDir(cacheDir, 'cpu'), 'bin', 'ggml-rpc-server'));
    // every tool there, but configured without RPC (a build from before): not reused
    const dir = managedBuildDir(cacheDir, 'cpu');
    writeFileSync(path.join(dir, BUILD_INFO_FILE), JSON.stringify({ ...found!.info, cmakeArgs: ['-DCMAKE_BUILD_TYPE=Release'] }));
    expect(findManagedBuild(cacheDir, 'cpu')).toBeUndefined();
    await ensureManagedBuild({ cacheDir, backend: 'cpu', builder: fakeBuilder(counter, 0) });
    expect(counter.runs).toBe(2);
    expect(findManagedBuild(cacheDir, 'cpu')?.info.cmakeArgs).toContain('-DGGML_RPC=ON');
  });

  it('finds rpc-server beside a user llama-server (either name), else on PATH, else in the managed build', async () => {
    const root = mkdtempSync(path.join(os.tmpdir(), 'lsp-locate-'));
    const tool = (dir: string, name: string, body = '#!/bin/sh\n') => {
      mkdirSync(dir, { recursive: true });
      writeFileSync(path.join(dir, name), body, { mode: 0o755 });
      return path.join(dir, name);
    };
    const cacheDir = path.join(root, 'cache');
    await ensureManagedBuild({ cacheDir, backend: 'cpu', builder: fakeBuilder({ runs: 0 }, 0) });
    const llamaServer = { backend: 'cpu' as const, autoBuild: false };
    const old = tool(path.join(root, 'old'), 'llama-server');
    const oldRpc = tool(path.join(root, 'old'), 'rpc-server');
    expect(locateLlamaTools({ cacheDir, llamaServer: { ...llamaServer, binary: old }, env: { PATH: '/nonexistent' } })?.rpcServer).toBe(oldRpc);
    const bare = tool(path.join(root, 'bare'), 'llama-server');
    const onPath = tool(path.join(root, 'bin'), 'ggml-rpc-server');
    expect(locateLlamaTools({ cacheDir, llamaServer: { ...llamaServer, binary: bare }, env: { PATH: path.dirname(onPath) } })?.rpcServer).toBe(onPath);
    const fromEnv = tool(path.join(root, 'env'), 'my-rpc');
    expect(locateLlamaTools({ cacheDir, llamaServer: { ...llamaServer, binary: bare }, env: { PATH: path.dirname(onPath), LLAMA_RPC_SERVER: fromEnv } })?.rpcServer).toBe(fromEnv);
    expect(locateLlamaTools({ cacheDir, llamaServer: { ...llamaServer, binary: bare }, env: { PATH: '/nonexistent' } })?.rpcServer).toBe(
      path.join(managedBuildDir(cacheDir, 'cpu'), 'bin', 'ggml-rpc-server'),
    );
  });

  it("asks a llama-server whether it takes --rpc (its --help lists it only when built with RPC)", async () => {
    const root = mkdtempSync(path.join(os.tmpdir(), 'lsp-rpc-help-'));
    const withRpc = path.join(root, 'with');
    const without = path.join(root, 'without');
    writeFileSync(withRpc, '#!/bin/sh\necho "--rpc SERVERS                           comma-separated list of RPC servers (host:port)"\n', { mode: 0o755 });
    writeFileSync(without, '#!/bin/sh\necho "--mlock    force system to keep model in RAM"\n', { mode: 0o755 });
    expect(await supportsRpc(withRpc)).toBe(true);
    expect(await supportsRpc(without)).toBe(false);
    expect(await supportsRpc(path.join(root, 'missing'))).toBe(false);
  });
});

describe('AMX detection', () => {
  it('reads the amx_int8 flag from /proc/cpuinfo text', () => {
    expect(cpuHasAmx('processor\t: 0\nflags\t\t: fpu vme avx512f amx_bf16 amx_tile amx_int8 avx512_vnni\n')).toBe(true);
    expect(cpuHasAmx('processor\t: 0\nflags\t\t: fpu vme avx2 avx512f\n')).toBe(false);
    expect(cpuHasAmx('')).toBe(false);
    expect(managedBuildDir('/c', 'cpu', true)).toMatch(/llama\.cpp\/[\d.]+-cpu-noamx$/);
    expect(managedBuildDir('/c', 'cuda', false)).toMatch(/llama\.cpp\/[\d.]+-cuda$/);
  });
});
