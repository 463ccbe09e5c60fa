/**
 * A local imitation of the Hugging Face Hub for tests: two HTTP servers, the Hub (API and resolve addresses) and
 * a CDN on another origin that the Hub redirects LFS files to, as huggingface.co does.
 *
 * Hub:
 *   GET  /api/models/<o>/<r>/tree/<rev>?recursive=true[&cursor=N]  JSON entries, `pageSize` per page, Link rel="next"
 *   GET  /api/models/<o>/<r>/revision/<rev>                        {id, sha}
 *   HEAD|GET /<o>/<r>/resolve/<rev>/<path>   LFS: 302 to the CDN with X-Repo-Commit, X-Linked-Etag (sha256),
 *                                            X-Linked-Size; small files: 200 with ETag (git blob id)
 *   gated or private repos: 401 without a token, 403 with a wrong one (X-Error-Code: GatedRepo); a missing repo:
 *   401 without a token, 404 with one (X-Error-Code: RepoNotFound); a missing file: 404 EntryNotFound.
 * CDN:
 *   GET|HEAD /blobs/<sha256>   Accept-Ranges, ETag, Content-Length; Range -> 206 + Content-Range (416 past the end)
 *
 * Every request is logged (server, method, path, Range, Authorization, status, body bytes sent). Failures can be
 * injected: cut the connection after N bytes, serve corrupt bytes, drop the X-Repo-Commit header.
 */
import { createHash } from 'node:crypto';
import { createReadStream, mkdtempSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { HubError, ModelHub, type ModelHubOptions } from '../../src/models/index.js';
import http, { type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeFileInput {
  path: string;
  /** Content in memory, or a file on disk (`file`) with an advertised sha256 (for large sparse files). */
  data?: Buffer;
  file?: string;
  sha256?: string;
  /** Stored in LFS (redirected to the CDN); default: .gguf files. */
  lfs?: boolean;
}

interface FakeFile {
  path: string;
  size: number;
  sha256: string;
  gitOid: string;
  lfs: boolean;
  data?: Buffer;
  file?: string;
}

export interface FakeRepoInput {
  files: FakeFileInput[];
  commit?: string;
  /** Needs a token (gated or private). */
  gated?: boolean;
}

interface FakeRepo {
  files: FakeFile[];
  commit: string;
  gated: boolean;
}

export interface LoggedRequest {
  server: 'hub' | 'cdn';
  method: string;
  path: string;
  range?: string;
  auth?: string;
  status: number;
  /** Body bytes written. */
  bytes: number;
}

export interface FakeHubOptions {
  /** Entries per page of the tree listing (default 3, so that pagination is exercised). */
  pageSize?: number;
  /** The token that opens gated repos. */
  token?: string;
  /** Answer HEAD without X-Repo-Commit (like some mirrors). */
  noCommitHeader?: boolean;
}

function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

function gitOid(b: Buffer): string {
  return createHash('sha1').update(`blob ${b.length}\0`).update(b).digest('hex');
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

export class FakeHub {
  readonly log: LoggedRequest[] = [];
  private readonly repos = new Map<string, FakeRepo>();
  private readonly cuts = new Map<string, { afterBytes: number; times: number }>();
  private readonly corrupt = new Set<string>();
  private hubServer!: Server;
  private cdnServer!: Server;
  hubUrl = '';
  cdnUrl = '';
  /** Milliseconds the CDN waits before each body (to keep downloads in flight in concurrency tests). */
  cdnDelayMs = 0;
  /** The CDN answers every GET with the whole file (200), as a server without range support would. */
  ignoreRange = false;

  constructor(private readonly opts: FakeHubOptions = {}) {}

  static async start(opts: FakeHubOptions = {}): Promise<FakeHub> {
    const hub = new FakeHub(opts);
    hub.hubServer = http.createServer((req, res) => hub.onHub(req, res));
    hub.cdnServer = http.createServer((req, res) => hub.onCdn(req, res));
    hub.hubUrl = await listen(hub.hubServer);
    hub.cdnUrl = await listen(hub.cdnServer);
    return hub;
  }

  async close(): Promise<void> {
    for (const s of [this.hubServer, this.cdnServer]) {
      s.closeAllConnections();
      await new Promise<void>((resolve) => s.close(() => resolve()));
    }
  }

  addRepo(name: string, input: FakeRepoInput): void {
    const files = input.files.map((f): FakeFile => {
      const data = f.data;
      const size = data ? data.length : statSync(f.file!).size;
      const sha = f.sha256 ?? sha256(data!);
      return {
        path: f.path,
        size,
        sha256: sha,
        gitOid: data ? gitOid(data) : createHash('sha1').update(sha).digest('hex'),
        lfs: f.lfs ?? f.path.endsWith('.gguf'),
        ...(data ? { data } : { file: f.file! }),
      };
    });
    this.repos.set(name, { files, commit: input.commit ?? createHash('sha1').update(name).digest('hex'), gated: input.gated ?? false });
  }

  /** The sha256 (CDN name) of a repo file. */
  sha(repo: string, path: string): string {
    return this.file(repo, path).sha256;
  }

  file(repo: string, path: string): FakeFile {
    const f = this.repos.get(repo)?.files.find((x) => x.path === path);
    if (!f) throw new Error(`no ${repo}/${path}`);
    return f;
  }

  /** The next `times` CDN downloads of the blob are cut after `afterBytes` body bytes. */
  cutAfter(sha: string, afterBytes: number, times = 1): void {
    this.cuts.set(sha, { afterBytes, times });
  }

  /** The CDN serves the blob with one byte changed (its advertised sha256 stays). */
  corruptBlob(sha: string): void {
    this.corrupt.add(sha);
  }

  requests(filter: Partial<Pick<LoggedRequest, 'server' | 'method'>> & { pathIncludes?: string } = {}): LoggedRequest[] {
    return this.log.filter(
      (r) => (!filter.server || r.server === filter.server) && (!filter.method || r.method === filter.method) && (!filter.pathIncludes || r.path.includes(filter.pathIncludes)),
    );
  }

  private record(res: ServerResponse, entry: Omit<LoggedRequest, 'status' | 'bytes'>): { add(n: number): void } {
    const logged: LoggedRequest = { ...entry, status: 0, bytes: 0 };
    this.log.push(logged);
    res.on('close', () => {
      logged.status = res.statusCode;
    });
    return { add: (n) => { logged.bytes += n; } };
  }

  private access(repo: FakeRepo | undefined, auth: string | undefined, res: ServerResponse, name: string): boolean {
    const token = auth?.replace(/^Bearer\s+/i, '');
    if (!repo) {
      res.writeHead(token ? 404 : 401, { 'x-error-code': 'RepoNotFound', 'x-error-message': 'Repository not found', 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: 'Repository not found' }));
      return false;
    }
    if (repo.gated && token !== this.opts.token) {
      const msg = token ? `Access to model ${name} is restricted and you are not in the authorized list.` : `Access to model ${name} is restricted. You must have access to it and be authenticated to access it.`;
      res.writeHead(token ? 403 : 401, { 'x-error-code': 'GatedRepo', 'x-error-message': msg, 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: msg }));
      return false;
    }
    return true;
  }

  private onHub(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', this.hubUrl);
    const auth = req.headers.authorization;
    this.record(res, { server: 'hub', method: req.method ?? 'GET', path: url.pathname + url.search, ...(req.headers.range ? { range: req.headers.range } : {}), ...(auth ? { auth } : {}) });
    const tree = /^\/api\/models\/([^/]+\/[^/]+)\/tree\/([^/]+)$/.exec(url.pathname);
    const revision = /^\/api\/models\/([^/]+\/[^/]+)\/revision\/([^/]+)$/.exec(url.pathname);
    const resolve = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(url.pathname);
    const name = (tree ?? revision ?? resolve)?.[1];
    if (!name) {
      res.writeHead(404).end();
      return;
    }
    const repo = this.repos.get(name);
    if (!this.access(repo, auth, res, name)) return;
    const rev = decodeURIComponent((tree ?? revision ?? resolve)![2]!);
    if (rev !== 'main' && rev !== repo!.commit) {
      res.writeHead(404, { 'x-error-code': 'RevisionNotFound', 'x-error-message': `Invalid rev id: ${rev}` }).end();
      return;
    }
    if (revision) {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ id: name, sha: repo!.commit }));
      return;
    }
    if (tree) {
      const entries: unknown[] = [];
      const dirs = new Set<string>();
      for (const f of repo!.files) {
        const parts = f.path.split('/');
        for (let i = 1; i < parts.length; i++) {
          const d = parts.slice(0, i).join('/');
          if (!dirs.has(d)) {
            dirs.add(d);
            entries.push({ type: 'directory', oid: createHash('sha1').update(d).digest('hex'), size: 0, path: d });
          }
        }
        entries.push({ type: 'file', oid: f.gitOid, size: f.size, path: f.path, ...(f.lfs ? { lfs: { oid: f.sha256, size: f.size, pointerSize: 134 } } : {}) });
      }
      const size = this.opts.pageSize ?? 3;
      const cursor = Number(url.searchParams.get('cursor') ?? 0);
      const page = entries.slice(cursor, cursor + size);
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (cursor + size < entries.length) {
        const next = new URL(url);
        next.searchParams.set('cursor', String(cursor + size));
        headers.link = `<${next.toString()}>; rel="next"`;
      }
      res.writeHead(200, headers).end(JSON.stringify(page));
      return;
    }
    const path = decodeURIComponent(resolve![3]!);
    const file = repo!.files.find((f) => f.path === path);
    if (!file) {
      res.writeHead(404, { 'x-error-code': 'EntryNotFound', 'x-error-message': `${path} does not exist on "${rev}"` }).end();
      return;
    }
    const common: Record<string, string> = this.opts.noCommitHeader ? {} : { 'x-repo-commit': repo!.commit };
    if (file.lfs) {
      res.writeHead(302, {
        ...common,
        location: `${this.cdnUrl}/blobs/${file.sha256}?name=${encodeURIComponent(path)}`,
        'x-linked-etag': `"${file.sha256}"`,
        'x-linked-size': String(file.size),
        etag: `"${file.gitOid}"`,
        'content-length': '0',
      });
      res.end();
      return;
    }
    res.writeHead(200, { ...common, etag: `"${file.gitOid}"`, 'content-length': String(file.size), 'accept-ranges': 'bytes' });
    if (req.method === 'HEAD') res.end();
    else res.end(file.data);
  }

  private onCdn(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', this.cdnUrl);
    const auth = req.headers.authorization;
    const rec = this.record(res, { server: 'cdn', method: req.method ?? 'GET', path: url.pathname, ...(req.headers.range ? { range: req.headers.range } : {}), ...(auth ? { auth } : {}) });
    const sha = /^\/blobs\/([0-9a-f]{64})$/.exec(url.pathname)?.[1];
    const file = sha ? [...this.repos.values()].flatMap((r) => r.files).find((f) => f.sha256 === sha) : undefined;
    if (!file) {
      res.writeHead(404).end();
      return;
    }
    let start = 0;
    let end = file.size - 1;
    let status = 200;
    const range = req.headers.range && !this.ignoreRange ? /^bytes=(\d+)-(\d*)$/.exec(req.headers.range) : null;
    if (range) {
      start = Number(range[1]);
      end = range[2] ? Math.min(Number(range[2]), file.size - 1) : file.size - 1;
      if (start >= file.size || end < start) {
        res.writeHead(416, { 'content-range': `bytes */${file.size}` }).end();
        return;
      }
      status = 206;
    }
    const headers: Record<string, string> = {
      'accept-ranges': 'bytes',
      etag: `"${file.sha256}"`,
      'content-length': String(end - start + 1),
      'content-type': 'application/octet-stream',
      ...(status === 206 ? { 'content-range': `bytes ${start}-${end}/${file.size}` } : {}),
    };
    res.writeHead(status, headers);
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    const cut = this.cuts.get(file.sha256);
    let limit = Infinity;
    if (cut && cut.times > 0) {
      cut.times--;
      limit = cut.afterBytes;
    }
    const send = () => {
      if (file.data) {
        let body = file.data.subarray(start, end + 1);
        if (this.corrupt.has(file.sha256)) {
          body = Buffer.from(body);
          const i = Math.floor(body.length / 2);
          body[i] = body[i]! ^ 0xff;
        }
        if (limit < body.length) {
          rec.add(limit);
          res.write(body.subarray(0, limit), () => res.socket?.destroy());
          return;
        }
        rec.add(body.length);
        res.end(body);
        return;
      }
      const stream = createReadStream(file.file!, { start, end });
      stream.on('data', (chunk) => rec.add((chunk as Buffer).length));
      res.on('close', () => stream.destroy());
      stream.pipe(res);
    };
    if (this.cdnDelayMs > 0) setTimeout(send, this.cdnDelayMs);
    else send();
  }
}

/** The bytes of a tiny runnable GGUF model (about 700 KB), made once per seed and process. */
const tinyCache = new Map<number, Promise<Buffer>>();
export function tinyModelBytes(seed: number): Promise<Buffer> {
  let p = tinyCache.get(seed);
  if (!p) {
    p = (async () => {
      const { mkdtempSync, readFileSync } = await import('node:fs');
      const { tmpdir } = await import('node:os');
      const { writeTinyModel } = await import('../../src/gguf/index.js');
      const file = `${mkdtempSync(`${tmpdir()}/lsp-tiny-`)}/m.gguf`;
      await writeTinyModel(file, { seed });
      return readFileSync(file);
    })();
    tinyCache.set(seed, p);
  }
  return p;
}

/**
 * Three runnable tiny models of growing size, named as a repo's quantizations: Q4_K_M (embedding width 64),
 * Q8_0 (128) and F16 (256); estimates about 6, 10 and 22 MiB at ctx 512. For `:auto` tests served end to end.
 */
export async function sizedTinyVariants(seed: number, prefix = 'tiny'): Promise<{ path: string; data: Buffer; tag: 'Q4_K_M' | 'Q8_0' | 'F16' }[]> {
  const { mkdtempSync, readFileSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { writeTinyModel } = await import('../../src/gguf/index.js');
  const dir = mkdtempSync(`${tmpdir()}/lsp-sized-`);
  const out: { path: string; data: Buffer; tag: 'Q4_K_M' | 'Q8_0' | 'F16' }[] = [];
  for (const [tag, embd] of [['Q4_K_M', 64], ['Q8_0', 128], ['F16', 256]] as const) {
    const file = `${dir}/${tag}.gguf`;
    await writeTinyModel(file, { seed, embd });
    out.push({ path: `${prefix}-${tag}.gguf`, data: readFileSync(file), tag });
  }
  return out;
}

export function tmpDir(prefix: string): string {
  return mkdtempSync(path.join(os.tmpdir(), `lsp-${prefix}-`));
}

/** ModelHub clients of a fake hub, each with a fresh cache (and no other caches), all closed by `closeAll`. */
export function hubClients(fake: () => FakeHub): { client: (opts?: Partial<ModelHubOptions>) => ModelHub; closeAll: () => Promise<void> } {
  const made: ModelHub[] = [];
  return {
    client: (opts = {}) => {
      const h = new ModelHub({ cacheDir: tmpDir('hubcache'), endpoint: fake().hubUrl, searchDirs: [], retryDelayMs: 5, ...opts });
      made.push(h);
      return h;
    },
    closeAll: async () => {
      await Promise.all(made.map((h) => h.close()));
    },
  };
}

/** The HubError a promise rejects with (fails the test if it resolves or throws something else). */
export async function hubRefusal(p: Promise<unknown>): Promise<HubError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof HubError) return err;
    throw err;
  }
  throw new Error('expected a HubError');
}
