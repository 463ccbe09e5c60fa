import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildConfig } from '../../src/config/index.js';
import { ClientError, parseModelId, pickVariantFile, resolveModel } from '../../src/models/index.js';

const dir = '/srv/models';
const aliases = new Set(['tiny-a', 'odd/alias']);

function refusal(fn: () => unknown): { status: number; code: string; message: string } {
  try {
    fn();
  } catch (err) {
    if (err instanceof ClientError) return { status: err.status, code: err.code, message: err.message };
    throw err;
  }
  throw new Error('expected a ClientError');
}

describe('model identifiers', () => {
  it.each([
    ['tiny-a', { kind: 'alias', alias: 'tiny-a' }],
    ['odd/alias', { kind: 'alias', alias: 'odd/alias' }],
    ['a.gguf', { kind: 'file', path: '/srv/models/a.gguf' }],
    ['sub/dir/B.GGUF', { kind: 'file', path: '/srv/models/sub/dir/B.GGUF' }],
    ['/srv/models/x/y.gguf', { kind: 'file', path: '/srv/models/x/y.gguf' }],
    ['unsloth/Qwen3-0.6B-GGUF:Q4_K_M', { kind: 'hf', repo: 'unsloth/Qwen3-0.6B-GGUF', variant: 'Q4_K_M' }],
    ['unsloth/Qwen3-0.6B-GGUF', { kind: 'hf', repo: 'unsloth/Qwen3-0.6B-GGUF', variant: 'Q4_K_M' }],
    ['bartowski/Llama-3.2-1B-Instruct-GGUF:UD-Q4_K_XL', { kind: 'hf', repo: 'bartowski/Llama-3.2-1B-Instruct-GGUF', variant: 'UD-Q4_K_XL' }],
    // as Ollama users write them
    ['hf.co/unsloth/Qwen3-0.6B-GGUF:Q8_0', { kind: 'hf', repo: 'unsloth/Qwen3-0.6B-GGUF', variant: 'Q8_0' }],
    ['HF.CO/unsloth/Qwen3-0.6B-GGUF', { kind: 'hf', repo: 'unsloth/Qwen3-0.6B-GGUF', variant: 'Q4_K_M' }],
    ['https://huggingface.co/unsloth/Qwen3-0.6B-GGUF:IQ4_XS', { kind: 'hf', repo: 'unsloth/Qwen3-0.6B-GGUF', variant: 'IQ4_XS' }],
    ['unsloth/Qwen3-0.6B-GGUF:latest', { kind: 'hf', repo: 'unsloth/Qwen3-0.6B-GGUF', variant: 'Q4_K_M' }],
  ])('parses %s', (id, expected) => {
    expect(parseModelId(id, aliases, dir)).toEqual(expected);
  });

  it.each(['../etc/passwd.gguf', '/etc/x.gguf', 'a/../../b.gguf', '/srv/models-evil/x.gguf'])('refuses %s as outside the models directory (403)', (id) => {
    const r = refusal(() => parseModelId(id, aliases, dir));
    expect(r.status).toBe(403);
    expect(r.code).toBe('model_path_forbidden');
    expect(r.message).toContain('outside the models directory');
  });

  it('answers 404 naming the configured models for an unknown name', () => {
    const r = refusal(() => parseModelId('gpt-4', aliases, dir));
    expect(r.status).toBe(404);
    expect(r.message).toContain('"gpt-4" is not configured');
    expect(r.message).toContain('odd/alias, tiny-a');
  });

  it.each([
    [undefined, 400],
    ['', 400],
    [42, 400],
    ['x'.repeat(600), 400],
    ['bad\u0000id', 400],
    ['what is this?', 400],
    ['a/b/c', 400],
  ])('refuses malformed %j with %i', (id, status) => {
    expect(refusal(() => parseModelId(id, aliases, dir)).status).toBe(status);
  });

  it('picks variant files deterministically, skipping projectors and later split parts', () => {
    const files = [
      'Qwen3-0.6B-Q8_0.gguf',
      'Qwen3-0.6B-Q4_K_M.gguf',
      'mmproj-Qwen3-Q4_K_M.gguf',
      'Qwen3-0.6B-Q4_K_M_L.gguf',
      'big/Qwen3-0.6B-Q4_K_M-00002-of-00002.gguf',
      'big/Qwen3-0.6B-Q4_K_M-00001-of-00002.gguf',
    ];
    expect(pickVariantFile(files, 'q4_k_m')).toBe('Qwen3-0.6B-Q4_K_M.gguf');
    expect(pickVariantFile(files, 'Q8_0')).toBe('Qwen3-0.6B-Q8_0.gguf');
    expect(pickVariantFile(files.filter((f) => f.startsWith('big/')), 'Q4_K_M')).toBe('big/Qwen3-0.6B-Q4_K_M-00001-of-00002.gguf');
    expect(pickVariantFile(files, 'IQ4_XS')).toBeUndefined();
  });

  it('resolves aliases, files and cached Hugging Face models against the disk', () => {
    const root = mkdtempSync(path.join(os.tmpdir(), 'lsp-resolve-'));
    mkdirSync(path.join(root, 'models'));
    writeFileSync(path.join(root, 'models', 'a.gguf'), 'x');
    const snap = path.join(root, 'cache', 'hub', 'models--acme--tiny-GGUF', 'snapshots', 'abc123');
    mkdirSync(snap, { recursive: true });
    writeFileSync(path.join(snap, 'tiny-Q4_K_M.gguf'), 'x');
    const config = buildConfig(
      { modelsDir: path.join(root, 'models'), cacheDir: path.join(root, 'cache'), models: { a: { path: path.join(root, 'models', 'a.gguf'), ctx: 1024, ttl: 5 }, gone: { path: '/nope.gguf' } } },
      null,
      { env: {} },
    );
    const env = { HF_HUB_CACHE: path.join(root, 'empty') };
    expect(resolveModel(config, 'a', env)).toMatchObject({ id: 'a', ctx: 1024, ttl: 5, parallel: 1 });
    expect(resolveModel(config, 'a.gguf', env)).toMatchObject({ id: path.join(root, 'models', 'a.gguf'), ctx: 4096 });
    expect(resolveModel(config, 'acme/tiny-GGUF', env)).toMatchObject({ id: 'acme/tiny-GGUF:Q4_K_M', file: path.join(snap, 'tiny-Q4_K_M.gguf') });
    const missingVariant = refusal(() => resolveModel(config, 'acme/tiny-GGUF:Q8_0', env));
    expect(missingVariant.status).toBe(404);
    expect(missingVariant.message).toContain('tiny-Q4_K_M.gguf');
    expect(refusal(() => resolveModel(config, 'missing.gguf', env)).status).toBe(404);
    expect(refusal(() => resolveModel(config, 'gone', env)).message).toContain('/nope.gguf does not exist');
  });
});
