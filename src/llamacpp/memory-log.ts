/**
 * The memory a running llama-server really uses, read from its log at `-lv 4`:
 *
 *   load_tensors:        CUDA0 model buffer size =  4403.50 MiB
 *   llama_kv_cache:      CUDA0 KV buffer size =  1024.00 MiB        (twice for SWA models: summed)
 *   llama_memory_recurrent:  CUDA0 RS buffer size = ...
 *   llama_context:   CUDA_Host  output buffer size =     0.49 MiB
 *   sched_reserve:       CUDA0 compute buffer size =   258.50 MiB   (repeated on re-reserve: last wins)
 *   common_memory_breakdown_print: |   - CUDA0 (RTX 4090) | 24080 = 1234 + (22000 = 20000 + 1000 + 1000) + 846 |
 *   common_memory_breakdown_print: |   - Host             |  5463 = 4685 + 512 + 266 |
 *
 * With `--rpc`, a device of an rpc-server logs its buffers as RPC<i>[host:port] (i: the device's index
 * within that server), while the "using device" lines and the breakdown table name it RPC<n> (counted
 * over every server, in --rpc order) with the endpoint as its description:
 *
 *   load_tensors: RPC0[127.0.0.1:51162] model buffer size =     0.13 MiB
 *   llama_prepare_model_devices: using device RPC1 (127.0.0.1:51162) (unknown id) - 24105 MiB free
 *   common_memory_breakdown_print: |   - RPC1 (127.0.0.1:51162) | 24105 = 24105 + (   0 =     0 +       0 +       0) +           0 |
 *
 * Buffer names map to devices: CPU, CPU_Mapped, CPU_REPACK and <dev>_Host are host memory;
 * anything else (CUDA0, ROCm1, Vulkan0, MTL0, RPC0[host:port], ...) is that device. llama-server prints the
 * breakdown table only when it exits; the buffer lines come during load.
 */

const MiB = 1024 * 1024;

export interface BufferSizes {
  /** Weights. */
  modelBytes: number;
  /** KV cache and recurrent state. */
  contextBytes: number;
  computeBytes: number;
  /** Logits/embeddings output buffer (host memory in practice). */
  outputBytes: number;
}

/** One row of llama.cpp's memory breakdown table (MiB, as printed). */
export interface BreakdownRow {
  readonly name: string;
  /** Device description in parentheses, for device rows. */
  readonly description?: string;
  readonly totalMiB?: number;
  readonly freeMiB?: number;
  readonly selfMiB: number;
  readonly modelMiB: number;
  readonly contextMiB: number;
  readonly computeMiB: number;
  /** total - free - self: the CUDA context, pools and other processes' memory. */
  readonly unaccountedMiB?: number;
}

export interface MemoryFootprint {
  /** Host memory by buffer kind, summed over host buffer types. */
  readonly host: BufferSizes;
  /** Per device name (e.g. "CUDA0"). */
  readonly devices: ReadonlyMap<string, BufferSizes>;
  /** Raw bytes per buffer name and kind, for diagnostics. */
  readonly buffers: ReadonlyMap<string, BufferSizes>;
  /** The breakdown table, when it was printed. */
  readonly breakdown: readonly BreakdownRow[];
  /** Free memory per device reported at load ("using device CUDA0 (...) - N MiB free"). */
  readonly freeAtLoadMiB: ReadonlyMap<string, number>;
}

/** Whether a buffer name is host memory. */
export function isHostBuffer(name: string): boolean {
  return name.startsWith('CPU') || name.endsWith('_Host') || name === 'Host';
}

/** The device a non-host buffer belongs to: the name without a _Split / _Private suffix. */
export function bufferDevice(name: string): string {
  return name.replace(/_(Split|Private|Mapped)$/, '');
}

/** An RPC device's buffer name, RPC<i>[host:port]: the endpoint and the device's index on it; else undefined. */
export function rpcBuffer(name: string): { endpoint: string; device: number } | undefined {
  const m = /^RPC(\d+)\[(.+)\]$/.exec(name);
  return m ? { device: Number(m[1]), endpoint: m[2]! } : undefined;
}

const BUFFER_LINE = /(\S+)\s+(model|KV|RS|compute|output) buffer size\s*=\s*([\d.]+) MiB/;
const USING_DEVICE = /using device (\S+) \(.*\) - (\d+) MiB free/;
const TABLE_ROW = /memory_breakdown_print: \|\s+- (.+?)\s*\|\s*(.*?)\s*\|\s*$/;

const emptySizes = (): BufferSizes => ({ modelBytes: 0, contextBytes: 0, computeBytes: 0, outputBytes: 0 });

function parseRow(label: string, body: string): BreakdownRow | undefined {
  const m = /^(\S+)(?:\s+\((.*)\))?$/.exec(label.trim());
  if (!m) return undefined;
  const nums = body.match(/-?\d+/g)?.map(Number) ?? [];
  // device: total = free + (self = model + context + compute) + unaccounted
  if (nums.length === 7) {
    const [totalMiB, freeMiB, selfMiB, modelMiB, contextMiB, computeMiB, unaccountedMiB] = nums as [number, number, number, number, number, number, number];
    return { name: m[1]!, ...(m[2] ? { description: m[2] } : {}), totalMiB, freeMiB, selfMiB, modelMiB, contextMiB, computeMiB, unaccountedMiB };
  }
  // host and other buffer types: self = model + context + compute
  if (nums.length === 4) {
    const [selfMiB, modelMiB, contextMiB, computeMiB] = nums as [number, number, number, number];
    return { name: m[1]!, selfMiB, modelMiB, contextMiB, computeMiB };
  }
  return undefined;
}

/** Collects memory lines from a llama-server (or llama-cli) log, line by line. */
export class MemoryLogParser {
  private readonly buffers = new Map<string, BufferSizes>();
  /** compute buffers are re-reserved; the latest value per buffer wins */
  private readonly compute = new Map<string, number>();
  private readonly output = new Map<string, number>();
  private readonly rows: BreakdownRow[] = [];
  private readonly free = new Map<string, number>();

  /** Feeds one log line (any prefix before the function name is ignored). */
  feed(line: string): void {
    const b = BUFFER_LINE.exec(line);
    if (b) {
      const name = b[1]!;
      const kind = b[2]!;
      const bytes = Math.round(Number(b[3]) * MiB);
      const sizes = this.buffers.get(name) ?? emptySizes();
      this.buffers.set(name, sizes);
      if (kind === 'model') sizes.modelBytes += bytes;
      else if (kind === 'KV' || kind === 'RS') sizes.contextBytes += bytes;
      else if (kind === 'compute') this.compute.set(name, bytes);
      else this.output.set(name, bytes);
      return;
    }
    const d = USING_DEVICE.exec(line);
    if (d) {
      this.free.set(d[1]!, Number(d[2]));
      return;
    }
    const r = TABLE_ROW.exec(line);
    if (r) {
      const row = parseRow(r[1]!, r[2]!);
      if (row) {
        // a new table (another print) replaces the previous one
        if (this.rows.some((x) => x.name === row.name)) this.rows.length = 0;
        this.rows.push(row);
      }
    }
  }

  footprint(): MemoryFootprint {
    const buffers = new Map<string, BufferSizes>();
    for (const [name, s] of this.buffers) buffers.set(name, { ...s });
    for (const [name, bytes] of this.compute) {
      const s = buffers.get(name) ?? emptySizes();
      s.computeBytes = bytes;
      buffers.set(name, s);
    }
    for (const [name, bytes] of this.output) {
      const s = buffers.get(name) ?? emptySizes();
      s.outputBytes = bytes;
      buffers.set(name, s);
    }
    const host = emptySizes();
    const devices = new Map<string, BufferSizes>();
    for (const [name, s] of buffers) {
      const target = isHostBuffer(name) ? host : devices.get(bufferDevice(name)) ?? emptySizes();
      if (!isHostBuffer(name)) devices.set(bufferDevice(name), target);
      target.modelBytes += s.modelBytes;
      target.contextBytes += s.contextBytes;
      target.computeBytes += s.computeBytes;
      target.outputBytes += s.outputBytes;
    }
    return { host, devices, buffers, breakdown: [...this.rows], freeAtLoadMiB: new Map(this.free) };
  }
}

/** Parses a whole log. */
export function parseMemoryLog(text: string): MemoryFootprint {
  const p = new MemoryLogParser();
  for (const line of text.split(/\r?\n/)) p.feed(line);
  return p.footprint();
}
