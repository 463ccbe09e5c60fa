/**
 * Pulling an Ollama name from its registry into a store, in Ollama's own layout (so that Ollama can use it too):
 * the manifest first (what to fetch), the model layer's GGUF header by range reads (the memory estimate before
 * anything large moves), then every blob not yet in the store: resumed from a partial file, checked against its
 * sha256, renamed into place; the manifest is written last, atomically, once every blob is there.
 *
 *   const puller = new OllamaPuller({ stores, registry, ... });
 *   const plan = await puller.plan(parseOllamaName('llama3.2:1b')!);
 *   const header = await puller.probeHeader(plan);           // a few MiB at most
 *   await puller.pull(plan, { onProgress });                 // one download per blob however many wait
 *
 * Single flight: concurrent pulls share one transfer per blob (keyed by its path) and one manifest request per name.
 */
import { mkdirSync, renameSync, statfsSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { readGgufHeaderFrom, readGgufModelHeader, type GgufModelHeader, type ReadHeaderOptions } from '../gguf/index.js';
import { downloadBlob } from '../hub/download.js';
import type { HubLog } from '../hub/model-hub.js';
import { formatBytes, HubError, waitFor } from '../hub/protocol.js';
import { blobFileName, manifestBlobs, MEDIA, modelLayers, parseManifest, type OllamaManifest } from './ollama-manifest.js';
import { manifestSegments, ollamaDisplayName, type OllamaName } from './ollama-name.js';
import { blobUrl, registryBase, RegistryHttp } from './ollama-registry.js';
import type { OllamaStores } from './ollama-store.js';

export interface OllamaPullerOptions {
  stores: OllamaStores;
  /** Base address of registry.ollama.ai names (`ollama.registry`). */
  registry: string;
  /** Default 30 000. */
  connectTimeoutMs?: number;
  /** Milliseconds without a byte before a request is abandoned (a download is then resumed); default 60 000. */
  readTimeoutMs?: number;
  /** Times a broken download is resumed; default 5. */
  retries?: number;
  /** First pause before resuming; default 1000. */
  retryDelayMs?: number;
  /** First range read of the model's header; default 8 MiB. */
  headerProbeBytes?: number;
  log?: HubLog;
}

export interface PullBlob {
  digest: string;
  mediaType: string;
  size: number;
  /** Where it is (or will be) in the store pulls write to. */
  local: string;
  cached: boolean;
}

export interface OllamaPullPlan {
  name: OllamaName;
  /** As Ollama lists it. */
  display: string;
  /** The registry asked. */
  base: string;
  manifestText: string;
  manifest: OllamaManifest;
  /** Every blob (config and layers), each once. */
  blobs: PullBlob[];
  model: PullBlob;
  totalBytes: number;
  missingBytes: number;
  /** Where the manifest goes. */
  manifestPath: string;
}

export interface PullProgress {
  digest: string;
  mediaType: string;
  /** This blob's size and bytes on disk. */
  total: number;
  completed: number;
  phase: 'download' | 'verify' | 'done';
}

export interface PullOptions {
  onProgress?: (p: PullProgress) => void;
  /** Default 250. */
  progressIntervalMs?: number;
  /** Stops this caller's wait; the shared download goes on for the others. */
  signal?: AbortSignal;
}

/** One blob's download, shared by everyone waiting for it. */
interface BlobTask {
  received: number;
  phase: 'download' | 'verify';
  listeners: Set<() => void>;
  promise: Promise<void>;
}

function size(file: string): number {
  return statSync(file, { throwIfNoEntry: false })?.size ?? -1;
}

export class OllamaPuller {
  private readonly https = new Map<string, RegistryHttp>();
  private readonly tasks = new Map<string, BlobTask>();
  private readonly planning = new Map<string, Promise<OllamaPullPlan>>();
  private readonly abort = new AbortController();
  private readonly log: HubLog;

  constructor(private readonly opts: OllamaPullerOptions) {
    this.log = opts.log ?? (() => {});
  }

  /** Where pulls write. */
  get store(): string {
    return this.opts.stores.write;
  }

  async close(): Promise<void> {
    this.abort.abort();
    await Promise.allSettled([...this.tasks.values()].map((t) => t.promise));
    await Promise.all([...this.https.values()].map((h) => h.close()));
  }

  private http(name: OllamaName): RegistryHttp {
    const base = registryBase(name, this.opts.registry);
    const key = `${base}|${name.namespace}/${name.model}`;
    let h = this.https.get(key);
    if (!h) {
      h = new RegistryHttp({ endpoint: base, connectTimeoutMs: this.opts.connectTimeoutMs ?? 30_000, readTimeoutMs: this.opts.readTimeoutMs ?? 60_000 }, name);
      this.https.set(key, h);
    }
    return h;
  }

  /**
   * What pulling `name` fetches: its manifest from the registry, and which blobs the store lacks. Throws HubError:
   * 404 model_not_found, 403, 502/504 when the registry fails, and 422 not_a_gguf_model for a manifest without a
   * model layer.
   */
  plan(name: OllamaName): Promise<OllamaPullPlan> {
    const key = ollamaDisplayName(name).toLowerCase();
    const running = this.planning.get(key);
    if (running) return running;
    const p = this.doPlan(name).finally(() => this.planning.delete(key));
    this.planning.set(key, p);
    return p;
  }

  private async doPlan(name: OllamaName): Promise<OllamaPullPlan> {
    const http = this.http(name);
    const display = ollamaDisplayName(name);
    const manifestText = await http.manifest();
    let manifest: OllamaManifest;
    try {
      manifest = parseManifest(manifestText, `the manifest of ${display} from ${http.endpoint}`);
    } catch (err) {
      throw new HubError(502, 'bad_manifest', (err as Error).message);
    }
    modelLayers(manifest, display); // refuses what has no GGUF before anything is downloaded
    const blobs = manifestBlobs(manifest).map((l): PullBlob => {
      const local = path.join(this.store, 'blobs', blobFileName(l.digest));
      return { digest: l.digest, mediaType: l.mediaType, size: l.size, local, cached: size(local) === l.size };
    });
    const model = blobs.find((b) => b.mediaType === MEDIA.model)!;
    const totalBytes = blobs.reduce((s, b) => s + b.size, 0);
    const missingBytes = blobs.filter((b) => !b.cached).reduce((s, b) => s + b.size - Math.max(0, Math.min(b.size, size(`${b.local}.incomplete`))), 0);
    this.log('resolved', { model: display, registry: http.endpoint, layers: manifest.layers.length, bytes: totalBytes, missingBytes });
    return { name, display, base: http.endpoint, manifestText, manifest, blobs, model, totalBytes, missingBytes, manifestPath: path.join(this.store, ...manifestSegments(name)) };
  }

  /** The model layer's GGUF header: from the store when it is there, else by range reads of the blob. */
  async probeHeader(plan: OllamaPullPlan, options: ReadHeaderOptions = { maxArrayItems: 4096 }): Promise<GgufModelHeader> {
    const http = this.http(plan.name);
    const url = blobUrl(plan.base, plan.name, plan.model.digest);
    const file = plan.model.cached ? plan.model.local : plan.display;
    if (plan.model.cached) return readGgufModelHeader(plan.model.local, options);
    const ctx = { repo: plan.display, revision: plan.name.tag, file: plan.model.digest };
    const header = await readGgufHeaderFrom({ size: plan.model.size, read: (pos, len) => http.readRange(url, pos, len, ctx) }, options, this.opts.headerProbeBytes ?? 8 << 20);
    this.log('read the header before downloading', { model: plan.display, headerBytes: header.dataOffset, fileBytes: plan.model.size });
    return { ...header, parts: [{ path: file, header }] };
  }

  /**
   * Makes every blob of `plan` present in the store, then writes its manifest. Throws HubError: 502
   * download_interrupted / download_corrupt / registry_error, 504 hub_timeout, 507 insufficient_storage.
   */
  async pull(plan: OllamaPullPlan, options: PullOptions = {}): Promise<void> {
    options.signal?.throwIfAborted();
    mkdirSync(path.join(this.store, 'blobs'), { recursive: true });
    this.checkSpace(plan);
    const interval = options.progressIntervalMs ?? 250;
    for (const b of plan.blobs) {
      const emit = (completed: number, phase: PullProgress['phase']) => options.onProgress?.({ digest: b.digest, mediaType: b.mediaType, total: b.size, completed, phase });
      if (size(b.local) !== b.size) {
        const task = this.task(plan, b);
        let last = 0;
        const listener = () => {
          const now = Date.now();
          if (now - last < interval) return;
          last = now;
          emit(task.received, task.phase);
        };
        task.listeners.add(listener);
        emit(task.received, task.phase);
        try {
          await waitFor(task.promise, options.signal);
        } finally {
          task.listeners.delete(listener);
        }
      }
      b.cached = true;
      emit(b.size, 'done');
    }
    this.writeManifest(plan);
    plan.missingBytes = 0;
  }

  private writeManifest(plan: OllamaPullPlan): void {
    mkdirSync(path.dirname(plan.manifestPath), { recursive: true });
    const tmp = `${plan.manifestPath}.tmp-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
    writeFileSync(tmp, plan.manifestText);
    renameSync(tmp, plan.manifestPath);
    this.log('manifest written', { model: plan.display, manifest: plan.manifestPath });
  }

  private checkSpace(plan: OllamaPullPlan): void {
    const need = plan.blobs.filter((b) => size(b.local) !== b.size && !this.tasks.has(b.local)).reduce((s, b) => s + b.size - Math.max(0, Math.min(b.size, size(`${b.local}.incomplete`))), 0);
    if (need === 0) return;
    let free: number;
    try {
      const fs = statfsSync(this.store);
      free = fs.bavail * fs.bsize;
    } catch {
      return;
    }
    if (free < need) throw new HubError(507, 'insufficient_storage', `${plan.display} needs ${formatBytes(need)} more on disk; ${formatBytes(free)} is free in ${this.store}`);
  }

  private task(plan: OllamaPullPlan, b: PullBlob): BlobTask {
    const existing = this.tasks.get(b.local);
    if (existing) return existing;
    const task: BlobTask = { received: Math.max(0, size(`${b.local}.incomplete`)), phase: 'download', listeners: new Set(), promise: Promise.resolve() };
    const label = `${plan.display} ${b.digest.slice(7, 19)}`;
    const started = Date.now();
    task.promise = (async () => {
      const resumed = Math.max(0, size(`${b.local}.incomplete`));
      this.log('download started', { file: label, bytes: b.size, ...(resumed > 0 ? { resumeFrom: resumed } : {}) });
      await downloadBlob(
        this.http(plan.name),
        {
          url: blobUrl(plan.base, plan.name, b.digest),
          blob: b.local,
          incomplete: `${b.local}.incomplete`,
          size: b.size,
          sha256: b.digest.slice('sha256:'.length),
          repo: plan.display,
          revision: plan.name.tag,
          file: b.digest,
        },
        {
          retries: this.opts.retries ?? 5,
          retryDelayMs: this.opts.retryDelayMs ?? 1000,
          log: this.log,
          signal: this.abort.signal,
          onPhase: (phase) => {
            task.phase = phase;
            for (const l of task.listeners) l();
          },
          onBytes: (n) => {
            task.received = n;
            for (const l of task.listeners) l();
          },
        },
      );
      this.log('download complete', { file: label, bytes: b.size, seconds: Math.round((Date.now() - started) / 100) / 10 });
    })()
      .catch((err: unknown) => {
        this.log('download failed', { file: label, reason: (err as Error).message });
        throw err;
      })
      .finally(() => this.tasks.delete(b.local));
    // Callers that stopped waiting leave nobody to see a failure: it is logged, and must not crash.
    task.promise.catch(() => {});
    this.tasks.set(b.local, task);
    return task;
  }
}

