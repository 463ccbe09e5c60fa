import { loadConfig } from '../config/index.js';
import { openGpuSource, type GpuDevice } from '../gpu/index.js';

export interface GpusFlags {
  config?: string;
  url?: string;
  json?: boolean;
}

const MIB = 1024 * 1024;

export interface StatusDoc {
  gpu_source: string;
  gpus: { id: number; name: string; total_mib: number; free_mib: number; utilization_percent: number | null; instances: string[] }[];
  instances: {
    id: string;
    model: string;
    state: string;
    pid: number | null;
    placement: { gpu_ids: number[]; n_gpu_layers: number; split_mode: string } | null;
    estimate_mib: { gpus: Record<string, number>; host: number } | null;
    footprint_mib: { gpus: Record<string, number> } | null;
    load: { predictedTokensPerSecond: number | null; slotsBusy: number | null; slotsTotal: number | null } | null;
  }[];
  /** In a cluster: every node as this one last heard of it. */
  cluster?: {
    node: string;
    nodes: { name: string; url: string; local: boolean; reachable: boolean; gpus: { index: number; name: string; totalMiB: number; freeMiB: number }[]; instances: { id: string; model: string; state: string; gpus: number[] }[] }[];
  };
}

/** One row per GPU of every node (a node without GPUs: one row for its CPU). */
function clusterTable(c: NonNullable<StatusDoc['cluster']>): string {
  const rows = [['NODE', 'UP', 'GPU', 'NAME', 'TOTAL MiB', 'FREE MiB', 'INSTANCES']];
  for (const n of c.nodes) {
    const name = n.local ? `${n.name} (this)` : n.name;
    const up = n.reachable ? 'yes' : 'no';
    const on = (gpu: number | undefined) => n.instances.filter((i) => (gpu === undefined ? i.gpus.length === 0 : i.gpus.includes(gpu))).map((i) => `${i.model}(${i.state})`).join(' ') || '-';
    if (n.gpus.length === 0) rows.push([name, up, '-', 'cpu', '-', '-', on(undefined)]);
    for (const g of n.gpus) rows.push([name, up, String(g.index), g.name, String(g.totalMiB), String(g.freeMiB), on(g.index)]);
  }
  return table(rows);
}

export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  return rows.map((r) => r.map((cell, c) => cell.padEnd(widths[c]!)).join('  ').trimEnd()).join('\n');
}

function devicesTable(devices: GpuDevice[]): string {
  return table([
    ['GPU', 'NAME', 'TOTAL MiB', 'FREE MiB', 'UTIL %', 'TEMP C', 'CC', 'PROCESSES (pid:MiB)'],
    ...devices.map((d) => [
      String(d.index),
      d.name,
      String(Math.round(d.totalBytes / MIB)),
      String(Math.round(d.freeBytes / MIB)),
      d.utilizationGpu === null ? '-' : String(d.utilizationGpu),
      d.temperatureC === null ? '-' : String(d.temperatureC),
      d.computeCapability ?? '-',
      d.processes.map((p) => `${p.pid}:${Math.round(p.usedBytes / MIB)}`).join(' ') || '-',
    ]),
  ]);
}

export function statusTables(s: StatusDoc): string {
  const gpus = table([
    ['GPU', 'NAME', 'TOTAL MiB', 'FREE MiB', 'UTIL %', 'INSTANCES'],
    ...s.gpus.map((g) => [String(g.id), g.name, String(g.total_mib), String(g.free_mib), g.utilization_percent === null ? '-' : String(g.utilization_percent), g.instances.join(' ') || '-']),
  ]);
  const sum = (m: Record<string, number> | undefined) => (m ? Object.values(m).reduce((a, b) => a + b, 0).toFixed(0) : '-');
  const instances = table([
    ['INSTANCE', 'MODEL', 'STATE', 'PID', 'GPUS', 'NGL', 'EST MiB', 'ACTUAL MiB', 'TOK/S', 'SLOTS'],
    ...s.instances.map((i) => [
      i.id,
      i.model,
      i.state,
      i.pid === null ? '-' : String(i.pid),
      i.placement ? i.placement.gpu_ids.join(',') || 'cpu' : '-',
      i.placement ? String(i.placement.n_gpu_layers) : '-',
      sum(i.estimate_mib?.gpus),
      sum(i.footprint_mib?.gpus),
      i.load?.predictedTokensPerSecond?.toFixed(1) ?? '-',
      i.load && i.load.slotsTotal !== null ? `${i.load.slotsBusy}/${i.load.slotsTotal}` : '-',
    ]),
  ]);
  const cluster = s.cluster ? `\n\ncluster (node ${s.cluster.node}):\n${clusterTable(s.cluster)}` : '';
  return `GPU source: ${s.gpu_source}\n\n${s.gpus.length ? gpus : '(no GPU)'}\n\n${s.instances.length ? instances : '(no instance running)'}${cluster}`;
}

/** The configured listen address of the proxy. */
export function proxyUrl(config: { server: { host: string; port: number } }): string {
  const host = config.server.host === '0.0.0.0' ? '127.0.0.1' : config.server.host === '::' ? '::1' : config.server.host;
  return `http://${host.includes(':') ? `[${host}]` : host}:${config.server.port}`;
}

/** The key a command sends the proxy: $LLAMA_SMART_PROXY_API_KEY, else the config's first plain key. */
export function proxyKey(config: { server: { apiKeys: string[] } }): string | undefined {
  return process.env.LLAMA_SMART_PROXY_API_KEY ?? config.server.apiKeys[0];
}

/** The devices and what runs where: from a running proxy's /status, else read directly from the GPU source. */
export async function gpusCommand(flags: GpusFlags): Promise<void> {
  const config = loadConfig(flags.config ? { file: flags.config } : {});
  const url = flags.url ?? proxyUrl(config);
  try {
    const key = proxyKey(config);
    const res = await fetch(`${url}/status`, { signal: AbortSignal.timeout(3000), ...(key ? { headers: { authorization: `Bearer ${key}` } } : {}) });
    if (res.ok) {
      const status = (await res.json()) as StatusDoc;
      process.stdout.write(flags.json ? `${JSON.stringify(status, null, 2)}\n` : `proxy at ${url}\n${statusTables(status)}\n`);
      return;
    }
  } catch {
    if (flags.url) throw new Error(`no proxy answers at ${flags.url}`);
  }
  const source = await openGpuSource(config.gpu);
  try {
    const devices = await source.read();
    if (flags.json) {
      process.stdout.write(`${JSON.stringify({ source: source.kind, detail: source.description, devices }, null, 2)}\n`);
      return;
    }
    process.stdout.write(`no proxy running at ${url}; GPU source: ${source.description}\n`);
    if (devices.length > 0) process.stdout.write(`${devicesTable(devices)}\n`);
  } finally {
    source.close();
  }
}
