/**
 * Ollama's registry over HTTP (the OCI distribution API it speaks): the manifest of `namespace/model:tag` at
 * `/v2/<namespace>/<model>/manifests/<tag>`, blobs at `/v2/<namespace>/<model>/blobs/<digest>` (redirected to a
 * CDN, ranges honoured). The connection machinery (redirects, timeouts, ranges) is the Hub's (models/hub-http.ts);
 * what differs is here: addresses and the errors a user can act on.
 */
import { HubError } from '../hub/protocol.js';
import { HubHttp, networkError, type HubHttpOptions, type HubResponse } from '../hub/http.js';
import { MANIFEST_MEDIA_TYPE } from './ollama-manifest.js';
import { ollamaDisplayName, OLLAMA_REGISTRY_HOST, type OllamaName } from './ollama-name.js';

export const DEFAULT_OLLAMA_REGISTRY = 'https://registry.ollama.ai';

/** The registry's base address for a name: `ollama.registry` for Ollama's own host, `https://<host>` for others. */
export function registryBase(name: OllamaName, registry: string): string {
  return (name.host === OLLAMA_REGISTRY_HOST ? registry : `https://${name.host}`).replace(/\/+$/, '');
}

export function manifestUrl(base: string, name: OllamaName): string {
  return `${base}/v2/${encodeURIComponent(name.namespace)}/${encodeURIComponent(name.model)}/manifests/${encodeURIComponent(name.tag)}`;
}

export function blobUrl(base: string, name: OllamaName, digest: string): string {
  return `${base}/v2/${encodeURIComponent(name.namespace)}/${encodeURIComponent(name.model)}/blobs/${digest}`;
}

/** What a registry's error answer means (`errors: [{code, message}]` in its body, when it says). */
export function registryError(status: number, name: OllamaName, base: string, what: string, detail?: string): HubError {
  const display = ollamaDisplayName(name);
  const said = detail ? ` (the registry said: ${detail})` : '';
  if (status === 404) return new HubError(404, 'model_not_found', `${display} was not found on the Ollama registry ${base}: no such model or tag${said}`, status);
  if (status === 401 || status === 403) return new HubError(403, 'registry_access_denied', `the Ollama registry ${base} refused access to ${display} (${status})${said}`, status);
  if (status === 429) return new HubError(503, 'registry_rate_limited', `the Ollama registry ${base} is rate-limiting requests for ${display}; try again later${said}`, status);
  return new HubError(502, 'registry_error', `the Ollama registry ${base} answered ${status} for ${what} of ${display}${said}`, status);
}

/** The `errors[0].message` of a registry's JSON error body, or a short text body. */
export function registryErrorDetail(text: string): string | undefined {
  try {
    const j = JSON.parse(text) as { errors?: { message?: unknown; code?: unknown }[]; error?: unknown };
    const first = j.errors?.[0];
    if (first && typeof first.message === 'string') return typeof first.code === 'string' ? `${first.code}: ${first.message}` : first.message;
    if (typeof j.error === 'string') return j.error;
  } catch {
    /* not JSON */
  }
  const t = text.trim();
  return t && t.length < 300 && !t.includes('<') ? t : undefined;
}

/** HubHttp for one registry: its errors said as the registry's. */
export class RegistryHttp extends HubHttp {
  constructor(
    opts: Omit<HubHttpOptions, 'service' | 'token'>,
    private readonly name: OllamaName,
  ) {
    super({ ...opts, service: 'the Ollama registry' });
  }

  override async errorFrom(res: HubResponse, ctx: { repo: string; revision: string; file?: string }): Promise<HubError> {
    let text = '';
    try {
      text = (await res.body.text()).slice(0, 2000);
    } catch {
      /* the body does not matter */
    }
    return registryError(res.status, this.name, this.endpoint, ctx.file ? `blob ${ctx.file}` : 'the manifest', registryErrorDetail(text));
  }

  /** The manifest's text (checked by the caller). Throws HubError for an error answer or a network failure. */
  async manifest(): Promise<string> {
    const url = manifestUrl(this.endpoint, this.name);
    let res: HubResponse;
    try {
      res = await this.send(url, { headers: { accept: MANIFEST_MEDIA_TYPE } });
    } catch (err) {
      throw networkError(err, this.endpoint, `fetching the manifest of ${ollamaDisplayName(this.name)}`, this.service);
    }
    if (res.status !== 200) throw await this.errorFrom(res, { repo: ollamaDisplayName(this.name), revision: this.name.tag });
    const text = await res.body.text();
    if (text.length > 4 << 20) throw new HubError(502, 'bad_manifest', `the manifest of ${ollamaDisplayName(this.name)} is larger than 4 MiB`);
    return text;
  }
}
