/** Resolution against a local imitation of the Hub: variants, splits, projectors, errors, gated repos, offline, other caches. */
import { mkdirSync, readlinkSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeHub, hubClients, hubRefusal, tinyModelBytes, tmpDir } from '../helpers/fake-hub.js';

let hub: FakeHub;
const TOKEN = 'hf_good_token';
const { client, closeAll } = hubClients(() => hub);
const tmp = tmpDir;
const refusal = hubRefusal;




const small = (s: string) => Buffer.from(`not a real model: ${s}`);

beforeAll(async () => {
  hub = await FakeHub.start({ token: TOKEN, pageSize: 3 });
  hub.addRepo('acme/tiny-GGUF', {
    files: [
      { path: 'README.md', data: Buffer.from('# tiny\n') },
      { path: 'tiny-Q4_K_M.gguf', data: await tinyModelBytes(1) },
      { path: 'tiny-Q8_0.gguf', data: await tinyModelBytes(2) },
      { path: 'mmproj-F16.gguf', data: small('projector') },
    ],
  });
  hub.addRepo('acme/noq4-GGUF', {
    files: [
      { path: 'm-Q8_0.gguf', data: small('q8') },
      { path: 'm-Q5_K_M.gguf', data: small('q5') },
      { path: 'm-Q3_K_M.gguf', data: small('q3') },
    ],
  });
  hub.addRepo('acme/split-GGUF', {
    files: [
      { path: 'Q4_K_M/big-Q4_K_M-00002-of-00003.gguf', data: small('p2') },
      { path: 'Q4_K_M/big-Q4_K_M-00001-of-00003.gguf', data: small('p1') },
      { path: 'Q4_K_M/big-Q4_K_M-00003-of-00003.gguf', data: small('p3') },
      { path: 'Q8_0/big-Q8_0-00001-of-00002.gguf', data: small('q8p1') },
    ],
  });
  hub.addRepo('gated/secret-GGUF', { gated: true, files: [{ path: 's-Q4_K_M.gguf', data: await tinyModelBytes(3) }] });
});

afterAll(async () => {
  await closeAll();
  await hub.close();
});

describe('resolving repo:variant on the Hub', () => {
  it('lists all pages of the tree, picks the variant and its projector, and takes the commit and sha256 from the Hub', async () => {
    const before = hub.log.length;
    const res = await client().resolve('acme/tiny-GGUF', 'q8_0');
    expect(res.parts.map((p) => p.path)).toEqual(['tiny-Q8_0.gguf']);
    expect(res.mmproj?.path).toBe('mmproj-F16.gguf');
    expect(res.parts[0]).toMatchObject({ sha256: hub.sha('acme/tiny-GGUF', 'tiny-Q8_0.gguf'), etag: hub.sha('acme/tiny-GGUF', 'tiny-Q8_0.gguf'), size: (await tinyModelBytes(2)).length, cached: false });
    expect(res.commit).toMatch(/^[0-9a-f]{40}$/);
    expect(res.parts[0]!.local).toContain(path.join('models--acme--tiny-GGUF', 'snapshots', res.commit, 'tiny-Q8_0.gguf'));
    expect(res).toMatchObject({ cached: false, explicit: true, tag: 'Q8_0' });
    expect(res.missingBytes).toBe(res.totalBytes);
    const log = hub.log.slice(before);
    const tree = log.filter((r) => r.path.includes('/tree/'));
    expect(tree.length).toBe(2); // 5 entries, 3 per page
    expect(tree[1]!.path).toContain('cursor=3');
    expect(log.filter((r) => r.method === 'HEAD').map((r) => r.path)).toEqual(['/acme/tiny-GGUF/resolve/main/tiny-Q8_0.gguf', `/acme/tiny-GGUF/resolve/${res.commit}/mmproj-F16.gguf`]);
    expect(log.filter((r) => r.server === 'cdn')).toEqual([]);
  });

  it('without a variant takes Q4_K_M, else the closest quantization and says so', async () => {
    const h = client();
    expect((await h.resolve('acme/tiny-GGUF')).parts[0]!.path).toBe('tiny-Q4_K_M.gguf');
    const res = await h.resolve('acme/noq4-GGUF');
    expect(res.parts[0]!.path).toBe('m-Q5_K_M.gguf');
    expect(res.note).toBe('no Q4_K_M file; chose the closest quantization, Q5_K_M');
    expect(res.explicit).toBe(false);
  });

  it('resolves a split model to all its parts in order', async () => {
    const res = await client().resolve('acme/split-GGUF', 'Q4_K_M');
    expect(res.parts.map((p) => p.path)).toEqual([
      'Q4_K_M/big-Q4_K_M-00001-of-00003.gguf',
      'Q4_K_M/big-Q4_K_M-00002-of-00003.gguf',
      'Q4_K_M/big-Q4_K_M-00003-of-00003.gguf',
    ]);
    expect(res.totalBytes).toBe(res.parts.reduce((s, p) => s + p.size, 0));
    const incomplete = await refusal(client().resolve('acme/split-GGUF', 'Q8_0'));
    expect(incomplete.status).toBe(404);
    expect(incomplete.message).toMatch(/Split sets missing parts: Q8_0\/big-Q8_0-00001-of-00002.gguf \(missing Q8_0\/big-Q8_0-00002-of-00002.gguf\)/);
  });

  it('a missing variant is a 404 listing the GGUF files that exist', async () => {
    const e = await refusal(client().resolve('acme/tiny-GGUF', 'IQ2_XXS'));
    expect([e.status, e.code]).toEqual([404, 'model_not_found']);
    expect(e.message).toBe('acme/tiny-GGUF has no GGUF file for variant "IQ2_XXS". Its GGUF files: tiny-Q4_K_M.gguf, tiny-Q8_0.gguf.');
  });

  it('a missing repo is a 404, with a hint about private repos when no token is set', async () => {
    const e = await refusal(client().resolve('acme/nope-GGUF', 'Q4_K_M'));
    expect([e.status, e.code, e.hubStatus]).toEqual([404, 'model_not_found', 401]);
    expect(e.message).toMatch(/^Hugging Face repo acme\/nope-GGUF was not found on http:\/\/127\.0\.0\.1:\d+; if it is private, set HF_TOKEN/);
    const withToken = await refusal(client({ token: TOKEN }).resolve('acme/nope-GGUF', 'Q4_K_M'));
    expect([withToken.status, withToken.hubStatus]).toEqual([404, 404]);
    expect(withToken.message).not.toMatch(/HF_TOKEN/);
  });

  it('a gated repo: 401 without a token, 403 with a wrong one, and a good token is sent to the Hub only, never to the CDN', async () => {
    const none = await refusal(client().resolve('gated/secret-GGUF', 'Q4_K_M'));
    expect([none.status, none.code]).toEqual([401, 'hub_token_required']);
    expect(none.message).toMatch(/gated\/secret-GGUF is gated or private: accept its terms at http:\/\/127\.0\.0\.1:\d+\/gated\/secret-GGUF and set HF_TOKEN/);
    const wrong = await refusal(client({ token: 'hf_wrong' }).resolve('gated/secret-GGUF', 'Q4_K_M'));
    expect([wrong.status, wrong.code]).toEqual([403, 'hub_access_denied']);
    expect(wrong.message).toMatch(/access to Hugging Face repo gated\/secret-GGUF was refused: the repo is gated and needs access granted/);

    const before = hub.log.length;
    const h = client({ token: TOKEN });
    const res = await h.resolve('gated/secret-GGUF', 'Q4_K_M');
    await h.ensureDownloaded(res);
    const log = hub.log.slice(before);
    expect(log.filter((r) => r.server === 'hub').every((r) => r.auth === `Bearer ${TOKEN}`)).toBe(true);
    const cdn = log.filter((r) => r.server === 'cdn');
    expect(cdn.length).toBe(1);
    expect(cdn[0]!.auth).toBeUndefined();
  });

  it('finds the commit through the revision API when HEAD does not tell it (mirrors)', async () => {
    const mirror = await FakeHub.start({ noCommitHeader: true });
    try {
      mirror.addRepo('acme/tiny-GGUF', { commit: 'c'.repeat(40), files: [{ path: 'tiny-Q4_K_M.gguf', data: small('x') }] });
      const res = await client({ endpoint: mirror.hubUrl }).resolve('acme/tiny-GGUF', 'Q4_K_M');
      expect(res.commit).toBe('c'.repeat(40));
      expect(mirror.requests({ pathIncludes: '/revision/main' }).length).toBe(1);
    } finally {
      await mirror.close();
    }
  });
});

describe('the cache first, offline mode', () => {
  it('after a download, resolves from disk without a network request; offline too', async () => {
    const cacheDir = tmp('hubcache');
    const online = client({ cacheDir });
    await online.ensureDownloaded(await online.resolve('acme/tiny-GGUF', 'Q4_K_M'));
    const before = hub.log.length;
    const again = await client({ cacheDir }).resolve('acme/tiny-GGUF', 'Q4_K_M');
    expect(again.cached).toBe(true);
    expect(again.mmproj?.path).toBe('mmproj-F16.gguf');
    const offline = client({ cacheDir, offline: true, endpoint: 'http://127.0.0.1:9' });
    const res = await offline.resolve('acme/tiny-GGUF', 'Q4_K_M');
    expect(res.cached).toBe(true);
    expect((await offline.ensureDownloaded(res)).file).toBe(again.parts[0]!.local);
    // offline and no variant named: the closest on disk
    expect((await offline.resolve('acme/tiny-GGUF')).parts[0]!.path).toBe('tiny-Q4_K_M.gguf');
    expect(hub.log.length).toBe(before);
  });

  it('offline, a model that is not cached is a 404 naming what is missing and what is there', async () => {
    const cacheDir = tmp('hubcache');
    const online = client({ cacheDir });
    await online.ensureDownloaded(await online.resolve('acme/tiny-GGUF', 'Q4_K_M'));
    const before = hub.log.length;
    const offline = client({ cacheDir, offline: true });
    const e = await refusal(offline.resolve('acme/tiny-GGUF', 'Q8_0'));
    expect([e.status, e.code]).toEqual([404, 'model_not_cached']);
    expect(e.message).toMatch(/^acme\/tiny-GGUF:Q8_0 is not in the cache and the Hub is not asked in offline mode \(HF_HUB_OFFLINE \/ hub.offline\)\. Cached files of this repo: mmproj-F16.gguf, tiny-Q4_K_M.gguf\./);
    const nothing = await refusal(offline.resolve('acme/other-GGUF', 'Q8_0'));
    expect(nothing.message).toMatch(/Nothing of this repo is cached\. Looked in: /);
    expect(hub.log.length).toBe(before);
  });

  it('reuses a model downloaded by another Hub tool (huggingface_hub layout) without any network request', async () => {
    const other = tmp('hf-home');
    const repoDir = path.join(other, 'models--acme--tiny-GGUF');
    const bytes = await tinyModelBytes(2);
    const sha = hub.sha('acme/tiny-GGUF', 'tiny-Q8_0.gguf');
    const commit = 'a'.repeat(40);
    mkdirSync(path.join(repoDir, 'blobs'), { recursive: true });
    mkdirSync(path.join(repoDir, 'snapshots', commit), { recursive: true });
    mkdirSync(path.join(repoDir, 'refs'), { recursive: true });
    writeFileSync(path.join(repoDir, 'blobs', sha), bytes);
    symlinkSync(`../../blobs/${sha}`, path.join(repoDir, 'snapshots', commit, 'tiny-Q8_0.gguf'));
    writeFileSync(path.join(repoDir, 'refs', 'main'), commit);

    const before = hub.log.length;
    const h = client({ searchDirs: [other] });
    const res = await h.resolve('acme/tiny-GGUF', 'Q8_0');
    expect(res).toMatchObject({ cached: true, commit, missingBytes: 0 });
    expect(res.parts[0]).toMatchObject({ sha256: sha, size: bytes.length, local: path.join(repoDir, 'snapshots', commit, 'tiny-Q8_0.gguf') });
    const out = await h.ensureDownloaded(res);
    expect(out.file).toBe(path.join(repoDir, 'snapshots', commit, 'tiny-Q8_0.gguf'));
    expect(readlinkSync(out.file)).toBe(`../../blobs/${sha}`); // theirs, untouched
    expect(hub.log.length).toBe(before);
  });
});
