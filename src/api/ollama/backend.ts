/**
 * An Ollama server as an upstream (`backends.ollama`). Models configured with `backend: ollama`, and model ids
 * starting with the configured prefix, are sent to it instead of to an instance of ours: the Ollama API as it
 * came (its own NDJSON streams passed through), OpenAI requests to its `/v1` endpoints, agents' calls too. One
 * undici pool with a connect timeout; a read timeout between bytes. Its model list and reachability are read
 * with a short timeout and kept a few seconds, so that listing endpoints and /health never hang on it.
 */
import { Pool as UndiciPool } from 'undici';
import type { Config, OllamaBackendConfig } from '../../config/index.js';
import type { UpstreamTarget } from '../upstream.js';
import { derived } from '../../util/derived.js';

/** A model as Ollama's /api/tags and /api/ps list it (the fields this proxy reads; others pass through). */
export interface OllamaListedModel {
  name: string;
  model?: string;
  [field: string]: unknown;
}

export interface BackendStatus {
  url: string;
  reachable: boolean;
  version: string | null;
  error: string | null;
  checked_at: string;
}

const LIST_TIMEOUT_MS = 3000;
const CACHE_MS = 5000;

function errorCode(err: unknown): string | undefined {
  const e = err as { code?: unknown; cause?: { code?: unknown } };
  if (typeof e.code === 'string') return e.code;
  return typeof e.cause?.code === 'string' ? e.cause.code : undefined;
}

function reason(err: unknown): string {
  const e = err as { message?: string; cause?: { message?: string } };
  const message = e.message || String(err);
  return e.cause?.message && !message.includes(e.cause.message) ? `${message} (${e.cause.message})` : message;
}

export class OllamaBackend {
  readonly url: string;
  readonly prefix: string;
  readonly listModels: boolean;
  private readonly pool: UndiciPool;
  private readonly readTimeoutMs: number;
  private readonly connectTimeoutMs: number;
  /** Configured aliases served by Ollama -> their names there (the live config's: a reload may add some). */
  private readonly aliasMap: () => Map<string, string>;
  private readonly cached = new Map<string, { at: number; value: Promise<unknown> }>();

  constructor(settings: OllamaBackendConfig, models: () => Config['models']) {
    this.url = settings.url.replace(/\/+$/, '');
    this.prefix = settings.prefix;
    this.listModels = settings.listModels;
    this.readTimeoutMs = settings.readTimeout * 1000;
    this.connectTimeoutMs = settings.connectTimeout * 1000;
    this.pool = new UndiciPool(this.url, { connect: { timeout: this.connectTimeoutMs }, keepAliveTimeout: 10_000 });
    this.aliasMap = derived(models, (all) => new Map(Object.entries(all).flatMap(([alias, m]) => (m.backend === 'ollama' ? [[alias, m.name ?? alias] as const] : []))));
  }

  /** Ollama's name for a client's model, or undefined when the model is not Ollama's. */
  route(model: unknown): string | undefined {
    if (typeof model !== 'string') return undefined;
    const alias = this.aliasMap().get(model);
    if (alias !== undefined) return alias;
    if (model.startsWith(this.prefix) && model.length > this.prefix.length) return model.slice(this.prefix.length);
    return undefined;
  }

  /** Configured aliases served here, with their names on Ollama. */
  configured(): [alias: string, name: string][] {
    return [...this.aliasMap()];
  }

  /** The name a model of Ollama's list is requested by here. */
  publicName(name: string): string {
    return `${this.prefix}${name}`;
  }

  /** 502 when Ollama cannot be reached, 504 when it stops sending (readTimeout). */
  failure(err: unknown): { status: number; message: string } {
    const code = errorCode(err);
    if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') {
      return { status: 504, message: `the Ollama backend at ${this.url} sent nothing for ${this.readTimeoutMs / 1000} s (backends.ollama.readTimeout)` };
    }
    if (code === 'UND_ERR_CONNECT_TIMEOUT') {
      return { status: 502, message: `the Ollama backend at ${this.url} is unreachable: no connection within ${this.connectTimeoutMs / 1000} s (backends.ollama.connectTimeout)` };
    }
    if (code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'EHOSTUNREACH' || code === 'ECONNRESET' || code === 'UND_ERR_SOCKET') {
      return { status: 502, message: `the Ollama backend at ${this.url} is unreachable: ${reason(err)}` };
    }
    return { status: 502, message: `the Ollama backend at ${this.url} failed: ${reason(err)}` };
  }

  target(): UpstreamTarget {
    return {
      dispatcher: this.pool,
      name: `ollama ${this.url}`,
      headersTimeout: this.readTimeoutMs,
      bodyTimeout: this.readTimeoutMs,
      failure: (err) => this.failure(err),
    };
  }

  /** GET `path` as JSON, with the short listing timeout; an answer is kept `cacheMs`, a failure not at all. */
  private getJson(path: string, cacheMs = CACHE_MS): Promise<unknown> {
    const hit = this.cached.get(path);
    if (hit && Date.now() - hit.at < cacheMs) return hit.value;
    const value = (async () => {
      const res = await this.pool.request({
        method: 'GET',
        path,
        headers: { accept: 'application/json' },
        signal: AbortSignal.timeout(LIST_TIMEOUT_MS),
        headersTimeout: LIST_TIMEOUT_MS,
        bodyTimeout: LIST_TIMEOUT_MS,
      });
      const text = await res.body.text();
      if (res.statusCode !== 200) throw new Error(`GET ${path} answered ${res.statusCode}: ${text.slice(0, 200)}`);
      return JSON.parse(text) as unknown;
    })();
    const entry = { at: Date.now(), value };
    this.cached.set(path, entry);
    value.catch(() => {
      if (this.cached.get(path) === entry) this.cached.delete(path);
    });
    return value;
  }

  private async listOf(path: string): Promise<OllamaListedModel[]> {
    const json = (await this.getJson(path)) as { models?: unknown };
    if (!Array.isArray(json.models)) return [];
    return json.models.filter((m): m is OllamaListedModel => typeof m === 'object' && m !== null && typeof (m as { name?: unknown }).name === 'string');
  }

  /** Ollama's models (/api/tags); throws when it cannot be reached. */
  tags(): Promise<OllamaListedModel[]> {
    return this.listOf('/api/tags');
  }

  /** The models Ollama has loaded (/api/ps); throws when it cannot be reached. */
  running(): Promise<OllamaListedModel[]> {
    return this.listOf('/api/ps');
  }

  /** Whether Ollama answers /api/version now (for /health). */
  async status(): Promise<BackendStatus> {
    const checked = new Date().toISOString();
    try {
      const json = (await this.getJson('/api/version', 0)) as { version?: unknown };
      return { url: this.url, reachable: true, version: typeof json.version === 'string' ? json.version : null, error: null, checked_at: checked };
    } catch (err) {
      return { url: this.url, reachable: false, version: null, error: this.failure(err).message, checked_at: checked };
    }
  }

  async close(): Promise<void> {
    await this.pool.destroy().catch(() => {});
  }
}
