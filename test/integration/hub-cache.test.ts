/** The cache limit (least recently used models not in use go), the listing, and the pull / models commands. */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { progressBar, pullCommand } from '../../src/cli/pull.js';
import { HubError, ModelHub } from '../../src/models/index.js';
import { FakeHub, hubClients, tinyModelBytes, tmpDir } from '../helpers/fake-hub.js';

let hub: FakeHub;
const { client, closeAll } = hubClients(() => hub);
const tmp = tmpDir;
let size = 0;



async function pull(h: ModelHub, repo: string): Promise<string> {
  return (await h.ensureDownloaded(await h.resolve(repo, 'Q4_K_M'))).file;
}

const tick = () => new Promise((r) => setTimeout(r, 15));

beforeAll(async () => {
  hub = await FakeHub.start();
  for (const [i, name] of ['a', 'b', 'c', 'd'].entries()) {
    const data = await tinyModelBytes(30 + i);
    size = data.length;
    hub.addRepo(`acme/${name}-GGUF`, { files: [{ path: `${name}-Q4_K_M.gguf`, data }] });
  }
});

afterAll(async () => {
  await closeAll();
  await hub.close();
});

describe('cache limit', () => {
  it('evicts the least recently used model that is not in use, and refuses when nothing can go', async () => {
    const cacheDir = tmp('hubcache');
    const inUse = new Set<string>();
    const h = client({ cacheDir, limitBytes: Math.floor(size * 2.5), inUse: () => inUse });
    const a = await pull(h, 'acme/a-GGUF');
    await tick();
    const b = await pull(h, 'acme/b-GGUF');
    await tick();
    await pull(h, 'acme/a-GGUF'); // a used again: b is now the least recently used
    await tick();
    const c = await pull(h, 'acme/c-GGUF');
    const repos = () => h.list().map((e) => e.repo).sort();
    expect(repos()).toEqual(['acme/a-GGUF', 'acme/c-GGUF']);
    expect(existsSync(path.join(cacheDir, 'hub', 'models--acme--b-GGUF'))).toBe(false);
    expect(existsSync(b)).toBe(false);

    // a is the least recently used now, but in use: c goes instead
    inUse.add(a);
    await tick();
    await pull(h, 'acme/d-GGUF');
    expect(repos()).toEqual(['acme/a-GGUF', 'acme/d-GGUF']);
    expect(existsSync(c)).toBe(false);

    // everything in use: 507, nothing deleted
    const d = h.list().find((e) => e.repo === 'acme/d-GGUF')!.path;
    inUse.add(d);
    const e = await h.ensureDownloaded(await h.resolve('acme/b-GGUF', 'Q4_K_M')).catch((err: unknown) => err);
    expect(e).toBeInstanceOf(HubError);
    expect(e).toMatchObject({ status: 507, code: 'cache_full' });
    expect((e as Error).message).toMatch(/cannot make room for .* in models in use or downloading/);
    expect(repos()).toEqual(['acme/a-GGUF', 'acme/d-GGUF']);
  });

  it('refuses a model larger than the whole limit before downloading', async () => {
    const h = client({ limitBytes: size - 1 });
    const before = hub.requests({ server: 'cdn' }).length;
    const e = await h.ensureDownloaded(await h.resolve('acme/a-GGUF', 'Q4_K_M')).catch((err: unknown) => err);
    expect(e).toMatchObject({ status: 507, code: 'cache_full' });
    expect((e as Error).message).toMatch(/more than the model cache's limit/);
    expect(hub.requests({ server: 'cdn' }).length).toBe(before);
  });

  it('enforceLimit alone trims to the limit; a limit of 0 keeps everything', async () => {
    const cacheDir = tmp('hubcache');
    const unlimited = client({ cacheDir });
    for (const r of ['a', 'b', 'c']) {
      await pull(unlimited, `acme/${r}-GGUF`);
      await tick();
    }
    expect((await unlimited.enforceLimit()).evicted).toEqual([]);
    // partial downloads: an old one is the least recently used; one written a moment ago may be under way elsewhere
    const partials = path.join(cacheDir, 'hub', 'models--acme--p-GGUF', 'blobs');
    mkdirSync(partials, { recursive: true });
    writeFileSync(path.join(partials, `${'1'.repeat(64)}.incomplete`), Buffer.alloc(100));
    utimesSync(path.join(partials, `${'1'.repeat(64)}.incomplete`), new Date(Date.now() - 7_200_000), new Date(Date.now() - 7_200_000));
    writeFileSync(path.join(partials, `${'2'.repeat(64)}.incomplete`), Buffer.alloc(100));
    const limited = client({ cacheDir, limitBytes: size * 2 + 100 });
    const r = await limited.enforceLimit();
    expect(r.evicted.map((x) => [x.repo, x.partial])).toEqual([['acme/p-GGUF', true], ['acme/a-GGUF', false]]);
    expect(r.totalBytes).toBe(size * 2 + 100);
    expect(limited.list().filter((e) => e.partial).map((e) => e.file)).toEqual([`${'2'.repeat(64)}.incomplete`]);
  });
});

describe('listing the caches', () => {
  it('lists ours and other tools\' caches with size, last used and partial downloads', async () => {
    const cacheDir = tmp('hubcache');
    const other = tmp('hf-other');
    const snap = path.join(other, 'models--x--y-GGUF', 'snapshots', 'f'.repeat(40));
    mkdirSync(snap, { recursive: true });
    mkdirSync(path.join(other, 'models--x--y-GGUF', 'blobs'));
    writeFileSync(path.join(other, 'models--x--y-GGUF', 'blobs', 'abc'), 'twelve bytes');
    symlinkSync('../../blobs/abc', path.join(snap, 'y-Q8_0.gguf'));
    const h = client({ cacheDir, searchDirs: [other] });
    await pull(h, 'acme/a-GGUF');
    const entries = h.list();
    expect(entries.find((e) => e.repo === 'acme/a-GGUF')).toMatchObject({ file: 'a-Q4_K_M.gguf', sizeBytes: size, partial: false, ours: true, kind: 'model' });
    expect(entries.find((e) => e.repo === 'x/y-GGUF')).toMatchObject({ file: 'y-Q8_0.gguf', sizeBytes: 12, ours: false, cacheRoot: other });
    expect(Date.now() - entries[0]!.lastUsed.getTime()).toBeLessThan(60_000);
  });
});

describe('pull and models commands', () => {
  function io(env: NodeJS.ProcessEnv) {
    const out = new PassThrough();
    const err = new PassThrough();
    let stdout = '';
    let stderr = '';
    out.on('data', (c: Buffer) => (stdout += c.toString()));
    err.on('data', (c: Buffer) => (stderr += c.toString()));
    return { io: { stdout: out, stderr: err, env }, text: () => ({ stdout, stderr }) };
  }

  it('pull downloads with plain progress lines when not on a terminal and prints the path; models lists it', async () => {
    const cacheDir = tmp('hubcache');
    const env = { LLAMA_SMART_PROXY_CACHE: cacheDir, HF_ENDPOINT: hub.hubUrl, HF_HUB_CACHE: path.join(cacheDir, 'none'), HF_HOME: path.join(cacheDir, 'hf') };
    const run = io(env);
    await pullCommand('acme/b-GGUF', {}, run.io);
    const { stdout, stderr } = run.text();
    expect(stdout.trim()).toMatch(/hub\/models--acme--b-GGUF\/snapshots\/[0-9a-f]{40}\/b-Q4_K_M.gguf$/);
    expect(stderr).toMatch(/^acme\/b-GGUF:Q4_K_M -> b-Q4_K_M.gguf, .* commit [0-9a-f]{12}\n/);
    expect(stderr).toMatch(/downloaded acme\/b-GGUF\/b-Q4_K_M.gguf: 100%/);

    const again = io(env);
    await pullCommand('acme/b-GGUF', {}, again.io);
    expect(again.text().stderr).toMatch(/already in the cache/);

    // through the real command line (asynchronously: the imitation Hub runs in this process)
    const CLI = ['--import', pathToFileURL(path.resolve('node_modules/tsx/dist/loader.mjs')).href, path.resolve('src/cli/main.ts')];
    const cli = (args: string[]) =>
      promisify(execFile)(process.execPath, [...CLI, ...args], { env: { ...process.env, ...env }, encoding: 'utf8', cwd: cacheDir }).then(
        (r) => ({ status: 0, stdout: r.stdout, stderr: r.stderr }),
        (e: { code?: number; stdout: string; stderr: string }) => ({ status: e.code ?? -1, stdout: e.stdout, stderr: e.stderr }),
      );
    const [r, bad] = await Promise.all([cli(['models', '--json']), cli(['pull', 'acme/b-GGUF:IQ1_S'])]);
    expect(r.status).toBe(0);
    const listed = JSON.parse(r.stdout) as { repo: string; file: string; size_bytes: number; partial: boolean; ours: boolean }[];
    expect(listed).toEqual([expect.objectContaining({ repo: 'acme/b-GGUF', file: 'b-Q4_K_M.gguf', size_bytes: size, partial: false, ours: true })]);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/error: acme\/b-GGUF has no GGUF file for variant "IQ1_S"\. Its GGUF files: b-Q4_K_M.gguf\./);
  });

  it('draws a bar that fits the terminal', () => {
    const line = progressBar({ repo: 'a/b', file: 'f.gguf', phase: 'download', receivedBytes: 512 << 20, totalBytes: 1024 << 20, bytesPerSecond: 64 << 20 }, 80);
    expect(line).toMatch(/^\[#{10,}-{10,}\]  50% 512\.0 MiB\/1\.00 GiB 64\.0 MiB\/s eta 0:08$/);
    expect(line.length).toBeLessThan(80);
  });
});
