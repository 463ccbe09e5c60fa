/**
 * The Hugging Face Hub's HTTP protocol, the pure parts: URLs, response headers, the tree listing's entries,
 * and the errors a user can act on. The IO is in hub-http.ts.
 *
 * What the Hub answers (and what huggingface_hub reads, which this follows so the caches stay compatible):
 *   - `GET /api/models/<owner>/<repo>/tree/<revision>?recursive=true`: a JSON array of
 *     `{type: 'file'|'directory', path, size, oid, lfs?: {oid: <sha256>, size}}`, paginated with
 *     `Link: <next url>; rel="next"`.
 *   - `HEAD /<owner>/<repo>/resolve/<revision>/<path>`: for an LFS file a 302 to the CDN carrying
 *     `X-Repo-Commit` (the commit the revision points to), `X-Linked-Etag` (the sha256) and `X-Linked-Size`;
 *     for a small (git) file a 200 with `ETag` (the git blob id) and `Content-Length`. The blob's name in the
 *     cache is that ETag without quotes: the sha256 for LFS files.
 *   - errors carry `X-Error-Code` (RepoNotFound, RevisionNotFound, EntryNotFound, GatedRepo) and
 *     `X-Error-Message`; a repo that does not exist answers 401 to a request without a token (so private repos
 *     do not show), 404 with one.
 */
import { ClientError } from '../models/errors.js';

export const DEFAULT_HUB_ENDPOINT = 'https://huggingface.co';

/** An error from the Hub or the download, with the status and code the proxy answers its client with. */
export class HubError extends ClientError {
  constructor(
    status: number,
    code: string,
    message: string,
    /** The Hub's own HTTP status, when the error came from an answer of the Hub. */
    readonly hubStatus?: number,
  ) {
    super(status, code, message);
    this.name = 'HubError';
  }
}

function base(endpoint: string): string {
  return endpoint.replace(/\/+$/, '');
}

function encodePath(file: string): string {
  return file.split('/').map(encodeURIComponent).join('/');
}

/** The repo's page on the Hub (for messages). */
export function repoPageUrl(endpoint: string, repo: string): string {
  return `${base(endpoint)}/${repo}`;
}

/** The recursive file listing of a revision. */
export function treeUrl(endpoint: string, repo: string, revision: string): string {
  return `${base(endpoint)}/api/models/${repo}/tree/${encodeURIComponent(revision)}?recursive=true`;
}

/** The revision's metadata (`{sha, ...}`): where the commit comes from when HEAD does not tell. */
export function revisionUrl(endpoint: string, repo: string, revision: string): string {
  return `${base(endpoint)}/api/models/${repo}/revision/${encodeURIComponent(revision)}`;
}

/** A file's download address at a revision (a branch or a commit). */
export function resolveUrl(endpoint: string, repo: string, revision: string, file: string): string {
  return `${base(endpoint)}/${repo}/resolve/${encodeURIComponent(revision)}/${encodePath(file)}`;
}

/** The `rel="next"` address of a `Link` header, resolved against `current`. */
export function parseNextLink(header: string | string[] | undefined, current: string): string | undefined {
  const text = Array.isArray(header) ? header.join(',') : header;
  if (!text) return undefined;
  for (const part of text.split(/,(?=\s*<)/)) {
    const m = /^\s*<([^>]*)>\s*;(.*)$/.exec(part);
    const rel = m ? /(?:^|;)\s*rel\s*=\s*(?:"([^"]*)"|([^;\s]*))/i.exec(m[2]!) : null;
    if (m && rel && (rel[1] ?? rel[2] ?? '').toLowerCase().split(/\s+/).includes('next')) {
      try {
        return new URL(m[1]!, current).toString();
      } catch {
        return undefined;
      }
    }
  }
  return undefined;
}

/** An ETag without its weak marker and quotes (what huggingface_hub names blobs by). */
export function normalizeEtag(etag: string | undefined): string | undefined {
  if (!etag) return undefined;
  const e = etag.trim().replace(/^W\//, '').replace(/^"(.*)"$/, '$1');
  return e === '' ? undefined : e;
}

export function isSha256(s: string | undefined): s is string {
  return s !== undefined && /^[0-9a-f]{64}$/i.test(s);
}

export function isCommitHash(s: string): boolean {
  return /^[0-9a-f]{40}$/i.test(s);
}

/** `bytes 100-199/1000` -> {start: 100, end: 199, size: 1000} (size undefined for `*`). */
export function parseContentRange(header: string | undefined): { start: number; end: number; size?: number } | undefined {
  const m = header ? /^\s*bytes\s+(\d+)-(\d+)\/(\d+|\*)\s*$/i.exec(header) : null;
  if (!m) return undefined;
  const start = Number(m[1]);
  const end = Number(m[2]);
  if (end < start) return undefined;
  return { start, end, ...(m[3] !== '*' ? { size: Number(m[3]) } : {}) };
}

export interface HubTreeEntry {
  type: 'file' | 'directory';
  path: string;
  size: number;
  /** The git object id (a blob's sha1 for files). */
  oid: string;
  /** Present for LFS files: the sha256 of the content and its size. */
  lfs?: { oid: string; size: number };
}

/** One page of the tree listing, checked (entries that are not files or directories are dropped). */
export function parseTreePage(json: unknown): HubTreeEntry[] {
  if (!Array.isArray(json)) throw new Error('the tree listing is not a JSON array');
  const out: HubTreeEntry[] = [];
  for (const e of json as unknown[]) {
    if (typeof e !== 'object' || e === null) continue;
    const r = e as Record<string, unknown>;
    if ((r.type !== 'file' && r.type !== 'directory') || typeof r.path !== 'string') continue;
    if (r.path.split('/').some((seg) => seg === '' || seg === '.' || seg === '..')) continue;
    const lfs = r.lfs as Record<string, unknown> | undefined;
    out.push({
      type: r.type,
      path: r.path,
      size: typeof r.size === 'number' ? r.size : 0,
      oid: typeof r.oid === 'string' ? r.oid : '',
      ...(lfs && typeof lfs.oid === 'string' ? { lfs: { oid: lfs.oid, size: typeof lfs.size === 'number' ? lfs.size : Number(r.size ?? 0) } } : {}),
    });
  }
  return out;
}

export interface HubErrorContext {
  endpoint: string;
  repo: string;
  revision: string;
  /** The file asked for, when the request was about one. */
  file?: string;
  hasToken: boolean;
  /** The `X-Error-Code` and `X-Error-Message` headers, and the body's `error` text. */
  errorCode?: string;
  errorMessage?: string;
}

/** The error to answer with for a Hub reply of `status` (not 2xx/3xx). */
export function hubHttpError(status: number, ctx: HubErrorContext): HubError {
  const page = repoPageUrl(ctx.endpoint, ctx.repo);
  const what = ctx.file ? `${ctx.file} in ${ctx.repo}@${ctx.revision}` : `${ctx.repo}@${ctx.revision}`;
  const hub = ctx.errorMessage ? ` (the Hub said: ${ctx.errorMessage})` : '';
  const code = ctx.errorCode;
  if (code === 'RepoNotFound' || (status === 404 && !ctx.file && code !== 'RevisionNotFound' && code !== 'EntryNotFound')) {
    const hint = ctx.hasToken ? '' : '; if it is private, set HF_TOKEN (or hub.token) to a token that can read it';
    return new HubError(404, 'model_not_found', `Hugging Face repo ${ctx.repo} was not found on ${base(ctx.endpoint)}${hint}`, status);
  }
  if (code === 'RevisionNotFound') {
    return new HubError(404, 'model_not_found', `Hugging Face repo ${ctx.repo} has no revision "${ctx.revision}"`, status);
  }
  if (code === 'EntryNotFound' || status === 404) {
    return new HubError(404, 'model_not_found', `file ${what} was not found on the Hub${hub}`, status);
  }
  if (status === 401 && !ctx.hasToken) {
    return new HubError(
      401,
      'hub_token_required',
      `Hugging Face repo ${ctx.repo} is gated or private: accept its terms at ${page} and set HF_TOKEN (or hub.token) to a token of that account${hub}`,
      status,
    );
  }
  if (status === 401) {
    return new HubError(401, 'hub_token_invalid', `the Hugging Face token was not accepted for ${ctx.repo} (invalid or expired?); check HF_TOKEN / hub.token${hub}`, status);
  }
  if (status === 403) {
    const gated = code === 'GatedRepo' ? ' is gated and' : '';
    return new HubError(
      403,
      'hub_access_denied',
      `access to Hugging Face repo ${ctx.repo} was refused: the repo${gated} needs access granted to the token's account (request it at ${page}), or the token lacks read permission${hub}`,
      status,
    );
  }
  if (status === 429) return new HubError(503, 'hub_rate_limited', `the Hugging Face Hub is rate-limiting requests for ${what}; try again later${hub}`, status);
  if (status === 416) return new HubError(502, 'hub_error', `the Hub refused the byte range asked for ${what}${hub}`, status);
  return new HubError(502, 'hub_error', `the Hugging Face Hub answered ${status} for ${what}${hub}`, status);
}

/** Transient answers worth retrying (the request or the download). */
export function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

/** "1.5 GiB", "300.0 MiB", "12 KiB". */
export function formatBytes(n: number): string {
  if (n >= GiB) return `${(n / GiB).toFixed(2)} GiB`;
  if (n >= MiB) return `${(n / MiB).toFixed(1)} MiB`;
  if (n >= 1024) return `${Math.round(n / 1024)} KiB`;
  return `${n} B`;
}

/** Waits for `p` (a download other requests share), or rejects when `signal` aborts (p goes on). */
export function waitFor<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return p;
  signal.throwIfAborted();
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason instanceof Error ? signal.reason : new HubError(499, 'client_gone', 'the request was aborted'));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}
