/**
 * Models from the Hugging Face Hub: `repo[:variant]` resolved to files, their GGUF header read before the
 * download (range requests), downloaded once into a cache shared with the Hugging Face tools, and the cache kept
 * under a size limit.
 *
 *   const hub = new ModelHub({ cacheDir, endpoint, token, offline, log });
 *   const res = await hub.resolve('unsloth/Qwen3-0.6B-GGUF', 'Q4_K_M');   // no network when cached
 *   const header = await hub.probeHeader(res);                           // a few MiB, before the download
 *   const { file } = await hub.ensureDownloaded(res, { onProgress });    // one download however many wait
 *
 * Single flight: concurrent resolutions of one repo share the listing; concurrent downloads of one blob share one
 * transfer (and, between processes, a lock file under `<cacheDir>/hub-state/locks`).
 */
import { mkdirSync, realpathSync, statfsSync } from 'node:fs';
import { checkSync, lock } from 'proper-lockfile';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { mergeSplit, readGgufHeaderFrom, readGgufModelHeader, type GgufModelHeader, type ReadHeaderOptions } from '../gguf/index.js';
import { hubCacheDirs } from './hf-cache.js';
import { downloadBlob } from './download.js';
import { HubHttp } from './http.js';
import {
  DEFAULT_HUB_ENDPOINT, HubError, formatBytes, isCommitHash, isSha256, resolveUrl, waitFor, type HubTreeEntry,
} from './protocol.js';
import { HubStore, type CacheEntry, type CacheGroup } from './store.js';
import { chooseVariant, describeModelFiles, modelCandidates, type VariantCandidate, type VariantChoice } from './variants.js';
import { DEFAULT_HF_VARIANT } from '../models/identifier.js';

export type HubLog = (msg: string, fields?: Record<string, unknown>) => void;

export interface ModelHubOptions {
  /** The proxy's cache folder: downloads go to `<cacheDir>/hub`, bookkeeping to `<cacheDir>/hub-state`. */
  cacheDir: string;
  /** The Hub's address (HF_ENDPOINT); default https://huggingface.co. */
  endpoint?: string;
  /** Token for private and gated repos (HF_TOKEN); sent to the endpoint only, never to the CDN. */
  token?: string;
  /** Use only what is on disk (HF_HUB_OFFLINE). */
  offline?: boolean;
  /** Hub caches to look in after ours (read-only); default: from `env` ($HF_HUB_CACHE, $HF_HOME/hub, ~/.cache/huggingface/hub). */
  searchDirs?: string[];
  env?: NodeJS.ProcessEnv;
  /** Largest size of our cache in bytes; 0 or absent: no limit. */
  limitBytes?: number;
  /** Files of models in use (running or loading): never evicted. Called when room is made. */
  inUse?: () => Iterable<string>;
  /** Default 30 000. */
  connectTimeoutMs?: number;
  /** Milliseconds without a byte before a request is abandoned (and the download resumed); default 60 000. */
  readTimeoutMs?: number;
  /** Times a broken download is resumed automatically; default 5. */
  retries?: number;
  /** First pause before resuming; default 1000 (doubles each time). */
  retryDelayMs?: number;
  /** First range read for the header (then 4x larger reads until it is complete); default 8 MiB. */
  headerProbeBytes?: number;
  /** How long a repo's file listing is reused; default 60 000. */
  listingTtlMs?: number;
  /** The variant `resolve` takes when none is named (then the closest quantization); default Q4_K_M. */
  defaultVariant?: string;
  log?: HubLog;
}

/** One file of a resolution. */
export interface HubFile {
  /** Path in the repo. */
  path: string;
  size: number;
  /** The content's sha256 when the Hub gives it (LFS files); downloads are checked against it. */
  sha256?: string;
  /** The blob's name in the cache (X-Linked-Etag, else ETag: the sha256 for LFS files). */
  etag: string;
  /** Where it is (or will be): `<cache>/models--o--r/snapshots/<commit>/<path>`. */
  local: string;
  /** Already on disk. */
  cached: boolean;
  /** Git blob id, for small files outside LFS (checked instead of a sha256). */
  gitOid?: string;
}

export interface HubResolution {
  repo: string;
  /** The variant asked for; the default (hub.defaultVariant, else DEFAULT_HF_VARIANT) when none was named. */
  variant: string;
  /** False when the client named no variant (the closest quantization may have been taken). */
  explicit: boolean;
  revision: string;
  commit: string;
  /** The model: one file, or every part of a split set, in order. */
  parts: HubFile[];
  /** The projector of a multimodal model, when the repo has one. */
  mmproj?: HubFile;
  /** The chosen file's quantization tag. */
  tag?: string;
  /** Said when the choice was not obvious (several matches, or the closest to a missing default). */
  note?: string;
  /** Everything is on disk: found in a cache without any network request. */
  cached: boolean;
  totalBytes: number;
  /** Bytes still to download (partial downloads counted as done). */
  missingBytes: number;
}

export interface DownloadProgress {
  repo: string;
  /** The file being downloaded (path in the repo). */
  file: string;
  /** waiting: another process is downloading it; verify: hashing (a resumed partial, or the finished file). */
  phase: 'waiting' | 'download' | 'verify' | 'done';
  /** Bytes on disk for the whole model (all parts and the projector), including what was there before. */
  receivedBytes: number;
  totalBytes: number;
  /** Transfer rate of the current file since its download (re)started; 0 until known. */
  bytesPerSecond: number;
}

export interface EnsureOptions {
  /** Called at most every `progressIntervalMs` (default 250), and always for the last bytes. */
  onProgress?: (p: DownloadProgress) => void;
  progressIntervalMs?: number;
  /** Stops this caller's wait (the shared download goes on for the others and for later requests). */
  signal?: AbortSignal;
}

export interface DownloadedModel {
  /** The model file to give llama-server (the first part of a split model): a snapshot path. */
  file: string;
  parts: string[];
  mmproj?: string;
  commit: string;
}

export interface EvictionResult {
  evicted: { repo: string; file: string; bytes: number; lastUsed: Date; partial: boolean }[];
  freedBytes: number;
  /** Our cache's size afterwards. */
  totalBytes: number;
}

/** One blob's download, shared by everyone waiting for it. */
class BlobTask {
  received = 0;
  phase: DownloadProgress['phase'] = 'download';
  private startBytes = -1;
  private startAt = Date.now();
  readonly listeners = new Set<() => void>();
  promise!: Promise<void>;

  set(received: number): void {
    if (this.startBytes < 0 || received < this.startBytes) {
      this.startBytes = received;
      this.startAt = Date.now();
    }
    this.received = received;
    for (const l of this.listeners) l();
  }

  setPhase(phase: DownloadProgress['phase']): void {
    this.phase = phase;
    for (const l of this.listeners) l();
  }

  rate(): number {
    const s = (Date.now() - this.startAt) / 1000;
    return s > 0.2 && this.startBytes >= 0 ? (this.received - this.startBytes) / s : 0;
  }
}

/** "downloading owner/repo: 42% (1.10 GiB of 2.61 GiB, 35.2 MiB/s)": for logs and SSE comments. */
export function describeProgress(p: DownloadProgress): string {
  const pct = p.totalBytes > 0 ? Math.floor((p.receivedBytes / p.totalBytes) * 100) : 100;
  const rate = p.bytesPerSecond > 0 ? `, ${formatBytes(p.bytesPerSecond)}/s` : '';
  const verb = p.phase === 'waiting' ? 'waiting for another download of' : p.phase === 'verify' ? 'verifying' : p.phase === 'done' ? 'downloaded' : 'downloading';
  return `${verb} ${p.repo}/${p.file}: ${pct}% (${formatBytes(p.receivedBytes)} of ${formatBytes(p.totalBytes)}${rate})`;
}

const LOCK_STALE_MS = 30_000;
/** A partial download touched this recently may be in progress elsewhere: not evicted. */
const PARTIAL_BUSY_MS = 60_000;

export class ModelHub {
  readonly endpoint: string;
  readonly offline: boolean;
  readonly store: HubStore;
  private readonly http: HubHttp;
  private readonly log: HubLog;
  private readonly listings = new Map<string, { at: number; promise: Promise<HubTreeEntry[]> }>();
  private readonly metas = new Map<string, { at: number; promise: Promise<{ commit?: string; etag?: string; size?: number }> }>();
  private readonly resolving = new Map<string, Promise<HubResolution>>();
  private readonly tasks = new Map<string, BlobTask>();
  private readonly headers = new Map<string, Promise<GgufModelHeader>>();
  /** The file chosen for a repo asked without a variant (so later requests find it on disk). */
  private readonly defaultChoice = new Map<string, string>();
  private readonly abort = new AbortController();

  constructor(private readonly opts: ModelHubOptions) {
    this.endpoint = (opts.endpoint ?? DEFAULT_HUB_ENDPOINT).replace(/\/+$/, '');
    this.offline = opts.offline ?? false;
    const root = path.resolve(opts.cacheDir, 'hub');
    const dirs = opts.searchDirs ? [root, ...opts.searchDirs.map((d) => path.resolve(d))] : hubCacheDirs(opts.cacheDir, opts.env ?? process.env);
    this.store = new HubStore(root, [...new Set(dirs)], path.resolve(opts.cacheDir, 'hub-state'));
    this.http = new HubHttp({
      endpoint: this.endpoint,
      ...(opts.token ? { token: opts.token } : {}),
      connectTimeoutMs: opts.connectTimeoutMs ?? 30_000,
      readTimeoutMs: opts.readTimeoutMs ?? 60_000,
    });
    this.log = opts.log ?? (() => {});
  }

  /** Stops downloads under way (their partial files stay) and closes connections. */
  async close(): Promise<void> {
    this.abort.abort();
    await Promise.allSettled([...this.tasks.values()].map((t) => t.promise));
    await this.http.close();
  }

  // ------------------------------------------------------------------------------------------ resolve

  /**
   * The files `repo:variant` means. `variant` undefined: none was named (Q4_K_M, else the closest). A model on
   * disk (in any Hub cache) is returned without a network request; offline, only disk is looked at.
   * Throws HubError: 404 model_not_found (naming the files that exist) / model_not_cached (offline),
   * 401 hub_token_required / hub_token_invalid, 403 hub_access_denied, 502/504 when the Hub fails.
   */
  resolve(repo: string, variant?: string, revision = 'main'): Promise<HubResolution> {
    const key = `${repo}@${revision}:${variant ?? ''}`;
    const running = this.resolving.get(key);
    if (running) return running;
    const p = this.doResolve(repo, variant, revision).finally(() => this.resolving.delete(key));
    this.resolving.set(key, p);
    return p;
  }

  private async doResolve(repo: string, asked: string | undefined, revision: string): Promise<HubResolution> {
    const variant = asked ?? this.opts.defaultVariant ?? DEFAULT_HF_VARIANT;
    const explicit = asked !== undefined;
    const remembered = explicit ? undefined : this.defaultChoice.get(`${repo}@${revision}`);
    const local = remembered
      ? this.store.findLocal(repo, path.posix.basename(remembered), true, revision)
      : this.store.findLocal(repo, variant, explicit || !this.offline, revision);
    if (local.found) return this.fromLocal(repo, variant, explicit, revision, local.found.cacheRoot, local.found.commit, local.found.choice);
    if (this.offline) {
      const seen = local.seen.length ? ` Cached files of this repo: ${local.seen.join(', ')}.` : ' Nothing of this repo is cached.';
      throw new HubError(
        404,
        'model_not_cached',
        `${repo}:${variant} is not in the cache and the Hub is not asked in offline mode (HF_HUB_OFFLINE / hub.offline).${seen} ` +
          `Looked in: ${this.store.searchDirs.join(', ')}.`,
      );
    }

    const entries = await this.listing(repo, revision);
    const files = entries.filter((e) => e.type === 'file').map((e) => e.path);
    const outcome = chooseVariant(files, variant, explicit);
    if (!outcome.ok) {
      const models = describeModelFiles(files);
      const incomplete = outcome.incomplete.length ? ` Split sets missing parts: ${outcome.incomplete.map((s) => `${s.first} (missing ${s.missing.join(', ')})`).join('; ')}.` : '';
      throw new HubError(
        404,
        'model_not_found',
        models.length
          ? `${repo} has no GGUF file for variant "${variant}".${incomplete} Its GGUF files: ${models.join(', ')}.`
          : `${repo} has no GGUF files (it holds: ${files.slice(0, 20).join(', ') || 'nothing'}${files.length > 20 ? ', ...' : ''}).`,
      );
    }
    const choice = outcome.choice;
    const byPath = new Map(entries.map((e) => [e.path, e]));
    const wanted = [...choice.parts, ...(choice.mmproj ? [choice.mmproj] : [])];
    // The first file's HEAD tells the commit; the others are asked at that commit, so all come from one.
    const first = await this.meta(repo, revision, wanted[0]!);
    // The commit names a folder: anything but a commit hash (a mirror's odd header) is asked for again.
    let commit = first.commit && isCommitHash(first.commit) ? first.commit.toLowerCase() : undefined;
    if (!commit) commit = isCommitHash(revision) ? revision.toLowerCase() : await this.http.commitOf(repo, revision);
    const metas = [first, ...(await Promise.all(wanted.slice(1).map((f) => this.meta(repo, commit!, f))))];
    const hubFiles = wanted.map((f, i) => this.hubFile(repo, commit!, byPath.get(f)!, metas[i]!));
    if (!explicit) this.defaultChoice.set(`${repo}@${revision}`, choice.parts[0]!);
    const res = this.resolution(repo, variant, explicit, revision, commit, hubFiles, choice);
    this.log('resolved', {
      model: `${repo}:${variant}`, file: choice.parts[0], parts: choice.parts.length, ...(choice.mmproj ? { mmproj: choice.mmproj } : {}),
      commit, bytes: res.totalBytes, missingBytes: res.missingBytes, ...(choice.note ? { note: choice.note } : {}),
    });
    return res;
  }

  /**
   * The models a repo offers (each single GGUF file and each complete split set, projectors left out) with their
   * sizes: from the Hub's listing (one request, reused for a minute), or offline from the caches on disk.
   */
  async variants(repo: string, revision = 'main'): Promise<(VariantCandidate & { bytes: number })[]> {
    if (this.offline) {
      // A variant no file matches: findLocal then only lists what every cache holds of the repo.
      const seen = this.store.findLocal(repo, '\u0000', true, revision).seen;
      const sizes = new Map<string, number>();
      for (const f of seen) {
        const local = this.store.findLocal(repo, path.posix.basename(f), true, revision).found;
        if (local) sizes.set(f, local.choice.parts.reduce((s, p) => s + Math.max(0, HubStore.size(this.store.snapshotPath(repo, local.commit, p, local.cacheRoot))), 0));
      }
      return modelCandidates(seen).map((c) => ({ ...c, bytes: sizes.get(c.first) ?? 0 }));
    }
    const entries = await this.listing(repo, revision);
    const size = new Map(entries.filter((e) => e.type === 'file').map((e) => [e.path, e.lfs?.size ?? e.size]));
    return modelCandidates([...size.keys()]).map((c) => ({ ...c, bytes: c.parts.reduce((s, p) => s + (size.get(p) ?? 0), 0) }));
  }

  private listing(repo: string, revision: string): Promise<HubTreeEntry[]> {
    const key = `${repo}@${revision}`;
    const ttl = this.opts.listingTtlMs ?? 60_000;
    const hit = this.listings.get(key);
    if (hit && Date.now() - hit.at < ttl) return hit.promise;
    const promise = this.http.listTree(repo, revision);
    prune(this.listings, ttl);
    this.listings.set(key, { at: Date.now(), promise });
    promise.catch(() => this.listings.delete(key));
    return promise;
  }

  private meta(repo: string, revision: string, file: string): Promise<{ commit?: string; etag?: string; size?: number }> {
    const key = `${repo}@${revision}/${file}`;
    const ttl = this.opts.listingTtlMs ?? 60_000;
    const hit = this.metas.get(key);
    if (hit && Date.now() - hit.at < ttl) return hit.promise;
    const promise = this.http.fileMeta(repo, revision, file);
    prune(this.metas, ttl);
    this.metas.set(key, { at: Date.now(), promise });
    promise.catch(() => this.metas.delete(key));
    return promise;
  }

  private hubFile(repo: string, commit: string, entry: HubTreeEntry, meta: { etag?: string; size?: number }): HubFile {
    const sha256 = isSha256(meta.etag) ? meta.etag.toLowerCase() : entry.lfs && isSha256(entry.lfs.oid) ? entry.lfs.oid.toLowerCase() : undefined;
    const etag = meta.etag ?? entry.lfs?.oid ?? entry.oid;
    if (!etag || /[/\\]|^\.\.?$/.test(etag)) throw new HubError(502, 'hub_error', `the Hub gave no usable ETag for ${repo}/${entry.path}`);
    const size = meta.size ?? entry.lfs?.size ?? entry.size;
    const gitOid = !entry.lfs && !sha256 && etag === entry.oid && /^[0-9a-f]{40}$/i.test(etag) ? etag : undefined;
    const blob = this.store.blobPath(repo, etag);
    return {
      path: entry.path,
      size,
      ...(sha256 ? { sha256 } : {}),
      etag,
      local: this.store.snapshotPath(repo, commit, entry.path),
      cached: HubStore.size(blob) === size,
      ...(gitOid ? { gitOid } : {}),
    };
  }

  private resolution(repo: string, variant: string, explicit: boolean, revision: string, commit: string, files: HubFile[], choice: VariantChoice): HubResolution {
    const parts = files.slice(0, choice.parts.length);
    const mmproj = choice.mmproj ? files[choice.parts.length] : undefined;
    const totalBytes = files.reduce((s, f) => s + f.size, 0);
    const missingBytes = files.reduce((s, f) => {
      if (f.cached) return s;
      const partial = HubStore.size(this.store.incompletePath(repo, f.etag));
      return s + f.size - Math.max(0, Math.min(partial, f.size));
    }, 0);
    return {
      repo, variant, explicit, revision, commit, parts,
      ...(mmproj ? { mmproj } : {}),
      ...(choice.tag ? { tag: choice.tag } : {}),
      ...(choice.note ? { note: choice.note } : {}),
      cached: files.every((f) => f.cached && HubStore.size(f.local) === f.size),
      totalBytes,
      missingBytes,
    };
  }

  private fromLocal(repo: string, variant: string, explicit: boolean, revision: string, root: string, commit: string, choice: VariantChoice): HubResolution {
    const files = [...choice.parts, ...(choice.mmproj ? [choice.mmproj] : [])].map((f): HubFile => {
      const local = this.store.snapshotPath(repo, commit, f, root);
      const size = HubStore.size(local);
      let etag = path.basename(local);
      try {
        etag = path.basename(realpathSync(local));
      } catch {
        /* keep the name */
      }
      return { path: f, size, ...(isSha256(etag) ? { sha256: etag } : {}), etag, local, cached: true };
    });
    return this.resolution(repo, variant, explicit, revision, commit, files, choice);
  }

  // ------------------------------------------------------------------------------------------ header

  /**
   * The model's GGUF header (all parts merged for a split model) before downloading it: range requests reading
   * about the header's size, or the files themselves when on disk. Kept per blob, so asking twice is free.
   * Throws HubError (as resolve) and GgufFormatError for a file that is not GGUF.
   */
  probeHeader(res: HubResolution, options: ReadHeaderOptions = { maxArrayItems: 4096 }): Promise<GgufModelHeader> {
    const key = `${res.parts.map((p) => p.etag).join('+')}|${options.maxArrayItems ?? ''}`;
    const hit = this.headers.get(key);
    if (hit) return hit;
    const p = this.readHeader(res, options);
    this.headers.set(key, p);
    p.catch(() => this.headers.delete(key));
    if (this.headers.size > 64) this.headers.delete(this.headers.keys().next().value!);
    return p;
  }

  private async readHeader(res: HubResolution, options: ReadHeaderOptions): Promise<GgufModelHeader> {
    if (res.parts.every((p) => HubStore.size(p.local) === p.size)) return readGgufModelHeader(res.parts[0]!.local, options);
    if (this.offline) throw new HubError(404, 'model_not_cached', `${res.repo}:${res.variant} is not on disk and the Hub is not asked in offline mode`);
    const probe = this.opts.headerProbeBytes ?? 8 << 20;
    const headers = await Promise.all(
      res.parts.map(async (p) => {
        const url = resolveUrl(this.endpoint, res.repo, res.commit, p.path);
        const ctx = { repo: res.repo, revision: res.commit, file: p.path };
        const header = await readGgufHeaderFrom({ size: p.size, read: (pos, len) => this.http.readRange(url, pos, len, ctx) }, options, probe);
        return { path: p.path, header };
      }),
    );
    const first = headers[0]!;
    const bytes = headers.reduce((s, h) => s + h.header.dataOffset, 0);
    this.log('read the header before downloading', { model: `${res.repo}:${res.variant}`, headerBytes: bytes, fileBytes: res.totalBytes });
    return headers.length === 1 ? { ...first.header, parts: [first] } : mergeSplit(headers);
  }

  // ------------------------------------------------------------------------------------------ download

  /**
   * Makes every file of `res` present on disk and returns the paths to use. Nothing to do for a cached resolution
   * (no network). Each blob is downloaded once however many callers wait (see EnsureOptions.signal), resumed
   * from a partial file, retried on broken connections, checked against its sha256 and moved into place
   * atomically; the snapshot links and refs/<revision> are written afterwards. Room is made first under the
   * cache limit (least recently used models not in use go).
   * Throws HubError: 404 model_not_cached (offline), 502 download_interrupted / download_corrupt / hub_error,
   * 504 hub_timeout, 507 cache_full / insufficient_storage, and the Hub's 401/403/404.
   */
  async ensureDownloaded(res: HubResolution, options: EnsureOptions = {}): Promise<DownloadedModel> {
    const files = [...res.parts, ...(res.mmproj ? [res.mmproj] : [])];
    const result: DownloadedModel = {
      file: res.parts[0]!.local,
      parts: res.parts.map((p) => p.local),
      ...(res.mmproj ? { mmproj: res.mmproj.local } : {}),
      commit: res.commit,
    };
    if (files.every((f) => HubStore.size(f.local) === f.size)) {
      this.store.touch(files.map((f) => f.local));
      return result;
    }
    if (this.offline) {
      const missing = files.filter((f) => HubStore.size(f.local) !== f.size).map((f) => f.path);
      throw new HubError(404, 'model_not_cached', `offline mode (HF_HUB_OFFLINE / hub.offline): ${res.repo} is missing ${missing.join(', ')} in the cache`);
    }
    options.signal?.throwIfAborted();
    mkdirSync(path.join(this.store.repoDir(res.repo), 'blobs'), { recursive: true });
    await this.makeRoom(res, files);

    const interval = options.progressIntervalMs ?? 250;
    let doneBytes = 0;
    let lastEmit = 0;
    const emit = (file: string, fileBytes: number, phase: DownloadProgress['phase'], rate: number, force = false) => {
      if (!options.onProgress) return;
      const now = Date.now();
      if (!force && now - lastEmit < interval) return;
      lastEmit = now;
      options.onProgress({ repo: res.repo, file, phase, receivedBytes: doneBytes + fileBytes, totalBytes: res.totalBytes, bytesPerSecond: rate });
    };

    for (const f of files) {
      const blob = this.store.blobPath(res.repo, f.etag);
      if (HubStore.size(blob) !== f.size) {
        const task = this.blobTask(res, f);
        const listener = () => emit(f.path, task.received, task.phase, task.rate());
        task.listeners.add(listener);
        emit(f.path, task.received, task.phase, 0, true);
        try {
          await waitFor(task.promise, options.signal);
        } finally {
          task.listeners.delete(listener);
        }
      }
      this.store.linkSnapshot(res.repo, res.commit, f.path, f.etag);
      doneBytes += f.size;
      emit(f.path, 0, 'download', 0, true);
    }
    this.store.writeRef(res.repo, res.revision, res.commit);
    this.store.touch(files.map((f) => f.local));
    emit(files[files.length - 1]!.path, 0, 'done', 0, true);
    for (const f of files) f.cached = true;
    res.cached = true;
    res.missingBytes = 0;
    return result;
  }

  /** The shared download of one blob: started by the first caller, joined by the others. */
  private blobTask(res: HubResolution, f: HubFile): BlobTask {
    const blob = this.store.blobPath(res.repo, f.etag);
    const existing = this.tasks.get(blob);
    if (existing) return existing;
    const task = new BlobTask();
    task.promise = this.runDownload(res, f, task).finally(() => this.tasks.delete(blob));
    // Callers that stopped waiting (signal) leave nobody to see a failure: it is logged, and must not crash.
    task.promise.catch(() => {});
    this.tasks.set(blob, task);
    return task;
  }

  private async runDownload(res: HubResolution, f: HubFile, task: BlobTask): Promise<void> {
    const blob = this.store.blobPath(res.repo, f.etag);
    const incomplete = this.store.incompletePath(res.repo, f.etag);
    const label = `${res.repo}/${f.path}`;
    const release = await this.lockBlob(res.repo, f, task);
    try {
      if (HubStore.size(blob) === f.size) return; // another process finished it while we waited
      this.store.notePartial(res.repo, f.etag, { repo: res.repo, file: f.path, commit: res.commit, size: f.size });
      const started = Date.now();
      const resumed = Math.max(0, HubStore.size(incomplete));
      this.log('download started', { file: label, bytes: f.size, ...(resumed > 0 ? { resumeFrom: resumed } : {}) });
      let nextTenth = 1;
      let lastLog = Date.now();
      await downloadBlob(
        this.http,
        {
          url: resolveUrl(this.endpoint, res.repo, res.commit, f.path),
          blob,
          incomplete,
          size: f.size,
          ...(f.sha256 ? { sha256: f.sha256 } : {}),
          ...(f.gitOid ? { gitOid: f.gitOid } : {}),
          repo: res.repo,
          revision: res.commit,
          file: f.path,
        },
        {
          retries: this.opts.retries ?? 5,
          retryDelayMs: this.opts.retryDelayMs ?? 1000,
          log: this.log,
          signal: this.abort.signal,
          onPhase: (phase) => task.setPhase(phase),
          onBytes: (n) => {
            task.set(n);
            const tenth = f.size > 0 ? Math.floor((n / f.size) * 10) : 10;
            if (tenth >= nextTenth && tenth < 10 || Date.now() - lastLog > 30_000) {
              nextTenth = tenth + 1;
              lastLog = Date.now();
              this.log('downloading', { file: label, percent: tenth * 10, bytes: n, of: f.size, bytesPerSecond: Math.round(task.rate()) });
            }
          },
        },
      );
      const seconds = (Date.now() - started) / 1000;
      this.store.clearPartial(res.repo, f.etag);
      this.log('download complete', { file: label, bytes: f.size, seconds: Math.round(seconds * 10) / 10, ...(f.sha256 ? { sha256: f.sha256 } : {}) });
    } catch (err) {
      if (HubStore.size(incomplete) < 0) this.store.clearPartial(res.repo, f.etag);
      this.log('download failed', { file: label, reason: (err as Error).message });
      throw err;
    } finally {
      await release();
    }
  }

  /** The cross-process lock of a blob; while another process holds it, progress comes from its partial file. */
  private async lockBlob(repo: string, f: HubFile, task: BlobTask): Promise<() => Promise<void>> {
    const lockfilePath = this.store.lockPath(repo, f.etag);
    mkdirSync(path.dirname(lockfilePath), { recursive: true });
    const incomplete = this.store.incompletePath(repo, f.etag);
    let logged = false;
    for (;;) {
      try {
        return await lock(incomplete, {
          lockfilePath,
          realpath: false,
          stale: LOCK_STALE_MS,
          onCompromised: (err) => this.log('download lock lost', { file: `${repo}/${f.path}`, reason: err.message }),
        });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ELOCKED') throw err;
      }
      if (!logged) this.log('another process is downloading this file; waiting for it', { file: `${repo}/${f.path}` });
      logged = true;
      task.phase = 'waiting';
      task.set(Math.max(0, HubStore.size(incomplete)));
      if (this.abort.signal.aborted) throw new HubError(503, 'download_aborted', `the download of ${repo}/${f.path} was stopped`);
      await sleep(500);
    }
  }

  // ------------------------------------------------------------------------------------------ cache

  /** What the caches hold: every snapshot file and partial download, ours and other Hub tools'. */
  list(): CacheEntry[] {
    return this.store.list();
  }

  /**
   * Keeps our cache (`<cacheDir>/hub`) within the limit, with room for `needBytes` more: deletes least recently
   * used models that are not in `inUse` (snapshot or blob paths; the `inUse` option is added) and not being
   * downloaded, and stale partial downloads. Throws HubError 507 cache_full when that is not enough.
   */
  async enforceLimit(opts: { inUse?: Iterable<string>; needBytes?: number } = {}): Promise<EvictionResult> {
    const limit = this.opts.limitBytes ?? 0;
    let total = this.store.totalBytes();
    const need = opts.needBytes ?? 0;
    const result: EvictionResult = { evicted: [], freedBytes: 0, totalBytes: total };
    if (limit <= 0 || total + need <= limit) return result;
    const protectedPaths = HubStore.normalizePaths([...(opts.inUse ?? []), ...(this.opts.inUse?.() ?? [])]);
    const active = new Set<string>();
    for (const blob of this.tasks.keys()) {
      active.add(blob);
      active.add(`${blob}.incomplete`);
    }
    const now = Date.now();
    const isProtected = (g: CacheGroup) =>
      g.entries.some((e) => protectedPaths.has(path.resolve(e.path)) || protectedPaths.has(e.blob) || active.has(e.blob)) ||
      // a partial file another process (or Hub tool) is writing: locked, or written to within the last minute
      (g.partial && (now - g.lastUsed.getTime() < PARTIAL_BUSY_MS || g.entries.some((e) => this.lockedByOther(e.blob))));
    const candidates = this.store
      .groups()
      .filter((g) => !isProtected(g))
      .sort((a, b) => a.lastUsed.getTime() - b.lastUsed.getTime());
    for (const g of candidates) {
      if (total + need <= limit) break;
      const freed = this.store.remove(g);
      total -= freed;
      result.freedBytes += freed;
      result.evicted.push({ repo: g.repo, file: g.file, bytes: freed, lastUsed: g.lastUsed, partial: g.partial });
      this.log('evicted from the model cache', { repo: g.repo, file: g.file, bytes: freed, lastUsed: g.lastUsed.toISOString(), partial: g.partial });
    }
    result.totalBytes = total;
    if (total + need > limit) {
      throw new HubError(
        507,
        'cache_full',
        `the model cache cannot make room for ${formatBytes(need)}: it holds ${formatBytes(total)} of its ${formatBytes(limit)} limit (hub.cacheLimitGiB) in models in use or downloading`,
      );
    }
    return result;
  }

  private lockedByOther(incomplete: string): boolean {
    const m = /models--(.+?)--([^/\\]+)[/\\]blobs[/\\]([^/\\]+)\.incomplete$/.exec(incomplete);
    if (!m) return false;
    try {
      return checkSync(incomplete, { lockfilePath: this.store.lockPath(`${m[1]}/${m[2]}`, m[3]!), realpath: false, stale: LOCK_STALE_MS });
    } catch {
      return false;
    }
  }

  /** Before a download: the limit (evicting what can go) and the free disk space. */
  private async makeRoom(res: HubResolution, files: HubFile[]): Promise<void> {
    let need = 0;
    for (const f of files) {
      if (HubStore.size(this.store.blobPath(res.repo, f.etag)) === f.size) continue;
      if (this.tasks.has(this.store.blobPath(res.repo, f.etag))) continue;
      need += f.size - Math.max(0, Math.min(f.size, HubStore.size(this.store.incompletePath(res.repo, f.etag))));
    }
    if (need === 0) return;
    const limit = this.opts.limitBytes ?? 0;
    if (limit > 0 && res.totalBytes > limit) {
      throw new HubError(507, 'cache_full', `${res.repo}:${res.variant} needs ${formatBytes(res.totalBytes)}, more than the model cache's limit of ${formatBytes(limit)} (hub.cacheLimitGiB)`);
    }
    const inUse = files.flatMap((f) => [f.local, this.store.blobPath(res.repo, f.etag), this.store.incompletePath(res.repo, f.etag)]);
    await this.enforceLimit({ inUse, needBytes: need });
    try {
      const fs = statfsSync(this.store.root);
      const free = fs.bavail * fs.bsize;
      if (free < need) {
        throw new HubError(507, 'insufficient_storage', `${res.repo}:${res.variant} needs ${formatBytes(need)} more on disk; ${formatBytes(free)} is free in ${this.store.root}`);
      }
    } catch (err) {
      if (err instanceof HubError) throw err;
    }
  }
}

/** Drops expired entries once a memo grows past a few hundred. */
function prune(memo: Map<string, { at: number }>, ttl: number): void {
  if (memo.size < 256) return;
  const now = Date.now();
  for (const [k, v] of memo) if (now - v.at >= ttl) memo.delete(k);
}

