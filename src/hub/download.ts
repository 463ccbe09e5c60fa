/**
 * Downloading one blob: into `<blob>.incomplete`, resumed with a Range request from whatever that file holds
 * (left by us or by another Hub tool), retried on broken connections, checked (size, and the sha256 from the
 * Hub's LFS metadata, or the git blob id for small files), and renamed into place only when complete and right.
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { rename, rm, stat, writeFile } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { HubHttp, isNetworkError, networkError, type HubResponse } from './http.js';
import { HubError, formatBytes, isRetryableStatus, parseContentRange } from './protocol.js';

export interface BlobJob {
  /** The file's resolve address, pinned to the commit. */
  url: string;
  blob: string;
  incomplete: string;
  size: number;
  /** The content's sha256 (LFS files). */
  sha256?: string;
  /** The git blob id (small files that are not in LFS). */
  gitOid?: string;
  repo: string;
  revision: string;
  file: string;
}

export interface BlobDownloadOptions {
  /** Times a broken transfer is resumed before giving up (the partial file stays for the next try). */
  retries: number;
  /** First pause before a retry; doubled each time, at most 30 s. */
  retryDelayMs: number;
  /** Bytes on disk so far (including what was there before), called as data arrives. */
  onBytes: (received: number) => void;
  onPhase?: (phase: 'download' | 'verify') => void;
  log: (msg: string, fields?: Record<string, unknown>) => void;
  signal?: AbortSignal;
}

async function sizeOf(file: string): Promise<number> {
  try {
    return (await stat(file)).size;
  } catch {
    return -1;
  }
}

class Digests {
  readonly sha256?: Hash;
  readonly git?: Hash;
  constructor(job: BlobJob) {
    if (job.sha256) this.sha256 = createHash('sha256');
    if (job.gitOid) {
      this.git = createHash('sha1');
      this.git.update(`blob ${job.size}\0`);
    }
  }
  update(chunk: Buffer): void {
    this.sha256?.update(chunk);
    this.git?.update(chunk);
  }
}

async function hashFile(file: string, digests: Digests): Promise<void> {
  if (!digests.sha256 && !digests.git) return;
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) digests.update(chunk);
}

/** Downloads `job` (see the module comment). Throws HubError: download_interrupted, download_corrupt, or the Hub's answer. */
export async function downloadBlob(http: HubHttp, job: BlobJob, opts: BlobDownloadOptions): Promise<void> {
  const label = `${job.repo}/${job.file}`;
  let failures = 0;
  const retryOrThrow = async (err: HubError): Promise<void> => {
    if (opts.signal?.aborted) throw new HubError(503, 'download_aborted', `the download of ${label} was stopped`);
    failures++;
    if (failures > opts.retries) throw err;
    const delay = Math.min(opts.retryDelayMs * 2 ** (failures - 1), 30_000);
    opts.log('download interrupted, resuming', { file: label, attempt: failures, of: opts.retries, delayMs: delay, reason: err.message });
    await sleep(delay);
  };

  for (;;) {
    let start = await sizeOf(job.incomplete);
    if (start > job.size) {
      opts.log('partial download is larger than the file, starting over', { file: label, partialBytes: start, size: job.size });
      await rm(job.incomplete, { force: true });
      start = -1;
    }
    if (start < 0) {
      await writeFile(job.incomplete, '');
      start = 0;
    }
    let digests = new Digests(job);
    if (start > 0) {
      opts.onPhase?.('verify');
      await hashFile(job.incomplete, digests);
    }
    opts.onPhase?.('download');
    opts.onBytes(start);

    if (start < job.size) {
      let res: HubResponse;
      try {
        res = await http.send(job.url, {
          headers: { 'accept-encoding': 'identity', ...(start > 0 ? { range: `bytes=${start}-` } : {}) },
          ...(opts.signal ? { signal: opts.signal } : {}),
        });
      } catch (err) {
        await retryOrThrow(networkError(err, http.endpoint, `downloading ${label}`, http.service));
        continue;
      }
      if (res.status === 416 && start > 0) {
        await res.body.dump();
        opts.log('the Hub refused to resume, starting over', { file: label, partialBytes: start });
        await rm(job.incomplete, { force: true });
        await retryOrThrow(new HubError(502, 'hub_error', `the Hub refused to resume ${label}`));
        continue;
      }
      if (res.status !== 200 && res.status !== 206) {
        const err = await http.errorFrom(res, { repo: job.repo, revision: job.revision, file: job.file });
        if (!isRetryableStatus(res.status)) throw err;
        await retryOrThrow(err);
        continue;
      }
      let flags = 'a';
      if (res.status === 206) {
        const range = parseContentRange(header(res, 'content-range'));
        if (!range || range.start !== start || (range.size !== undefined && range.size !== job.size)) {
          await res.body.dump();
          await rm(job.incomplete, { force: true });
          await retryOrThrow(new HubError(502, 'hub_error', `the Hub answered ${label} with the wrong range (${header(res, 'content-range') ?? 'none'}, asked from ${start})`));
          continue;
        }
        if (start > 0) opts.log('resuming download', { file: label, fromBytes: start, size: job.size });
      } else {
        if (start > 0) opts.log('the Hub ignored the range, downloading from the start', { file: label, partialBytes: start });
        start = 0;
        flags = 'w';
        digests = new Digests(job);
        opts.onBytes(0);
      }
      let received = start;
      try {
        await pipeline(
          res.body,
          async function* (source: AsyncIterable<Buffer>) {
            for await (const chunk of source) {
              received += chunk.length;
              if (received > job.size) throw new HubError(502, 'download_corrupt', `${label}: the Hub sent more than the ${job.size} bytes it announced`);
              digests.update(chunk);
              opts.onBytes(received);
              yield chunk;
            }
          },
          createWriteStream(job.incomplete, { flags }),
        );
      } catch (err) {
        if (err instanceof HubError && err.code === 'download_corrupt') {
          await rm(job.incomplete, { force: true });
          throw err;
        }
        if (!isNetworkError(err) && !opts.signal?.aborted) throw err;
        const kept = Math.max(0, await sizeOf(job.incomplete));
        await retryOrThrow(
          new HubError(
            502,
            'download_interrupted',
            `the download of ${label} broke off after ${formatBytes(kept)} of ${formatBytes(job.size)} (${(err as Error).message}); ` +
              'the partial file is kept and the next request resumes it',
          ),
        );
        continue;
      }
    }

    const got = await sizeOf(job.incomplete);
    if (got < job.size) {
      await retryOrThrow(
        new HubError(502, 'download_interrupted', `the download of ${label} ended early at ${formatBytes(got)} of ${formatBytes(job.size)}; the partial file is kept and the next request resumes it`),
      );
      continue;
    }
    opts.onPhase?.('verify');
    const mismatch = verify(job, digests, got);
    if (mismatch) {
      await rm(job.incomplete, { force: true });
      throw new HubError(502, 'download_corrupt', `${label} is corrupt: ${mismatch}; the download was deleted, the next request downloads it again`);
    }
    await rename(job.incomplete, job.blob);
    return;
  }
}

function header(res: HubResponse, name: string): string | undefined {
  const v = res.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** Why the downloaded bytes are not the file, or undefined when they are. */
function verify(job: BlobJob, digests: Digests, size: number): string | undefined {
  if (size !== job.size) return `size ${size} bytes, expected ${job.size}`;
  if (digests.sha256) {
    const got = digests.sha256.digest('hex');
    if (got !== job.sha256!.toLowerCase()) return `sha256 mismatch (expected ${job.sha256}, got ${got})`;
  }
  if (digests.git) {
    const got = digests.git.digest('hex');
    if (got !== job.gitOid!.toLowerCase()) return `git blob id mismatch (expected ${job.gitOid}, got ${got})`;
  }
  return undefined;
}
