#!/usr/bin/env node
/** The `llama-smart-proxy` command. */
import { Command, InvalidArgumentError } from 'commander';
import { ConfigError } from '../config/index.js';
import { BuildError } from '../llamacpp/index.js';
import { PACKAGE_VERSION } from '../util/version.js';
import { doctorCommand } from './doctor.js';
import { gpusCommand } from './gpus.js';
import { importLlamaSwapCommand } from './import-llama-swap.js';
import { estimateCommand } from './estimate.js';
import { makeModelCommand } from './make-model.js';
import { modelsCommand } from './models.js';
import { pullCommand } from './pull.js';
import { planCommand } from './plan.js';
import { statusCommand } from './status.js';
import { serveCommand } from './serve.js';
import { setupCommand } from './setup.js';

function intArg(name: string, min = 0, max = Number.MAX_SAFE_INTEGER) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`${name} must be an integer from ${min} to ${max}`);
    return n;
  };
}

const program = new Command()
  .name('llama-smart-proxy')
  .description('One OpenAI-compatible endpoint for many GGUF models, each run by llama.cpp llama-server on demand.')
  .version(PACKAGE_VERSION);

program
  .command('serve')
  .description('start the proxy (with no config file: the built-in demo model)')
  .option('-c, --config <file>', 'configuration file (YAML or JSON); default ./llama-smart-proxy.yaml if present')
  .option('--host <addr>', 'listen address (overrides the config and LLAMA_SMART_PROXY_HOST)')
  .option('--port <n>', 'listen port (overrides the config and LLAMA_SMART_PROXY_PORT)', intArg('port', 0, 65535))
  .option('--watch', 'reload the config file when it changes (as SIGHUP and POST /admin/reload do)')
  .action(serveCommand);

program
  .command('setup')
  .description('find llama-server, or build the managed one (cmake) into the cache')
  .option('-c, --config <file>', 'configuration file')
  .option('--force', 'rebuild the managed llama-server even if one is found')
  .option('--backend <auto|cpu|cuda>', 'backend of the managed build')
  .action(setupCommand);

program
  .command('doctor')
  .description('print the llama-server found, its version and devices, GPUs, cache folder')
  .option('-c, --config <file>', 'configuration file')
  .option('--json', 'machine-readable output')
  .action(doctorCommand);

program
  .command('gpus')
  .description('print the GPUs and what runs where (from a running proxy, else read from the GPU source)')
  .option('-c, --config <file>', 'configuration file')
  .option('--url <url>', 'the proxy to ask (default: the configured listen address)')
  .option('--json', 'machine-readable output')
  .action(gpusCommand);

program
  .command('make-model')
  .description('write a generated GGUF: a tiny runnable model, or a sparse replica of a real architecture')
  .argument('<out>', 'file to write')
  .option('--seed <n>', 'seed of the tiny model\'s weights', intArg('seed'), 1)
  .option('--layers <n>', 'tiny model: layers', intArg('layers', 1, 256))
  .option('--embd <n>', 'tiny model: embedding size (multiple of 32)', intArg('embd', 32, 65536))
  .option('--preset <id>', 'write a sparse replica of this architecture instead (see --list)')
  .option('--quant <type>', 'replica quantization: F16, Q8_0, Q6_K, Q5_K_M, Q4_K_M, Q3_K_M or Q2_K', 'Q4_K_M')
  .option('--list', 'list the replica presets and exit')
  .action(makeModelCommand);

program
  .command('estimate')
  .description('estimate the memory a model needs per device (weights, KV cache, compute, overhead) under llama-server settings')
  .argument('<model>', 'GGUF file (for a split model, any of its parts)')
  .option('--ctx <n>', 'context size, like -c (default: the model\'s training context)', intArg('ctx'))
  .option('--parallel <n>', 'slots, like -np (default auto: 4 slots sharing one KV cache)')
  .option('--kv-unified', 'one KV cache shared by all slots, like -kvu')
  .option('--ngl <n>', 'layers on the GPUs, like -ngl (default: all; the output layer counts as one)', intArg('ngl', -1))
  .option('--ubatch <n>', 'physical batch, like -ub (default 512)', intArg('ubatch', 1))
  .option('--batch <n>', 'logical batch, like -b (default 2048)', intArg('batch', 1))
  .option('--cache-type-k <type>', 'K cache type, like -ctk (default f16)')
  .option('--cache-type-v <type>', 'V cache type, like -ctv (default f16)')
  .option('--flash-attn <mode>', 'on, off or auto, like -fa (default auto)')
  .option('--swa-full', 'full-size cache for sliding-window layers')
  .option('--no-kv-offload', 'keep the KV cache (and attention) on the CPU')
  .option('--n-cpu-moe <n>', 'keep the expert weights of the first N layers on the CPU', intArg('n-cpu-moe'))
  .option('--override-tensor <pattern=CPU>', 'keep matching tensors on the CPU, like -ot (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
  .option('--tensor-split <list>', 'split over the GPUs, like -ts (default: by the sizes in --gpus)')
  .option('--no-op-offload', 'do not run CPU-weight ops on the GPU (--no-op-offload)')
  .option('--outputs <slots|batch>', 'logit rows per batch: slots (llama-server, default) or batch (llama-fit-params and other tools)')
  .option('--gpus <spec>', 'none (CPU only, default), or hypothetical GPUs: 24G,24G or name:24576 (MiB)')
  .option('--json', 'machine-readable output')
  .option('--verify', 'also run llama-fit-params with the same settings and compare')
  .option('--fit-params <path>', 'llama-fit-params to use for --verify (default: found like llama-server)')
  .option('--config <file>', 'configuration file (to find llama-fit-params)')
  .action(estimateCommand);

program
  .command('pull')
  .description('download a Hugging Face model into the cache, or an Ollama model into the Ollama store (progress bar on a terminal); prints the model file\'s path')
  .argument('<model>', 'owner/repo[:variant] (default variant Q4_K_M, else the closest), a configured alias with "hf", or an Ollama name (llama3.2:1b, registry.ollama.ai/ns/model:tag)')
  .option('-c, --config <file>', 'configuration file')
  .option('-v, --verbose', 'print what the hub does (resolution, resumes, retries)')
  .action((model: string, flags: { config?: string; verbose?: boolean }) => pullCommand(model, flags));

program
  .command('models')
  .description('list the models on disk (config, models folder, Hugging Face caches, Ollama store, LM Studio): source, size, estimate for this machine')
  .option('-c, --config <file>', 'configuration file')
  .option('--all', 'also list files that are not GGUF')
  .option('--json', 'machine-readable output')
  .action((flags: { config?: string; json?: boolean; all?: boolean }) => modelsCommand(flags));

program
  .command('import')
  .description('write a configuration of ours from another tool\'s')
  .command('llama-swap')
  .description('convert a llama-swap config.yaml: models, macros, ttl, aliases, env; what has no equivalent is listed on stderr and in comments')
  .argument('<file>', 'the llama-swap configuration')
  .option('-o, --output <file>', 'write here (default: stdout)')
  .option('--force', 'overwrite the output file when it exists')
  .action((file: string, flags: { output?: string; force?: boolean }) => importLlamaSwapCommand(file, flags));

program
  .command('status')
  .description("a running proxy's GPUs, instances and recent requests")
  .option('-c, --config <file>', 'configuration file (for the proxy\'s address and key)')
  .option('--url <url>', 'the proxy to ask (default: the configured listen address)')
  .option('-w, --watch', 'redraw every 2 s until Ctrl-C')
  .option('--requests <n>', 'recent requests shown', intArg('requests', 1, 1000), 10)
  .option('--json', 'machine-readable output')
  .action(statusCommand);

program
  .command('plan')
  .description('where a running proxy would place a model now and what it would evict, without loading it')
  .argument('<model>', 'an alias, a .gguf file, or a Hugging Face owner/repo[:variant]')
  .option('--ctx <n>', 'context size (default: the model\'s configured one)', intArg('ctx', 1))
  .option('-c, --config <file>', 'configuration file (for the proxy\'s address and key)')
  .option('--url <url>', 'the proxy to ask (default: the configured listen address)')
  .option('--json', 'machine-readable output')
  .action(planCommand);

async function main(): Promise<void> {
  try {
    await program.parseAsync(process.argv);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`error: ${err.message}\n`);
      process.exit(2);
    }
    if (err instanceof BuildError) {
      process.stderr.write(`error: ${err.message}\n`);
      process.exit(3);
    }
    const e = err as NodeJS.ErrnoException;
    process.stderr.write(`error: ${e.code === 'EADDRINUSE' ? `address in use: ${e.message}` : e.message}\n`);
    process.exit(1);
  }
}

void main();
