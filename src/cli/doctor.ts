import { loadConfig } from '../config/index.js';
import { locateLlamaTools, managedBuildDir, missingBuildPrerequisites, NODE_LLAMA_CPP_VERSION, resolveBackend, supportsRpc } from '../llamacpp/index.js';
import { run, which } from '../util/exec.js';
import { PACKAGE_VERSION } from '../util/version.js';

export interface DoctorFlags {
  config?: string;
  json?: boolean;
}

async function firstLines(command: string, args: string[], n: number): Promise<string> {
  try {
    const r = await run(command, args, { timeoutMs: 20_000 });
    return (r.stdout + r.stderr).trim().split('\n').slice(0, n).join('\n');
  } catch (err) {
    return `(cannot run: ${(err as Error).message})`;
  }
}

/** Prints what was found: llama-server and its version and devices, GPUs, cache, build prerequisites. */
export async function doctorCommand(flags: DoctorFlags): Promise<void> {
  const config = loadConfig(flags.config ? { file: flags.config } : {});
  const tools = (() => {
    try {
      return locateLlamaTools({ cacheDir: config.cacheDir, llamaServer: config.llamaServer });
    } catch (err) {
      return { error: (err as Error).message };
    }
  })();
  const backend = resolveBackend(config.llamaServer.backend);
  const report: Record<string, unknown> = {
    version: PACKAGE_VERSION,
    node: process.version,
    config: config.source ?? '(built-in defaults)',
    cacheDir: config.cacheDir,
    managedBuild: { nodeLlamaCpp: NODE_LLAMA_CPP_VERSION, backend, dir: managedBuildDir(config.cacheDir, backend) },
    buildPrerequisitesMissing: missingBuildPrerequisites(),
  };
  if (tools && 'server' in tools) {
    report.llamaServer = {
      path: tools.server,
      source: tools.source,
      version: (await firstLines(tools.server, ['--version'], 1)).replace(/^version:\s*/, ''),
      devices: await firstLines(tools.server, ['--list-devices'], 20),
      fitParams: tools.fitParams ?? null,
      // What a cluster node needs to lend devices over llama.cpp RPC (cluster.rpcHost) and to head such a model.
      rpcServer: tools.rpcServer ?? 'not found (lends no devices over RPC)',
      rpc: (await supportsRpc(tools.server)) ? 'llama-server has --rpc' : 'llama-server lacks --rpc (built without GGML_RPC)',
    };
  } else {
    report.llamaServer = tools ? tools : 'not found (run `llama-smart-proxy setup`, or set llamaServer.binary / LLAMA_SERVER)';
  }
  const smi = which('nvidia-smi');
  report.gpus = smi ? await firstLines(smi, ['-L'], 16) : 'none seen (no nvidia-smi on PATH); instances run on the CPU';

  if (flags.json) {
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    return;
  }
  for (const [key, value] of Object.entries(report)) {
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
      process.stdout.write(`${key}:\n`);
      for (const [k, v] of Object.entries(value)) process.stdout.write(`  ${k}: ${String(v).replace(/\n/g, '\n    ')}\n`);
    } else {
      process.stdout.write(`${key}: ${Array.isArray(value) ? value.join(', ') || '(none)' : String(value)}\n`);
    }
  }
}
