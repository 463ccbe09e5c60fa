/** An instance's own view of its load: llama-server's /metrics (Prometheus text) and /slots. */
import { request } from 'undici';

export interface InstanceLoad {
  promptTokensPerSecond: number | null;
  predictedTokensPerSecond: number | null;
  requestsProcessing: number | null;
  requestsDeferred: number | null;
  slotsTotal: number | null;
  slotsBusy: number | null;
  /** Why a part could not be read. */
  error: string | null;
}

/** llamacpp:<name> <value> lines of llama-server's /metrics (pure). */
export function parseLlamaMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^llamacpp:([A-Za-z_]+)(?:\{[^}]*\})?\s+(\S+)/.exec(line);
    if (m) out.set(m[1]!, Number(m[2]));
  }
  return out;
}

async function getText(url: string, timeoutMs: number, headers: Record<string, string>): Promise<string> {
  const res = await request(url, { headers, headersTimeout: timeoutMs, bodyTimeout: timeoutMs, signal: AbortSignal.timeout(timeoutMs) });
  const body = await res.body.text();
  if (res.statusCode !== 200) throw new Error(`${url} answered ${res.statusCode}`);
  return body;
}

/** `headers`: the instance's API key (Instance.authHeaders). */
export async function readInstanceLoad(baseUrl: string, headers: Record<string, string> = {}, timeoutMs = 1000): Promise<InstanceLoad> {
  const load: InstanceLoad = {
    promptTokensPerSecond: null,
    predictedTokensPerSecond: null,
    requestsProcessing: null,
    requestsDeferred: null,
    slotsTotal: null,
    slotsBusy: null,
    error: null,
  };
  const [metrics, slots] = await Promise.allSettled([getText(`${baseUrl}/metrics`, timeoutMs, headers), getText(`${baseUrl}/slots`, timeoutMs, headers)]);
  const errors: string[] = [];
  if (metrics.status === 'fulfilled') {
    const m = parseLlamaMetrics(metrics.value);
    const finite = (name: string) => (Number.isFinite(m.get(name)) ? m.get(name)! : null);
    load.promptTokensPerSecond = finite('prompt_tokens_seconds');
    load.predictedTokensPerSecond = finite('predicted_tokens_seconds');
    load.requestsProcessing = finite('requests_processing');
    load.requestsDeferred = finite('requests_deferred');
  } else {
    errors.push(`metrics: ${(metrics.reason as Error).message}`);
  }
  if (slots.status === 'fulfilled') {
    try {
      const list = JSON.parse(slots.value) as { is_processing?: boolean }[];
      load.slotsTotal = list.length;
      load.slotsBusy = list.filter((s) => s.is_processing).length;
    } catch (err) {
      errors.push(`slots: ${(err as Error).message}`);
    }
  } else {
    errors.push(`slots: ${(slots.reason as Error).message}`);
  }
  load.error = errors.length > 0 ? errors.join('; ') : null;
  return load;
}
