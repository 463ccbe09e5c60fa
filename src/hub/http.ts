/**
 * Talking to the Hub over HTTP (undici): the paginated tree listing, a file's metadata (HEAD on its resolve
 * address), byte ranges, and opening a download. Redirects are followed by hand so that the token goes only to
 * the Hub's own origin, never to the CDN a file redirects to.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { Agent, request } from 'undici';
import {
  HubError, hubHttpError, isCommitHash, normalizeEtag, parseNextLink, parseTreePage, resolveUrl, revisionUrl, treeUrl,
  type HubTreeEntry,
} from './protocol.js';
import { PACKAGE_VERSION } from '../util/version.js';

export interface HubHttpOptions {
  endpoint: string;
  token?: string;
  /** Milliseconds to establish a connection. */
  connectTimeoutMs: number;
  /** Milliseconds without a byte (headers or body) before a request is abandoned. */
  readTimeoutMs: number;
  /** What the endpoint is, for messages; default "the Hugging Face Hub". */
  service?: string;
}

export interface HubResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Awaited<ReturnType<typeof request>>['body'];
  /** The address that answered (after redirects). */
  url: string;
}

/** What a HEAD on a file's resolve address tells. */
export interface HubFileMeta {
  /** The commit the revision points to (X-Repo-Commit). */
  commit?: string;
  /** X-Linked-Etag (LFS: the sha256) or ETag, unquoted: the blob's name in the cache. */
  etag?: string;
  /** X-Linked-Size or Content-Length. */
  size?: number;
}

const HF_SERVICE = 'the Hugging Face Hub';
const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const MAX_REDIRECTS = 10;
const MAX_PAGES = 10_000;

function header(h: IncomingHttpHeaders, name: string): string | undefined {
  const v = h[name];
  return Array.isArray(v) ? v[0] : v;
}

/** A failure to talk to the Hub at all (connection, timeout, reset), as opposed to an answer. */
export function isNetworkError(err: unknown): boolean {
  if (err instanceof HubError) return err.code === 'hub_unreachable' || err.code === 'hub_timeout';
  const e = err as { code?: string; name?: string };
  return typeof e?.code === 'string' && (e.code.startsWith('UND_ERR') || /^E[A-Z]+$/.test(e.code) || e.code === 'ERR_STREAM_PREMATURE_CLOSE');
}

/** The HubError for a network failure while doing `what`. */
export function networkError(err: unknown, endpoint: string, what: string, service = HF_SERVICE): HubError {
  if (err instanceof HubError) return err;
  const e = err as { code?: string; message?: string };
  const timeout = e.code === 'UND_ERR_CONNECT_TIMEOUT' || e.code === 'UND_ERR_HEADERS_TIMEOUT' || e.code === 'UND_ERR_BODY_TIMEOUT';
  const why = e.code ? `${e.code}: ${e.message ?? ''}` : (e.message ?? String(err));
  return timeout
    ? new HubError(504, 'hub_timeout', `${service} (${endpoint}) did not answer in time while ${what} (${why})`)
    : new HubError(502, 'hub_unreachable', `cannot reach ${service} at ${endpoint} while ${what} (${why})`);
}

export class HubHttp {
  readonly endpoint: string;
  private readonly origin: string;
  private readonly dispatcher: Agent;

  constructor(private readonly opts: HubHttpOptions) {
    this.endpoint = opts.endpoint.replace(/\/+$/, '');
    this.origin = new URL(this.endpoint).origin;
    this.dispatcher = new Agent({
      connect: { timeout: opts.connectTimeoutMs },
      headersTimeout: opts.readTimeoutMs,
      bodyTimeout: opts.readTimeoutMs,
    });
  }

  /** What the endpoint is, for messages. */
  get service(): string {
    return this.opts.service ?? HF_SERVICE;
  }

  get hasToken(): boolean {
    return !!this.opts.token;
  }

  async close(): Promise<void> {
    await this.dispatcher.close();
  }

  /**
   * One request, following redirects. The token is sent only to the Hub's origin. With `stopAtCrossOrigin`, a
   * redirect to another origin (the CDN) is returned as is: its headers are the file's metadata.
   */
  async send(
    url: string,
    init: { method?: 'GET' | 'HEAD'; headers?: Record<string, string>; stopAtCrossOrigin?: boolean; signal?: AbortSignal } = {},
  ): Promise<HubResponse> {
    let current = new URL(url);
    for (let hop = 0; ; hop++) {
      const headers: Record<string, string> = { 'user-agent': `llama-smart-proxy/${PACKAGE_VERSION}`, ...init.headers };
      if (this.opts.token && current.origin === this.origin) headers.authorization = `Bearer ${this.opts.token}`;
      const res = await request(current, { method: init.method ?? 'GET', headers, dispatcher: this.dispatcher, signal: init.signal ?? null });
      const location = header(res.headers, 'location');
      if (!REDIRECTS.has(res.statusCode) || !location) return { status: res.statusCode, headers: res.headers, body: res.body, url: current.toString() };
      const next = new URL(location, current);
      if (init.stopAtCrossOrigin && next.origin !== current.origin) {
        return { status: res.statusCode, headers: res.headers, body: res.body, url: current.toString() };
      }
      await res.body.dump();
      if (hop >= MAX_REDIRECTS) throw new HubError(502, 'hub_error', `too many redirects from ${url}`);
      current = next;
    }
  }

  /** The HubError for a non-success answer, with the Hub's X-Error-Code / X-Error-Message / body text. */
  async errorFrom(res: HubResponse, ctx: { repo: string; revision: string; file?: string }): Promise<HubError> {
    let text = '';
    try {
      text = (await res.body.text()).slice(0, 2000);
    } catch {
      /* the body does not matter */
    }
    let bodyMessage: string | undefined;
    try {
      const j = JSON.parse(text) as { error?: unknown };
      if (typeof j.error === 'string') bodyMessage = j.error;
    } catch {
      bodyMessage = text.trim() && text.length < 300 && !text.includes('<') ? text.trim() : undefined;
    }
    const errorCode = header(res.headers, 'x-error-code');
    const errorMessage = header(res.headers, 'x-error-message') ?? bodyMessage;
    return hubHttpError(res.status, {
      endpoint: this.endpoint,
      repo: ctx.repo,
      revision: ctx.revision,
      ...(ctx.file ? { file: ctx.file } : {}),
      hasToken: this.hasToken,
      ...(errorCode ? { errorCode } : {}),
      ...(errorMessage ? { errorMessage } : {}),
    });
  }

  /** Every file and folder of `repo` at `revision` (all pages of the listing). */
  async listTree(repo: string, revision: string): Promise<HubTreeEntry[]> {
    const out: HubTreeEntry[] = [];
    let url: string | undefined = treeUrl(this.endpoint, repo, revision);
    for (let page = 0; url; page++) {
      if (page >= MAX_PAGES) throw new HubError(502, 'hub_error', `the file listing of ${repo} has more than ${MAX_PAGES} pages`);
      let res: HubResponse;
      try {
        res = await this.send(url, { headers: { accept: 'application/json' } });
      } catch (err) {
        throw networkError(err, this.endpoint, `listing the files of ${repo}`);
      }
      if (res.status !== 200) throw await this.errorFrom(res, { repo, revision });
      let json: unknown;
      try {
        json = await res.body.json();
        out.push(...parseTreePage(json));
      } catch (err) {
        throw err instanceof HubError ? err : new HubError(502, 'hub_error', `the file listing of ${repo} could not be read: ${(err as Error).message}`);
      }
      const next = parseNextLink(res.headers.link, url);
      url = next && new URL(next).origin === this.origin ? next : undefined;
    }
    return out;
  }

  /** HEAD on a file's resolve address: the commit, the blob's name and its size. */
  async fileMeta(repo: string, revision: string, file: string): Promise<HubFileMeta> {
    let res: HubResponse;
    try {
      res = await this.send(resolveUrl(this.endpoint, repo, revision, file), {
        method: 'HEAD',
        stopAtCrossOrigin: true,
        headers: { 'accept-encoding': 'identity' },
      });
    } catch (err) {
      throw networkError(err, this.endpoint, `asking for ${file} of ${repo}`);
    }
    if (res.status >= 400) throw await this.errorFrom(res, { repo, revision, file });
    await res.body.dump();
    const h = res.headers;
    const commit = header(h, 'x-repo-commit');
    const etag = normalizeEtag(header(h, 'x-linked-etag') ?? header(h, 'etag'));
    const size = header(h, 'x-linked-size') ?? (res.status === 200 ? header(h, 'content-length') : undefined);
    return {
      ...(commit ? { commit } : {}),
      ...(etag ? { etag } : {}),
      ...(size !== undefined && /^\d+$/.test(size) ? { size: Number(size) } : {}),
    };
  }

  /** The commit `revision` points to, from the revision API (for mirrors whose HEAD answers lack X-Repo-Commit). */
  async commitOf(repo: string, revision: string): Promise<string> {
    if (isCommitHash(revision)) return revision.toLowerCase();
    let res: HubResponse;
    try {
      res = await this.send(revisionUrl(this.endpoint, repo, revision), { headers: { accept: 'application/json' } });
    } catch (err) {
      throw networkError(err, this.endpoint, `asking for the commit of ${repo}@${revision}`);
    }
    if (res.status !== 200) throw await this.errorFrom(res, { repo, revision });
    const j = (await res.body.json().catch(() => ({}))) as { sha?: unknown };
    if (typeof j.sha !== 'string' || !isCommitHash(j.sha)) throw new HubError(502, 'hub_error', `the Hub did not tell the commit of ${repo}@${revision}`);
    return j.sha.toLowerCase();
  }

  /** `length` bytes at `position` of a file (a range request; a server that ignores ranges is read and cut). */
  async readRange(url: string, position: number, length: number, ctx: { repo: string; revision: string; file: string }): Promise<Buffer> {
    let res: HubResponse;
    try {
      res = await this.send(url, { headers: { range: `bytes=${position}-${position + length - 1}`, 'accept-encoding': 'identity' } });
    } catch (err) {
      throw networkError(err, this.endpoint, `reading the header of ${ctx.file}`);
    }
    if (res.status !== 206 && res.status !== 200) throw await this.errorFrom(res, ctx);
    let skip = res.status === 200 ? position : 0;
    const chunks: Buffer[] = [];
    let have = 0;
    try {
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        let c = chunk;
        if (skip > 0) {
          const n = Math.min(skip, c.length);
          skip -= n;
          c = c.subarray(n);
        }
        if (c.length === 0) continue;
        chunks.push(c.subarray(0, length - have));
        have += Math.min(c.length, length - have);
        if (have >= length) break;
      }
    } catch (err) {
      throw networkError(err, this.endpoint, `reading the header of ${ctx.file}`);
    } finally {
      res.body.destroy();
    }
    return Buffer.concat(chunks, have);
  }
}
