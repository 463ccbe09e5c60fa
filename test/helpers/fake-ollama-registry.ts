/**
 * A local imitation of Ollama's registry for tests (real HTTP): two servers, the registry and a CDN on another
 * origin that blob requests are redirected to, as registry.ollama.ai does.
 *
 * Registry:
 *   GET /v2/<namespace>/<model>/manifests/<tag>   the manifest (404 {"errors":[{"code":"MANIFEST_UNKNOWN"}]} if none)
 *   GET|HEAD /v2/<namespace>/<model>/blobs/<digest>   307 to the CDN
 * CDN:
 *   GET /blobs/<digest>   Range -> 206 + Content-Range; failures can be injected: cut after N bytes, corrupt bytes
 *
 * Every request is logged (server, method, path, Range, status, body bytes).
 */
import http, { type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { buildManifest, type StoreModelInput, type StoreLayer } from './ollama-store.js';

export interface RegistryRequest {
  server: 'registry' | 'cdn';
  method: string;
  path: string;
  range?: string;
  status: number;
  bytes: number;
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

export class FakeOllamaRegistry {
  readonly log: RegistryRequest[] = [];
  private readonly manifests = new Map<string, string>();
  private readonly blobs = new Map<string, StoreLayer>();
  private readonly cuts = new Map<string, { afterBytes: number; times: number }>();
  private readonly corrupt = new Set<string>();
  private registry!: Server;
  private cdn!: Server;
  url = '';
  cdnUrl = '';
  /** Milliseconds the CDN waits before each body (keeps downloads in flight for concurrency tests). */
  cdnDelayMs = 0;

  static async start(): Promise<FakeOllamaRegistry> {
    const r = new FakeOllamaRegistry();
    r.registry = http.createServer((req, res) => r.onRegistry(req, res));
    r.cdn = http.createServer((req, res) => r.onCdn(req, res));
    r.url = await listen(r.registry);
    r.cdnUrl = await listen(r.cdn);
    return r;
  }

  async close(): Promise<void> {
    for (const s of [this.registry, this.cdn]) {
      s.closeAllConnections();
      await new Promise<void>((resolve) => s.close(() => resolve()));
    }
  }

  /** Serves `namespace/model:tag`; returns its blobs (config first). */
  add(name: string, input: StoreModelInput): StoreLayer[] {
    const m = /^(?:([^/]+)\/)?([^/:]+)(?::(.+))?$/.exec(name)!;
    const built = buildManifest(input);
    this.manifests.set(`${m[1] ?? 'library'}/${m[2]}/${m[3] ?? 'latest'}`, built.text);
    for (const b of built.blobs) this.blobs.set(b.digest, b);
    return built.blobs;
  }

  /** The next `times` CDN downloads of the blob are cut after `afterBytes` body bytes. */
  cutAfter(digest: string, afterBytes: number, times = 1): void {
    this.cuts.set(digest, { afterBytes, times });
  }

  /** The CDN serves the blob with one byte changed. */
  corruptBlob(digest: string): void {
    this.corrupt.add(digest);
  }

  requests(filter: { server?: RegistryRequest['server']; pathIncludes?: string; ranged?: boolean } = {}): RegistryRequest[] {
    return this.log.filter((r) => (!filter.server || r.server === filter.server) && (!filter.pathIncludes || r.path.includes(filter.pathIncludes)) && (filter.ranged === undefined || (r.range !== undefined) === filter.ranged));
  }

  private record(req: IncomingMessage, res: ServerResponse, server: RegistryRequest['server']): RegistryRequest {
    const entry: RegistryRequest = { server, method: req.method ?? 'GET', path: req.url ?? '/', ...(req.headers.range ? { range: req.headers.range } : {}), status: 0, bytes: 0 };
    this.log.push(entry);
    res.on('close', () => {
      entry.status = res.statusCode;
    });
    return entry;
  }

  private onRegistry(req: IncomingMessage, res: ServerResponse): void {
    this.record(req, res, 'registry');
    const url = new URL(req.url ?? '/', this.url);
    const manifest = /^\/v2\/([^/]+)\/([^/]+)\/manifests\/([^/]+)$/.exec(url.pathname);
    const blob = /^\/v2\/([^/]+)\/([^/]+)\/blobs\/(sha256:[0-9a-f]{64})$/.exec(url.pathname);
    if (manifest) {
      const text = this.manifests.get(`${manifest[1]}/${manifest[2]}/${manifest[3]}`);
      if (!text) {
        res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ errors: [{ code: 'MANIFEST_UNKNOWN', message: 'manifest unknown' }] }));
        return;
      }
      res.writeHead(200, { 'content-type': 'application/vnd.docker.distribution.manifest.v2+json', 'content-length': Buffer.byteLength(text) }).end(text);
      return;
    }
    if (blob && this.blobs.has(blob[3]!)) {
      res.writeHead(307, { location: `${this.cdnUrl}/blobs/${blob[3]}?sig=test` }).end();
      return;
    }
    res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ errors: [{ code: 'BLOB_UNKNOWN', message: 'blob unknown to registry' }] }));
  }

  private onCdn(req: IncomingMessage, res: ServerResponse): void {
    const rec = this.record(req, res, 'cdn');
    const digest = /^\/blobs\/(sha256:[0-9a-f]{64})$/.exec(new URL(req.url ?? '/', this.cdnUrl).pathname)?.[1];
    const b = digest ? this.blobs.get(digest) : undefined;
    if (!b) {
      res.writeHead(404).end();
      return;
    }
    let start = 0;
    let end = b.size - 1;
    const range = req.headers.range ? /^bytes=(\d+)-(\d*)$/.exec(req.headers.range) : null;
    if (range) {
      start = Number(range[1]);
      end = range[2] ? Math.min(Number(range[2]), b.size - 1) : b.size - 1;
      if (start >= b.size || end < start) {
        res.writeHead(416, { 'content-range': `bytes */${b.size}` }).end();
        return;
      }
    }
    res.writeHead(range ? 206 : 200, {
      'accept-ranges': 'bytes',
      'content-length': String(end - start + 1),
      'content-type': 'application/octet-stream',
      ...(range ? { 'content-range': `bytes ${start}-${end}/${b.size}` } : {}),
    });
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    let body = b.data.subarray(start, end + 1);
    if (this.corrupt.has(b.digest)) {
      body = Buffer.from(body);
      const i = Math.floor(body.length / 2);
      body[i] = body[i]! ^ 0xff;
    }
    const cut = range && range[2] ? undefined : this.cuts.get(b.digest);
    const send = () => {
      if (cut && cut.times > 0 && cut.afterBytes < body.length) {
        cut.times--;
        rec.bytes += cut.afterBytes;
        // the bytes reach the client before the connection breaks
        res.write(body.subarray(0, cut.afterBytes), () => setTimeout(() => res.socket?.destroy(), 100));
        return;
      }
      rec.bytes += body.length;
      res.end(body);
    };
    if (this.cdnDelayMs > 0) setTimeout(send, this.cdnDelayMs);
    else send();
  }
}
