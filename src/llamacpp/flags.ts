/** The llama-server command line for one instance. Pure. */
export interface ServerFlagsInput {
  file: string;
  /** Name the instance reports as its model (the id the client used). */
  alias: string;
  host: string;
  port: number;
  ctx: number;
  parallel: number;
  /** From `llamaServer.extraArgs`, then the model's own `args`; later ones win in llama-server. */
  extraArgs: readonly string[];
  /** -lv (4 logs the memory buffers the proxy reads back). */
  logVerbosity?: number;
}

export function serverFlags(input: ServerFlagsInput): string[] {
  return [
    '-m', input.file,
    '--host', input.host,
    '--port', String(input.port),
    '-a', input.alias,
    '-c', String(input.ctx),
    '-np', String(input.parallel),
    // The proxy decides the placement; llama-server must not change -ngl/-c behind its back.
    '--fit', 'off',
    '--metrics',
    '--no-webui',
    '--log-colors', 'off',
    ...(input.logVerbosity !== undefined ? ['-lv', String(input.logVerbosity)] : []),
    ...input.extraArgs,
  ];
}

/** llama-server's own --cache-ram default, MiB. */
export const LLAMA_SERVER_CACHE_RAM_MIB = 8192;

/**
 * The prompt cache each instance gets (--cache-ram, MiB). llama-server keeps up to 8 GiB of earlier prompts' KV
 * state in host RAM by default, per instance: several instances on a small machine could take all of its RAM.
 * `auto` shares a quarter of the RAM among the pool's instances, never more than llama-server's default. Pure.
 */
export function cacheRamMiB(setting: 'auto' | number, totalMemBytes: number, poolSize: number): number {
  if (setting !== 'auto') return setting;
  const share = Math.floor(totalMemBytes / 4 / Math.max(1, poolSize) / (1024 * 1024));
  return Math.min(LLAMA_SERVER_CACHE_RAM_MIB, share);
}

/** A placement as llama-server is told it. GPUs by UUID, in the order they are to be numbered. */
export interface PlacementFlagsInput {
  gpuUuids: readonly string[];
  ngl: number;
  splitMode: 'none' | 'layer';
  tensorSplit?: readonly number[];
}

export function placementFlags(p: PlacementFlagsInput): string[] {
  if (p.gpuUuids.length === 0) return ['-ngl', '0'];
  return [
    '-ngl', String(p.ngl),
    '--split-mode', p.splitMode,
    ...(p.gpuUuids.length > 1 && p.tensorSplit ? ['--tensor-split', p.tensorSplit.join(',')] : []),
    // The visible devices are renumbered from 0 in the order given: the first is the main one.
    '--main-gpu', '0',
  ];
}

/**
 * The GPUs an instance may see, by UUID (stable across reboots and driver renumbering). A CPU placement hides
 * every GPU, so no CUDA context or buffer lands on one.
 */
export function placementEnv(p: PlacementFlagsInput): Record<string, string> {
  return { CUDA_DEVICE_ORDER: 'PCI_BUS_ID', CUDA_VISIBLE_DEVICES: p.gpuUuids.join(',') };
}
