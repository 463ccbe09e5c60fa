/**
 * `llama-smart-proxy status [--watch]`: a running proxy's GPUs, instances and recent requests (GET /status and
 * GET /requests); --watch redraws every 2 s until Ctrl-C.
 */
import type { RequestRecord } from '../requests/index.js';
import { statusTables, table, type StatusDoc } from './gpus.js';
import { proxyClient, type ProxyFlags } from './proxy-client.js';

export interface StatusFlags extends ProxyFlags {
  watch?: boolean;
  requests?: number;
  json?: boolean;
}

const num = (v: number | null, digits = 0) => (v === null ? '-' : v.toFixed(digits));

/** The recent requests as a table (pure). */
export function requestsTable(records: readonly RequestRecord[]): string {
  if (records.length === 0) return '(no request yet)';
  return table([
    ['TIME', 'MODEL', 'ENDPOINT', 'KEY', 'WHERE', 'STATUS', 'IN', 'OUT', 'TTFT ms', 'TOK/S', 'MS'],
    ...records.map((r) => [
      new Date(r.time).toLocaleTimeString(),
      r.model ?? '-',
      r.endpoint,
      r.key ?? '-',
      r.instance ? `${r.instance}${r.placement ? ` ${r.placement}` : ''}` : '-',
      r.aborted ? `${r.status} aborted` : String(r.status),
      num(r.prompt_tokens),
      num(r.completion_tokens),
      num(r.ttft_ms),
      num(r.generation_tps, 1),
      String(r.duration_ms),
    ]),
  ]);
}

export async function statusCommand(flags: StatusFlags): Promise<void> {
  const client = proxyClient(flags);
  const limit = flags.requests ?? 10;
  const draw = async () => {
    const [status, requests] = await Promise.all([client.get<StatusDoc>('/status'), client.get<{ requests: RequestRecord[] }>(`/requests?limit=${limit}`)]);
    if (flags.json) return `${JSON.stringify({ ...status, requests: requests.requests }, null, 2)}\n`;
    return `proxy at ${client.url} · ${new Date().toLocaleTimeString()}\n${statusTables(status)}\n\nrecent requests:\n${requestsTable(requests.requests)}\n`;
  };
  if (!flags.watch) {
    process.stdout.write(await draw());
    return;
  }
  for (;;) {
    let text: string;
    try {
      text = await draw();
    } catch (err) {
      text = `${(err as Error).message}\n`;
    }
    process.stdout.write(`\x1b[H\x1b[2J${text}`);
    await new Promise((r) => setTimeout(r, 2000));
  }
}
