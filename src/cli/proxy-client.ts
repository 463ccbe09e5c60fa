/** A command's calls to a running proxy: its address and key from the config (or --url), a timeout on each call. */
import { loadConfig } from '../config/index.js';
import { proxyKey, proxyUrl } from './gpus.js';

export interface ProxyFlags {
  config?: string;
  url?: string;
}

export interface ProxyClient {
  url: string;
  get<T>(path: string): Promise<T>;
}

const TIMEOUT_MS = 10_000;

export function proxyClient(flags: ProxyFlags): ProxyClient {
  const config = loadConfig(flags.config ? { file: flags.config } : {});
  const url = (flags.url ?? proxyUrl(config)).replace(/\/+$/, '');
  const key = proxyKey(config);
  return {
    url,
    async get<T>(path: string): Promise<T> {
      let res: Response;
      try {
        res = await fetch(`${url}${path}`, { signal: AbortSignal.timeout(TIMEOUT_MS), ...(key ? { headers: { authorization: `Bearer ${key}` } } : {}) });
      } catch (err) {
        throw new Error(`no proxy answers at ${url} (${(err as Error).message}); start one with \`llama-smart-proxy serve\` or give --url`);
      }
      const text = await res.text();
      if (!res.ok) {
        let message = text.slice(0, 500);
        try {
          const e = (JSON.parse(text) as { error?: { message?: string } }).error;
          if (e?.message) message = e.message;
        } catch {
          // not JSON
        }
        throw new Error(`${url}${path.split('?')[0]} answered ${res.status}: ${message}${res.status === 401 ? ' (set LLAMA_SMART_PROXY_API_KEY)' : ''}`);
      }
      return JSON.parse(text) as T;
    },
  };
}
