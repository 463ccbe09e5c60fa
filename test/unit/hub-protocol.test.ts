import { describe, expect, it } from 'vitest';
import { buildConfig } from '../../src/config/index.js';
import { hubOptions, hubToken } from '../../src/hub/config.js';
import {
  HubError, hubHttpError, normalizeEtag, parseContentRange, parseNextLink, parseTreePage, resolveUrl, treeUrl,
} from '../../src/hub/protocol.js';
import { repoFolder, repoFromFolder } from '../../src/hub/store.js';

describe('Hub addresses', () => {
  it('builds tree and resolve URLs, encoding the revision and each path segment', () => {
    expect(treeUrl('https://huggingface.co/', 'unsloth/Qwen3-0.6B-GGUF', 'main')).toBe(
      'https://huggingface.co/api/models/unsloth/Qwen3-0.6B-GGUF/tree/main?recursive=true',
    );
    expect(treeUrl('https://hf-mirror.example/prefix', 'a/b', 'refs/pr/1')).toBe('https://hf-mirror.example/prefix/api/models/a/b/tree/refs%2Fpr%2F1?recursive=true');
    expect(resolveUrl('http://127.0.0.1:9', 'a/b', 'main', 'Q4 K/x#1.gguf')).toBe('http://127.0.0.1:9/a/b/resolve/main/Q4%20K/x%231.gguf');
  });

  it('follows Link rel="next" (relative or absolute, among other relations)', () => {
    const cur = 'https://hf.co/api/models/a/b/tree/main?recursive=true';
    expect(parseNextLink('<https://hf.co/api/models/a/b/tree/main?recursive=true&cursor=abc>; rel="next"', cur)).toBe(
      'https://hf.co/api/models/a/b/tree/main?recursive=true&cursor=abc',
    );
    expect(parseNextLink('</api/x?cursor=2>; rel=next', cur)).toBe('https://hf.co/api/x?cursor=2');
    expect(parseNextLink('<https://hf.co/p1>; rel="prev", <https://hf.co/p3>; rel="next"', cur)).toBe('https://hf.co/p3');
    expect(parseNextLink('<https://hf.co/p1>; rel="prev"', cur)).toBeUndefined();
    expect(parseNextLink(undefined, cur)).toBeUndefined();
  });

  it('normalizes ETags and parses Content-Range', () => {
    expect(normalizeEtag('"abc"')).toBe('abc');
    expect(normalizeEtag('W/"abc"')).toBe('abc');
    expect(normalizeEtag(undefined)).toBeUndefined();
    expect(parseContentRange('bytes 100-199/1000')).toEqual({ start: 100, end: 199, size: 1000 });
    expect(parseContentRange('bytes 0-9/*')).toEqual({ start: 0, end: 9 });
    expect(parseContentRange('items 1-2/3')).toBeUndefined();
  });

  it('reads tree entries and drops unsafe paths', () => {
    const entries = parseTreePage([
      { type: 'file', oid: 'x', size: 3, path: 'a.gguf', lfs: { oid: 'f'.repeat(64), size: 3, pointerSize: 134 } },
      { type: 'directory', oid: 'y', size: 0, path: 'dir' },
      { type: 'file', oid: 'z', size: 1, path: '../evil.gguf' },
      { type: 'submodule', path: 'sub' },
    ]);
    expect(entries.map((e) => e.path)).toEqual(['a.gguf', 'dir']);
    expect(entries[0]!.lfs).toEqual({ oid: 'f'.repeat(64), size: 3 });
    expect(() => parseTreePage({ error: 'x' })).toThrow(/not a JSON array/);
  });

  it('maps cache folder names both ways', () => {
    expect(repoFolder('unsloth/Qwen3-0.6B-GGUF')).toBe('models--unsloth--Qwen3-0.6B-GGUF');
    expect(repoFromFolder('models--unsloth--Qwen3-0.6B-GGUF')).toBe('unsloth/Qwen3-0.6B-GGUF');
    expect(repoFromFolder('datasets--a--b')).toBeUndefined();
  });
});

describe('Hub error messages', () => {
  const ctx = { endpoint: 'https://huggingface.co', repo: 'meta-llama/Llama-3.2-1B', revision: 'main', hasToken: false };
  const err = (status: number, extra: Partial<typeof ctx> & { file?: string; errorCode?: string; errorMessage?: string } = {}): HubError => hubHttpError(status, { ...ctx, ...extra });

  it('401 without a token: gated or private, set HF_TOKEN', () => {
    const e = err(401, { errorCode: 'GatedRepo' });
    expect([e.status, e.code]).toEqual([401, 'hub_token_required']);
    expect(e.message).toMatch(/meta-llama\/Llama-3.2-1B is gated or private: accept its terms at https:\/\/huggingface.co\/meta-llama\/Llama-3.2-1B and set HF_TOKEN/);
  });

  it('401 with a token: the token was not accepted', () => {
    const e = err(401, { hasToken: true });
    expect([e.status, e.code]).toEqual([401, 'hub_token_invalid']);
    expect(e.message).toMatch(/token was not accepted/);
  });

  it('403: access refused, request it', () => {
    const e = err(403, { hasToken: true, errorCode: 'GatedRepo', errorMessage: 'you are not in the authorized list' });
    expect([e.status, e.code]).toEqual([403, 'hub_access_denied']);
    expect(e.message).toMatch(/repo is gated and needs access granted/);
    expect(e.message).toMatch(/the Hub said: you are not in the authorized list/);
  });

  it('a missing repo is 404 even when the Hub says 401 (as it does without a token)', () => {
    const e = err(401, { errorCode: 'RepoNotFound' });
    expect([e.status, e.code]).toEqual([404, 'model_not_found']);
    expect(e.message).toBe('Hugging Face repo meta-llama/Llama-3.2-1B was not found on https://huggingface.co; if it is private, set HF_TOKEN (or hub.token) to a token that can read it');
    expect(err(404, { hasToken: true, errorCode: 'RepoNotFound' }).message).not.toMatch(/HF_TOKEN/);
  });

  it('missing file, revision; rate limits and server errors', () => {
    expect(err(404, { file: 'x.gguf', errorCode: 'EntryNotFound' }).message).toMatch(/file x.gguf in meta-llama\/Llama-3.2-1B@main was not found/);
    expect(err(404, { errorCode: 'RevisionNotFound' }).message).toMatch(/has no revision "main"/);
    expect(err(429).status).toBe(503);
    expect([err(500).status, err(500).code]).toEqual([502, 'hub_error']);
  });
});

describe('Hub settings', () => {
  const config = (hub: Record<string, unknown> = {}) => buildConfig({ cacheDir: '/tmp/lsp-x', hub }, null, { env: {} });

  it('takes the Hugging Face environment when the config says nothing', () => {
    const o = hubOptions(config(), { HF_ENDPOINT: 'http://mirror:1', HF_TOKEN: 'hf_x', HF_HUB_OFFLINE: '1', HF_HOME: '/nonexistent' });
    expect(o).toMatchObject({ endpoint: 'http://mirror:1', token: 'hf_x', offline: true, limitBytes: 0, retries: 5, headerProbeBytes: 8 << 20, connectTimeoutMs: 30_000, readTimeoutMs: 60_000 });
    expect(hubOptions(config(), { HF_HOME: '/nonexistent' })).toMatchObject({ endpoint: 'https://huggingface.co', offline: false });
    expect(hubOptions(config(), { HF_HOME: '/nonexistent' }).token).toBeUndefined();
  });

  it('the config wins over the environment', () => {
    const o = hubOptions(config({ endpoint: 'http://other:2', token: 'cfg', offline: false, cacheLimitGiB: 1.5, headerProbeMiB: 1 }), { HF_ENDPOINT: 'http://mirror:1', HF_TOKEN: 'env', HF_HUB_OFFLINE: 'true' });
    expect(o).toMatchObject({ endpoint: 'http://other:2', token: 'cfg', offline: false, limitBytes: 1.5 * 1024 ** 3, headerProbeBytes: 1 << 20 });
  });

  it('reads the token file of `hf auth login` last', async () => {
    const { mkdtempSync, writeFileSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const dir = mkdtempSync(`${tmpdir()}/lsp-hf-home-`);
    writeFileSync(`${dir}/token`, 'hf_file\n');
    expect(hubToken(undefined, { HF_HOME: dir })).toBe('hf_file');
    expect(hubToken(undefined, { HF_HOME: dir, HF_TOKEN: 'hf_env' })).toBe('hf_env');
  });

  it('refuses a bad endpoint in the config', () => {
    expect(() => config({ endpoint: 'ftp://x' })).toThrow(/hub\.endpoint/);
  });
});
