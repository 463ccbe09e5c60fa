/**
 * Downloads against a local imitation of the Hub: the cache layout, resuming after a cut connection, corruption,
 * one download for many waiters, the header read before the download, and resolveModelAsync.
 */
import { existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildConfig } from '../../src/config/index.js';
import { modelInfo } from '../../src/estimate/index.js';
import { readGgufModelHeader, writeSparseReplica } from '../../src/gguf/index.js';
import { ClientError, resolveModelAsync, type DownloadProgress } from '../../src/models/index.js';
import { FakeHub, hubClients, hubRefusal, tinyModelBytes, tmpDir } from '../helpers/fake-hub.js';
import { writeSplitReplica } from '../unit/estimate-gguf-writers.js';

let hub: FakeHub;
const { client, closeAll } = hubClients(() => hub);
const tmp = tmpDir;
const refusal = hubRefusal;
const REPO = 'acme/tiny-GGUF';
const FILE = 'tiny-Q4_K_M.gguf';
let bytes: Buffer;
let replicaSize = 0;




/** A repo holding one tiny model under a fresh name (each test gets its own blob, so server logs do not mix). */
async function freshRepo(name: string, seed: number): Promise<{ repo: string; sha: string; data: Buffer }> {
  const data = await tinyModelBytes(seed);
  hub.addRepo(name, { files: [{ path: FILE, data }] });
  return { repo: name, sha: hub.sha(name, FILE), data };
}

const cdnGets = (sha: string) => hub.requests({ server: 'cdn', method: 'GET', pathIncludes: sha });

beforeAll(async () => {
  hub = await FakeHub.start({ pageSize: 50 });
  bytes = await tinyModelBytes(11);
  hub.addRepo(REPO, { files: [{ path: FILE, data: bytes }, { path: 'README.md', data: Buffer.from('hi') }] });
  const dir = tmp('replica');
  const replica = path.join(dir, 'qwen2.5-0.5b-Q4_K_M.gguf');
  replicaSize = await writeSparseReplica(replica, 'qwen2.5-0.5b', 'Q4_K_M');
  const parts = await writeSplitReplica(path.join(dir, 'qwen2.5-0.5b-Q8_0'), 'qwen2.5-0.5b', 'Q8_0', 3);
  hub.addRepo('acme/replica-GGUF', {
    files: [
      { path: 'qwen2.5-0.5b-Q4_K_M.gguf', file: replica, sha256: 'e'.repeat(64) },
      ...parts.map((p, i) => ({ path: path.basename(p), file: p, sha256: String(i).repeat(64) })),
    ],
  });
});

afterAll(async () => {
  await closeAll();
  await hub.close();
});

describe('downloading into the Hugging Face cache layout', () => {
  it('writes blobs/<sha256>, a relative snapshot link and refs/main; a second call does nothing', async () => {
    const cacheDir = tmp('hubcache');
    const h = client({ cacheDir });
    const res = await h.resolve(REPO, 'Q4_K_M');
    const progress: DownloadProgress[] = [];
    const out = await h.ensureDownloaded(res, { onProgress: (p) => progress.push(p) });
    const repoDir = path.join(cacheDir, 'hub', 'models--acme--tiny-GGUF');
    const sha = hub.sha(REPO, FILE);
    expect(out.file).toBe(path.join(repoDir, 'snapshots', res.commit, FILE));
    expect(lstatSync(out.file).isSymbolicLink()).toBe(true);
    expect(readlinkSync(out.file)).toBe(`../../blobs/${sha}`);
    expect(readFileSync(out.file).equals(bytes)).toBe(true);
    expect(readFileSync(path.join(repoDir, 'refs', 'main'), 'utf8')).toBe(res.commit);
    expect(readdirSync(path.join(repoDir, 'blobs'))).toEqual([sha]);
    expect(progress.at(-1)).toMatchObject({ phase: 'done', receivedBytes: bytes.length, totalBytes: bytes.length, repo: REPO });
    expect(res.cached).toBe(true);

    const before = hub.log.length;
    await h.ensureDownloaded(res);
    const fresh = client({ cacheDir });
    const again = await fresh.resolve(REPO, 'Q4_K_M');
    expect(again.cached).toBe(true);
    await fresh.ensureDownloaded(again);
    expect(hub.log.length).toBe(before);
    expect((await readGgufModelHeader(out.file)).tensors.length).toBeGreaterThan(0);
  });

  it('resumes with a Range request when the connection is cut halfway, and checks the result', async () => {
    const { repo, sha, data } = await freshRepo('acme/cut-GGUF', 12);
    hub.cutAfter(sha, Math.floor(data.length / 2));
    const h = client({ retries: 3 });
    const out = await h.ensureDownloaded(await h.resolve(repo, 'Q4_K_M'));
    expect(readFileSync(out.file).equals(data)).toBe(true);
    const gets = cdnGets(sha);
    expect(gets.length).toBe(2);
    expect(gets[0]!.range).toBeUndefined();
    const from = Number(/^bytes=(\d+)-$/.exec(gets[1]!.range ?? '')?.[1]);
    expect(from).toBeGreaterThan(0);
    expect(from).toBeLessThanOrEqual(Math.floor(data.length / 2));
    expect(gets[1]!.bytes).toBe(data.length - from);
  });

  it('keeps the partial file when it gives up, and a later process resumes from it', async () => {
    const { repo, sha, data } = await freshRepo('acme/later-GGUF', 13);
    const half = Math.floor(data.length / 2);
    hub.cutAfter(sha, half);
    const cacheDir = tmp('hubcache');
    const first = client({ cacheDir, retries: 0 });
    const e = await refusal(first.ensureDownloaded(await first.resolve(repo, 'Q4_K_M')));
    expect([e.status, e.code]).toEqual([502, 'download_interrupted']);
    expect(e.message).toMatch(/the download of acme\/later-GGUF\/tiny-Q4_K_M.gguf broke off after .* the partial file is kept and the next request resumes it/);
    const partial = path.join(cacheDir, 'hub', 'models--acme--later-GGUF', 'blobs', `${sha}.incomplete`);
    const kept = statSync(partial).size;
    expect(kept).toBeGreaterThan(0);
    expect(kept).toBeLessThan(data.length);
    const listed = first.list().find((x) => x.partial);
    expect(listed).toMatchObject({ repo, file: FILE, partial: true, sizeBytes: kept, expectedBytes: data.length });

    const second = client({ cacheDir });
    const res = await second.resolve(repo, 'Q4_K_M');
    expect(res.missingBytes).toBe(data.length - kept);
    const out = await second.ensureDownloaded(res);
    expect(readFileSync(out.file).equals(data)).toBe(true);
    expect(cdnGets(sha).at(-1)!.range).toBe(`bytes=${kept}-`);
    expect(existsSync(partial)).toBe(false);
    expect(second.list().some((x) => x.partial)).toBe(false);
  });

  it('resumes a partial file another Hub tool left (blobs/<etag>.incomplete)', async () => {
    const { repo, sha, data } = await freshRepo('acme/foreign-partial-GGUF', 14);
    const cacheDir = tmp('hubcache');
    const blobs = path.join(cacheDir, 'hub', 'models--acme--foreign-partial-GGUF', 'blobs');
    mkdirSync(blobs, { recursive: true });
    writeFileSync(path.join(blobs, `${sha}.incomplete`), data.subarray(0, 1000));
    const h = client({ cacheDir });
    const out = await h.ensureDownloaded(await h.resolve(repo, 'Q4_K_M'));
    expect(readFileSync(out.file).equals(data)).toBe(true);
    expect(cdnGets(sha).map((r) => r.range)).toEqual(['bytes=1000-']);
  });

  it('starts over when the server ignores the Range header', async () => {
    const { repo, sha, data } = await freshRepo('acme/norange-GGUF', 19);
    const cacheDir = tmp('hubcache');
    const blobs = path.join(cacheDir, 'hub', 'models--acme--norange-GGUF', 'blobs');
    mkdirSync(blobs, { recursive: true });
    writeFileSync(path.join(blobs, `${sha}.incomplete`), data.subarray(0, 1000));
    hub.ignoreRange = true;
    try {
      const logs: string[] = [];
      const h = client({ cacheDir, log: (msg) => logs.push(msg) });
      const out = await h.ensureDownloaded(await h.resolve(repo, 'Q4_K_M'));
      expect(readFileSync(out.file).equals(data)).toBe(true);
      expect(cdnGets(sha).map((r) => [r.range, r.status, r.bytes])).toEqual([['bytes=1000-', 200, data.length]]);
      expect(logs).toContain('the Hub ignored the range, downloading from the start');
    } finally {
      hub.ignoreRange = false;
    }
  });

  it('detects a corrupt download (sha256 mismatch): clear error, partial removed, nothing linked', async () => {
    const { repo, sha } = await freshRepo('acme/corrupt-GGUF', 15);
    hub.corruptBlob(sha);
    const cacheDir = tmp('hubcache');
    const h = client({ cacheDir });
    const res = await h.resolve(repo, 'Q4_K_M');
    const e = await refusal(h.ensureDownloaded(res));
    expect([e.status, e.code]).toEqual([502, 'download_corrupt']);
    expect(e.message).toMatch(new RegExp(`^acme/corrupt-GGUF/tiny-Q4_K_M.gguf is corrupt: sha256 mismatch \\(expected ${sha}, got [0-9a-f]{64}\\); the download was deleted`));
    const repoDir = path.join(cacheDir, 'hub', 'models--acme--corrupt-GGUF');
    expect(readdirSync(path.join(repoDir, 'blobs'))).toEqual([]);
    expect(existsSync(path.join(repoDir, 'snapshots'))).toBe(false);
    expect(existsSync(path.join(repoDir, 'refs'))).toBe(false);
    expect(cdnGets(sha).length).toBe(1); // not retried: a corrupt answer is not a broken connection
  });

  it('20 concurrent requests make one listing, one HEAD and one download, and all see progress', async () => {
    const { repo, sha, data } = await freshRepo('acme/many-GGUF', 16);
    hub.cdnDelayMs = 100;
    try {
      const h = client();
      const seen = Array.from({ length: 20 }, () => [] as DownloadProgress[]);
      const outs = await Promise.all(
        seen.map(async (events) => h.ensureDownloaded(await h.resolve(repo, 'Q4_K_M'), { onProgress: (p) => events.push(p), progressIntervalMs: 0 })),
      );
      expect(new Set(outs.map((o) => o.file)).size).toBe(1);
      expect(readFileSync(outs[0]!.file).equals(data)).toBe(true);
      expect(cdnGets(sha).length).toBe(1);
      expect(hub.requests({ server: 'hub', pathIncludes: '/api/models/acme/many-GGUF/tree/' }).length).toBe(1);
      expect(hub.requests({ server: 'hub', method: 'HEAD', pathIncludes: '/acme/many-GGUF/' }).length).toBe(1);
      for (const events of seen) expect(events.at(-1)).toMatchObject({ phase: 'done', receivedBytes: data.length, totalBytes: data.length });
    } finally {
      hub.cdnDelayMs = 0;
    }
  });

  it('two hubs on one cache (as two processes would be) share one download through the lock', async () => {
    const { repo, sha, data } = await freshRepo('acme/two-GGUF', 17);
    hub.cdnDelayMs = 150;
    try {
      const cacheDir = tmp('hubcache');
      const [a, b] = [client({ cacheDir }), client({ cacheDir })];
      const [ra, rb] = await Promise.all([a.resolve(repo, 'Q4_K_M'), b.resolve(repo, 'Q4_K_M')]);
      const [oa, ob] = await Promise.all([a.ensureDownloaded(ra), b.ensureDownloaded(rb)]);
      expect(oa.file).toBe(ob.file);
      expect(readFileSync(oa.file).equals(data)).toBe(true);
      expect(cdnGets(sha).length).toBe(1);
    } finally {
      hub.cdnDelayMs = 0;
    }
  });
});

describe('the header before the download', () => {
  it('reads only the header bytes of a large remote file, by range requests', async () => {
    const h = client({ headerProbeBytes: 1 << 20 });
    const res = await h.resolve('acme/replica-GGUF', 'Q4_K_M');
    expect(res.parts[0]!.size).toBe(replicaSize);
    const before = hub.log.length;
    const header = await h.probeHeader(res);
    const info = modelInfo(header);
    expect(info.arch).toBe('qwen2');
    expect(info.nLayer).toBe(24);
    const cdn = hub.log.slice(before).filter((r) => r.server === 'cdn');
    expect(cdn.every((r) => r.method === 'GET' && /^bytes=\d+-\d+$/.test(r.range ?? ''))).toBe(true);
    const served = cdn.reduce((s, r) => s + r.bytes, 0);
    // 1 MiB, then 4 MiB: the ~3 MiB header and little more, of a ~380 MiB file
    expect(served).toBeGreaterThanOrEqual(header.headerSize);
    expect(served).toBeLessThanOrEqual(5 << 20);
    expect(served).toBeLessThan(replicaSize / 50);
    expect(existsSync(path.join(h.store.root, 'models--acme--replica-GGUF'))).toBe(false);
    // asked again: kept
    const n = hub.log.length;
    await h.probeHeader(res);
    expect(hub.log.length).toBe(n);
  });

  it('merges the headers of every part of a split model', async () => {
    const h = client({ headerProbeBytes: 4 << 20 });
    const res = await h.resolve('acme/replica-GGUF', 'Q8_0');
    expect(res.parts.length).toBe(3);
    const header = await h.probeHeader(res);
    expect(header.parts.map((p) => p.path)).toEqual(res.parts.map((p) => p.path));
    expect(new Set(header.tensors.map((t) => t.split))).toEqual(new Set([0, 1, 2]));
    expect(modelInfo(header).nLayer).toBe(24);
  });
});

describe('resolveModelAsync', () => {
  const config = (cacheDir: string) =>
    buildConfig({ cacheDir, modelsDir: cacheDir, models: { tiny: { hf: `${REPO}:Q4_K_M`, ctx: 512 } } }, null, { env: {} });

  it('resolves, estimates before the download, downloads, and then finds it on disk', async () => {
    const cacheDir = tmp('hubcache');
    const h = client({ cacheDir });
    const headers: number[] = [];
    const model = await resolveModelAsync(config(cacheDir), `${REPO}:Q4_K_M`, h, {
      env: {},
      beforeDownload: ({ header, model }) => {
        headers.push(modelInfo(header).nLayer);
        expect(existsSync(model.file)).toBe(false);
      },
    });
    expect(headers.length).toBe(1);
    expect(model).toMatchObject({ id: `${REPO}:Q4_K_M`, ref: { kind: 'hf', repo: REPO, variant: 'Q4_K_M' }, ctx: 4096 });
    expect(readFileSync(model.file).equals(bytes)).toBe(true);
    const viaAlias = await resolveModelAsync(config(cacheDir), 'tiny', h, { env: {}, beforeDownload: () => void headers.push(-1) });
    expect(viaAlias).toMatchObject({ id: 'tiny', file: model.file, ctx: 512 });
    expect(headers.length).toBe(1); // on disk: no estimate hook, no download
  });

  it('a refusal before the download leaves the model undownloaded', async () => {
    const { repo, sha } = await freshRepo('acme/refused-GGUF', 18);
    const cacheDir = tmp('hubcache');
    const h = client({ cacheDir });
    await expect(
      resolveModelAsync(config(cacheDir), `${repo}:Q4_K_M`, h, {
        env: {},
        beforeDownload: () => {
          throw new ClientError(503, 'insufficient_memory', 'needs 9.3 GiB, GPU 0 has 7.1 GiB free');
        },
      }),
    ).rejects.toMatchObject({ status: 503, code: 'insufficient_memory' });
    expect(cdnGets(sha).every((r) => r.range !== undefined)).toBe(true);
    expect(existsSync(path.join(cacheDir, 'hub', 'models--acme--refused-GGUF', 'blobs', sha))).toBe(false);
  });
});
